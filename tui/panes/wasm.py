"""The Wasm tasks pane: WASI modules run by berth's local pool, with live output and history."""

from __future__ import annotations

import asyncio
import shlex
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import work
from textual.app import ComposeResult

from backends.broker.protocol import Limits as WireLimits
from backends.broker.tasks import TaskRequest, as_record
from backends.config import HostConfig
from backends.errors import BerthError, Invalid
from backends.parse_images import IMAGE_REF, parse_image_ref
from backends.parse_pairs import ENV, FOLDERS, parse_env, parse_folders
from backends.streams import LogLine
from backends.units import (
    COPIES,
    COUNT,
    SIZE,
    TIME_LIMIT,
    parse_copies,
    parse_count,
    parse_size,
    parse_time_limit,
)
from backends.wasm.pool import TaskPool, TaskRecord
from backends.wasm.record import describe, output_lines
from backends.wasm.spec import Limits, Preopen, TaskSpec
from backends.wasm.task_verbs import TaskVerbs
from tui.acting import permitted, run_action, run_job, shown
from tui.error_log import log_unexpected
from tui.jobs import Job
from tui.panes.table_pane import TablePane
from tui.panes.wasm_rows import TASK_COLUMNS, task_age, task_row
from tui.screens.confirm import ConfirmScreen, subject
from tui.screens.form import Field, FormScreen
from tui.screens.logs import LogScreen
from tui.verbs import bindings
from tui.widgets.resource_table import ResourceTable

if TYPE_CHECKING:
    from backends.broker.embedded import BrokerHandle

TICK_SECONDS = 1.0
"""How often STARTED is brought up to date while the pane is shown."""

NEW_TASK_FIELDS = (
    Field("module", "Module: a .wasm file or a stored sha256:…", "./hello.wasm"),
    Field("image", "…or a wasi/wasm image on this host (instead of a module)", grammar=IMAGE_REF),
    Field("args", "Arguments (shell words)", "--verbose input.txt"),
    Field("env", "Environment (K=V, space-separated)", grammar=ENV),
    Field("fuel", "Fuel (empty: no limit)", grammar=COUNT),
    Field("memory", "Memory (empty: no limit)", grammar=SIZE),
    Field("timeout", "Wall time (empty: no limit)", grammar=TIME_LIMIT),
    Field("dirs", "Read-only dirs (HOST[:GUEST], comma-separated)", grammar=FOLDERS),
    Field("rw_dirs", "Writable dirs (HOST[:GUEST], comma-separated)", grammar=FOLDERS),
    Field("target", "Run on: here, or broker (the Providers pane's broker)", "here", value="here"),
    Field("count", "How many copies (broker)", value="1", grammar=COPIES),
)


def _preopens(text: str, writable: bool) -> tuple[Preopen, ...]:
    return tuple(Preopen(host, guest, writable) for host, guest in parse_folders(text))


def task_spec(values: dict[str, str], host: HostConfig) -> TaskSpec:
    """The new-task form's values as a spec; each malformed value is named."""
    module = values["module"]
    image = parse_image_ref(values["image"]) if values["image"].strip() else ""
    if bool(module) == bool(image):
        raise Invalid("Give a module or an image (one of the two).")
    if module and not module.startswith("sha256:") and not Path(module).expanduser().is_file():
        raise Invalid(f"No module file {module!r}.")
    try:
        args = tuple(shlex.split(values["args"]))
    except ValueError as exc:
        raise Invalid(f"Arguments: {exc}.") from None
    limits = Limits(
        fuel=parse_count(values["fuel"]) if values["fuel"] else None,
        memory=parse_size(values["memory"]) if values["memory"] else None,
        timeout=parse_time_limit(values["timeout"]) if values["timeout"] else None,
    )
    return TaskSpec(
        module=str(Path(module).expanduser().resolve())
        if module and not module.startswith("sha256:")
        else module,
        args=args,
        env=parse_env(values["env"]),
        dirs=_preopens(values["dirs"], False) + _preopens(values["rw_dirs"], True),
        limits=limits,
        image=image or None,
        host=host.name if image else None,
        name=image or Path(module).name,
    )


@dataclass(frozen=True)
class TaskOrder:
    """What the new-task form asks for: a spec, where to run it, and how many copies."""

    spec: TaskSpec
    on_broker: bool = False
    count: int = 1


def task_order(values: dict[str, str], host: HostConfig) -> TaskOrder:
    """The new-task form's values as an order; each malformed value is named."""
    spec = task_spec(values, host)
    target = values["target"].strip().lower() or "here"
    if target not in ("here", "broker"):
        raise Invalid(f"Run on 'here' or 'broker', not {values['target']!r}.")
    count = parse_copies(values["count"]) if values["count"].strip() else 1
    if target == "here":
        if count != 1:
            raise Invalid("Copies run on the broker: set Run on to broker, or How many to 1.")
        return TaskOrder(spec)
    if spec.image or not isinstance(spec.module, str) or spec.module.startswith("sha256:"):
        raise Invalid("The broker runs a .wasm file from here: give its path as the module.")
    if spec.dirs:
        raise Invalid("Tasks on the broker get no folders (they run on other machines): clear the dirs.")
    return TaskOrder(spec, True, count)


class WasmPane(TablePane):
    """Tasks of berth's local wasm pool, newest first; live ones update as they run."""

    TABLE_ID = "tasks-table"
    BINDINGS = bindings("wasm")

    def __init__(
        self,
        host: HostConfig,
        pool: Callable[[], Awaitable[TaskPool]],
        broker: Callable[[], Awaitable[BrokerHandle]] | None = None,
    ) -> None:
        super().__init__(id="pane-wasm", classes="pane wasm")
        self.host = host
        self._get_pool = pool
        self._get_broker = broker
        self.remote: dict[str, TaskRequest] = {}  # tasks sent to the broker, by id
        self.pool: TaskPool | None = None
        self.records: dict[str, TaskRecord] = {}
        self._unsubscribe: Callable[[], None] | None = None
        self._connecting = False

    def compose(self) -> ComposeResult:
        """The tasks table."""
        # Newest first (the task just started is where the eye is), as a sort the header shows
        # and `o`/`O` change: STARTED ▼.
        yield ResourceTable(
            TASK_COLUMNS,
            id="tasks-table",
            sort_column="age",
            sort_reverse=True,
            groupable=False,
            empty_message="Starting the pool…",
        )

    def on_show(self) -> None:
        """Shown for the first time: start (or join) the app's pool and follow its tasks.

        Not on mount: the pool's worker processes start only for people who use this pane.
        """
        if self.pool is None and not self._connecting:
            self._connecting = True
            self.connect_pool()
            self.set_interval(TICK_SECONDS, self._tick)

    def on_unmount(self) -> None:
        """Stop following the pool (it lives on with the app)."""
        if self._unsubscribe is not None:
            self._unsubscribe()

    @work(group="wasm", exit_on_error=False)
    async def connect_pool(self) -> None:
        """Get the pool, show its tasks, and update a row at every change of its task."""
        try:
            self.pool = await self._get_pool()
        except BerthError as exc:
            self.table.empty_message = str(exc)
            return
        except Exception as exc:  # the pane says what broke instead of staying on "Starting…"
            self.table.empty_message = log_unexpected(exc)
            return
        self.records = {r.id: r for r in self.pool.tasks()}
        self._unsubscribe = self.pool.subscribe(self._changed)
        self.table.empty_message = "No tasks yet: n runs one."
        self._show()

    def _changed(self, record: TaskRecord) -> None:
        known = self.records.get(record.id)
        if known is not None and known.finished and not record.finished:
            # An answer older than what the row shows: a cancel's "running", overtaken by the
            # task's result on the batch's stream. A finished task never runs again.
            return
        self.records[record.id] = record
        self._show()

    def _show(self) -> None:
        now = time.time()
        self.table.update_rows({tid: task_row(r, now) for tid, r in self.records.items()})

    def _tick(self) -> None:
        """Let STARTED age while the pane is shown: only the rows whose text changed are redrawn."""
        if not shown(self):
            return
        now = time.time()
        rows = self.table.rows
        aged = {
            tid: task_row(r, now)
            for tid, r in self.records.items()
            if tid in rows and rows[tid].cells.get("age") != task_age(r, now)
        }
        if aged:
            self.table.update_rows({**rows, **aged})

    def _chosen(self) -> list[TaskRecord]:
        return [self.records[t] for t in self.table.selected_ids() if t in self.records]

    def _run(self, label: str, job: Callable[[TaskVerbs], Awaitable[object]]) -> None:
        """Run a verb of the pool off the UI; failures become one notification."""
        pool = self.pool
        if pool is None:
            self.notify("The task pool is not ready yet.", severity="warning")
            return
        verbs = TaskVerbs(pool)
        run_action(self, label, lambda: job(verbs), group="wasm-actions")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """No verb that changes state in read-only mode."""
        return permitted(self, action, parameters)

    def action_new(self) -> None:
        """The new-task form; the task is queued when it closes (here or on the broker), and the
        output of the first one opens."""

        def chosen(order: TaskOrder | None) -> None:
            if order is None:
                return
            if order.on_broker:
                title = f"{order.count} x {order.spec.name} on the broker"
                run_job(self, title, "broker", lambda job: self._send(order, job), unit="tasks")
            else:
                self._run("run", lambda verbs: self._submit(verbs, order.spec))

        self.app.push_screen(
            FormScreen("Run a wasm task", NEW_TASK_FIELDS, lambda v: task_order(v, self.host), "Run"), chosen
        )

    async def _submit(self, verbs: TaskVerbs, spec: TaskSpec) -> None:
        record = await verbs.run(spec)
        self._changed(record)
        self.table.move_cursor_to(record.id)
        self.show_output(record)

    async def _send(self, order: TaskOrder, job: Job) -> None:
        """Upload the module to the broker, queue the copies, follow their results into the table
        (the job's progress: results in); cancelling the job cancels the tasks still open."""
        if self._get_broker is None:
            raise BerthError("No broker in this console.")
        broker = await self._get_broker()
        spec = order.spec
        assert isinstance(spec.module, str)
        data = await asyncio.to_thread(Path(spec.module).read_bytes)
        limits = spec.limits
        request = TaskRequest(
            "",  # the upload's ref, once `send` has it
            list(spec.args),
            dict(spec.env),
            name=spec.name,
            limits=WireLimits(limits.fuel, limits.memory, limits.timeout),
        )
        sent = await broker.client.send(data, request, order.count)
        ids, batch, request = sent.ids, sent.id, sent.request
        now = time.time()
        for task_id in ids:
            self.remote[task_id] = request
            self._changed(as_record({"id": task_id, "state": "queued", "created": now}, request))
        self.table.move_cursor_to(ids[0])
        job.progress(0, len(ids), f"sent to {broker.url}")

        def finished(count: int) -> None:
            job.progress(count, None, f"{count:,} of {len(ids):,} finished")

        try:
            await self._follow(broker, batch, request, finished)
        except asyncio.CancelledError:
            open_ids = [i for i in ids if i in self.records and not self.records[i].finished]
            await asyncio.shield(broker.client.abandon(open_ids))
            # The job ends here, but its rows go on following the batch until the broker has
            # ended every task (a running one stops within moments): they never stay "queued".
            self.run_worker(self._follow(broker, batch, request), group="wasm-follow", exit_on_error=False)
            raise

    async def _follow(
        self,
        broker: BrokerHandle,
        batch: str,
        request: TaskRequest,
        finished: Callable[[int], None] | None = None,
    ) -> None:
        """Update the rows of a batch's tasks as the broker finishes them, until all have ended;
        `finished(count)` hears how many have."""
        count = 0
        async for view in broker.client.results(batch):
            count += 1
            if finished is not None:
                finished(count)
            self._changed(as_record(view, request))  # every copy has the same request

    def show_output(self, record: TaskRecord) -> None:
        """The task's stdout and stderr in the log view, live while it runs (a broker task's once
        it has finished)."""
        pool = self.pool
        request = self.remote.get(record.id)
        if request is not None and self._get_broker is not None:
            get_broker = self._get_broker

            def source(_since: str | None, _tail: int | None) -> AsyncIterator[Sequence[LogLine]]:
                return _broker_output(get_broker, record.id)

        elif pool is not None:

            def source(_since: str | None, _tail: int | None) -> AsyncIterator[Sequence[LogLine]]:
                return pool.output(record.id)

        else:
            return
        self.app.push_screen(
            LogScreen(f"task {record.id} · {record.name}", source=source, source_name=record.id)
        )

    def action_output(self) -> None:
        """Open the output of the task under the cursor."""
        tid = self.table.cursor_id()
        if tid in self.records:
            self.show_output(self.records[tid])

    def on_resource_table_activated(self, event: ResourceTable.Activated) -> None:
        """Enter: the task's output."""
        self.action_output()

    def action_rerun(self) -> None:
        """Run the chosen tasks again with the same spec (tasks of this pool; not broker ones)."""
        ids = [r.id for r in self._chosen() if r.id not in self.remote]

        async def rerun(verbs: TaskVerbs) -> None:
            await verbs.rerun(ids)

        self._run("re-run", rerun)

    def action_cancel(self) -> None:
        """Cancel the chosen queued or running tasks (here or on the broker)."""
        ids = [r.id for r in self._chosen() if r.state in ("queued", "running")]
        remote = [tid for tid in ids if tid in self.remote]  # only a console with a broker has any
        local = [tid for tid in ids if tid not in self.remote]

        def seen(view: dict[str, Any]) -> None:
            self._changed(as_record(view, self.remote[str(view["id"])]))

        async def cancel(verbs: TaskVerbs) -> None:
            # Each audited by the service that does it: here by the pool, there by the broker.
            if local:
                await verbs.cancel(local)
            if remote and self._get_broker is not None:
                broker = await self._get_broker()
                await broker.client.cancel(remote, seen)  # a row shows how a task ended first

        self._run("cancel", cancel)

    def action_drop(self) -> None:
        """Remove the chosen finished tasks from the history, after asking."""
        chosen = self._chosen()
        finished = [r for r in chosen if r.state not in ("queued", "running") and r.id not in self.remote]
        if kept := [r for r in chosen if r not in finished]:
            why = "runs on the broker" if kept[0].id in self.remote else f"is {kept[0].state}: c cancels it"
            self.notify(f"Task {kept[0].id} ({kept[0].name}) {why}; it stays in the history.", timeout=4)
        if not finished:
            return
        names = [f"{r.id} ({r.name}, {r.state})" for r in finished]

        async def drop(verbs: TaskVerbs) -> None:
            try:
                await verbs.drop([r.id for r in finished])
            finally:  # those dropped before a failure leave the table too
                for record in finished:
                    if self.records.get(record.id, record).dropped:  # as the pool last told
                        self.records.pop(record.id, None)
            self._show()
            self.notify(f"Dropped {subject(names, 'task')} from the history.", timeout=3)

        self.app.push_screen(
            ConfirmScreen(f"Drop {subject(names, 'task')} from the history?", names, "Drop"),
            lambda answer: self._run("drop", drop) if answer and answer[0] else None,
        )


async def _broker_output(
    get_broker: Callable[[], Awaitable[BrokerHandle]], task_id: str
) -> AsyncIterator[Sequence[LogLine]]:
    """A broker task's output: waits for it to finish, then its stdout and stderr lines."""
    broker = await get_broker()
    while True:
        view = await broker.client.call("GET", f"/api/v1/tasks/{task_id}", params={"wait": "60"})
        if view["state"] not in ("queued", "running"):
            break
    lines = output_lines(str(view.get("stdout") or ""), str(view.get("stderr") or ""))
    record = as_record(view, TaskRequest(str(view.get("module") or "")))
    if record.result is not None:
        lines.append(
            LogLine(f"{describe(record.result)} on provider {view.get('provider') or '?'}", "system")
        )
    yield lines
