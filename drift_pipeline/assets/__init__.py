"""Dagster assets, grouped by source: raw Drift tables, dbt models, the serving copy."""
