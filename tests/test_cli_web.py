"""`berth web`: the console served to a browser on loopback; the page loads and a session runs
the real console (its screen arrives over the page's WebSocket). Who may use it: test_web_auth."""

from pathlib import Path

from web_helpers import berth_web, browser, read_screen


async def test_berth_web_serves_the_page_and_a_console_session(tmp_path: Path) -> None:
    async with berth_web(tmp_path) as web, browser() as session:
        assert f"berth web: {web.url}/?token={web.token} (Ctrl+C stops it)" in web.log.read_text()
        async with session.get(f"{web.url}/?token={web.token}") as page:
            html = await page.text()
            assert page.status == 200
        assert "<html" in html.lower() and "berth" in html
        assert f"ws://127.0.0.1:{web.port}/ws" in html

        # A page's WebSocket gets a console of its own: its screen names the pane tabs.
        async with session.ws_connect(web.url + "/ws", origin=web.origin) as ws:
            await ws.send_json(["resize", {"width": 120, "height": 30}])
            screen = await read_screen(ws, "Providers")
            assert "Containers" in screen and "Providers" in screen
