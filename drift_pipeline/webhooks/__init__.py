"""Drift webhooks: the receiver (`receiver`) and its inbox writer (`inbox_writer`, with the ids it
has seen in `seen_ids`), the event format (`events`) and the inbox files the apply step reads
(`inbox_files`)."""

from drift_pipeline.webhooks.events import (
    InvalidEvent,
    WebhookEvent,
    canonical_json,
    event_id,
    parse_json,
    validate_event,
)
from drift_pipeline.webhooks.inbox_files import (
    InvalidInboxFile,
    iter_inbox_files,
    read_inbox_file,
    write_events_file,
)
from drift_pipeline.webhooks.inbox_writer import InboxUnavailable, InboxWriter
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
