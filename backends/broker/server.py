"""The broker over HTTP: the client API under /api/v1, the providers' WebSocket, /healthz and
/metrics (aiohttp). `running()` serves it (behind the connection guard of http_guard.py) while a
block runs; `build_app()` is the application. Every route says who may call it (`_ROUTES`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import secrets
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import WSMsgType, web

from backends.broker import keys
from backends.broker import protocol as p
from backends.broker.auth import (
    ADMIN,
    CLIENT,
    MAX_NAME,
    Token,
    host_allowed,
    is_loopback,
    origin_allowed,
    printable,
)
from backends.broker.core import Broker, ProviderConn, QueueFull, TooLarge, encode_json
from backends.broker.http_guard import ConnectionGuard, HttpLimits
from backends.broker.metrics import render_metrics
from backends.broker.tasks import STATES, TaskRequest
from backends.broker.wasimoff import PREFIX as WASIMOFF_PREFIX
from backends.broker.wasimoff import add_wasimoff_routes
from backends.errors import BerthError, Conflict, Denied, Invalid, NotFound

BROKER_KEY = web.AppKey("broker", Broker)
GUARD_KEY = web.AppKey("guard", ConnectionGuard)
LISTEN_KEY = web.AppKey("listen", str)
"""The host the broker listens on: a Host header may name it."""
CLIENT_KEY = web.RequestKey("client", str)
"""Who sent a request, for fairness: its token's name; without tokens X-Berth-Client, else its address."""
OWNER_KEY = web.RequestKey("owner", str)
"""Set for a client token: the only client whose tasks and batches it may see or cancel."""
PROVIDER_PATH = "/api/v1/provider"
HANDSHAKE_TIMEOUT = 10.0
STREAM_POLL = 15.0
"""Seconds a results stream waits for the next result before writing a keep-alive line."""
MAX_BAD_MESSAGES = 20
"""Malformed messages an admitted provider may send before it is disconnected."""
MAX_PAGE = 1000
"""Most tasks one page of `GET /api/v1/tasks` lists (the next page: `?cursor=` its `next_cursor`)."""
_requests_decoder = msgspec.json.Decoder(TaskRequest | list[TaskRequest])
OPEN = "open"
"""Who may call an endpoint: anyone (it needs no token; the provider socket checks a key)."""
JSON, UPLOAD = "json", "upload"
_FORM_TYPES = ("", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data")
"""Body types a web page may send anywhere without asking first (and a missing one)."""
_CHANGING = ("POST", "PUT", "PATCH", "DELETE")


@dataclass(frozen=True)
class Access:
    """Who may call an endpoint (OPEN, auth.CLIENT or auth.ADMIN) and the body a state-changing
    call must declare: JSON (`application/json`) or UPLOAD (any type a browser cannot send
    cross-site without asking: `application/wasm`, `application/octet-stream`…)."""

    who: str
    body: str = JSON


_UNROUTED = Access(CLIENT)
"""A path no route takes: a caller with any token gets the router's 404 or 405."""
_FALLBACK = Access(ADMIN)
"""A route nobody gave an Access: admins only."""


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


def owner(request: web.Request) -> str | None:
    """The client whose tasks a request may touch (None: any, for an admin)."""
    return request.get(OWNER_KEY)


@web.middleware
async def _gate(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Who may call what (origins, Host, tokens and roles, body types), then berth's errors as
    answers; the connection guard learns when a request started and was answered."""
    guard = request.app[GUARD_KEY]
    guard.started(request)
    try:
        refused = _refusal(request)
        if refused is not None:
            return refused
        try:
            return await handler(request)
        except BerthError as exc:
            return error_response(exc)
        except web.HTTPRequestEntityTooLarge:
            limit = request.app[BROKER_KEY].max_upload
            return error_response(TooLarge(f"The upload is over this broker's limit of {limit:,} bytes."))
    finally:
        guard.finished(request)


def _refusal(request: web.Request) -> web.StreamResponse | None:
    """The answer to a request that may not go on (None when it may), in the order checked:
    a foreign Origin, a Host that names someone else (no tokens), no or a wrong token, a role
    too small, a body of a type any web page could send."""
    settings = request.app[BROKER_KEY].settings
    origin = request.headers.get("Origin")
    if origin is not None and not origin_allowed(origin, settings.origins):
        return _refuse(
            request,
            403,
            f"This broker refuses requests from web pages (Origin {printable(origin)[:100]!r}).",
            "An admin allows a web app's origin with --allow-origin (env BERTH_BROKER_ORIGINS).",
        )
    if origin is not None and request.method == "OPTIONS":
        return web.Response(
            status=204,
            headers={
                "Access-Control-Allow-Methods": "GET, POST, DELETE",
                "Access-Control-Allow-Headers": "Authorization, Content-Type",
                "Access-Control-Max-Age": "600",
            },
        )
    host = request.headers.get("Host")
    if not settings.tokens and not host_allowed(host, request.app[LISTEN_KEY]):
        return _refuse(
            request,
            403,
            f"The Host {printable(host or '')[:100]!r} does not name this broker.",
            "Call it by its address (127.0.0.1, localhost): a broker without tokens answers no other name.",
        )
    access = _access(request)
    identity = _identity(request, settings.tokens)
    if access.who != OPEN:
        if identity is None:
            return _refuse(
                request,
                401,
                "This broker asks for a token.",
                "Send the header Authorization: Bearer TOKEN; "
                "from berth's CLI, pass --token TOKEN or set BERTH_BROKER_TOKEN.",
            )
        if access.who == ADMIN and not identity.admin:
            return _refuse(
                request,
                403,
                f"Only an admin token may do that; the token of {identity.name!r} is a client token.",
                "Ask the broker's admin, or use an admin token.",
            )
        if not identity.admin:
            request[OWNER_KEY] = identity.name
    peer = request.remote or "local"
    request[CLIENT_KEY] = identity.name if identity is not None else peer
    # A DELETE without a body declares nothing: no web page can send one cross-site without
    # asking first, and the Origin check refuses that preflight.
    if request.method in _CHANGING and (request.method != "DELETE" or request.can_read_body):
        kind = request.content_type.lower() if "Content-Type" in request.headers else ""
        if access.body == UPLOAD and kind in _FORM_TYPES:
            return _refuse(
                request,
                415,
                f"This upload needs a Content-Type header such as application/wasm, not {kind or 'none'!r}.",
                "Send Content-Type: application/wasm or application/octet-stream.",
            )
        if access.body == JSON and kind != "application/json":
            return _refuse(
                request,
                415,
                f"This call needs the header Content-Type: application/json, not {kind or 'none'!r}.",
                "Send the body as JSON with Content-Type: application/json.",
            )
    return None


def _access(request: web.Request) -> Access:
    route = request.match_info.route
    if route.resource is None:
        return _UNROUTED
    method = "GET" if route.method == "HEAD" else route.method
    return _ACCESS.get((method, route.resource.canonical), _FALLBACK)


def _identity(request: web.Request, tokens: dict[str, Token]) -> Token | None:
    """Whom the request's bearer token stands for; with no tokens, every caller is an admin."""
    if not tokens:
        peer = request.remote or "local"
        return Token(printable(request.headers.get("X-Berth-Client", peer))[:MAX_NAME] or peer, ADMIN)
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    sent = token.strip().encode("utf-8", "surrogateescape")
    # Compared in constant time, every one: how long a refusal takes tells nothing about a token.
    found = [who for known, who in tokens.items() if hmac.compare_digest(known.encode(), sent)]
    return found[0] if found else None


def _refuse(request: web.Request, status: int, message: str, hint: str) -> web.Response:
    """A refusal, as JSON (berth's API) or as plain text (Wasimoff's routes, as Go's http.Error)."""
    if request.path.startswith(WASIMOFF_PREFIX):
        return web.Response(status=status, text=f"{message} {hint}\n")
    return json_response({"error": message, "hint": hint}, status)


async def _headers(request: web.Request, response: web.StreamResponse) -> None:
    """On every answer: no content sniffing; an allowed web app's origin may read it."""
    response.headers["X-Content-Type-Options"] = "nosniff"
    origin = request.headers.get("Origin")
    if origin is not None and origin_allowed(origin, request.app[BROKER_KEY].settings.origins):
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"


def build_app(
    broker: Broker, listen: str = "127.0.0.1", guard: ConnectionGuard | None = None
) -> web.Application:
    """The broker's aiohttp application (also the Wasimoff-compatible routes); `listen` is the host
    it is served on, `guard` the connection guard of the server that runs it."""
    app = web.Application(middlewares=[_gate], client_max_size=broker.max_upload + 1)
    app[BROKER_KEY] = broker
    app[GUARD_KEY] = guard or ConnectionGuard()
    app[LISTEN_KEY] = listen
    app.on_response_prepare.append(_headers)
    for method, path, handler, _ in _ROUTES:
        if method == "GET":
            app.router.add_get(path, handler)  # and HEAD
        else:
            app.router.add_route(method, path, handler)
    app.router.add_get(PROVIDER_PATH, _provider_socket)
    add_wasimoff_routes(app, broker, provider_path=PROVIDER_PATH)
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
    limit = _int_query(request, "limit", 100, 1, MAX_PAGE)
    before = _int_query(request, "cursor", 0, 1, 2**62) if "cursor" in request.query else None
    views, cursor = request.app[BROKER_KEY].recent(state, limit, owner(request), before)
    # Without output: a page of tasks costs the same whatever they printed or brought.
    tasks = [v.to_json(output=False) for v in views]
    return json_response({"tasks": tasks, "next_cursor": None if cursor is None else str(cursor)})


async def _get_task(request: web.Request) -> web.Response:
    wait = _float_query(request, "wait", 0.0, 0.0, 300.0)
    broker = request.app[BROKER_KEY]
    task_id, who = request.match_info["id"], owner(request)
    view = await broker.wait(task_id, wait, who) if wait else broker.get(task_id, who)
    return json_response(view.to_json())


async def _cancel_task(request: web.Request) -> web.Response:
    return json_response(request.app[BROKER_KEY].cancel(request.match_info["id"], owner(request)).to_json())


async def _batch_results(request: web.Request) -> web.StreamResponse:
    """Results of a batch as NDJSON, in finish order, from `after` (a finish number) on, until the
    batch is complete; `{}` lines keep an idle stream alive. A client that lost the stream asks
    again with the last `seq` it saw."""
    broker = request.app[BROKER_KEY]
    batch = request.match_info["batch"]
    after = _int_query(request, "after", 0, 0, 2**62)
    who = owner(request)
    views, complete = await broker.batch_results(batch, after, 0, who)  # NotFound before streaming starts
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await response.prepare(request)
    try:
        while True:
            if views:
                await response.write(b"".join(encode_json(v.to_json()) + b"\n" for v in views))
                after = views[-1].seq
            elif not complete:
                await response.write(b"{}\n")
            if complete:
                break
            views, complete = await broker.batch_results(batch, after, STREAM_POLL, who)
        await response.write_eof()
    except ConnectionError:
        pass  # the client went away; it resumes from the last seq it saw
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


async def _unpair(request: web.Request) -> web.Response:
    data = await _body(request)
    request.app[BROKER_KEY].unpair(data["fingerprint"])
    return json_response({"unpaired": data["fingerprint"]})


_ROUTES: tuple[tuple[str, str, Callable[[web.Request], Awaitable[web.StreamResponse]], Access], ...] = (
    ("GET", "/healthz", _healthz, Access(OPEN)),
    ("GET", "/metrics", _metrics, Access(OPEN)),
    ("GET", "/api/v1/status", _status, Access(CLIENT)),
    ("POST", "/api/v1/modules", _upload, Access(CLIENT, UPLOAD)),
    ("POST", "/api/v1/tasks", _submit, Access(CLIENT)),
    ("GET", "/api/v1/tasks", _list_tasks, Access(CLIENT)),
    ("GET", "/api/v1/tasks/{id}", _get_task, Access(CLIENT)),
    ("DELETE", "/api/v1/tasks/{id}", _cancel_task, Access(CLIENT)),
    ("GET", "/api/v1/batches/{batch}/results", _batch_results, Access(CLIENT)),
    ("GET", "/api/v1/providers", _providers, Access(ADMIN)),
    ("GET", "/api/v1/providers/pending", _pending, Access(ADMIN)),
    ("GET", "/api/v1/providers/log", _provider_log, Access(ADMIN)),
    ("POST", "/api/v1/providers/pair", _pair, Access(ADMIN)),
    ("POST", "/api/v1/providers/unpair", _unpair, Access(ADMIN)),
    ("POST", "/api/v1/providers/drain", _drain, Access(ADMIN)),
    ("POST", "/api/v1/providers/disconnect", _disconnect, Access(ADMIN)),
)
"""berth's own routes and who may call each (a client token sees only its own tasks and batches)."""
_ACCESS: dict[tuple[str, str], Access] = {
    **{(method, path): access for method, path, _, access in _ROUTES},
    ("GET", PROVIDER_PATH): Access(OPEN),
    ("GET", f"{WASIMOFF_PREFIX}/healthz"): Access(OPEN),
    ("GET", f"{WASIMOFF_PREFIX}/config"): Access(CLIENT),
    ("POST", f"{WASIMOFF_PREFIX}/upload"): Access(CLIENT, UPLOAD),
    ("POST", f"{WASIMOFF_PREFIX}/run"): Access(CLIENT),
}


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
    ws = web.WebSocketResponse(max_msg_size=broker.settings.frame_limit, heartbeat=None)
    # Until it is admitted, anyone may be at the other end: the guard lets it send a few KiB only
    # (aiohttp's message limit is fixed when the socket is made, so it can't be small only now).
    guard = request.app[GUARD_KEY]
    guard.before_admission(request)
    await ws.prepare(request)
    link = _SocketLink(ws)
    conn = None
    try:
        conn = await _handshake(broker, ws, link, request.remote or "?")
        if conn is None:
            return ws
        guard.admitted(request)
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
        if len(message.data) > p.MAX_HELLO:
            raise p.ProtocolError(f"a handshake message is at most {p.MAX_HELLO:,} bytes")
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
    admitted = broker.admit(link, hello, fingerprint, peer)
    if isinstance(admitted, p.Refused):
        link.send(p.encode(admitted))
        link.close(admitted.reason)
        return None
    settings = broker.settings
    link.send(p.encode(p.Welcome(fingerprint, admitted.name, settings.heartbeat, settings.frame_limit)))
    broker.ready(admitted)
    return admitted


# Running --------------------------------------------------------------------------------------


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
    broker: Broker,
    host: str = "127.0.0.1",
    port: int = 0,
    tls: ssl.SSLContext | None = None,
    *,
    limits: HttpLimits | None = None,
    insecure_no_tokens: bool = False,
) -> AsyncIterator[str]:
    """Serve `broker` while the block runs; yields its base URL (port 0 picks a free one).

    A broker without tokens lets every caller do anything, so it listens only on loopback,
    unless `insecure_no_tokens` says that is meant."""
    if not broker.settings.tokens and not is_loopback(host) and not insecure_no_tokens:
        raise Denied(
            f"A broker without tokens lets anyone who reaches it do anything: it listens on "
            f"loopback only, not on {host}.",
            "Give it tokens (--tokens-file FILE, or env BERTH_BROKER_TOKENS), "
            "or add --insecure-no-tokens if everyone who can reach it may be an admin.",
        )
    await broker.start()
    guard = ConnectionGuard(limits)
    runner = web.AppRunner(
        build_app(broker, host, guard),
        access_log=None,
        handle_signals=False,
        keepalive_timeout=guard.limits.keepalive,
    )
    await runner.setup()
    assert runner.server is not None
    try:
        server = await asyncio.get_running_loop().create_server(
            guard.protocol(runner.server),
            host,
            port,
            ssl=tls,
            ssl_handshake_timeout=guard.limits.header_timeout if tls else None,
            reuse_address=True,
            backlog=128,  # as aiohttp: a longer queue only makes a flood of connections wait longer
        )
    except OSError as exc:
        await runner.cleanup()
        await broker.close()
        raise BerthError(
            f"Cannot listen on {host}:{port}: {exc.strerror or exc}.", "Pick another --listen."
        ) from None
    guard.start()
    bound = server.sockets[0].getsockname()[1] if server.sockets else port
    scheme = "https" if tls else "http"
    shown = f"[{host}]" if ":" in host else host
    try:
        yield f"{scheme}://{shown}:{bound}"
    finally:
        server.close()
        await broker.close()
        await runner.cleanup()
        await guard.close()
