"""`berth web`: the console served to a browser on loopback; the page loads and a session runs
the real console (its screen arrives over the page's WebSocket)."""

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
from engines.sshd import free_port

BERTH = str(Path(sys.executable).with_name("berth"))


async def test_berth_web_serves_the_page_and_a_console_session(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "config.toml"
    nowhere = "/nonexistent/berth-test"
    config.write_text(
        f'[[hosts]]\nname = "local"\ndocker_socket = "{nowhere}/d.sock"\nlxd_socket = "{nowhere}/l.sock"\n'
    )
    log = (tmp_path / "web.log").open("wb")
    proc = subprocess.Popen(
        [BERTH, "--config", str(config), "web", "--listen", f"127.0.0.1:{port}"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=dict(os.environ),
        start_new_session=True,  # the consoles it starts per page go with it
    )
    try:
        url = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as session:
            deadline = time.monotonic() + 20
            while True:
                try:
                    async with session.get(url + "/") as page:
                        html = await page.text()
                        assert page.status == 200
                        break
                except aiohttp.ClientConnectionError:
                    assert time.monotonic() < deadline, (tmp_path / "web.log").read_text()
                    await asyncio.sleep(0.2)
            assert "<html" in html.lower() and "berth" in html
            assert f"ws://127.0.0.1:{port}/ws" in html

            # A page's WebSocket gets a console of its own: its screen names the pane tabs.
            screen = ""
            async with session.ws_connect(url + "/ws") as ws:
                await ws.send_json(["resize", {"width": 120, "height": 30}])
                deadline = time.monotonic() + 30
                while "Containers" not in screen:
                    assert time.monotonic() < deadline, screen[-2000:]
                    message = await ws.receive(timeout=30)
                    if message.type == aiohttp.WSMsgType.BINARY:
                        screen += message.data.decode("utf-8", "replace")
                    elif message.type == aiohttp.WSMsgType.TEXT:
                        screen += message.data
                    else:
                        break
            assert "Containers" in screen and "Providers" in screen
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
