"""The broker the console runs itself when none is configured: served on 127.0.0.1 from inside the
console's event loop, with one local provider (paired automatically) so offloading works at once.

Or, with `[broker] url` set, the console's handle on that remote broker instead. Either way the
console talks to it over HTTP, the same API `berth submit` and `berth broker …` use.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import deque
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path

from backends import paths
from backends.broker import keys
from backends.broker.client import BrokerClient
from backends.broker.core import Broker, BrokerSettings, tokens_from
from backends.broker.provider import Provider
from backends.broker.server import parse_listen, running
from backends.config import BrokerConfig
from backends.errors import BerthError

LOCAL_PROVIDER = "local"
"""The name the embedded broker's own provider is paired under."""


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
    settings = BrokerSettings(data=data, tokens=tokens_from(",".join(config.tokens)), name="berth (embedded)")
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
    token = next(iter(settings.tokens), None)
    handle = BrokerHandle(url, BrokerClient(url, token, patience=5), embedded=True, serving=serving)
    provider = Provider(
        url, workers or os.cpu_count() or 1, key, LOCAL_PROVIDER, on_log=handle.local_log.append
    )
    handle.provider = provider
    handle.provider_task = asyncio.get_running_loop().create_task(provider.run())
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(provider.admitted.wait(), 10)
    return handle
