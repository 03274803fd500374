"""The server behind `berth web`: the console in a browser, for whoever holds its token only.

textual-serve's `Server` serves anyone who reaches its port, lets any site's page open its
WebSocket, and its page loads a font from a public CDN. So berth serves its own small aiohttp app:
its own page (`tui/web/index.html`: every asset from berth itself), the browser half of
textual-serve (its static folder: xterm.js, the stylesheet, the font) and one console process per
WebSocket through textual-serve's `AppService`. Neither is textual-serve's documented API (that is
`Server` alone): tui/private_api.py holds both, checked against the release they were written for.

Who may call it: every request carries the token, as `?token=` (the URL `berth web` printed) or as
the HttpOnly, SameSite=Strict cookie set in answer to it; a request that carries an `Origin`
(every browser WebSocket does) must come from the page's own origin.
"""

from __future__ import annotations

import hmac
import html
import json
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING

from aiohttp import WSCloseCode, WSMsgType, web
from aiohttp.typedefs import Middleware

from tui.private_api import TEXTUAL_SERVE, console_service, textual_serve_static, textual_serve_version

if TYPE_CHECKING:
    from tui.private_api import ConsoleService

MAX_SESSIONS = 16
"""Consoles open at once (each is a berth process); more get HTTP 503."""
MAX_MESSAGE = 1 << 20
"""The largest WebSocket message a page may send (a paste); a bigger one closes the socket."""
MAX_COLUMNS, MAX_ROWS = 1000, 500
"""Bounds on the terminal size a page asks for."""
PAGE = Template((Path(__file__).with_name("web") / "index.html").read_text(encoding="utf-8"))

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SESSIONS: web.AppKey[set[web.WebSocketResponse]] = web.AppKey("sessions")


def make_token() -> str:
    """A fresh secret for one run of `berth web` (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def version_warning() -> str | None:
    """A sentence when the installed textual-serve is not the one `berth web` was written for."""
    found = textual_serve_version()
    if found == TEXTUAL_SERVE:
        return None
    return (
        f"berth web was written against textual-serve {TEXTUAL_SERVE} and finds {found}; "
        f"if the page misbehaves, pip install textual-serve=={TEXTUAL_SERVE}."
    )


def cookie_name(request: web.Request) -> str:
    """The cookie holding the token: named after the port the browser used, as cookies are shared
    by every port of a host and two `berth web` on one machine must not evict each other's."""
    return f"berth-web-{request.url.port or 80}"


def own_origin(request: web.Request) -> str:
    """The origin of a page this server served: its scheme and the host the browser asked for."""
    return f"{request.scheme}://{request.host}".lower()


def guard(token: str) -> Middleware:
    """Middleware: refuse a foreign `Origin` (403) and a request without the token (401). The
    page asked for with the right `?token=` answers with the cookie and a redirect to itself
    without the token, so it leaves the address bar at once."""

    def valid(candidate: str | None) -> bool:
        return candidate is not None and hmac.compare_digest(candidate.encode(), token.encode())

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if origin is not None and origin.lower() != own_origin(request):
            raise web.HTTPForbidden(
                text=f"berth web refuses requests from pages of {origin[:200]}: "
                "only its own page may use it.\n"
            )
        if valid(request.query.get("token")):
            if request.path != "/":
                return await handler(request)
            query = request.url.query.copy()
            del query["token"]
            response = web.Response(status=303, headers={"Location": request.url.with_query(query).path_qs})
            response.set_cookie(cookie_name(request), token, httponly=True, samesite="Strict", path="/")
            return response
        if not valid(request.cookies.get(cookie_name(request))):
            raise web.HTTPUnauthorized(
                text="berth web needs the token it printed when it started: "
                "open the URL it printed (http://HOST:PORT/?token=...).\n"
            )
        return await handler(request)

    return middleware


def page_headers(request: web.Request) -> dict[str, str]:
    """What keeps the page to itself: assets, scripts and sockets from berth only, no framing
    (keystrokes typed into a framed console could be someone else's), nothing cached."""
    host = request.host
    policy = (
        "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        f"connect-src 'self' ws://{host} wss://{host}; frame-ancestors 'none'; "
        "base-uri 'none'; form-action 'none'"
    )
    return {
        "Content-Security-Policy": policy,
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }


def _bounded(value: object, default: int, top: int) -> int:
    """An integer in 1..`top` from what a page sent, else `default`."""
    try:
        number = int(str(value))
    except ValueError:
        return default
    return number if 1 <= number <= top else default


class WebConsole:
    """The aiohttp app of `berth web`: its page, textual-serve's static files, and a console
    process (`command`, run by the shell) for each WebSocket."""

    def __init__(self, command: str, token: str, title: str = "berth") -> None:
        self.command = command
        self.title = title
        self.token = token

    def build(self) -> web.Application:
        """The app, ready for an `AppRunner`."""
        app = web.Application(middlewares=[guard(self.token)], client_max_size=4096)
        app[SESSIONS] = set()
        app.router.add_get("/", self.index)
        app.router.add_get("/ws", self.session)
        app.router.add_static("/static", textual_serve_static(), follow_symlinks=False)
        app.on_shutdown.append(self._close_sessions)
        return app

    async def index(self, request: web.Request) -> web.Response:
        """The page: the terminal, pointed at this server's WebSocket."""
        scheme = "wss" if request.secure else "ws"
        text = PAGE.substitute(
            title=html.escape(self.title),
            static="/static",
            websocket=html.escape(f"{scheme}://{request.host}/ws"),
            font_size=_bounded(request.query.get("fontsize", "16"), 16, 64),
        )
        return web.Response(text=text, content_type="text/html", headers=page_headers(request))

    async def session(self, request: web.Request) -> web.WebSocketResponse:
        """One console for one page: keystrokes and sizes in, the screen out."""
        sessions = request.app[SESSIONS]
        if len(sessions) >= MAX_SESSIONS:
            raise web.HTTPServiceUnavailable(
                text=f"berth web already serves {MAX_SESSIONS} consoles; close one first.\n"
            )
        ws = web.WebSocketResponse(heartbeat=15, max_msg_size=MAX_MESSAGE)
        await ws.prepare(request)

        async def close() -> None:  # the console exited
            await ws.close()

        service = console_service(self.command, ws.send_bytes, ws.send_str, close)
        sessions.add(ws)
        try:
            await service.start(
                _bounded(request.query.get("width"), 80, MAX_COLUMNS),
                _bounded(request.query.get("height"), 24, MAX_ROWS),
            )
            try:
                async for message in ws:
                    if message.type == WSMsgType.TEXT:
                        await self._handle(ws, service, message.data)
            finally:
                await service.stop()
        finally:
            sessions.discard(ws)
        return ws

    @staticmethod
    async def _handle(ws: web.WebSocketResponse, service: ConsoleService, text: str) -> None:
        """One message from textual.js: `["stdin", str]`, `["resize", {width, height}]`,
        `["ping", str]`, `["blur"]` or `["focus"]`. Anything else is ignored."""
        try:
            envelope = json.loads(text)
        except ValueError:
            return
        if not isinstance(envelope, list) or not envelope or not isinstance(envelope[0], str):
            return
        kind, data = envelope[0], envelope[1] if len(envelope) > 1 else None
        if kind == "stdin" and isinstance(data, str):
            await service.send_bytes(data.encode("utf-8", "replace"))
        elif kind == "resize" and isinstance(data, dict):
            width = _bounded(data.get("width"), 0, MAX_COLUMNS)
            height = _bounded(data.get("height"), 0, MAX_ROWS)
            if width and height:
                await service.set_terminal_size(width, height)
        elif kind == "ping" and isinstance(data, str):
            await ws.send_json(["pong", data[:64]])
        elif kind == "blur":
            await service.blur()
        elif kind == "focus":
            await service.focus()

    @staticmethod
    async def _close_sessions(app: web.Application) -> None:
        """On shutdown, close every page's socket: its console is then told to quit."""
        sessions = app[SESSIONS]
        for ws in list(sessions):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"berth web stopped")
