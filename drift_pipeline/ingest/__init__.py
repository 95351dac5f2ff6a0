"""Incremental ingestion: what to fetch from Drift and how it lands in `raw.*`."""
