"""The Providers pane: the broker's status, its paired providers and the keys waiting to be paired;
pair, drain, disconnect, read a provider's log, start a provider on a host over SSH."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from textual import work
from textual.app import ComposeResult
from textual.widgets import Static

from backends.broker.auth import printable
from backends.broker.client import ProviderVerb
from backends.broker.remote import start_provider
from backends.config import Config, HostConfig
from backends.errors import BerthError, Denied, Invalid
from backends.hosts import Sessions, Spawned
from backends.streams import LogLine
from backends.units import WORKERS
from tui.acting import permitted, read_only_flag, run_action, shown
from tui.error_log import log_unexpected
from tui.panes.provider_rows import PROVIDER_COLUMNS, provider_row, status_line
from tui.panes.table_pane import TablePane
from tui.read_only import refusal
from tui.screens.confirm import ConfirmScreen, subject
from tui.screens.form import Field, FormScreen
from tui.screens.logs import LogScreen
from tui.verbs import bindings
from tui.widgets.resource_table import ResourceTable

if TYPE_CHECKING:
    from backends.broker.embedded import BrokerHandle

POLL_SECONDS = 1.0
RATE_SAMPLES = 60

BrokerGetter = Callable[[], Awaitable["BrokerHandle"]]


class ProvidersPane(TablePane):
    """The broker at a glance and its providers; polls the broker once a second while shown."""

    TABLE_ID = "providers-table"
    BINDINGS = bindings("providers")

    def __init__(self, host: HostConfig, config: Config, sessions: Sessions, broker: BrokerGetter) -> None:
        super().__init__(id="pane-providers", classes="pane providers")
        self.host = host
        self.config = config
        self.sessions = sessions
        self._get_broker = broker
        self.broker: BrokerHandle | None = None
        self.providers: dict[str, dict[str, Any]] = {}
        self.pending: dict[str, dict[str, Any]] = {}
        self.status: dict[str, Any] = {}
        self.rates: deque[float] = deque(maxlen=RATE_SAMPLES)
        self.started: dict[str, Spawned] = {}  # providers this console started on hosts, by host
        self._last: tuple[float, int] | None = None
        self._wake = asyncio.Event()
        self._watching = False

    def compose(self) -> ComposeResult:
        """The status line over the providers table."""
        yield Static("broker: not started yet", id="broker-status")
        yield ResourceTable(
            PROVIDER_COLUMNS,
            id="providers-table",
            grouped=True,
            group_label="{group}",
            empty_message="Starting the broker…",
        )

    def on_show(self) -> None:
        """Shown for the first time: start (or reach) the broker, then keep the view current.

        Not on mount: the embedded broker and its local provider start only for people who use
        this pane (or submit to the broker).
        """
        if not self._watching:
            self._watching = True
            self.watch_broker()

    async def on_unmount(self) -> None:
        """Stop the providers this console started on hosts."""
        for spawned in self.started.values():
            spawned.stop()

    # Live data ----------------------------------------------------------------------------------

    @work(group="broker", exit_on_error=False)
    async def watch_broker(self) -> None:
        """Read status, providers and waiting keys every second while shown (after an action at
        once); the next read starts only after the last one ended."""
        try:
            self.broker = await self._get_broker()
        except BerthError as exc:
            self._say(str(exc))
            return
        except Exception as exc:  # the pane says what broke instead of staying on "Starting…"
            self._say(log_unexpected(exc))
            return
        self.table.empty_message = "No provider yet: start one with `berth provider --broker URL`, or P."
        while True:
            while not self._wake.is_set() and not shown(self):
                await asyncio.sleep(POLL_SECONDS)
            self._wake.clear()
            try:
                await self.read_once()
            except BerthError as exc:
                self._say(str(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)

    async def read_once(self) -> None:
        """One read of the broker: the status line and every row."""
        assert self.broker is not None
        client = self.broker.client
        status, providers, pending = await asyncio.gather(
            client.call("GET", "/api/v1/status", retry=False),
            client.call("GET", "/api/v1/providers", retry=False),
            client.call("GET", "/api/v1/providers/pending", retry=False),
        )
        self.status = status
        finished = int(status["done"]) + int(status["failed"]) + int(status["cancelled"])
        now = time.monotonic()
        if self._last is not None and now > self._last[0]:
            self.rates.append(max(0.0, (finished - self._last[1]) / (now - self._last[0])))
        self._last = (now, finished)
        self.providers = {p["fingerprint"]: p for p in providers}
        self.pending = {p["fingerprint"]: p for p in pending}
        rows = {fp: provider_row(p) for fp, p in self.providers.items()}
        rows.update({fp: provider_row(p, pending=True) for fp, p in self.pending.items()})
        self.table.update_rows(rows)
        self.query_one("#broker-status", Static).update(
            status_line(self.broker.url, status, list(self.rates), self.broker.embedded)
        )

    def refresh_now(self) -> None:
        """Read the broker again at once (after an action)."""
        self._wake.set()

    def _say(self, why: str) -> None:
        self.query_one("#broker-status", Static).update(f"broker: {why}")
        self.table.empty_message = why

    # Acting -------------------------------------------------------------------------------------

    def _acting(self) -> BrokerHandle | None:
        """The broker to act on; None (and a notification saying why) when acting is not allowed."""
        problem = None
        if self.broker is None:
            problem = Denied("The broker is not reachable yet.")
        elif why := refusal(self.config, flag=read_only_flag(self)):
            problem = Denied(f"{why}: nothing was changed.")
        if problem is not None:
            self.notify(str(problem), severity="warning")
            return None
        return self.broker

    def acting_hosts(self) -> list[HostConfig]:
        """The host `P` starts a provider on (the broker's verbs act on no host)."""
        return [self.host]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """No verb that changes state in read-only mode."""
        return permitted(self, action, parameters)

    def _chosen(self, among: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
        return [among[fp] for fp in self.table.selected_ids() if fp in among]

    def _post(self, verb: ProviderVerb, fingerprints: Sequence[str], done: str) -> None:
        broker = self._acting()
        if broker is None:
            return

        async def job() -> None:
            await broker.client.act_on_providers(verb, fingerprints)

        run_action(self, verb, job, done=done, after=self.refresh_now, group="broker-actions")

    def action_approve(self) -> None:
        """Pair the waiting key under the cursor, after asking for (and showing) its name."""
        chosen = self._chosen(self.pending)
        if not chosen:
            self.notify("Put the cursor on a provider waiting to be paired.", severity="warning")
            return
        waiting = chosen[0]
        broker = self._acting()
        if broker is None:
            return

        def checked(values: dict[str, str]) -> str:
            if not values["name"].strip():
                raise Invalid("Give the provider a name.")
            return values["name"].strip()

        def pair(name: str | None) -> None:
            if name is None:
                return

            async def job() -> None:
                await broker.client.pair(waiting["fingerprint"], name)

            run_action(
                self, "pair", job, done=f"Paired {name}.", after=self.refresh_now, group="broker-actions"
            )

        fields = (
            Field(
                "name",
                f"Pair {waiting['fingerprint']} from {waiting.get('host') or '?'} as",
                value=waiting.get("name") or "",
            ),
        )
        self.app.push_screen(FormScreen("Pair a provider", fields, checked, "Pair"), pair)

    def _ask(self, verb: ProviderVerb, done: str, connected: bool = True) -> None:
        chosen = self._chosen(self.providers)
        if connected:
            chosen = [p for p in chosen if p.get("state") in ("online", "draining")]
        if not chosen:
            kind = "connected" if connected else "paired"
            self.notify(f"Choose a {kind} provider to {verb}.", severity="warning")
            return
        # By the name it was paired as (the fingerprint only for one paired without a name).
        names = [printable(f"{p.get('name') or p['fingerprint']} ({p.get('host') or '?'})") for p in chosen]
        what = subject(names, "provider")
        self.app.push_screen(
            ConfirmScreen(f"{verb.capitalize()} {what}?", names, verb.capitalize()),
            lambda answer: (
                self._post(verb, [p["fingerprint"] for p in chosen], f"{done} {what}.")
                if answer and answer[0]
                else None
            ),
        )

    def action_drain(self) -> None:
        """Let the chosen providers finish what they run and take nothing new (asks first)."""
        self._ask("drain", "Draining")

    def action_disconnect(self) -> None:
        """Close the chosen providers' connections; their tasks go to others (asks first)."""
        self._ask("disconnect", "Disconnected")

    def action_unpair(self) -> None:
        """Revoke the chosen providers' keys: disconnected, then refused until paired again
        (asks first)."""
        self._ask("unpair", "Unpaired", connected=False)

    def action_log(self) -> None:
        """The log of the provider under the cursor (connections, refusals, its own lines), live."""
        fp = self.table.cursor_id()
        broker = self.broker
        if fp is None or broker is None:
            return
        name = (self.providers.get(fp) or self.pending.get(fp) or {}).get("name") or fp

        def source(_since: str | None, _tail: int | None) -> AsyncIterator[Sequence[LogLine]]:
            return _follow_log(broker, fp)

        self.app.push_screen(
            LogScreen(f"provider {name} · {fp}", source=source, source_name=f"provider-{name}")
        )

    def action_start_provider(self) -> None:
        """Start `berth provider` on the current host over its connection (asks for the details)."""
        broker = self._acting()
        if broker is None:
            return
        host = self.host
        if why := refusal(self.config, [host], flag=read_only_flag(self)):
            self.notify(f"{why}: nothing was changed.", severity="warning")
            return
        fields = (
            Field("berth", f"The berth command on {host.name}", "berth", value="berth"),
            Field("workers", "Workers (a number, or max)", value="max", grammar=WORKERS.as_text()),
            Field("name", "Name it asks to be paired under", host.name, value=host.name),
        )

        def checked(values: dict[str, str]) -> dict[str, str]:
            if not values["berth"].strip():
                raise Invalid("Give the berth command to run there.")
            return values

        def start(values: dict[str, str] | None) -> None:
            if values is not None:
                run_action(
                    self, f"start a provider on {host.name}", lambda: self._start(host, values), timeout=12
                )

        self.app.push_screen(FormScreen(f"Start a provider on {host.name}", fields, checked, "Start"), start)

    async def _start(self, host: HostConfig, values: dict[str, str]) -> None:
        assert self.broker is not None
        port = urlsplit(self.broker.url).port or 80
        old = self.started.pop(host.name, None)
        if old is not None:
            old.stop()
        name = values["name"].strip()
        session = self.sessions.get(host)
        spawned = await start_provider(session, port, values["berth"].strip(), values["workers"], name)
        self.started[host.name] = spawned
        self.notify(f"Provider starting on {host.name}; it shows under 'waiting to be paired' (a approves).")
        self.run_worker(self._watch_started(host.name, spawned), group="started", exit_on_error=False)

    async def _watch_started(self, host: str, spawned: Spawned) -> None:
        """Say so when a provider this console started ends, with its last words."""
        last: deque[str] = deque(maxlen=3)
        async for line in spawned.lines():
            last.append(line)
        if self.started.get(host) is spawned:
            del self.started[host]
            said = " / ".join(last) or "no output"
            self.notify(f"The provider on {host} stopped: {said}", severity="warning", timeout=10)
        self.refresh_now()


async def _follow_log(broker: BrokerHandle, fingerprint: str) -> AsyncIterator[Sequence[LogLine]]:
    """A provider's log as the broker keeps it: what is there, then new lines every second."""
    seen = 0
    while True:
        lines = await broker.client.call(
            "GET", "/api/v1/providers/log", params={"fingerprint": fingerprint}, retry=False
        )
        if len(lines) < seen:  # the broker restarted, or its log rolled over
            seen = 0
        if lines[seen:]:
            yield [LogLine(text, "stdout") for text in lines[seen:]]
        seen = len(lines)
        await asyncio.sleep(POLL_SECONDS)
