"""Dagster resources: the Drift API (live or simulator: the assets cannot tell) and the warehouse."""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Iterator, Optional, Union

from dagster import ConfigurableResource, ResourceParam
from dagster_duckdb import DuckDBResource

from drift_pipeline.drift.client import DriftClient
from drift_pipeline.drift.orgs import DeploymentOrgs, deployment_orgs
from drift_pipeline.fsutil import atomic_write_text
from drift_pipeline.settings import Settings
from drift_pipeline.warehouse.postgres import connect_postgres
from drift_pipeline.warehouse.schema import create_raw_schema


class DriftApiResource(ConfigurableResource):
    """Where the pipeline keeps its state and how it reaches Drift. `home` is the deployment's
    $DRIFT_PIPELINE_HOME (the definitions set it); the secrets and the rest of the DRIFT_*
    settings come from the environment, never from Dagster's stored run config."""

    home: Optional[str] = None
    base_url: Optional[str] = None
    max_concurrency: Optional[int] = None
    overlap_minutes: Optional[int] = None

    def settings(self) -> Settings:
        settings = Settings.from_env()
        overrides = {}
        if self.home:
            overrides["home"] = Path(self.home).resolve()
        if self.base_url:
            overrides["api_base_url"] = self.base_url.rstrip("/")
        if self.max_concurrency:
            overrides["max_concurrency"] = self.max_concurrency
        if self.overlap_minutes is not None:
            overrides["overlap_minutes"] = self.overlap_minutes
        return replace(settings, **overrides) if overrides else settings

    def client(self):
        return DriftClient.from_settings(self.settings())

    def orgs(self) -> DeploymentOrgs:
        """The Drift orgs this deployment syncs (one token-store entry each)."""
        return deployment_orgs(self.settings())

    # A static token carries no org id; remembering the one discovered saves a call per run.
    def _org_cache(self):
        return self.settings().state_dir / "org_ids.json"

    def known_org_id(self) -> int | None:
        path = self._org_cache()
        if not path.exists():
            return None
        return json.loads(path.read_text()).get(self.settings().api_base_url)

    def remember_org_id(self, org_id: int) -> None:
        settings = self.settings()
        settings.ensure_dirs()
        path = self._org_cache()
        known = json.loads(path.read_text()) if path.exists() else {}
        if known.get(settings.api_base_url) != org_id:
            known[settings.api_base_url] = org_id
            atomic_write_text(path, json.dumps(known))


class PostgresWarehouseResource(ConfigurableResource):
    """The warehouse in PostgreSQL (DRIFT_WAREHOUSE_URL): a session per use, many at once."""

    url: str

    @contextmanager
    def get_connection(self) -> Iterator:
        with connect_postgres(self.url) as conn:
            yield conn


# What the raw assets take under the `duckdb` key: the DuckDB file, or Postgres when configured.
WarehouseResource = ResourceParam[Union[DuckDBResource, PostgresWarehouseResource]]


def warehouse_resource(settings: Settings | None = None):
    """The warehouse as a resource. Creates nothing: loading the definitions (every Dagster
    process does, often) must not touch `$DRIFT_PIPELINE_HOME`; the first connection does."""
    settings = settings or Settings.from_env()
    if settings.warehouse_on_postgres:
        return PostgresWarehouseResource(url=settings.warehouse_url)
    return DuckDBResource(database=str(settings.warehouse_path), connection_config=settings.duckdb_config())


@contextmanager
def warehouse_connection(duckdb) -> Iterator:
    """A connection with the raw schema in place (and the folders of the warehouse and of
    DuckDB's spill files)."""
    if isinstance(duckdb, PostgresWarehouseResource):
        with duckdb.get_connection() as conn:  # the raw schema is made on connect
            yield conn
        return
    Path(duckdb.database).parent.mkdir(parents=True, exist_ok=True)
    temp_dir = (duckdb.connection_config or {}).get("temp_directory")
    if temp_dir:
        Path(temp_dir).mkdir(parents=True, exist_ok=True)
    with duckdb.get_connection() as conn:
        create_raw_schema(conn)
        yield conn
