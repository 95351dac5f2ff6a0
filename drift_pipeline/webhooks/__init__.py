"""Drift webhooks: the receiver (`receiver`), the event format (`events`) and the inbox files
the apply step reads (`inbox`)."""

from drift_pipeline.webhooks.events import (
    InvalidEvent,
    WebhookEvent,
    canonical_json,
    event_id,
    parse_json,
    validate_event,
)
from drift_pipeline.webhooks.inbox import (
    InboxUnavailable,
    InboxWriter,
    InvalidInboxFile,
    iter_inbox_files,
    read_inbox_file,
    write_events_file,
)
from drift_pipeline.webhooks.receiver import WebhookConfigError, create_app, serve

__all__ = [
    "InboxUnavailable",
    "InboxWriter",
    "InvalidEvent",
    "InvalidInboxFile",
    "WebhookConfigError",
    "WebhookEvent",
    "canonical_json",
    "create_app",
    "event_id",
    "iter_inbox_files",
    "parse_json",
    "read_inbox_file",
    "serve",
    "validate_event",
    "write_events_file",
]
