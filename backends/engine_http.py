"""An async HTTP client for an engine's unix socket (Docker today), turning failures into `BerthError`s.

berth talks to the Engine API directly, with its own HTTP/1.1 client (backends/http1.py), rather than
through the docker SDK: one request lists every container (the SDK's `containers.list()` makes 1+N),
streams are read without a thread each, and the raw log stream parses faster than the SDK's
per-line generator. The client is not aiohttp's, whose import alone costs the console's first
screen ~100 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote, urlencode

from backends.errors import BerthError, Conflict, Denied, Invalid, NotFound, Unreachable, connect_reason
from backends.http1 import Body, ProtocolError, Response, UnixPool, exchange

Params = Mapping[str, str | int]
CONNECT_TIMEOUT = 5.0
"""Seconds to get a connection (a free one of the pool's, or a new one)."""
CALL_TIMEOUT = 60.0
"""Seconds a call may take in all, its body read too. Streams (logs, events, image transfer) may
stay quiet for hours: only their connecting is timed."""
POOL_LIMIT = 32
SAFE_IN_PATH = "/:@!$&'()*+,;=%~?"
"""What a request target keeps unquoted: image references (registry:5000/a/b@sha256:…) and a
query a caller built itself."""


def json_filter(filters: Mapping[str, list[str]]) -> str:
    """The Engine API's `filters` query value: `{"label": ["a=b"]}` as JSON."""
    return json.dumps(dict(filters))


class EngineHttp:
    """Requests to one engine socket; `what` names it in errors ("Docker on web-1")."""

    def __init__(
        self, socket_path: str, what: str, prefix: str = "", call_timeout: float = CALL_TIMEOUT
    ) -> None:
        self.socket_path = socket_path
        self.what = what
        self.prefix = prefix
        self.call_timeout = call_timeout
        self._pool: UnixPool | None = None

    def _connections(self) -> UnixPool:
        # Made on first use, inside the running loop that owns its connections (a new loop, a new pool).
        if self._pool is None or self._pool.loop is not asyncio.get_running_loop():
            self._pool = UnixPool(self.socket_path, POOL_LIMIT)
        return self._pool

    async def close(self) -> None:
        """Close the connection pool."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def unreachable(self, exc: BaseException | None = None) -> Unreachable:
        """The error for an engine that does not answer."""
        why = f" ({connect_reason(exc)[:80]})" if exc is not None else ""
        return Unreachable(
            f"{self.what} does not answer at {self.socket_path}{why}.",
            "Check that the engine runs and that you may use its socket; berth keeps retrying.",
            "Check that the engine runs and that you may use its socket.",
        )

    async def _raise_for(self, resp: Response, doing: str) -> None:
        if resp.status < 300 or resp.status == 304:  # 304: already so (starting a running container)
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
        elif resp.status < 400:  # the Engine API never redirects a request berth means to send
            kind, hint = BerthError, "berth asked for a path the engine does not serve; please report it."
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
        data: Body = None,
        headers: Mapping[str, str] | None = None,
        stream: bool = False,
    ) -> AsyncIterator[Response]:
        """One request; yields the response once its status was checked.

        A path with a `.` or `..` part is refused before anything is sent: it comes from a name
        someone typed (a volume `../containers/ID`) that would walk the API's paths.
        """
        if any(part in (".", "..") for part in path.partition("?")[0].split("/")):
            raise Invalid(f"{self.what}: {doing} refused: '.' and '..' are no names.", "Check the name.")
        target = quote(self.prefix + path, safe=SAFE_IN_PATH)
        if params:
            target += ("&" if "?" in target else "?") + urlencode(params)
        timed = contextlib.nullcontext() if stream else asyncio.timeout(self.call_timeout)
        try:
            async with timed, exchange(
                self._connections(),
                method,
                target,
                headers=headers or {},
                body=data,
                connect_timeout=CONNECT_TIMEOUT,
            ) as resp:
                await self._raise_for(resp, doing)
                yield resp
        except (TimeoutError, ProtocolError, OSError) as exc:
            # Also raised by the caller's reads of a streamed body: the engine went away mid-stream.
            raise self.unreachable(exc) from exc

    async def get_json(self, path: str, doing: str, params: Params | None = None) -> Any:
        """GET and decode JSON."""
        async with self.request("GET", path, doing, params=params) as resp:
            return await resp.json()

    async def post(self, path: str, doing: str, params: Params | None = None, body: Any = None) -> Any:
        """POST (JSON body when given); the decoded answer, or None when it is empty."""
        data = json.dumps(body) if body is not None else None
        headers = {"Content-Type": "application/json"} if body is not None else None
        async with self.request("POST", path, doing, params=params, data=data, headers=headers) as resp:
            return await resp.json()

    async def delete(self, path: str, doing: str, params: Params | None = None) -> None:
        """DELETE."""
        async with self.request("DELETE", path, doing, params=params) as resp:
            await resp.read()
