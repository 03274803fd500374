"""The broker over HTTP: the client API under /api/v1, the providers' WebSocket, /healthz and
/metrics (aiohttp). `serve()` runs it until stopped; `build_app()` is what tests and the console's
embedded broker mount.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import WSMsgType, web

from backends.broker import keys
from backends.broker import protocol as p
from backends.broker.core import Broker, ProviderConn, QueueFull, TooLarge, encode_json
from backends.broker.metrics import render_metrics
from backends.broker.tasks import STATES, TaskRequest
from backends.errors import BerthError, Conflict, Denied, Invalid, NotFound

BROKER_KEY = web.AppKey("broker", Broker)
CLIENT_KEY = web.RequestKey("client", str)
"""Who sent a request, for fairness: its token's name, else X-Berth-Client, else its address."""
HANDSHAKE_TIMEOUT = 10.0
STREAM_POLL = 15.0
"""Seconds a results stream waits for the next result before writing a keep-alive line."""
MAX_BAD_MESSAGES = 20
"""Malformed messages an admitted provider may send before it is disconnected."""
_requests_decoder = msgspec.json.Decoder(TaskRequest | list[TaskRequest])
_OPEN_PATHS = ("/healthz", "/metrics", "/api/v1/provider", "/api/broker/v1/healthz")


def json_response(data: Any, status: int = 200) -> web.Response:
    """An answer with a JSON body."""
    return web.Response(body=encode_json(data), status=status, content_type="application/json")


def error_status(exc: BerthError) -> int:
    """The HTTP status for one of berth's errors."""
    for kind, status in ((TooLarge, 413), (QueueFull, 429), (Invalid, 400), (NotFound, 404), (Conflict, 409)):
        if isinstance(exc, kind):
            return status
    return 403 if isinstance(exc, Denied) else 500


def error_response(exc: BerthError) -> web.Response:
    """The JSON error answer for one of berth's errors."""
    return json_response({"error": exc.message, "hint": exc.hint}, error_status(exc))


@web.middleware
async def _errors_and_tokens(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    broker = request.app[BROKER_KEY]
    tokens = broker.settings.tokens
    if tokens and request.path not in _OPEN_PATHS:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        client = tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if client is None:
            return json_response(
                {
                    "error": "This broker asks for a client token.",
                    "hint": "Send Authorization: Bearer TOKEN.",
                },
                401,
            )
        request[CLIENT_KEY] = client
    else:
        peer = request.remote or "local"
        request[CLIENT_KEY] = request.headers.get("X-Berth-Client", peer)[:64]
    try:
        return await handler(request)
    except BerthError as exc:
        return error_response(exc)
    except web.HTTPRequestEntityTooLarge:
        limit = broker.max_upload
        return error_response(TooLarge(f"The upload is over this broker's limit of {limit:,} bytes."))


def build_app(broker: Broker) -> web.Application:
    """The broker's aiohttp application (also the Wasimoff-compatible routes)."""
    from backends.broker.wasimoff import add_wasimoff_routes

    app = web.Application(middlewares=[_errors_and_tokens], client_max_size=broker.max_upload + 1)
    app[BROKER_KEY] = broker
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/api/v1/status", _status)
    app.router.add_post("/api/v1/modules", _upload)
    app.router.add_post("/api/v1/tasks", _submit)
    app.router.add_get("/api/v1/tasks", _list_tasks)
    app.router.add_get("/api/v1/tasks/{id}", _get_task)
    app.router.add_delete("/api/v1/tasks/{id}", _cancel_task)
    app.router.add_get("/api/v1/batches/{batch}/results", _batch_results)
    app.router.add_get("/api/v1/providers", _providers)
    app.router.add_get("/api/v1/providers/pending", _pending)
    app.router.add_get("/api/v1/providers/log", _provider_log)
    app.router.add_post("/api/v1/providers/pair", _pair)
    app.router.add_post("/api/v1/providers/drain", _drain)
    app.router.add_post("/api/v1/providers/disconnect", _disconnect)
    app.router.add_get("/api/v1/provider", _provider_socket)
    add_wasimoff_routes(app, broker)
    return app


# Client API -----------------------------------------------------------------------------------


async def _healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def _metrics(request: web.Request) -> web.Response:
    return web.Response(text=render_metrics(request.app[BROKER_KEY]), content_type="text/plain")


async def _status(request: web.Request) -> web.Response:
    return json_response(request.app[BROKER_KEY].status())


async def _upload(request: web.Request) -> web.Response:
    broker = request.app[BROKER_KEY]
    if request.content_length is not None and request.content_length > broker.max_upload:
        raise TooLarge(
            f"The module is {request.content_length:,} bytes; "
            f"this broker takes at most {broker.max_upload:,}."
        )
    ref = await broker.add_module(await request.read(), request.query.get("name", ""))
    return json_response({"ref": ref}, 201)


async def _submit(request: web.Request) -> web.Response:
    try:
        parsed = _requests_decoder.decode(await request.read())
    except msgspec.DecodeError as exc:
        raise Invalid(f"Bad task: {exc}", "Send a task object or a list of them (see README).") from None
    requests = parsed if isinstance(parsed, list) else [parsed]
    ids, batch = request.app[BROKER_KEY].submit_batch(
        requests, request[CLIENT_KEY], request.query.get("batch")
    )
    return json_response({"ids": ids, "batch": batch}, 202)


async def _list_tasks(request: web.Request) -> web.Response:
    state = request.query.get("state")
    if state is not None and state not in STATES:
        raise Invalid(f"Unknown state {state[:40]!r}.", f"Use one of: {', '.join(STATES)}.")
    limit = _int_query(request, "limit", 100, 1, 10_000)
    return json_response([v.to_json() for v in request.app[BROKER_KEY].recent(state, limit)])


async def _get_task(request: web.Request) -> web.Response:
    wait = _float_query(request, "wait", 0.0, 0.0, 300.0)
    broker = request.app[BROKER_KEY]
    view = await broker.wait(request.match_info["id"], wait) if wait else broker.get(request.match_info["id"])
    return json_response(view.to_json())


async def _cancel_task(request: web.Request) -> web.Response:
    return json_response(request.app[BROKER_KEY].cancel(request.match_info["id"]).to_json())


async def _batch_results(request: web.Request) -> web.StreamResponse:
    """Results of a batch as NDJSON, in finish order, from `after` (a finish number) on, until the
    batch is complete; `{}` lines keep an idle stream alive. A client that lost the stream asks
    again with the last `seq` it saw."""
    broker = request.app[BROKER_KEY]
    batch = request.match_info["batch"]
    after = _int_query(request, "after", 0, 0, 2**62)
    views, complete = await broker.batch_results(batch, after, 0)  # NotFound before streaming starts
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await response.prepare(request)
    while True:
        if views:
            await response.write(b"".join(encode_json(v.to_json()) + b"\n" for v in views))
            after = views[-1].seq
        elif not complete:
            await response.write(b"{}\n")
        if complete:
            break
        views, complete = await broker.batch_results(batch, after, STREAM_POLL)
    await response.write_eof()
    return response


async def _providers(request: web.Request) -> web.Response:
    return json_response(request.app[BROKER_KEY].providers())


async def _pending(request: web.Request) -> web.Response:
    return json_response(request.app[BROKER_KEY].pending())


async def _provider_log(request: web.Request) -> web.Response:
    return json_response(request.app[BROKER_KEY].provider_log(request.query.get("fingerprint", "")))


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except ValueError:
        raise Invalid("The body is not JSON.") from None
    if not isinstance(data, dict) or not isinstance(data.get("fingerprint"), str):
        raise Invalid('Send {"fingerprint": "SHA256:…"}.')
    return data


async def _pair(request: web.Request) -> web.Response:
    data = await _body(request)
    request.app[BROKER_KEY].pair(data["fingerprint"], str(data.get("name", "")))
    return json_response({"paired": data["fingerprint"]})


async def _drain(request: web.Request) -> web.Response:
    data = await _body(request)
    request.app[BROKER_KEY].drain(data["fingerprint"])
    return json_response({"draining": data["fingerprint"]})


async def _disconnect(request: web.Request) -> web.Response:
    data = await _body(request)
    request.app[BROKER_KEY].disconnect(data["fingerprint"])
    return json_response({"disconnected": data["fingerprint"]})


def _int_query(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    return int(_float_query(request, name, default, low, high))


def _float_query(request: web.Request, name: str, default: float, low: float, high: float) -> float:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise Invalid(f"{name}={raw[:40]!r} is not a number.") from None
    if not low <= value <= high:
        raise Invalid(f"{name} must be between {low:g} and {high:g}.")
    return value


# Providers ------------------------------------------------------------------------------------


class _SocketLink:
    """A provider's WebSocket as the broker core's `Link`: frames queued, written in order."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.outbox: asyncio.Queue[tuple[bytes, WSMsgType] | None] = asyncio.Queue()
        self.writer = asyncio.get_running_loop().create_task(self._write())
        self.closing = ""

    def send(self, frame: bytes, binary: bool = False) -> None:
        """Queue a frame."""
        self.outbox.put_nowait((frame, WSMsgType.BINARY if binary else WSMsgType.TEXT))

    def close(self, reason: str) -> None:
        """Close after what is queued."""
        self.closing = self.closing or reason
        self.outbox.put_nowait(None)

    async def _write(self) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            while (item := await self.outbox.get()) is not None:
                await self.ws.send_frame(*item)
            await self.ws.close()


async def _provider_socket(request: web.Request) -> web.WebSocketResponse:
    """A provider's connection: handshake (key proof and pairing check), then messages."""
    broker = request.app[BROKER_KEY]
    ws = web.WebSocketResponse(max_msg_size=broker.max_upload + 1024 * 1024, heartbeat=None)
    await ws.prepare(request)
    link = _SocketLink(ws)
    conn = None
    try:
        conn = await _handshake(broker, ws, link, request.remote or "?")
        if conn is None:
            return ws
        bad = 0
        async for message in ws:
            if message.type != WSMsgType.TEXT:
                if message.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                    break
                broker.log(conn.fingerprint, "ignored a binary frame (providers send text only)")
                continue
            try:
                broker.on_message(conn, p.decode(message.data, p.FROM_PROVIDER))
            except p.ProtocolError as exc:
                bad += 1
                broker.log(conn.fingerprint, f"ignored a bad message: {exc.message[:200]}")
                if bad >= MAX_BAD_MESSAGES:
                    link.send(p.encode(p.Bye(f"too many bad messages (last: {exc.message[:200]})")))
                    link.close("too many bad messages")
                    break
    finally:
        if conn is not None:
            broker.provider_gone(conn, link.closing or "closed the connection")
        link.close("")
        with contextlib.suppress(asyncio.CancelledError):
            await link.writer
    return ws


async def _handshake(
    broker: Broker, ws: web.WebSocketResponse, link: _SocketLink, peer: str
) -> ProviderConn | None:
    def refuse(reason: str, fingerprint: str = "", hint: str = "") -> None:
        link.send(p.encode(p.Refused(reason, fingerprint, hint)))
        link.close(reason)

    async def receive() -> Any:
        message = await ws.receive(HANDSHAKE_TIMEOUT)
        if message.type != WSMsgType.TEXT:
            raise p.ProtocolError("expected a text message during the handshake")
        return p.decode(message.data, p.FROM_PROVIDER)

    try:
        hello = await receive()
        if not isinstance(hello, p.Hello):
            raise p.ProtocolError("the first message must be 'hello'")
        if len(hello.key) != 32:
            raise p.ProtocolError(
                f"'hello' key must be a 32-byte Ed25519 public key, not {len(hello.key)} bytes"
            )
        nonce = secrets.token_bytes(32)
        link.send(p.encode(p.Challenge(nonce, broker.settings.name)))
        auth = await receive()
        if not isinstance(auth, p.Auth):
            raise p.ProtocolError("expected 'auth' after the challenge")
    except TimeoutError:
        refuse("the handshake took too long")
        return None
    except p.ProtocolError as exc:
        refuse(exc.message)
        return None
    fingerprint = keys.fingerprint(hello.key)
    if not keys.verify(hello.key, auth.signature, p.AUTH_CONTEXT + nonce):
        broker.log(fingerprint, f"refused: bad signature (from {peer})")
        refuse(f"Bad signature: the provider does not hold the private key of {fingerprint}.", fingerprint)
        return None
    admitted = broker.admit(link, hello, fingerprint)
    if isinstance(admitted, p.Refused):
        link.send(p.encode(admitted))
        link.close(admitted.reason)
        return None
    link.send(p.encode(p.Welcome(fingerprint, admitted.name, broker.settings.heartbeat)))
    broker.ready(admitted)
    return admitted


# Running --------------------------------------------------------------------------------------


def parse_listen(listen: str) -> tuple[str, int]:
    """`HOST:PORT` (IPv6 in brackets) -> (host, port); Invalid names what is wrong."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise Invalid(f"--listen {listen!r} is not HOST:PORT.", "For example 127.0.0.1:4080.")
    return host.strip("[]") or "127.0.0.1", int(port)


def tls_context(cert: Path | None, key: Path | None) -> ssl.SSLContext | None:
    """A server TLS context from a certificate and key file, or None for plain HTTP."""
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise Invalid("TLS needs both --tls-cert and --tls-key.")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise Invalid(f"Cannot load the TLS certificate {cert} / key {key}: {exc}") from None
    return context


@contextlib.asynccontextmanager
async def running(
    broker: Broker, host: str = "127.0.0.1", port: int = 0, tls: ssl.SSLContext | None = None
) -> AsyncIterator[str]:
    """Serve `broker` while the block runs; yields its base URL (port 0 picks a free one)."""
    await broker.start()
    runner = web.AppRunner(build_app(broker), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=tls, reuse_address=True)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        await broker.close()
        raise BerthError(
            f"Cannot listen on {host}:{port}: {exc.strerror or exc}.", "Pick another --listen."
        ) from None
    sockets = site._server.sockets if site._server is not None else []  # type: ignore[attr-defined]
    bound = sockets[0].getsockname()[1] if sockets else port
    scheme = "https" if tls else "http"
    shown = f"[{host}]" if ":" in host else host
    try:
        yield f"{scheme}://{shown}:{bound}"
    finally:
        await broker.close()
        await runner.cleanup()
