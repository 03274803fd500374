"""An async HTTP client for an engine's unix socket (Docker today), turning failures into `BerthError`s.

berth talks to the Engine API directly with aiohttp rather than through the docker SDK: one request
lists every container (the SDK's `containers.list()` makes 1+N), streams are read without a thread
each, and the raw log stream parses faster than the SDK's per-line generator.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from backends.errors import BerthError, Conflict, Denied, Invalid, NotFound, Unreachable, connect_reason

Params = Mapping[str, str | int]
CALL_TIMEOUT = aiohttp.ClientTimeout(total=60, connect=5)
# Streams (logs, events, image transfer) may stay quiet for hours: only connecting is timed.
STREAM_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=5, sock_connect=5)


def json_filter(filters: Mapping[str, list[str]]) -> str:
    """The Engine API's `filters` query value: `{"label": ["a=b"]}` as JSON."""
    return json.dumps(dict(filters))


class EngineHttp:
    """Requests to one engine socket; `what` names it in errors ("Docker on web-1")."""

    def __init__(self, socket_path: str, what: str, prefix: str = "") -> None:
        self.socket_path = socket_path
        self.what = what
        self.prefix = prefix
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # Created on first use, inside the running loop that will own it.
        if self._session is None or self._session.closed:
            connector = aiohttp.UnixConnector(path=self.socket_path, limit=32)
            self._session = aiohttp.ClientSession(
                connector=connector, base_url="http://engine", timeout=CALL_TIMEOUT
            )
        return self._session

    async def close(self) -> None:
        """Close the connection pool."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def unreachable(self, exc: BaseException | None = None) -> Unreachable:
        """The error for an engine that does not answer."""
        why = f" ({connect_reason(exc)[:80]})" if exc is not None else ""
        return Unreachable(
            f"{self.what} does not answer at {self.socket_path}{why}.",
            "Check that the engine runs and that you may use its socket; berth keeps retrying.",
            "Check that the engine runs and that you may use its socket.",
        )

    async def _raise_for(self, resp: aiohttp.ClientResponse, doing: str) -> None:
        if resp.status < 400:
            return
        text = await resp.text()
        try:
            detail = str(json.loads(text).get("message", text))
        except (ValueError, AttributeError):
            detail = text.strip() or resp.reason or str(resp.status)
        message = f"{self.what}: {doing} failed: {detail}."
        kind: type[BerthError]
        cli_hint = None  # the console's advice fits the command line too, but for a 404's
        if resp.status == 404:
            kind, hint = NotFound, "Refresh the list; it may have been removed meanwhile."
            cli_hint = "Check the name; it may have been removed meanwhile."
        elif resp.status == 409:
            kind, hint = Conflict, "Check its current state and try again."
        elif resp.status in (401, 403):
            kind, hint = Denied, "The engine refused; check your permissions on that host."
        elif resp.status == 400:
            kind, hint = Invalid, "Check the value you gave."
        else:
            kind, hint = BerthError, "The engine reported an internal error; see its log."
        raise kind(message, hint, cli_hint)

    @asynccontextmanager
    async def request(
        self,
        method: str,
        path: str,
        doing: str,
        *,
        params: Params | None = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        stream: bool = False,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """One request; yields the response once its status was checked."""
        try:
            async with self._client().request(
                method,
                self.prefix + path,
                params=params,
                data=data,
                headers=headers,
                timeout=STREAM_TIMEOUT if stream else CALL_TIMEOUT,
            ) as resp:
                await self._raise_for(resp, doing)
                yield resp
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            # Also raised by the caller's reads of a streamed body: the engine went away mid-stream.
            raise self.unreachable(exc) from exc

    async def get_json(self, path: str, doing: str, params: Params | None = None) -> Any:
        """GET and decode JSON."""
        async with self.request("GET", path, doing, params=params) as resp:
            return await resp.json(content_type=None)

    async def post(self, path: str, doing: str, params: Params | None = None, body: Any = None) -> Any:
        """POST (JSON body when given); the decoded answer, or None when it is empty."""
        data = json.dumps(body) if body is not None else None
        headers = {"Content-Type": "application/json"} if body is not None else None
        async with self.request("POST", path, doing, params=params, data=data, headers=headers) as resp:
            raw = await resp.read()
        return json.loads(raw) if raw.strip() else None

    async def delete(self, path: str, doing: str, params: Params | None = None) -> None:
        """DELETE."""
        async with self.request("DELETE", path, doing, params=params) as resp:
            await resp.read()
