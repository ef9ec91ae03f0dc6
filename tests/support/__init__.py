"""Test helpers shared by the test modules: exchanges to trade against."""
