"""Talking to a broker over its HTTP API: what `berth submit`, `berth broker …` and the console use.

The verbs that change something (`send`, `cancel`, `pair`, `act_on_providers`) write their own
audit record, under the broker's URL as the host, so neither the CLI nor the console writes one.

Submitting survives a broker restart: the client names its batch, so a submission whose answer was
lost is sent again and answered with the same ids; results are followed by finish number, so a
stream broken by a restart resumes where it stopped, and each result is yielded once.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

import msgspec

from backends.audit import audited
from backends.broker.tasks import TaskRequest
from backends.errors import BerthError, Conflict, Denied, Invalid, NotFound, Unreachable, connect_reason

DEFAULT_URL = "http://127.0.0.1:4080"
RETRY = (0.2, 5.0)
_encoder = msgspec.json.Encoder()

ProviderVerb = Literal["drain", "disconnect", "unpair"]
"""What an admin does to paired providers by fingerprint (`POST /api/v1/providers/<verb>`)."""


@dataclass(frozen=True)
class Batch:
    """Copies of one task queued in one submission: the request each has, their ids, the batch."""

    request: TaskRequest
    ids: list[str]
    id: str


class BrokerClient:
    """A session with one broker at `url` (with `token` if it asks for one); use `async with`."""

    def __init__(self, url: str = DEFAULT_URL, token: str | None = None, patience: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.patience = patience
        """Seconds to keep retrying while the broker cannot be reached, before giving up."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        import aiohttp  # loaded by the first client: the console's first screen does without it

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
        import aiohttp  # loaded already, by __init__

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

    async def send(self, module: bytes, request: TaskRequest, count: int = 1) -> Batch:
        """The submit flow of the CLI and the console: upload `module`, then queue `count` copies
        of `request` running it (its `module` becomes the upload's ref); follow them with `results`.

        Recorded as wasm.submit with the count, the ref and the limits; never the arguments or
        the environment, which may carry secrets."""
        ref = await self.upload(module, request.name)
        request = msgspec.structs.replace(request, module=ref)
        limits = request.limits
        details = {"fuel": limits.fuel, "memory": limits.memory, "timeout": limits.timeout}
        with audited(self.url, "wasm.submit", [request.name], count=count, module=ref, **details):
            ids, batch = await self.submit([request] * count)
        return Batch(request, ids, batch)

    async def cancel(self, task_ids: Sequence[str], seen: Callable[[dict[str, Any]], None]) -> None:
        """Cancel tasks, recorded as one wasm.cancel; `seen` hears each one's view as the broker
        answers. A task that ended meanwhile is read back for `seen` before Conflict says so."""
        with audited(self.url, "wasm.cancel", list(task_ids)):
            for task_id in task_ids:
                try:
                    view = await self.call("DELETE", f"/api/v1/tasks/{task_id}", retry=False)
                except Conflict:
                    seen(await self.call("GET", f"/api/v1/tasks/{task_id}", retry=False))
                    raise
                seen(view)

    async def abandon(self, task_ids: Sequence[str]) -> None:
        """Cancel those of `task_ids` still open, when the one following them stops (a console job
        that was cancelled); best effort, each refusal ignored. Not recorded, as before services
        wrote the audit log: the job's cancel is not a verb of its own there."""
        for task_id in task_ids:
            with contextlib.suppress(BerthError):
                await self.call("DELETE", f"/api/v1/tasks/{task_id}", retry=False)

    async def pair(self, fingerprint: str, name: str) -> None:
        """Admit a waiting provider's key under `name`; recorded as provider.pair."""
        with audited(self.url, "provider.pair", [fingerprint], name=name):
            body = {"fingerprint": fingerprint, "name": name}
            await self.call("POST", "/api/v1/providers/pair", body=body, retry=False)

    async def act_on_providers(self, verb: ProviderVerb, fingerprints: Sequence[str]) -> None:
        """Drain, disconnect or unpair paired providers, in order; one record, provider.<verb>."""
        with audited(self.url, f"provider.{verb}", list(fingerprints)):
            for fingerprint in fingerprints:
                body = {"fingerprint": fingerprint}
                await self.call("POST", f"/api/v1/providers/{verb}", body=body, retry=False)

    async def results(self, batch: str) -> AsyncIterator[dict[str, Any]]:
        """Every result of a batch once, in finish order, following it across broker restarts."""
        after, seen, delay, waited = 0, set[str](), RETRY[0], 0.0
        import aiohttp  # loaded already, by __init__

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
