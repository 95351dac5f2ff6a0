"""Several simulated workspaces behind one API host.

Drift serves every org from the same host; what tells them apart is the credential a request
carries. `MultiOrgSimulator` does the same with several `Simulator`s: an API request goes to the
workspace that issued its bearer token, a token request to the one that issued its code or
refresh token, and `/_sim/*` controls to the workspace named by `?orgId=` (else the first). Each
workspace keeps its own data, tokens and rate-limit bucket, as each Drift org has its own 600/min.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

from .app import Simulator


class MultiOrgSimulator:
    """Workspaces with distinct org ids (and distinct static tokens) behind one ASGI `app`."""

    def __init__(self, simulators: list[Simulator]) -> None:
        org_ids = [s.world.org_id for s in simulators]
        if not simulators or len(set(org_ids)) != len(org_ids):
            raise ValueError(f"one simulator per org id, got {org_ids}")
        tokens = [s.config.static_access_token for s in simulators]
        if len(set(tokens)) != len(tokens):
            raise ValueError("each simulated org needs its own static_access_token")
        self.simulators = list(simulators)
        self.by_org = {s.world.org_id: s for s in simulators}

        # A plain coroutine function: uvicorn takes a bound method for an ASGI2 app.
        async def app(scope: dict, receive: Any, send: Any) -> None:
            await self._route(scope, receive, send)

        self.app = app

    def __getitem__(self, org_id: int) -> Simulator:
        return self.by_org[org_id]

    def _for_token(self, token: str | None) -> Simulator:
        for simulator in self.simulators:
            if simulator.tokens.kind(token) is not None:
                return simulator
        return self.simulators[0]  # answers 401 like any workspace would

    def _for_grant(self, form: dict[str, str]) -> Simulator:
        for simulator in self.simulators:
            if simulator.tokens.issued(form.get("code"), form.get("refresh_token")):
                return simulator
        return self.simulators[0]  # answers invalid_grant

    async def _route(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.simulators[0].app(scope, receive, send)
            return
        path = scope.get("path", "")
        if path.startswith("/_sim/"):
            query = parse_qs(scope.get("query_string", b"").decode())
            org = (query.get("orgId") or [None])[0]
            target = self.by_org.get(int(org)) if org and org.isdigit() else self.simulators[0]
            await (target or self.simulators[0]).app(scope, receive, send)
            return
        if path == "/oauth2/token":
            body, receive = await _buffered(receive)
            await self._for_grant(_form(body, scope)).app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        scheme, _, token = headers.get("authorization", "").partition(" ")
        token = token.strip() if scheme.lower() == "bearer" and token.strip() else None
        await self._for_token(token).app(scope, receive, send)


async def _buffered(receive: Any) -> tuple[bytes, Any]:
    """Read the whole request body, and a `receive` that hands it to the chosen app again."""
    body, more = b"", True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break
        body += message.get("body", b"")
        more = message.get("more_body", False)
    replayed = False

    async def replay() -> dict:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay


def _form(body: bytes, scope: dict) -> dict[str, str]:
    content_type = dict(scope.get("headers", [])).get(b"content-type", b"").decode("latin-1")
    text = body.decode("utf-8", "replace")
    if content_type.startswith("application/json"):
        try:
            data = json.loads(text or "{}")
        except ValueError:
            return {}
        return {k: str(v) for k, v in data.items()} if isinstance(data, dict) else {}
    return {k: v[0] for k, v in parse_qs(text).items()}
