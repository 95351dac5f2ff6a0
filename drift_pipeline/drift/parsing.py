"""Drift's answers read into plain data: the items of a page, a detail's data object, a
transcript's text, and the reason in an error body (Drift uses two error shapes, OAuth a third).

Pure functions of a body or an `httpx.Response`: no request, no state.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from .errors import DriftBadResponse


def oauth_error_code(response: httpx.Response) -> str:
    # Only the RFC 6749 error code (e.g. invalid_grant), never free text that could echo input.
    try:
        code = json.loads(response.content).get("error")
    except Exception:
        return ""
    if isinstance(code, dict):
        code = code.get("type")
    if isinstance(code, str) and code.replace("_", "").isalpha() and len(code) < 40:
        return f", {code}"
    return ""


def error_reason(content: bytes) -> str:
    """`type: message` of the first error in either of Drift's error body forms ("" if none)."""
    try:
        body = json.loads(content)
    except (ValueError, UnicodeDecodeError):
        return ""
    if not isinstance(body, dict):
        return ""
    errors = body.get("errors")
    first = errors[0] if isinstance(errors, list) and errors else body.get("error")
    if isinstance(first, dict):
        return ": ".join(str(first[key]) for key in ("type", "message") if first.get(key))
    if isinstance(first, str):
        description = body.get("error_description") or body.get("message")
        return f"{first}: {description}" if isinstance(description, str) and description else first
    if isinstance(body.get("message"), str):
        return body["message"]
    return ""


def conversation_items(body: dict[str, Any], endpoint: str) -> list[dict[str, Any]]:
    data = body.get("data")
    if data is None:
        return []
    if not isinstance(data, list):
        raise DriftBadResponse("GET /conversations/list answered without a data list", endpoint=endpoint)
    return data


def message_items(body: dict[str, Any], endpoint: str) -> list[dict[str, Any]]:
    data = body.get("data")
    if isinstance(data, dict):
        data = data.get("messages")
    if data is None:
        return []
    if not isinstance(data, list):
        raise DriftBadResponse("GET /conversations/{id}/messages answered without a messages list",
                               endpoint=endpoint)
    return data


def data_object(body: dict[str, Any], what: str) -> dict[str, Any]:
    data = body.get("data")
    if not isinstance(data, dict):
        raise DriftBadResponse(f"the {what} answer has no data object")
    return data


def transcript_text(response: httpx.Response) -> str:
    if "json" in response.headers.get("content-type", ""):
        try:
            body = json.loads(response.content)
        except (ValueError, UnicodeDecodeError):
            return response.text
        if isinstance(body, str):
            return body
        if isinstance(body, dict):
            data = body.get("data")
            if isinstance(data, str):
                return data
            if isinstance(data, dict) and isinstance(data.get("transcript"), str):
                return data["transcript"]
    return response.text

