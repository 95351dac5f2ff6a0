"""The pipeline's DuckDB warehouse: table definitions and bulk upserts."""
