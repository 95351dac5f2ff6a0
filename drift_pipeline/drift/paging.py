"""Paging through Drift's listings: cursors passed back exactly as received, links kept on Drift.

Drift pages three ways: older answers carry `pagination: {more, next}` (the cursor goes back as
`?next=`, or as `?page_token=` when Drift spells it so), current ones an absolute `links.next`
URL. A link on a Drift API host (either of Drift's two hosts, or the configured one) is re-based
onto the configured base URL (`rebase_url`); any other host is refused, so the bearer token
never leaves Drift. A next link is only resolved when it is followed, after the caller has
handled (and committed) the page that carried it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable

import httpx

from .errors import DriftBadResponse

# Drift serves the same API on both hosts (older docs name driftapi.com, current ones
# api.drift.com) and may answer links on either, whichever one we were configured with.
DRIFT_API_HOSTS = frozenset({"driftapi.com", "api.drift.com"})

# fetch(target, params) -> the page's JSON body; target is a path or a URL on a Drift host.
Fetch = Callable[[str, "list[tuple[str, Any]] | None"], Awaitable[dict[str, Any]]]
# extract(body, endpoint) -> the page's items.
Extract = Callable[[dict[str, Any], str], "list[dict[str, Any]]"]


@dataclass(frozen=True)
class Page:
    """One page of a listing. `cursor` fetched this page (None for the first); `next_cursor`
    fetches the next one (None on the last). Store `next_cursor` to resume later."""

    items: list[dict[str, Any]]
    cursor: str | None
    next_cursor: str | None


@dataclass(frozen=True)
class ConversationPage(Page):
    """A page of `/conversations/list`: conversation summaries, newest `updatedAt` first."""


@dataclass(frozen=True)
class MessagePage(Page):
    """A page of one conversation's messages, oldest first."""


def is_url(target: str) -> bool:
    return target.startswith(("http://", "https://"))


def links_next(body: dict[str, Any]) -> str | None:
    links = body.get("links")
    if isinstance(links, dict) and isinstance(links.get("next"), str) and links["next"]:
        return links["next"]
    return None


def rebase_url(base_url: str, link: str, endpoint: str = "") -> str:
    """`link` (absolute or relative) as a URL on `base_url`: a link on the configured host or on
    a Drift API host keeps its path and query; any other host is refused."""
    base = httpx.URL(base_url)
    url = base.join(link)
    same_origin = (url.scheme, url.host, url.port) == (base.scheme, base.host, base.port)
    if not same_origin and url.host.lower() not in DRIFT_API_HOSTS:
        # Never send the bearer token to a host we were not configured for.
        raise DriftBadResponse(
            f"a next-page link points at {url.host or 'an unknown host'}, which is neither "
            f"{base.host} nor a Drift API host; refusing to follow it", endpoint=endpoint)
    base_path = base.path.rstrip("/")
    path = url.raw_path.decode("ascii")
    if base_path and not path.startswith(base_path + "/"):
        path = base_path + path
    return str(base.copy_with(raw_path=path.encode("ascii")))


class Pager:
    """Follows listings for one client. Remembers which query parameter carries a cursor:
    `next`, switched to `page_token` (or Drift's other spelling) once the API answers with it."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.cursor_param = "next"

    async def pages(self, fetch: Fetch, path: str, endpoint: str, params: list[tuple[str, Any]],
                    cursor: str | None, extract: Extract) -> AsyncIterator[Page]:
        """Every page of `path` from `cursor` (None: the first page) to the last."""
        # The next link is only resolved when it is followed, after the caller has handled (and
        # committed) the page that carried it: a link we refuse never costs the page before it.
        seen: set[str] = set()
        while True:
            if cursor is not None and is_url(cursor):
                body = await fetch(cursor, None)
            else:
                page_params = list(params)
                if cursor is not None:
                    page_params.append((self.cursor_param, cursor))
                body = await fetch(path, page_params)
            next_cursor = self.next_cursor(body, endpoint)
            yield Page(extract(body, endpoint), cursor, next_cursor)
            if next_cursor is None:
                return
            if next_cursor in seen or next_cursor == cursor:
                raise DriftBadResponse(f"GET {path} returned a cursor it already returned; stopping to avoid a loop",
                                       endpoint=endpoint)
            seen.add(next_cursor)
            cursor = next_cursor

    def next_cursor(self, body: dict[str, Any], endpoint: str) -> str | None:
        """The cursor or link of the next page, exactly as Drift gave it (None on the last page).
        Older answers: `pagination: {more, next}`; current ones: an absolute `links.next`."""
        pagination = body.get("pagination")
        if isinstance(pagination, dict):
            more = pagination.get("more")
            for key in ("next", "page_token", "next_page_token", "cursor"):
                token = pagination.get(key)
                if token not in (None, ""):
                    if more is False:
                        return None
                    if key != "next":
                        self.cursor_param = "page_token" if key in ("page_token", "next_page_token") else key
                    return str(token)
            if more is True and not links_next(body):
                raise DriftBadResponse("the API said there are more pages but gave no cursor", endpoint=endpoint)
        link = links_next(body)
        if link is not None and not is_url(link):
            link = str(httpx.URL(self.base_url).join(link))  # relative: on our own host already
        return link
