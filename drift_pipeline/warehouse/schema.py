"""Raw table definitions (the `raw.*` tables of docs/reference.md).

Every table carries `org_id` so one warehouse can hold several Drift workspaces; each key below
is per org. Times are UTC `TIMESTAMP`s, ids `BIGINT`. Types are kept to what Postgres also has.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Table:
    name: str  # schema-qualified, e.g. "raw.messages"
    columns: tuple[tuple[str, str], ...]  # (name, SQL type)
    key: tuple[str, ...]

    @property
    def column_names(self) -> list[str]:
        return [name for name, _ in self.columns]

    def ddl(self) -> str:
        cols = ",\n    ".join(f"{name} {sql_type}" for name, sql_type in self.columns)
        key = ", ".join(self.key)
        return f"CREATE TABLE IF NOT EXISTS {self.name} (\n    {cols},\n    PRIMARY KEY ({key})\n)"


CONVERSATIONS = Table(
    "raw.conversations",
    (
        ("org_id", "BIGINT NOT NULL"),
        ("conversation_id", "BIGINT NOT NULL"),
        ("status", "VARCHAR"),
        ("contact_id", "BIGINT"),
        ("inbox_id", "BIGINT"),
        ("created_at", "TIMESTAMP"),
        ("updated_at", "TIMESTAMP"),
        ("assignee_user_id", "BIGINT"),  # Drift has no assignee: the first participant
        ("participant_user_ids", "BIGINT[]"),
        ("tags", "VARCHAR[]"),
        ("related_playbook_id", "BIGINT"),
        ("synced_at", "TIMESTAMP"),
    ),
    ("org_id", "conversation_id"),
)

MESSAGES = Table(
    "raw.messages",
    (
        ("org_id", "BIGINT NOT NULL"),
        ("conversation_id", "BIGINT NOT NULL"),
        ("message_id", "BIGINT NOT NULL"),
        ("created_at", "TIMESTAMP"),
        ("message_type", "VARCHAR"),  # chat | private_note | private_prompt | suggestion | edit
        ("author_type", "VARCHAR"),  # contact | user
        ("author_id", "BIGINT"),
        ("is_bot", "BOOLEAN"),
        ("body", "VARCHAR"),  # raw HTML; never published to the serving copy
        ("edited_message_id", "BIGINT"),
        ("edit_type", "VARCHAR"),  # delete | replace | replace_body | replace_buttons
        ("synced_at", "TIMESTAMP"),
    ),
    ("org_id", "conversation_id", "message_id"),
)

PARTICIPANTS = Table(
    "raw.participants",
    (
        ("org_id", "BIGINT NOT NULL"),
        ("conversation_id", "BIGINT NOT NULL"),
        ("participant_id", "BIGINT NOT NULL"),
        ("participant_type", "VARCHAR NOT NULL"),  # user | contact
        ("is_current", "BOOLEAN"),  # false once a participant_removed event was applied
        ("changed_at", "TIMESTAMP"),
        ("synced_at", "TIMESTAMP"),
    ),
    ("org_id", "conversation_id", "participant_id", "participant_type"),
)

USERS = Table(
    "raw.users",
    (
        ("org_id", "BIGINT NOT NULL"),
        ("user_id", "BIGINT NOT NULL"),
        ("name", "VARCHAR"),
        ("alias", "VARCHAR"),
        ("email_hash", "VARCHAR"),
        ("role", "VARCHAR"),
        ("availability", "VARCHAR"),
        ("time_zone", "VARCHAR"),
        ("is_bot", "BOOLEAN"),
        ("created_at", "TIMESTAMP"),
        ("updated_at", "TIMESTAMP"),
        ("synced_at", "TIMESTAMP"),
    ),
    ("org_id", "user_id"),
)

CONTACTS = Table(
    "raw.contacts",
    (
        ("org_id", "BIGINT NOT NULL"),
        ("contact_id", "BIGINT NOT NULL"),
        ("email_hash", "VARCHAR"),  # salted SHA-256 of the lower-cased email (DRIFT_PII_SALT)
        ("external_id_hash", "VARCHAR"),
        ("created_at", "TIMESTAMP"),
        ("synced_at", "TIMESTAMP"),
    ),
    ("org_id", "contact_id"),
)

STATUS_EVENTS = Table(
    "raw.status_events",
    (
        ("org_id", "BIGINT NOT NULL"),
        ("conversation_id", "BIGINT NOT NULL"),
        ("status", "VARCHAR NOT NULL"),
        ("changed_at", "TIMESTAMP NOT NULL"),
        ("source", "VARCHAR"),  # webhook | poll | report
        ("recorded_at", "TIMESTAMP"),
    ),
    ("org_id", "conversation_id", "status", "changed_at"),
)

WEBHOOK_EVENTS = Table(
    "raw.webhook_events",
    (
        ("org_id", "BIGINT NOT NULL"),
        ("event_id", "VARCHAR NOT NULL"),  # sha256 of the canonical payload
        ("event_type", "VARCHAR"),
        ("conversation_id", "BIGINT"),
        ("occurred_at", "TIMESTAMP"),
        ("received_at", "TIMESTAMP"),
        ("applied_at", "TIMESTAMP"),
        ("outcome", "VARCHAR"),  # applied | skipped_unknown_type | ...
        ("source_file", "VARCHAR"),
        ("payload", "VARCHAR"),  # canonical JSON, token removed
    ),
    ("org_id", "event_id"),
)

EXPORTS = Table(
    "raw.exports",
    (
        ("job_id", "VARCHAR NOT NULL"),
        ("org_id", "BIGINT"),
        ("window_start", "TIMESTAMP"),
        ("window_end", "TIMESTAMP"),
        ("partition_keys", "VARCHAR"),
        ("started_at", "TIMESTAMP"),
        ("finished_at", "TIMESTAMP"),
        ("page_token_checkpoint", "VARCHAR"),
        ("pages", "INTEGER"),
        ("success", "BOOLEAN"),
        ("error_code", "VARCHAR"),
        ("api_calls", "INTEGER"),
        ("conversations_listed", "INTEGER"),
        ("conversations_fetched", "INTEGER"),
        ("conversations_skipped", "INTEGER"),
        ("rate_limited", "INTEGER"),
        # How far the listing had to reach (window start minus the overlap), the newest
        # `updatedAt` it listed (None when resumed mid-way), and whether it walked the whole
        # window: together they tell a later run what this one left exact in the warehouse.
        ("list_from", "TIMESTAMP"),
        ("newest_listed_at", "TIMESTAMP"),
        ("full_window", "BOOLEAN"),
        ("report_calls", "INTEGER"),
        # Transcript export jobs share this table (`kind = 'transcripts'`; sync jobs leave
        # window_* for their own resume lookup, so an export never matches a sync's window).
        ("kind", "VARCHAR"),  # sync | transcripts (NULL on sync rows written before the column)
        ("filters", "VARCHAR"),  # canonical JSON of an export's filters: the incremental identity
        ("output_dir", "VARCHAR"),
        ("changed_after", "TIMESTAMP"),  # exports write transcripts re-rendered in
        ("changed_until", "TIMESTAMP"),  # (changed_after, changed_until]
        ("files_written", "INTEGER"),
        ("conversations_written", "INTEGER"),
    ),
    ("job_id",),
)

ERASED_CONTACTS = Table(
    "raw.erased_contacts",
    (
        ("org_id", "BIGINT NOT NULL"),
        ("contact_id_hash", "VARCHAR NOT NULL"),  # salted hash: suppresses the contact in later syncs
        ("erased_at", "TIMESTAMP"),
        ("conversation_ids", "VARCHAR"),  # JSON list of the conversations whose bodies were erased
    ),
    ("org_id", "contact_id_hash"),
)

TRANSCRIPTS = Table(
    "raw.transcripts",
    (
        ("org_id", "BIGINT NOT NULL"),
        ("conversation_id", "BIGINT NOT NULL"),
        ("transcript", "VARCHAR"),  # plain text, chat only; never published to the serving copy
        ("message_count", "INTEGER"),  # messages shown in the transcript
        ("input_hash", "VARCHAR"),  # sha256 of everything rendering reads (notes included)
        ("rendered_at", "TIMESTAMP"),  # when the inputs last changed: what exports select on
        ("checked_at", "TIMESTAMP"),  # when the inputs were last compared with input_hash
    ),
    ("org_id", "conversation_id"),
)

ERASURES = Table(
    "raw.erasures",
    (
        ("erasure_id", "VARCHAR NOT NULL"),
        ("org_id", "BIGINT"),  # NULL: the pass covered every org in the warehouse
        ("kind", "VARCHAR"),  # contact | retention
        ("trigger", "VARCHAR"),  # cli | webhook | schedule
        ("started_at", "TIMESTAMP"),
        ("finished_at", "TIMESTAMP"),
        ("subject_hashes", "VARCHAR"),  # JSON list of salted hashes of the erased contact ids
        ("retention_days", "INTEGER"),
        ("cutoff_at", "TIMESTAMP"),  # retention: bodies of messages created before this went
        ("counts", "VARCHAR"),  # JSON {table or file group: rows/lines changed}; never content
    ),
    ("erasure_id",),
)

WIDGET_EVENTS = Table(
    "raw.widget_events",
    (
        ("org_id", "BIGINT NOT NULL"),  # the org of the conversation (see webhooks/apply.py)
        ("event_id", "VARCHAR NOT NULL"),  # sha256 of the canonical kept fields
        ("event_type", "VARCHAR"),  # the widget's event name, e.g. conversation:start
        ("conversation_id", "BIGINT"),
        ("occurred_at", "TIMESTAMP"),  # the browser's clock
        ("utm_source", "VARCHAR"),
        ("utm_medium", "VARCHAR"),
        ("utm_campaign", "VARCHAR"),
        ("utm_term", "VARCHAR"),
        ("utm_content", "VARCHAR"),
        ("page_path", "VARCHAR"),  # path only: query string and fragment never stored
        ("dropped_fields", "INTEGER"),  # fields refused by the privacy filter (counted, not kept)
        ("received_at", "TIMESTAMP"),
        ("source_file", "VARCHAR"),
        ("synced_at", "TIMESTAMP"),  # when applied; drives the incremental marts
    ),
    ("org_id", "event_id"),
)

# Meetings, playbooks and accounts . Drift serves
# a meeting only while its slot is within the last 30 days: these rows are the only history.
MEETINGS = Table(
    "raw.meetings",
    (
        ("org_id", "BIGINT NOT NULL"),
        ("slug", "VARCHAR NOT NULL"),  # Drift's meeting id
        ("status", "VARCHAR"),  # as Drift sends it: ACTIVE, CANCELED, ...
        ("meeting_source", "VARCHAR"),
        ("meeting_type", "VARCHAR"),
        ("agent_user_id", "BIGINT"),
        ("scheduler_contact_id", "BIGINT"),
        ("conversation_id", "BIGINT"),  # null when booked outside a conversation
        ("booked_by_user_id", "BIGINT"),
        ("slot_start_at", "TIMESTAMP"),
        ("slot_end_at", "TIMESTAMP"),
        ("scheduled_at", "TIMESTAMP"),  # when it was booked
        ("updated_at", "TIMESTAMP"),
        ("end_user_time_zone", "VARCHAR"),
        ("meeting_notes_hash", "VARCHAR"),  # salted hash of meetingNotes: the text is never stored
        ("synced_at", "TIMESTAMP"),
    ),
    ("org_id", "slug"),
)

MEETING_CHANGES = Table(
    "raw.meeting_changes",
    (
        ("org_id", "BIGINT NOT NULL"),
        ("slug", "VARCHAR NOT NULL"),
        ("updated_at", "TIMESTAMP NOT NULL"),
        ("status", "VARCHAR"),
        ("slot_start_at", "TIMESTAMP"),
        ("source", "VARCHAR"),  # poll | webhook
        ("recorded_at", "TIMESTAMP"),
    ),
    ("org_id", "slug", "updated_at"),
)

PLAYBOOKS = Table(
    "raw.playbooks",
    (
        ("org_id", "BIGINT NOT NULL"),
        ("playbook_id", "BIGINT NOT NULL"),
        ("name", "VARCHAR"),
        ("report_type", "VARCHAR"),
        ("interaction_id", "BIGINT"),
        ("created_at", "TIMESTAMP"),
        ("updated_at", "TIMESTAMP"),
        ("first_seen_at", "TIMESTAMP"),
        ("last_listed_at", "TIMESTAMP"),  # Drift lists only enabled playbooks
        ("currently_listed", "BOOLEAN"),
        ("synced_at", "TIMESTAMP"),
    ),
    ("org_id", "playbook_id"),
)

PLAYBOOK_GOALS_DEFINED = Table(
    "raw.playbook_goals_defined",
    (
        ("org_id", "BIGINT NOT NULL"),
        ("playbook_id", "BIGINT NOT NULL"),
        ("goal_id", "VARCHAR NOT NULL"),  # a uuid string
        ("message", "VARCHAR"),
        ("synced_at", "TIMESTAMP"),
    ),
    ("org_id", "playbook_id", "goal_id"),
)

PLAYBOOK_GOALS = Table(
    "raw.playbook_goals",
    (
        ("org_id", "BIGINT NOT NULL"),
        ("event_id", "VARCHAR NOT NULL"),  # the webhook's payload hash
        ("playbook_id", "BIGINT"),
        ("goal_id", "VARCHAR"),
        ("conversation_id", "BIGINT"),
        ("contact_id", "BIGINT"),
        ("occurred_at", "TIMESTAMP"),
        ("synced_at", "TIMESTAMP"),
    ),
    ("org_id", "event_id"),
)

ACCOUNTS = Table(
    "raw.accounts",
    (
        ("org_id", "BIGINT NOT NULL"),
        ("account_id", "VARCHAR NOT NULL"),  # Drift's string id, e.g. "123458_domain.com"
        ("name", "VARCHAR"),
        ("domain", "VARCHAR"),
        ("owner_user_id", "BIGINT"),
        ("targeted", "BOOLEAN"),
        ("deleted", "BOOLEAN"),
        ("created_at", "TIMESTAMP"),
        ("updated_at", "TIMESTAMP"),
        ("synced_at", "TIMESTAMP"),
    ),
    ("org_id", "account_id"),
)

RAW_TABLES: tuple[Table, ...] = (
    CONVERSATIONS,
    MESSAGES,
    PARTICIPANTS,
    USERS,
    CONTACTS,
    STATUS_EVENTS,
    WEBHOOK_EVENTS,
    EXPORTS,
    ERASED_CONTACTS,
    TRANSCRIPTS,
    ERASURES,
    WIDGET_EVENTS,
    MEETINGS,
    MEETING_CHANGES,
    PLAYBOOKS,
    PLAYBOOK_GOALS_DEFINED,
    PLAYBOOK_GOALS,
    ACCOUNTS,
)


def create_raw_schema(conn) -> None:
    """Create the `raw` schema and its tables if they do not exist, and add the columns a newer
    version defines to tables an older one created (idempotent)."""
    conn.execute("CREATE SCHEMA IF NOT EXISTS raw")
    for table in RAW_TABLES:
        conn.execute(table.ddl())
        schema_name, table_name = table.name.split(".", 1)
        existing = {row[0] for row in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
            [schema_name, table_name]).fetchall()}
        for name, sql_type in table.columns:
            if name not in existing:
                conn.execute(f"ALTER TABLE {table.name} ADD COLUMN {name} {sql_type.replace(' NOT NULL', '')}")
