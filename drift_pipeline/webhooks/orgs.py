"""Webhooks of orgs this deployment holds no tokens for.

Drift delivers every workspace's events to the one request URL, so the receiver cannot refuse
another org's event (it has no way to tell a new install from a stray one). Applying it would
re-fetch with some other org's tokens, or record status changes of conversations no sync will
ever load, so such an event is quarantined with a one-line reason instead: after `auth exchange`
for that org, `replay event` applies it. Two types are applied whatever the org, because they need
no tokens: a GDPR request (erasure must never wait; the org's data may still be here after its
tokens were removed) and `app_disconnected` (nothing here to stop).
"""

from __future__ import annotations

from drift_pipeline.drift.orgs import OrgClients, missing_tokens_reason
from drift_pipeline.webhooks.events import InvalidEvent, WebhookEvent

APPLIED_WITHOUT_TOKENS = frozenset({"gdpr_delete_requested", "app_disconnected"})


def require_org_tokens(clients: OrgClients, event: WebhookEvent) -> WebhookEvent:
    """`event`, or `InvalidEvent` (quarantined with its reason) when its org has no tokens here."""
    if event.type in APPLIED_WITHOUT_TOKENS or clients.has_tokens(event.org_id):
        return event
    raise InvalidEvent(missing_tokens_reason(event.org_id) + ", then `drift-pipeline replay event` this file")
