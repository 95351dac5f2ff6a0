"""Dagster resources: the Drift API (live or simulator: the assets cannot tell) and the warehouse."""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping, Optional, Union

from dagster import ConfigurableResource, EnvVar, ResourceParam
from dagster_duckdb import DuckDBResource

from drift_pipeline.drift.orgs import DeploymentOrgs, deployment_orgs
from drift_pipeline.fsutil import atomic_write_text
from drift_pipeline.settings import ENV_NAMES, SECRET_FIELDS, Settings, SettingsError
from drift_pipeline.warehouse.postgres import connect_postgres
from drift_pipeline.warehouse.schema import create_raw_schema


class DriftApiResource(ConfigurableResource):
    """How the pipeline reaches Drift and where it keeps its state: every DRIFT_* setting (the
    `settings.SETTINGS`) is a field named after the `Settings` field it fills.

    The deployment's definitions fill each field from its environment variable (`EnvVar`,
    resolved in the process that runs the step, so no secret enters Dagster's stored run
    config or the UI); tests build the resource from a `Settings` they made. Unset fields take
    the documented defaults, and `settings()` validates them as the environment would be."""

    home: str
    api_base_url: Optional[str] = None
    access_token: Optional[str] = None
    client_id: Optional[str] = None
    client_secret: Optional[str] = None
    refresh_token: Optional[str] = None
    webhook_token: Optional[str] = None
    token_key: Optional[str] = None
    pii_salt: Optional[str] = None
    max_concurrency: Optional[str] = None
    overlap_minutes: Optional[str] = None
    duckdb_memory_limit: Optional[str] = None
    duckdb_threads: Optional[str] = None
    publish_transcripts: Optional[str] = None
    serving_storage_version: Optional[str] = None
    retention_days: Optional[str] = None
    history_start: Optional[str] = None
    widget_secret: Optional[str] = None
    widget_origins: Optional[str] = None
    warehouse_url: Optional[str] = None
    dagster_pg_url: Optional[str] = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "DriftApiResource":
        """Each variable set in `env` (default: this process's environment) as an `EnvVar`; the
        home, which every process must agree on, as an absolute path."""
        env = os.environ if env is None else env
        fields: dict = {field: EnvVar(name) for field, name in ENV_NAMES.items() if env.get(name)}
        fields["home"] = str(Settings.from_env(env).home)  # absolute: a relative one would follow each process's cwd
        return cls(**fields)

    @classmethod
    def for_settings(cls, settings: Settings, env: Mapping[str, str] | None = None) -> "DriftApiResource":
        """These settings (a test's or a CLI run's own): plain values, but each secret as the
        `EnvVar` of the process's environment (`env`, default `os.environ`), which must hold
        that very value. Raises `SettingsError` when it does not."""
        values = settings.as_env()
        return cls(**{field: _secret_env_var(name, values[name], env) if field in SECRET_FIELDS else values[name]
                      for field, name in ENV_NAMES.items() if name in values})

    def settings(self) -> Settings:
        """The settings this resource carries. Dagster resolves each `EnvVar` when it builds the
        resource for a step; a resource used outside a run reads its variables here."""
        values = {}
        for field, name in ENV_NAMES.items():
            value = getattr(self, field)
            if isinstance(value, EnvVar):
                value = value.get_value()
            if value is not None:
                values[name] = value
        return Settings.from_env(values)

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


def _secret_env_var(name: str, value: str, env: Mapping[str, str] | None) -> EnvVar:
    """`EnvVar(name)` for a secret whose value the process's environment holds: how a secret
    reaches a resource without its value entering the definitions."""
    env = os.environ if env is None else env
    if env.get(name) != value:
        raise SettingsError(f"{name} must be set in this process's environment to the value the run uses: "
                            f"secrets reach Dagster's resources only as environment variables")
    return EnvVar(name)


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
    if settings.warehouse_on_postgres:  # the URL may hold a password: an EnvVar, like every secret
        return PostgresWarehouseResource(url=_secret_env_var("DRIFT_WAREHOUSE_URL", settings.warehouse_url, None))
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


def measure(duckdb, query):
    """`query(conn)` on a warehouse connection (what an asset check counts)."""
    with warehouse_connection(duckdb) as conn:
        return query(conn)
