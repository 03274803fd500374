"""The broker the console runs itself when none is configured: served on 127.0.0.1 from inside the
console's event loop, with one local provider (paired automatically) so offloading works at once.

Or, with `[broker] url` set, the console's handle on that remote broker instead. Either way the
console talks to it over HTTP, the same API `berth submit` and `berth broker …` use.

The embedded broker is never without tokens: at its first start it makes an admin token, kept in
`ADMIN_TOKEN_FILE` (0600) in its data folder, which the console's own client sends; `berth broker
… --token "$(cat FILE)"` reaches it from a shell. The `[broker] tokens` of the config come on top.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections import deque
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path

from backends import paths
from backends.broker import keys
from backends.broker.auth import ADMIN, Token, tokens_file, tokens_from
from backends.broker.client import BrokerClient
from backends.broker.core import Broker, BrokerSettings
from backends.broker.provider import Provider
from backends.broker.server import running
from backends.config import BrokerConfig
from backends.errors import BerthError
from backends.parse_addresses import parse_listen

LOCAL_PROVIDER = "local"
"""The name the embedded broker's own provider is paired under."""
ADMIN_TOKEN_FILE = "admin.token"
CONSOLE = "console"
"""The name of the console's admin token (the client its own tasks are filed under)."""


@dataclass
class BrokerHandle:
    """The broker the console uses: its URL, a client for it, and (if embedded) what runs it."""

    url: str
    client: BrokerClient
    embedded: bool
    local_log: deque[str] = field(default_factory=lambda: deque(maxlen=500))
    serving: AbstractAsyncContextManager[str] | None = None
    provider: Provider | None = None
    provider_task: asyncio.Task[None] | None = None

    async def close(self) -> None:
        """Stop the local provider and the embedded broker (a remote broker is only let go)."""
        await self.client.close()
        if self.provider is not None and self.provider_task is not None:
            self.provider.drain()
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self.provider_task, 5)
        if self.serving is not None:
            await self.serving.__aexit__(None, None, None)


async def open_broker(config: BrokerConfig, workers: int | None = None) -> BrokerHandle:
    """The configured remote broker, or an embedded one started here with a local provider.

    The embedded broker listens on `config.listen` (default 127.0.0.1:4080), or on a free port
    when that one is taken (another broker already runs there).
    """
    if config.url:
        return BrokerHandle(config.url, BrokerClient(config.url, config.token, patience=5), embedded=False)
    data = Path(config.data_dir).expanduser() if config.data_dir else paths.data_dir() / "console-broker"
    token = console_token(data)
    tokens = tokens_from(",".join(config.tokens)) | {token: Token(CONSOLE, ADMIN)}
    settings = BrokerSettings(data=data, tokens=tokens, name="berth (embedded)")
    broker = Broker(settings)
    host, port = parse_listen(config.listen)
    serving = running(broker, host, port)
    try:
        url = await serving.__aenter__()
    except BerthError:
        broker = Broker(settings)
        serving = running(broker, host, 0)
        url = await serving.__aenter__()
    key = keys.load_or_create(paths.data_dir() / "local_provider_ed25519")
    public = keys.public_bytes(key)
    broker.pair_key(public, keys.fingerprint(public), LOCAL_PROVIDER)
    handle = BrokerHandle(url, BrokerClient(url, token, patience=5), embedded=True, serving=serving)
    provider = Provider(
        url, workers or os.cpu_count() or 1, key, LOCAL_PROVIDER, on_log=handle.local_log.append
    )
    handle.provider = provider
    handle.provider_task = asyncio.get_running_loop().create_task(provider.run())
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(provider.admitted.wait(), 10)
    return handle


def console_token(data: Path) -> str:
    """The embedded broker's admin token, made at its first start in DATA/admin.token (0600).

    Denied when that file may be read by others (it was not berth that made it so)."""
    path = data / ADMIN_TOKEN_FILE
    if not path.exists():
        paths.private_dir(data)
        line = f"admin:{CONSOLE}={secrets.token_urlsafe(32)}\n"
        with contextlib.suppress(FileExistsError):  # another console made it meanwhile: use that
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write("# The admin token of the console's own broker (made by berth).\n" + line)
    found = [t for t, who in tokens_file(path).items() if who.admin]
    if not found:
        raise BerthError(f"{path} holds no admin token.", "Remove it: berth makes a new one next time.")
    return found[0]
