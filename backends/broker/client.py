"""Talking to a broker over its HTTP API: what `berth submit`, `berth broker …` and the console use.

Submitting survives a broker restart: the client names its batch, so a submission whose answer was
lost is sent again and answered with the same ids; results are followed by finish number, so a
stream broken by a restart resumes where it stopped, and each result is yielded once.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any

import aiohttp
import msgspec

from backends.broker.tasks import TaskRequest
from backends.errors import BerthError, Conflict, Denied, Invalid, NotFound, Unreachable, connect_reason

DEFAULT_URL = "http://127.0.0.1:4080"
RETRY = (0.2, 5.0)
_encoder = msgspec.json.Encoder()


class BrokerClient:
    """A session with one broker at `url` (with `token` if it asks for one); use `async with`."""

    def __init__(self, url: str = DEFAULT_URL, token: str | None = None, patience: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.patience = patience
        """Seconds to keep retrying while the broker cannot be reached, before giving up."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._session = aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(sock_connect=5))

    async def __aenter__(self) -> BrokerClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the HTTP session."""
        await self._session.close()

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        data: bytes | None = None,
        params: dict[str, str] | None = None,
        retry: bool = True,
        content_type: str = "application/octet-stream",
    ) -> Any:
        """One API call; the JSON answer. Retries while the broker is unreachable (if `retry`),
        and turns error answers into berth's errors with the broker's own message.

        `body` goes as JSON; `data` as raw bytes of `content_type`. A call that changes state says
        `application/json` even without a body, as the broker asks of every one."""
        payload = data if data is not None else (_encoder.encode(body) if body is not None else None)
        if data is not None:
            headers = {"Content-Type": content_type}
        else:
            headers = {"Content-Type": "application/json"} if method != "GET" else {}
        delay, waited = RETRY[0], 0.0
        while True:
            try:
                async with self._session.request(
                    method, self.url + path, data=payload, params=params, headers=headers
                ) as answer:
                    text = await answer.read()
                    if answer.status < 400:
                        return msgspec.json.decode(text) if text else None
                    raise _error(answer.status, text)
            except (aiohttp.ClientConnectionError, TimeoutError) as exc:
                if not retry or waited >= self.patience:
                    raise Unreachable(
                        f"Cannot reach the broker at {self.url}: {connect_reason(exc)}.",
                        "Is `berth broker serve` running there? Check [broker] url in the config.",
                        "Is `berth broker serve` running there? Check --broker (BERTH_BROKER_URL).",
                    ) from None
            await asyncio.sleep(delay)
            waited += delay
            delay = min(delay * 2, RETRY[1])

    async def upload(self, data: bytes, name: str = "") -> str:
        """Send a module; its ref."""
        answer = await self.call(
            "POST",
            "/api/v1/modules",
            data=data,
            params={"name": name} if name else None,
            content_type="application/wasm",
        )
        return str(answer["ref"])

    async def submit(self, requests: list[TaskRequest], batch: str | None = None) -> tuple[list[str], str]:
        """Queue tasks; their ids and the batch id (sending the same batch again is harmless)."""
        batch = batch or "c-" + secrets.token_hex(12)
        body = msgspec.to_builtins(requests)
        answer = await self.call("POST", "/api/v1/tasks", body=body, params={"batch": batch})
        return list(answer["ids"]), str(answer["batch"])

    async def results(self, batch: str) -> AsyncIterator[dict[str, Any]]:
        """Every result of a batch once, in finish order, following it across broker restarts."""
        after, seen, delay, waited = 0, set[str](), RETRY[0], 0.0
        while True:
            try:
                async with self._session.get(
                    f"{self.url}/api/v1/batches/{batch}/results",
                    params={"after": str(after)},
                    timeout=aiohttp.ClientTimeout(sock_connect=5, sock_read=60),
                ) as answer:
                    if answer.status >= 400:
                        raise _error(answer.status, await answer.read())
                    delay, waited = RETRY[0], 0.0
                    cut = False
                    async for line in answer.content:
                        try:
                            result = msgspec.json.decode(line) if line.strip() else {}
                        except msgspec.DecodeError:  # a line cut short by a dying broker
                            cut = True
                            break
                        if not result:
                            continue  # a keep-alive line
                        after = max(after, int(result.get("seq") or 0))
                        if result["id"] not in seen:
                            seen.add(result["id"])
                            yield result
                    if not cut and answer.content.at_eof() and not answer.content.exception():
                        return
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError) as exc:
                if waited >= self.patience:
                    raise Unreachable(f"Lost the broker at {self.url}: {connect_reason(exc)}.") from None
            await asyncio.sleep(delay)
            waited += delay
            delay = min(delay * 2, RETRY[1])


def _error(status: int, body: bytes) -> BerthError:
    try:
        decoded = msgspec.json.decode(body)
        message, hint = str(decoded.get("error", "")), str(decoded.get("hint", ""))
    except (msgspec.DecodeError, AttributeError):
        message, hint = body.decode("utf-8", "replace").strip()[:300], ""
    message = message or f"The broker answered HTTP {status}."
    if status == 401:  # berth's own advice: the broker's hint is for any HTTP client
        return Denied(
            message,
            "Set [broker] token in the config to a token of the broker.",
            "Pass a token of the broker with --token TOKEN or BERTH_BROKER_TOKEN.",
        )
    if status == 403:
        return Denied(message, hint)
    if status == 404:
        return NotFound(message, hint)
    if status in (409, 429):
        return Conflict(message, hint)
    if status in (400, 413):
        return Invalid(message, hint)
    return BerthError(f"{message} (HTTP {status})", hint)
