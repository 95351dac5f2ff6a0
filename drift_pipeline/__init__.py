"""drift-pipeline: Drift chat data into a trusted DuckDB warehouse through Dagster and dbt."""

__version__ = "0.1.0"
