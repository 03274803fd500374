"""What every pane and screen does to act on an engine: ask whether it may, run the call off
the UI with failures shown as one notification, step aside for an interactive shell."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable, Sequence
from functools import cache
from typing import Any, TypeVar

from textual.actions import parse
from textual.app import App
from textual.binding import Binding
from textual.dom import DOMNode
from textual.widget import Widget

from backends.config import Config, HostConfig
from backends.errors import BerthError, Denied
from tui.jobs import Job, Jobs
from tui.read_only import refusal, scope_of
from tui.verbs import CONSOLE

B = TypeVar("B")
CLEAR_SCREEN = "\x1b[H\x1b[2J"
"""Cursor home, then erase the screen (ECMA-48): the terminal a shell opens on starts blank."""


def writable(node: Widget, config: Config, host: HostConfig, backend: B | None, why_not: str) -> B | None:
    """`backend` when acting on `host` is allowed; else None, and a notification saying why.

    `why_not` explains a missing backend (the host's error, or "No Docker on web-1.").
    """
    problem = None
    if backend is None:
        problem = Denied(why_not, "Pick another host with H.")
    elif why := refusal(config, [host], flag=read_only_flag(node)):
        problem = Denied(f"{why}: nothing was changed.")
    if problem is not None:
        node.notify(str(problem), severity="warning")
        return None
    return backend


def read_only_flag(node: DOMNode) -> bool:
    """True when berth was started with `--read-only` (the app says so; a test app may not)."""
    return bool(getattr(node.app, "read_only", False))


@cache
def _binding_ids(node_class: type[DOMNode]) -> dict[tuple[str, tuple[object, ...]], str]:
    """(action name, parameters) -> binding id, over the BINDINGS of `node_class` and its bases."""
    found: dict[tuple[str, tuple[object, ...]], str] = {}
    for cls in reversed(node_class.__mro__):
        for binding in cls.__dict__.get("BINDINGS", ()):
            if isinstance(binding, Binding) and binding.id:
                _namespace, name, params = parse(binding.action)
                found[(name, tuple(params))] = binding.id
    return found


def action_refusal(node: DOMNode, action: str, parameters: tuple[object, ...]) -> str | None:
    """Why `node` may not run `action(*parameters)` now (it changes state and berth, or the host
    it acts on, is read-only), or None when it may.

    A node names the hosts its verbs act on with an `acting_hosts()` method; without one, the
    hosts on show. In the all-hosts view a verb stays available while one host may be changed;
    each pane's `writable` then refuses the targets on read-only hosts.
    """
    binding_id = _binding_ids(type(node)).get((action, tuple(parameters)))
    scope = scope_of(binding_id)
    config = getattr(node.app, "config", None)
    if scope is None or not isinstance(config, Config):
        return None
    hosts: list[HostConfig] = []
    if scope != CONSOLE:
        acting_hosts = getattr(node, "acting_hosts", None)
        hosts = list(acting_hosts() if callable(acting_hosts) else getattr(node.app, "shown_hosts", []))
    return refusal(config, hosts, flag=read_only_flag(node))


def permitted(node: DOMNode, action: str, parameters: tuple[object, ...]) -> bool:
    """For `check_action`: False hides a state-changing verb from the footer in read-only mode."""
    return action_refusal(node, action, parameters) is None


def run_action(
    node: Widget | App[Any],
    label: str,
    job: Callable[[], Awaitable[object]],
    *,
    done: str = "",
    after: Callable[[], object] | None = None,
    group: str = "actions",
    timeout: float = 8,
) -> None:
    """Run an engine call in a worker of `node`; `done` is said on success, a failure becomes one
    notification titled "<label> failed", and `after` runs either way (e.g. to read the list again).

    `label` names what is tried ("add forward 2222 → 22/tcp"), never how it went: the same words
    head a failure, so a success phrase there would sit over the error that contradicts it.
    """

    async def go() -> None:
        try:
            await job()
            if done:
                node.notify(done, timeout=3)
        except BerthError as exc:
            node.notify(str(exc), title=failure_title(label), severity="error", timeout=timeout)
        if after is not None:
            after()

    node.run_worker(go(), group=group, exit_on_error=False)


def failure_title(label: str) -> str:
    """The title of the notification that says `label` (what was tried) did not work."""
    return f"{label[:1].upper()}{label[1:]} failed"


def run_job(
    node: Widget,
    title: str,
    host: str,
    work: Callable[[Job], Awaitable[object]],
    *,
    done: str = "",
    unit: str = "",
    after: Callable[[], object] | None = None,
) -> None:
    """Run a long operation as one of the app's jobs (listed in `:jobs`, cancellable, asked about
    at quit); `work(job)` reports progress on `job`. Without an app that keeps jobs (a widget
    tested on its own) it runs as a plain action."""
    jobs = getattr(node.app, "jobs", None)
    if isinstance(jobs, Jobs):
        job = jobs.start(title, host, work, unit=unit, done=done)
        if after is not None and job.worker is not None:
            worker = job.worker

            async def then() -> None:
                with contextlib.suppress(Exception):  # how it ended is the job's to say
                    await worker.wait()
                after()

            node.run_worker(then(), group="jobs-after", exit_on_error=False)
        return
    run_action(node, title, lambda: work(Job(0, title, host)), done=done, after=after)


async def run_in_terminal(node: Widget, argv: Sequence[str], env: dict[str, str] | None = None) -> None:
    """Suspend the console, run `argv` (an interactive shell) on the terminal, come back after.

    Awaited, not run blocking: for an SSH host this event loop serves the forwarded socket the
    command talks through.
    """
    try:
        with node.app.suspend():
            # The terminal is back as it was before berth started: clear it, or the shell opens
            # under that old output as if it were the container's.
            sys.stdout.write(CLEAR_SCREEN)
            sys.stdout.flush()
            process = await asyncio.create_subprocess_exec(*argv, env=env)
            await process.wait()
    except Exception as exc:  # SuspendNotSupported under a test driver or a web terminal
        node.notify(f"Cannot open a shell from this terminal: {exc}", severity="error")


def shown(widget: Widget) -> bool:
    """True while `widget` is on the screen in front and takes room (its pane is the one shown)."""
    return widget.screen is widget.app.screen and widget.display and widget.region.area > 0
