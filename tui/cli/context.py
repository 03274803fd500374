"""What every verb of the `berth` command shares: the global options' choices (`CliContext`), running
work on a host's engine, and the read-only guard."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import click

from backends.config import Config, HostConfig, adhoc_host, load_config
from backends.errors import Denied, Invalid, NotFound
from backends.hosts import HostSession, Sessions
from tui.read_only import refusal

ALL_HOSTS = "all"
T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


class Engine(Protocol):
    """A backend on one host's engine socket (Docker, LXD) that holds connections to close."""

    async def close(self) -> None:
        """Close its connections."""


E = TypeVar("E", bound=Engine)


async def on_host(
    sessions: Sessions,
    host: HostConfig,
    connect: Callable[[HostSession], Awaitable[E]],
    work: Callable[[E], Awaitable[T]],
) -> T:
    """Run `work` on `host`'s engine (`connect` makes its backend from the host's session, through
    its SSH connection if remote), then close the backend."""
    backend = await connect(sessions.get(host))
    try:
        return await work(backend)
    finally:
        await backend.close()


@dataclass
class CliContext:
    """What the global options chose, handed to every verb."""

    config_path: Path
    host: str | None
    json: bool = False
    accept_new: bool = False
    read_only: bool = False

    def load(self) -> Config:
        """The validated config (defaults when the file does not exist)."""
        return load_config(self.config_path)

    def sessions(self, config: Config) -> Sessions:
        """Host sessions for one command, honouring --accept-new."""
        return Sessions(config, accept_new=self.accept_new)

    def run_on(
        self,
        connect: Callable[[HostSession], Awaitable[E]],
        work: Callable[[E], Awaitable[T]],
        host: str | None = None,
    ) -> T:
        """Run `work` on the chosen host's engine (see `on_host`), closing every connection after."""

        async def go() -> T:
            config = self.load()
            sessions = self.sessions(config)
            try:
                return await on_host(sessions, self.host_config(config, host), connect, work)
            finally:
                await sessions.close()

        return asyncio.run(go())

    def refuse_if_read_only(self, hosts: list[HostConfig] | None = None) -> None:
        """Raise `Denied` (exit 1) when berth runs read-only, or when `hosts` (default: the ones
        --host chose) are read-only; before anything is connected to."""
        config = self.load()
        if hosts is None:
            hosts = self.hosts(config)
        why = refusal(config, hosts, flag=self.read_only)
        if why:
            ctx = click.get_current_context(silent=True)
            verb = ctx.command_path.removeprefix("berth ") if ctx else "this command"
            raise Denied(f"{why}: `{verb}` changes state and was not run.")

    def hosts(self, config: Config) -> list[HostConfig]:
        """The hosts --host chose: every one for `all`, else the one `host_config` names."""
        if self.host == ALL_HOSTS:
            return list(config.hosts)
        return [self.host_config(config)]

    def host_config(self, config: Config, name: str | None = None) -> HostConfig:
        """Host `name`, else --host's: an inventory name or an ssh:// URL; the first by default."""
        wanted = name or self.host
        if wanted is None:
            return config.hosts[0]
        if wanted == ALL_HOSTS:
            raise Invalid("This command works on one host.", "Give --host an inventory name or a URL.")
        if wanted.startswith("ssh://"):
            return adhoc_host(wanted)
        found = config.host(wanted)
        if found is None:
            known = ", ".join(h.name for h in config.hosts)
            raise NotFound(f"No host {wanted!r} in {self.config_path}.", f"Known hosts: {known}.")
        return found


def changes_state(*, on_host: bool = True) -> Callable[[F], F]:
    """Mark a verb that changes state: refused under --read-only or `[ui] read_only`, and (with
    `on_host`) on a host marked read_only; put it under the click decorators."""

    def wrap(command: F) -> F:
        @functools.wraps(command)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            obj = click.get_current_context().find_object(CliContext)
            if obj is not None:
                obj.refuse_if_read_only(None if on_host else [])
            return command(*args, **kwargs)

        return guarded  # type: ignore[return-value]

    return wrap
