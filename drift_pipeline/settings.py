"""Settings read from the environment (`SETTINGS`; docs/reference.md lists them).

Nothing here is read at import time: callers build a `Settings` when they need one, so tests
and Dagster resources can pass their own environment.
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Mapping

DEFAULT_API_BASE_URL = "https://driftapi.com"
# Also the defaults in dbt_project/profiles.yml, which reads the same variables.
DEFAULT_DUCKDB_MEMORY_LIMIT = "2GB"
DEFAULT_DUCKDB_THREADS = 2
_MEMORY_LIMIT = re.compile(r"^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$", re.IGNORECASE)
DEFAULT_HISTORY_START = date(2015, 1, 1)
# DuckDB's storage format of the serving copy. The pinned DuckDB (2.x) writes one that the 1.x
# line, which BI drivers bundle, refuses ("version number 999"); v1.0.0 opens from 1.0 on.
DEFAULT_SERVING_STORAGE_VERSION = "v1.0.0"
_STORAGE_VERSION = re.compile(r"^(v\d+\.\d+\.\d+|latest)$")


class UsageError(Exception):
    """The command line (or a file named on it) asks for something that cannot be done; the
    message says what and how to fix it. The CLI prints it on one line and exits 2."""


class SettingsError(UsageError):
    """A setting has a value the pipeline cannot use; the message says which and why."""


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {value}")
    return value


def _memory_limit(env: Mapping[str, str]) -> str:
    raw = env.get("DRIFT_DUCKDB_MEMORY_LIMIT")
    if raw in (None, ""):
        return DEFAULT_DUCKDB_MEMORY_LIMIT
    if not _MEMORY_LIMIT.match(raw):
        raise SettingsError(f"DRIFT_DUCKDB_MEMORY_LIMIT must be a size such as 2GB or 1500MiB, got {raw!r}")
    return raw.strip()


def _storage_version(env: Mapping[str, str]) -> str:
    """A DuckDB storage version as ATTACH's STORAGE_VERSION takes it (`v1.0.0`, or `latest`
    for the running DuckDB's own); whether DuckDB knows it is checked when publishing."""
    raw = (env.get("DRIFT_SERVING_STORAGE_VERSION") or "").strip()
    if not raw:
        return DEFAULT_SERVING_STORAGE_VERSION
    if not _STORAGE_VERSION.match(raw):
        raise SettingsError("DRIFT_SERVING_STORAGE_VERSION must be a DuckDB version such as v1.0.0 "
                            f"(or latest), got {raw!r}")
    return raw


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise SettingsError(f"{name} must be 1 or 0 (true/false), got {raw!r}")


def _day(env: Mapping[str, str], name: str, default: date) -> date:
    """A YYYY-MM-DD day from the environment, no later than today (UTC)."""
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        if len(raw) != 10:
            raise ValueError
        value = date.fromisoformat(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a day as YYYY-MM-DD, got {raw!r}") from None
    today = datetime.now(timezone.utc).date()
    if value > today:
        raise SettingsError(f"{name} ({value}) is in the future: it must be a day no later than {today}")
    return value


def _origins(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """A comma-separated list of web origins (`https://www.example.com`), normalized the way
    browsers send the Origin header: lower-case, no path, no trailing slash."""
    origins = []
    for item in (env.get(name) or "").split(","):
        item = item.strip().rstrip("/").lower()
        if not item:
            continue
        if not _ORIGIN_RE.match(item):
            raise SettingsError(
                f"{name} must list origins like https://www.example.com (scheme and host, "
                f"optional port, no path), got {item!r}")
        origins.append(item)
    return tuple(origins)


_ORIGIN_RE = re.compile(r"^https?://[a-z0-9.-]+(:\d{1,5})?$")
_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def _postgres_url(env: Mapping[str, str], name: str) -> str | None:
    """A libpq URL (`postgresql://user:password@host:port/database`), or None when unset."""
    raw = (env.get(name) or "").strip()
    if not raw:
        return None
    if not raw.startswith(_POSTGRES_SCHEMES):
        raise SettingsError(f"{name} must be a PostgreSQL URL such as postgresql://user@host:5432/drift "
                            f"(unset for the DuckDB file), got one starting {raw.split(':', 1)[0]!r}")
    return raw


def _env_text(value) -> str | None:
    """A setting's value as its environment variable's text (what `Settings.from_env` parses)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple):
        return ",".join(value) or None
    return str(value)


@dataclass(frozen=True)
class SettingSpec:
    """One setting: the `Settings` field it fills, its environment variable, what it means and
    its default (as docs/reference.md shows them), and whether its value is a secret."""

    field: str
    env: str
    meaning: str
    default: str
    secret: bool = False


# The one list of settings: `Settings.from_env` reads these variables, the Dagster resource has
# a field for each, docs/reference.md lists them (drift_pipeline/reference.py).
SETTINGS: tuple[SettingSpec, ...] = (
    SettingSpec("home", "DRIFT_PIPELINE_HOME", "where all state lives (docs/reference.md: Files)", "`./data`"),
    SettingSpec("api_base_url", "DRIFT_API_BASE_URL", "Drift API root", "`https://driftapi.com`"),
    SettingSpec("access_token", "DRIFT_ACCESS_TOKEN", "a static access token (wins over OAuth)", "unset", True),
    SettingSpec("client_id", "DRIFT_CLIENT_ID", "OAuth app's client id", "unset", True),
    SettingSpec("client_secret", "DRIFT_CLIENT_SECRET", "OAuth app's client secret", "unset", True),
    SettingSpec("refresh_token", "DRIFT_REFRESH_TOKEN",
                "seeds an empty token store (refresh tokens rotate: the stored one wins after)", "unset", True),
    SettingSpec("webhook_token", "DRIFT_WEBHOOK_TOKEN",
                "webhook verification token (`X-Verification-Token` header or body `token`)",
                "unset: the receiver refuses to start", True),
    SettingSpec("token_key", "DRIFT_TOKEN_KEY", "Fernet key that encrypts the token store",
                "generated into `state/token_key` (0600)", True),
    SettingSpec("pii_salt", "DRIFT_PII_SALT", "salt for hashing contact identifiers",
                "generated into `state/pii_salt` (0600)", True),
    SettingSpec("max_concurrency", "DRIFT_MAX_CONCURRENCY", "requests in flight at most", "8"),
    SettingSpec("overlap_minutes", "DRIFT_OVERLAP_MINUTES", "how far each incremental window reaches back", "60"),
    SettingSpec("duckdb_memory_limit", "DRIFT_DUCKDB_MEMORY_LIMIT",
                "DuckDB memory limit of every pipeline and dbt connection (spills to `tmp/duckdb` beyond)",
                f"`{DEFAULT_DUCKDB_MEMORY_LIMIT}`"),
    SettingSpec("duckdb_threads", "DRIFT_DUCKDB_THREADS", "DuckDB threads of every pipeline and dbt connection",
                str(DEFAULT_DUCKDB_THREADS)),
    SettingSpec("publish_transcripts", "DRIFT_PUBLISH_TRANSCRIPTS",
                "`1`: also publish `serving/transcripts.duckdb` for QA teams", "off"),
    SettingSpec("serving_storage_version", "DRIFT_SERVING_STORAGE_VERSION",
                "DuckDB storage format of the serving copies (`v1.0.0`: opens in DuckDB 1.x, which BI drivers "
                "bundle; `latest`: the pinned DuckDB's own)", "`v1.0.0`"),
    SettingSpec("retention_days", "DRIFT_RETENTION_DAYS",
                "days of message text the `weekly_retention` schedule keeps", "unset: the schedule skips"),
    SettingSpec("history_start", "DRIFT_HISTORY_START", "first day of the daily partitions (YYYY-MM-DD)",
                f"`{DEFAULT_HISTORY_START.isoformat()}`"),
    SettingSpec("widget_secret", "DRIFT_WIDGET_SECRET", "site secret that signs widget events (docs/widget.md)",
                "unset: `POST /widget-events` answers 404", True),
    SettingSpec("widget_origins", "DRIFT_WIDGET_ORIGINS",
                "comma-separated browser origins allowed to post widget events directly", "none"),
    SettingSpec("warehouse_url", "DRIFT_WAREHOUSE_URL",
                "`postgresql://...`: the warehouse in PostgreSQL (docs/postgres.md)", "unset: `warehouse.duckdb`", True),
    SettingSpec("dagster_pg_url", "DRIFT_DAGSTER_PG_URL", "Dagster's runs and events in PostgreSQL",
                "the warehouse URL when that is Postgres, else SQLite", True),
)

# Each setting's environment variable, by field name.
ENV_NAMES: dict[str, str] = {spec.field: spec.env for spec in SETTINGS}

# The settings that are secrets (credentials, keys, salts, URLs that may hold a password). A
# Dagster resource carries each as an `EnvVar` naming its variable, never as a value: the UI
# (Resources page, GraphQL `configuredValues`), run storage and job snapshots show a resource's
# configured values, and an `EnvVar` shows only the variable's name.
SECRET_FIELDS: frozenset[str] = frozenset(spec.field for spec in SETTINGS if spec.secret)


# What lives under $DRIFT_PIPELINE_HOME (docs/reference.md lists it): path, what it holds.
HOME_LAYOUT: tuple[tuple[str, str], ...] = (
    ("warehouse.duckdb", "the pipeline's own database (one writer: the pipeline); raw.* and marts.*"),
    ("serving/analytics.duckdb", "the published copy of marts.* for analysts and BI: replaced atomically, "
                                 "never locked by the pipeline; no message bodies or emails"),
    ("serving/parquet/<schema>.<table>.parquet", "the same marts as Parquet files"),
    ("serving/report.html", "the charts of the marts, one offline file"),
    ("serving/dbt-docs/", "dbt's documentation site of the models"),
    ("serving/transcripts.duckdb", "opt-in (DRIFT_PUBLISH_TRANSCRIPTS): chat transcripts for QA teams"),
    ("inbox/", "webhook and widget events waiting to be applied (`*.json`, one JSON object per line)"),
    ("processed/", "inbox files after they were applied"),
    ("quarantine/", "events that could not be applied, each with a `.reason` file beside it"),
    ("state/", "mode 0700: the encrypted token store (`tokens.fernet`), the generated token key and PII "
               "salt (0600), the webhook seen-ids file, org ids, disconnect marks, rate-limit budgets"),
    ("dagster/", "DAGSTER_HOME unless set: Dagster's runs, event log, schedules and sensor cursors"),
    ("dbt/", "one folder per dbt invocation (compiled SQL, run_results.json, dbt.log); the newest 20 kept"),
    ("logs/", "the commands' dbt output (`last_sync.log`, ...) and `timings.jsonl` (apply and marts stages)"),
    ("tmp/duckdb/", "where DuckDB spills what does not fit in DRIFT_DUCKDB_MEMORY_LIMIT"),
)


@dataclass(frozen=True)
class Settings:
    home: Path
    api_base_url: str = DEFAULT_API_BASE_URL
    access_token: str | None = field(default=None, repr=False)
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    webhook_token: str | None = field(default=None, repr=False)
    token_key: str | None = field(default=None, repr=False)
    pii_salt: str | None = field(default=None, repr=False)
    max_concurrency: int = 8
    overlap_minutes: int = 60
    # DuckDB's own limits for every connection the pipeline and dbt open: sized so a sync, dbt
    # and the Dagster processes fit in a 4 GiB machine; heavier queries spill to disk instead.
    duckdb_memory_limit: str = DEFAULT_DUCKDB_MEMORY_LIMIT
    duckdb_threads: int = DEFAULT_DUCKDB_THREADS
    publish_transcripts: bool = False  # opt-in serving/transcripts.duckdb for QA teams
    # The oldest DuckDB that must open the published copies (BI drivers bundle their own).
    serving_storage_version: str = DEFAULT_SERVING_STORAGE_VERSION
    retention_days: int | None = None  # the weekly retention schedule's N (unset: it skips)
    # First day of the daily partitions: every process that loads the definitions (CLI,
    # `dagster dev`, its run workers, `dagster asset materialize`) reads the same inherited
    # environment, so they all agree on the partition set.
    history_start: date = DEFAULT_HISTORY_START
    # Widget events (POST /widget-events): the site secret that signs them, and the browser
    # origins allowed to post them directly. No secret: the endpoint is off.
    widget_secret: str | None = field(default=None, repr=False)
    widget_origins: tuple[str, ...] = ()
    # Past one DuckDB file (docs/postgres.md): the warehouse in PostgreSQL, and Dagster's own
    # storage there too (its own URL, else the warehouse's), so runs can go in parallel.
    warehouse_url: str | None = field(default=None, repr=False)
    dagster_pg_url: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        return cls(
            home=Path(env.get("DRIFT_PIPELINE_HOME") or "./data").resolve(),
            api_base_url=(env.get("DRIFT_API_BASE_URL") or DEFAULT_API_BASE_URL).rstrip("/"),
            access_token=env.get("DRIFT_ACCESS_TOKEN") or None,
            client_id=env.get("DRIFT_CLIENT_ID") or None,
            client_secret=env.get("DRIFT_CLIENT_SECRET") or None,
            refresh_token=env.get("DRIFT_REFRESH_TOKEN") or None,
            webhook_token=env.get("DRIFT_WEBHOOK_TOKEN") or None,
            token_key=env.get("DRIFT_TOKEN_KEY") or None,
            pii_salt=env.get("DRIFT_PII_SALT") or None,
            max_concurrency=_int(env, "DRIFT_MAX_CONCURRENCY", 8, minimum=1),
            overlap_minutes=_int(env, "DRIFT_OVERLAP_MINUTES", 60, minimum=0),
            duckdb_memory_limit=_memory_limit(env),
            duckdb_threads=_int(env, "DRIFT_DUCKDB_THREADS", DEFAULT_DUCKDB_THREADS, minimum=1),
            publish_transcripts=_flag(env, "DRIFT_PUBLISH_TRANSCRIPTS"),
            serving_storage_version=_storage_version(env),
            retention_days=_int(env, "DRIFT_RETENTION_DAYS", 0, minimum=1) or None,
            history_start=_day(env, "DRIFT_HISTORY_START", DEFAULT_HISTORY_START),
            widget_secret=env.get("DRIFT_WIDGET_SECRET") or None,
            widget_origins=_origins(env, "DRIFT_WIDGET_ORIGINS"),
            warehouse_url=_postgres_url(env, "DRIFT_WAREHOUSE_URL"),
            dagster_pg_url=_postgres_url(env, "DRIFT_DAGSTER_PG_URL"),
        )

    def as_env(self) -> dict[str, str]:
        """These settings as the environment that reads back as them
        (`Settings.from_env(s.as_env()) == s`): how a resource carries them as plain values.
        Unset values (None, an empty list of origins) are left out."""
        return {spec.env: text for spec in SETTINGS if (text := _env_text(getattr(self, spec.field))) is not None}

    @property
    def warehouse_on_postgres(self) -> bool:
        """True when DRIFT_WAREHOUSE_URL names a PostgreSQL database (else the DuckDB file)."""
        return self.warehouse_url is not None

    @property
    def dagster_storage_url(self) -> str | None:
        """Where Dagster keeps runs, events and schedules when not in SQLite under DAGSTER_HOME."""
        return self.dagster_pg_url or self.warehouse_url

    # Layout of $DRIFT_PIPELINE_HOME (HOME_LAYOUT).
    @property
    def warehouse_path(self) -> Path:
        return self.home / "warehouse.duckdb"

    @property
    def serving_dir(self) -> Path:
        return self.home / "serving"

    @property
    def inbox_dir(self) -> Path:
        return self.home / "inbox"

    @property
    def processed_dir(self) -> Path:
        return self.home / "processed"

    @property
    def quarantine_dir(self) -> Path:
        return self.home / "quarantine"

    @property
    def state_dir(self) -> Path:
        return self.home / "state"

    @property
    def duckdb_temp_dir(self) -> Path:
        """Where DuckDB spills what does not fit in `duckdb_memory_limit`."""
        return self.home / "tmp" / "duckdb"

    def duckdb_config(self) -> dict[str, str]:
        """DuckDB settings for every connection to the warehouse (and the serving copy)."""
        return {"memory_limit": self.duckdb_memory_limit, "threads": str(self.duckdb_threads),
                "temp_directory": str(self.duckdb_temp_dir)}

    @property
    def token_store_path(self) -> Path:
        return self.state_dir / "tokens.fernet"

    def ensure_dirs(self) -> None:
        for path in (self.home, self.serving_dir, self.inbox_dir, self.processed_dir,
                     self.quarantine_dir, self.state_dir):
            path.mkdir(parents=True, exist_ok=True)
        os.chmod(self.state_dir, 0o700)

    def secret(self, name: str) -> str:
        """The named secret (`token_key` or `pii_salt`): from the environment, else from
        `state/<name>`, generated there with mode 0600 on first use."""
        explicit = getattr(self, name)
        if explicit:
            return explicit
        self.ensure_dirs()
        path = self.state_dir / name
        if path.exists():
            return path.read_text().strip()
        if name == "token_key":
            from cryptography.fernet import Fernet

            value = Fernet.generate_key().decode()
        else:
            value = secrets.token_hex(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(value)
        return value
