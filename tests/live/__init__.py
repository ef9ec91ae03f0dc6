"""Tests of the live side: the paper exchange, the ccxt venue, the live runner."""
