"""The Drift API's endpoints: what to fetch, for assets and the CLI.

`DriftClient` says *what* each call fetches (`iter_conversation_pages`, `get_messages`,
`get_meetings`, ...) and reads its answer (`parsing.py`); how a request is made (auth, pacing,
retries, error mapping) is its base `DriftSession` (`session.py`), and how a listing is followed
page by page is `paging.py`.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, AsyncIterator, Iterable

from .errors import DriftBadResponse, DriftNotFound
from .paging import ConversationPage, Extract, MessagePage, Page, Pager, is_url
from .parsing import conversation_items, data_object, message_items
from .session import DriftSession

log = logging.getLogger(__name__)

MEETINGS_LIMIT = 1000  # Drift answers at most 1,000 meetings a call (and 100 unless asked)
ACCOUNTS_PAGE_SIZE = 100


class DriftClient(DriftSession):
    """Async client for Drift's REST API. Use as `async with DriftClient(...) as client:`."""

    # -- conversations -----------------------------------------------------------------------
    async def iter_conversation_pages(
        self,
        *,
        limit: int = 100,
        status_ids: Iterable[int] | None = None,
        cursor: str | None = None,
    ) -> AsyncIterator[ConversationPage]:
        """Every page of `/conversations/list`, newest `updatedAt` first, starting at `cursor`
        (a `next_cursor` stored earlier) or at the beginning."""
        params: list[tuple[str, Any]] = [("limit", limit)]
        params += [("statusId", status_id) for status_id in (status_ids or ())]
        async for page in self._iter_pages("/conversations/list", "list", params, cursor, conversation_items):
            yield ConversationPage(page.items, page.cursor, page.next_cursor)

    async def get_conversation(self, conversation_id: int) -> dict[str, Any]:
        """One conversation with participants and tags; DriftNotFound if it does not exist."""
        body = await self._request_json("GET", f"/conversations/{int(conversation_id)}", endpoint="detail")
        return data_object(body, "conversation")

    async def iter_message_pages(self, conversation_id: int, cursor: str | None = None) -> AsyncIterator[MessagePage]:
        """Pages of one conversation's messages, oldest first."""
        path = f"/conversations/{int(conversation_id)}/messages"
        async for page in self._iter_pages(path, "messages", [], cursor, message_items):
            yield MessagePage(page.items, page.cursor, page.next_cursor)

    async def get_messages(self, conversation_id: int) -> list[dict[str, Any]]:
        """All messages of one conversation, oldest first."""
        messages: list[dict[str, Any]] = []
        async for page in self.iter_message_pages(conversation_id):
            messages.extend(page.items)
        return messages

    async def get_transcript(self, conversation_id: int) -> str:
        """The rendered plain-text transcript."""
        response = await self._request("GET", f"/conversations/{int(conversation_id)}/transcript",
                                       endpoint="transcript", expect="text")
        return response

    async def conversation_report(self, start_ms: int, end_ms: int, metrics: Iterable[str]) -> dict[str, Any]:
        """Drift's conversation report for `updatedAt` in [start_ms, end_ms] (reports are paced
        to their own, lower limit)."""
        payload = {
            "filters": [{"property": "updatedAt", "operation": "BETWEEN", "values": [int(start_ms), int(end_ms)]}],
            "metrics": list(metrics),
        }
        return await self._request_json("POST", "/reports/conversations", endpoint="reports", json_body=payload,
                                        bucket="reports")

    # -- users and contacts ------------------------------------------------------------------
    async def list_users(self) -> list[dict[str, Any]]:
        """Every user (agent or bot) of the org."""
        body = await self._request_json("GET", "/users/list", endpoint="users")
        data = body.get("data")
        if not isinstance(data, list):
            raise DriftBadResponse("GET /users/list answered without a data list", endpoint="users")
        return data

    async def get_contact(self, contact_id: int) -> dict[str, Any]:
        """One contact; DriftNotFound if it does not exist (e.g. erased)."""
        body = await self._request_json("GET", f"/contacts/{int(contact_id)}", endpoint="contact")
        return data_object(body, "contact")

    async def find_contacts_by_email(self, email: str) -> list[dict[str, Any]]:
        """Contacts with this email (usually zero or one)."""
        try:
            body = await self._request_json("GET", "/contacts", endpoint="contact_lookup", params=[("email", email)])
        except DriftNotFound:
            return []
        data = body.get("data")
        if data is None:
            return []
        if isinstance(data, dict):
            return [data]
        if isinstance(data, list):
            return data
        raise DriftBadResponse("GET /contacts answered with an unexpected data shape", endpoint="contact_lookup")

    # -- meetings, playbooks, accounts (optional scopes) -------------------------------------
    async def get_meetings(self, min_start_ms: int, max_start_ms: int) -> list[dict[str, Any]]:
        """Every meeting Drift serves with a slot starting in [min_start_ms, max_start_ms]
        (Drift serves only slots of its last 30 days), at most 1,000 a call.

        A full answer in slot order (choice: Drift's docs do not say how it orders or cuts)
        is continued from its last slot, like a cursor: the minimum of one call per 1,000
        meetings. A full answer in any other order halves the range until each half is not
        full. Meetings are told apart by slug."""
        found: dict[str, dict[str, Any]] = {}
        low, high = int(min_start_ms), int(max_start_ms)
        while True:
            data = await self._meetings_call(low, high)
            found.update({str(m.get("slug")): m for m in data if isinstance(m, dict)})
            if len(data) < MEETINGS_LIMIT:
                return list(found.values())
            slots = [m.get("slotStart") if isinstance(m, dict) else None for m in data]
            ordered = all(isinstance(s, int) and not isinstance(s, bool) for s in slots) and slots == sorted(slots)
            if ordered and slots[-1] > low:
                low = slots[-1]  # that slot again: meetings sharing it past the cut come back
                continue
            if high - low < 2:
                log.warning("GET /users/meetings/org: over %d meetings in one millisecond; some may be missing",
                            MEETINGS_LIMIT)
                return list(found.values())
            middle = (low + high) // 2
            for part in (await self.get_meetings(low, middle), await self.get_meetings(middle + 1, high)):
                found.update({str(m.get("slug")): m for m in part})
            return list(found.values())

    async def _meetings_call(self, low: int, high: int) -> list[dict[str, Any]]:
        body = await self._request_json("GET", "/users/meetings/org", endpoint="meetings", params=[
            ("min_start_time", low), ("max_start_time", high), ("limit", MEETINGS_LIMIT)])
        data = body.get("data")
        if data is None:
            return []
        if not isinstance(data, list):
            raise DriftBadResponse("GET /users/meetings/org answered without a data list", endpoint="meetings")
        return data

    async def list_playbooks(self) -> list[dict[str, Any]]:
        """The enabled playbooks (Drift lists no disabled one). A bare list, as Drift's docs
        show; a `{"data": [...]}` wrapper is read too."""
        body = await self._request("GET", "/playbooks/list", endpoint="playbooks", expect="any_json")
        if isinstance(body, dict):
            body = body.get("data")
        if not isinstance(body, list):
            raise DriftBadResponse("GET /playbooks/list answered without a list of playbooks", endpoint="playbooks")
        return body

    async def iter_account_pages(self, size: int = ACCOUNTS_PAGE_SIZE) -> AsyncIterator[Page]:
        """Pages of `/accounts?index=I&size=S` (deleted accounts included), following the
        answer's `data.next` (a path, or a URL on a Drift host) until there is none."""
        target: str = "/accounts"
        params: list[tuple[str, Any]] | None = [("index", 0), ("size", size)]
        seen: set[str] = set()
        while True:
            body = await self._request_json("GET", target, endpoint="accounts", params=params)
            data = body.get("data")
            accounts = data.get("accounts") if isinstance(data, dict) else data
            if accounts is None:
                accounts = []
            if not isinstance(accounts, list):
                raise DriftBadResponse("GET /accounts answered without an accounts list", endpoint="accounts")
            next_link = data.get("next") if isinstance(data, dict) else None
            if not isinstance(next_link, str) or not next_link or next_link in seen or not accounts:
                yield Page(accounts, target if params is None else None, None)
                return
            seen.add(next_link)
            yield Page(accounts, target if params is None else None, next_link)
            # A path is taken onto the configured base; a URL only on a Drift API host.
            target, params = (next_link if is_url(next_link) else self.base_url + "/" + next_link.lstrip("/")), None

    # -- paging ------------------------------------------------------------------------------
    @functools.cached_property
    def _pager(self) -> Pager:
        return Pager(self.base_url)

    async def _iter_pages(self, path: str, endpoint: str, params: list[tuple[str, Any]], cursor: str | None,
                          extract: Extract) -> AsyncIterator[Page]:
        async def fetch(target: str, page_params: list[tuple[str, Any]] | None) -> dict[str, Any]:
            return await self._request_json("GET", target, endpoint=endpoint, params=page_params)

        async for page in self._pager.pages(fetch, path, endpoint, params, cursor, extract):
            yield page


__all__ = ["DriftClient"]
