"""Ingestion: the TradeWriter and where its batches go, one module per backend."""
