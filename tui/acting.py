"""What every pane and screen does to act on an engine: ask whether it may, run the call off
the UI with failures shown as one notification, step aside for an interactive shell."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from textual.widget import Widget

from backends.config import Config, HostConfig
from backends.errors import BerthError, Denied

B = TypeVar("B")


def writable(node: Widget, config: Config, host: HostConfig, backend: B | None, why_not: str) -> B | None:
    """`backend` when acting on `host` is allowed; else None, and a notification saying why.

    `why_not` explains a missing backend (the host's error, or "No Docker on web-1.").
    """
    problem = None
    if backend is None:
        problem = Denied(why_not, "Pick another host with H.")
    elif config.ui.read_only or host.read_only:
        problem = Denied(f"{host.name} is read-only here.", "Set read_only = false in the config to act.")
    if problem is not None:
        node.notify(str(problem), severity="warning")
        return None
    return backend


def run_action(
    node: Widget,
    label: str,
    job: Callable[[], Awaitable[object]],
    *,
    done: str = "",
    after: Callable[[], object] | None = None,
    group: str = "actions",
    timeout: float = 8,
) -> None:
    """Run an engine call in a worker of `node`; `done` is said on success, a failure becomes one
    notification titled `label`, and `after` runs either way (e.g. to read the list again)."""

    async def go() -> None:
        try:
            await job()
            if done:
                node.notify(done, timeout=3)
        except BerthError as exc:
            node.notify(str(exc), title=label, severity="error", timeout=timeout)
        if after is not None:
            after()

    node.run_worker(go(), group=group, exit_on_error=False)


async def run_in_terminal(node: Widget, argv: Sequence[str], env: dict[str, str] | None = None) -> None:
    """Suspend the console, run `argv` (an interactive shell) on the terminal, come back after.

    Awaited, not run blocking: for an SSH host this event loop serves the forwarded socket the
    command talks through.
    """
    try:
        with node.app.suspend():
            process = await asyncio.create_subprocess_exec(*argv, env=env)
            await process.wait()
    except Exception as exc:  # SuspendNotSupported under a test driver or a web terminal
        node.notify(f"Cannot open a shell from this terminal: {exc}", severity="error")


def shown(widget: Widget) -> bool:
    """True while `widget` is on the screen in front and takes room (its pane is the one shown)."""
    return widget.screen is widget.app.screen and widget.display and widget.region.area > 0
