"""A real `berth web` process on 127.0.0.1 for the tests of its page and WebSocket, and a reader
for the console screen a page's WebSocket carries."""

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from engines.sshd import free_port

BERTH = str(Path(sys.executable).with_name("berth"))
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][A-Za-z0-9]|\x1b[=>]")


@dataclass
class Web:
    """A running `berth web`: its base URL, the token it printed and what it wrote."""

    proc: subprocess.Popen[bytes]
    url: str
    port: int
    token: str
    log: Path

    @property
    def origin(self) -> str:
        """The origin of the page it serves, as a browser sends it."""
        return self.url

    @property
    def cookie(self) -> str:
        """The name of the cookie it sets."""
        return f"berth-web-{self.port}"

    def children(self) -> list[int]:
        """PIDs of the processes it started (a console per accepted WebSocket)."""
        found = []
        for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
            found += [int(p) for p in (task / "children").read_text().split()]
        return found


def offline_config(tmp_path: Path) -> Path:
    """A config whose engines are absent and whose console broker takes a free port."""
    config = tmp_path / "config.toml"
    nowhere = "/nonexistent/berth-test"
    config.write_text(
        '[broker]\nlisten = "127.0.0.1:0"\n\n'
        f'[[hosts]]\nname = "local"\ndocker_socket = "{nowhere}/d.sock"\nlxd_socket = "{nowhere}/l.sock"\n'
    )
    return config


@asynccontextmanager
async def berth_web(tmp_path: Path, *flags: str) -> AsyncIterator[Web]:
    """Start `berth [flags] web` on a free loopback port; wait for the URL it prints; stop it (and
    the consoles it started, in its session) afterwards."""
    port = free_port()
    log_path = tmp_path / "web.log"
    with log_path.open("wb") as log:
        config = offline_config(tmp_path)
        proc = subprocess.Popen(
            [BERTH, "--config", str(config), *flags, "web", "--listen", f"127.0.0.1:{port}"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(os.environ),
            start_new_session=True,  # the consoles it starts per page go with it
        )
    try:
        deadline = time.monotonic() + 20
        # The URL it prints once; an older berth web printed none with a token (then `token` is "").
        printed = re.compile(r"http://127\.0\.0\.1:(\d+)/(?:\?token=([\w-]+))?")
        while not (found := printed.search(log_path.read_text())) or not _listening(port):
            assert proc.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            await asyncio.sleep(0.1)
        assert int(found[1]) == port
        yield Web(proc, f"http://127.0.0.1:{port}", port, found[2] or "", log_path)
    finally:
        with contextlib.suppress(ProcessLookupError):  # gone already (it failed to start)
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def browser() -> aiohttp.ClientSession:
    """A client that keeps cookies as a browser does, for an IP address host too."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def read_screen(ws: aiohttp.ClientWebSocketResponse, want: str, wait: float = 30) -> str:
    """Read the console's output from `ws` until its text (escape codes removed) holds `want`;
    that text."""
    deadline = time.monotonic() + wait
    data = b""
    while want not in (screen := ANSI.sub("", data.decode("utf-8", "replace"))):
        assert time.monotonic() < deadline, screen[-3000:]
        try:
            message = await ws.receive(timeout=deadline - time.monotonic())
        except TimeoutError:
            raise AssertionError(f"{want!r} never came; the screen: {screen[-3000:]}") from None
        if message.type == aiohttp.WSMsgType.BINARY:
            data += message.data
        elif message.type != aiohttp.WSMsgType.TEXT:  # text messages are pongs and the like
            raise AssertionError(f"the console's socket closed ({message.type}): {screen[-3000:]}")
    return screen
