"""`berth web` serves the console only to whoever holds its token, and only to its own page: a
real `berth web` on 127.0.0.1, driven through its page and WebSocket as a browser does (and as a
hostile page would: another Origin, a text/plain POST, a rebinding host name)."""

import asyncio
import re
import time
from urllib.parse import urljoin, urlsplit

import aiohttp
import pytest
from web_helpers import Web, berth_web, browser, read_screen
from yarl import URL

EVIL = "http://evil.example"


async def sign_in(session: aiohttp.ClientSession, web: Web) -> aiohttp.ClientResponse:
    """Open the URL `berth web` printed, as the user does; the page it ends on."""
    async with session.get(f"{web.url}/?token={web.token}") as page:
        await page.read()
        return page


async def until_closed(ws: aiohttp.ClientWebSocketResponse, wait: float = 20) -> None:
    """Read (and drop) what the console sends until the server closes the socket."""
    deadline = time.monotonic() + wait
    data = (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT)
    while (message := await ws.receive(timeout=wait)).type in data:
        assert time.monotonic() < deadline, "the socket stayed open"
    assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), message


async def no_console_left(web: Web) -> None:
    deadline = time.monotonic() + 15
    while web.children():
        assert time.monotonic() < deadline, f"consoles still running: {web.children()}"
        await asyncio.sleep(0.1)


async def test_without_the_token_nothing_is_served(tmp_path) -> None:
    async with berth_web(tmp_path) as web, browser() as session:
        paths = ["/", "/?fontsize=20", "/?token=", "/?token=wrong", "/static/js/textual.js",
                 "/static/css/xterm.css", "/static/fonts/RobotoMono-VariableFont_wght.ttf", "/ws"]
        for path in paths:
            async with session.get(web.url + path) as answer:
                body = await answer.text()
                assert answer.status == 401, path
                assert "needs the token it printed" in body and "<html" not in body.lower(), path
        async with session.get(web.url + "/", cookies={web.cookie: "x" * len(web.token)}) as answer:
            assert answer.status == 401
        # The page's WebSocket, in a browser's shape (its own Origin), without the token or with a wrong one.
        for query in ("", "?token=wrong", f"?token={web.token[:-1]}"):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(f"{web.url}/ws{query}", origin=web.origin)
            assert refused.value.status == 401
        assert len(session.cookie_jar) == 0
        assert web.children() == []  # no console was started for anyone


async def test_a_page_from_another_origin_is_refused(tmp_path) -> None:
    async with berth_web(tmp_path) as web, browser() as session:
        assert (await sign_in(session, web)).status == 200  # the cookie is there from now on
        async with session.get(web.url + "/", headers={"Origin": EVIL}) as answer:
            assert answer.status == 403
            assert "refuses requests from pages of http://evil.example" in await answer.text()
        # A cross-site form post needs no preflight: text/plain, Origin set.
        headers = {"Origin": EVIL, "Content-Type": "text/plain"}
        async with session.post(web.url + "/ws", data="stdin", headers=headers) as answer:
            assert answer.status == 403
        # A foreign page's WebSocket is refused even with the cookie and the token.
        foreign = [EVIL, "null", f"http://127.0.0.1:{web.port + 1}", f"https://127.0.0.1:{web.port}"]
        for origin in foreign:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(f"{web.url}/ws?token={web.token}", origin=origin)
            assert refused.value.status == 403, origin
        # DNS rebinding: a name of the attacker's resolving to 127.0.0.1 makes its page "same origin";
        # its browser holds no cookie for that name and it has no token.
        async with aiohttp.ClientSession() as rebound:
            rebinding = {"Host": f"evil.example:{web.port}", "Origin": f"http://evil.example:{web.port}"}
            async with rebound.get(web.url + "/", headers=rebinding) as answer:
                assert answer.status == 401
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await rebound.ws_connect(f"{web.url}/ws", headers=rebinding)
            assert refused.value.status == 401
        assert web.children() == []


async def test_with_the_token_the_console_works(tmp_path) -> None:
    async with berth_web(tmp_path) as web, browser() as session:
        page = await sign_in(session, web)
        assert page.status == 200 and [r.status for r in page.history] == [303]
        assert page.url == URL(web.url + "/")  # the token left the address bar at once
        cookie = page.history[0].cookies[web.cookie]
        assert cookie.value == web.token
        assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/"
        html = await page.text()
        assert f'data-session-websocket-url="ws://127.0.0.1:{web.port}/ws"' in html
        policy = page.headers["Content-Security-Policy"]
        assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy

        # As the page's script opens it: its own Origin, the cookie, no token in the URL.
        async with session.ws_connect(f"{web.url}/ws?width=120&height=30", origin=web.origin) as ws:
            await read_screen(ws, "Containers")
            assert len(web.children()) == 1
            # Hostile messages change nothing: not JSON, wrong shapes, absurd sizes.
            for junk in ("not json", "[]", "{}", "[1, 2]", '["stdin", 5]', '["resize", "x"]'):
                await ws.send_str(junk)
            await ws.send_json(["resize", {"width": 10**9, "height": -1}])
            await ws.send_json(["ping", "p" * 10_000])
            # Keystrokes reach the console: the Wasm pane, then its New task form.
            await ws.send_json(["stdin", "3"])
            await read_screen(ws, "n New task")
            await ws.send_json(["stdin", "n"])
            await read_screen(ws, "Writable dirs")
            await ws.send_json(["stdin", "\x1b"])
            await asyncio.sleep(0.5)
            await ws.send_json(["stdin", "q"])  # quitting the console closes the page's socket
            await until_closed(ws)
        await no_console_left(web)


async def test_a_message_past_the_bound_closes_only_that_console(tmp_path) -> None:
    from tui import web_server

    async with berth_web(tmp_path) as web, browser() as session:
        await sign_in(session, web)
        # Bounded in time: a server that takes the message stops reading while its console chews
        # on a million keys, and then even closing the socket would wait for ever.
        async with asyncio.timeout(60), session.ws_connect(f"{web.url}/ws", origin=web.origin) as ws:
            await read_screen(ws, "Containers")
            await ws.send_json(["stdin", "x" * (web_server.MAX_MESSAGE + 1)])
            await until_closed(ws)
            assert ws.close_code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
        await no_console_left(web)
        async with session.ws_connect(f"{web.url}/ws", origin=web.origin) as ws:
            await read_screen(ws, "Containers")  # the server serves the next page as before


async def test_read_only_stays_available_on_top(tmp_path) -> None:
    async with berth_web(tmp_path, "--read-only") as web, browser() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:  # read-only needs the token too
            await session.ws_connect(f"{web.url}/ws", origin=web.origin)
        assert refused.value.status == 401
        await sign_in(session, web)
        async with session.ws_connect(f"{web.url}/ws?width=120&height=30", origin=web.origin) as ws:
            await read_screen(ws, "Containers")
            await ws.send_json(["stdin", "3"])
            await read_screen(ws, "l Output")
            await ws.send_json(["stdin", "n"])
            await read_screen(ws, "berth runs read-only (--read-only): nothing was changed.")


ABSOLUTE = re.compile(r"""(?:[a-z][a-z0-9+.-]*:)?//(?P<netloc>[A-Za-z0-9.\[\]:-]+)""", re.IGNORECASE)
REFERENCE = re.compile(
    r"""(?:src|href)\s*=\s*["']([^"']+)["']"""  # <script src>, <link href>, <a href>
    r"""|url\(\s*["']?([^"')]+)["']?\s*\)"""  # CSS url(...)
    r"""|@import\s+["']([^"']+)"""
)


def references(text: str) -> list[str]:
    return [next(g for g in m.groups() if g) for m in REFERENCE.finditer(text)]


def elsewhere(text: str, netloc: str) -> list[str]:
    """Absolute URLs in `text` to anywhere but `netloc`."""
    return [m[0] for m in ABSOLUTE.finditer(text) if m["netloc"].lower() != netloc]


async def test_the_page_loads_nothing_from_elsewhere(tmp_path) -> None:
    async with berth_web(tmp_path) as web, browser() as session:
        page = await sign_in(session, web)
        html = await page.text()
        here = urlsplit(web.url)
        seen: dict[str, bytes] = {}
        todo = [(str(page.url), ref) for ref in references(html)]
        while todo:
            base, ref = todo.pop()
            if ref.startswith("data:"):
                continue
            url = urljoin(base, ref)
            where = urlsplit(url)
            assert (where.scheme, where.netloc) == (here.scheme, here.netloc), f"{ref} leaves berth"
            if url in seen:
                continue
            async with session.get(url) as asset:
                assert asset.status == 200, url
                seen[url] = await asset.read()
            if url.endswith(".css"):
                css = re.sub(r"/\*.*?\*/", "", seen[url].decode(), flags=re.S)
                todo += [(url, r) for r in references(css)]
                assert elsewhere(css, here.netloc) == [], url
        assert any(u.endswith("/js/textual.js") for u in seen)
        assert any(u.endswith(".ttf") for u in seen), "the font comes from berth too"
        # No absolute URL anywhere the browser could follow: page, scripts (styles checked above).
        assert elsewhere(html, here.netloc) == []
        for url, body in seen.items():
            if url.endswith(".js"):
                assert not re.findall(r"https?://", body.decode("utf-8", "replace")), url
