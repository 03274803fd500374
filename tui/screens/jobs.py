"""`:jobs`: long operations with their progress, live; `c` cancels the chosen ones (asks first).
Under the list, the parts of the job under the cursor (a pull's layers), a line each."""

from __future__ import annotations

import time

from rich.text import Text
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, Label, Static

from tui.format import age
from tui.jobs import Job, Jobs, progress_bar
from tui.screens.confirm import ConfirmScreen
from tui.verbs import bindings
from tui.widgets.resource_table import ResourceTable
from tui.widgets.table_model import Column, Row

JOB_COLUMNS = (
    Column("id", "#", 4, sort=int, justify="right"),
    Column("title", "JOB"),
    Column("host", "HOST", 12),
    Column("progress", "PROGRESS", 18),
    Column("state", "STATE", 9),
    Column("time", "TIME", 6, justify="right"),
    Column("detail", "DETAIL"),
)
STATE_STYLES = {"running": "yellow", "done": "green", "failed": "red", "cancelled": "dim"}
MAX_PARTS_SHOWN = 12
"""Parts lines shown for the job under the cursor; more are summed up in one line."""


def job_row(job: Job, now: float) -> Row:
    """One job (the screen shows them newest first)."""
    return Row(
        {
            "id": str(job.id),
            "title": job.title,
            "host": job.host,
            "progress": progress_bar(job),
            "state": Text(job.state, style=STATE_STYLES.get(job.state, "")),
            "time": age((job.ended or now) - job.started),
            "detail": job.detail,
        },
    )


class JobsScreen(Screen[None]):
    """The app's jobs in a `ResourceTable`, updated as they move; `c` cancels, Esc goes back."""

    BINDINGS = bindings("jobs")
    DEFAULT_CSS = """
    JobsScreen #jobs-table { height: 1fr; }
    JobsScreen #job-parts { height: auto; max-height: 14; padding: 0 1; border-top: solid $panel; }
    """

    def __init__(self, jobs: Jobs) -> None:
        super().__init__(classes="jobs-screen")
        self.jobs = jobs
        self._unsubscribe = jobs.subscribe(lambda _job: self._show())

    def compose(self) -> ComposeResult:
        """Title, table, footer."""
        yield Label("jobs", classes="log-title")
        # Newest first, as a sort the header shows (# ▼) and `o`/`O` change.
        yield ResourceTable(
            JOB_COLUMNS,
            id="jobs-table",
            sort_column="id",
            sort_reverse=True,
            groupable=False,
            empty_message="No job has run yet.",
        )
        yield Static("", id="job-parts", markup=False)
        yield Footer()

    @property
    def table(self) -> ResourceTable:
        """The table of jobs."""
        return self.query_one("#jobs-table", ResourceTable)

    def on_mount(self) -> None:
        """Show the jobs, and tick their times once a second."""
        self.table.focus()
        self._show()
        self.set_interval(1.0, self._show)

    def on_unmount(self) -> None:
        """Stop listening to the jobs."""
        self._unsubscribe()

    def _show(self) -> None:
        if self.is_attached:
            now = time.time()
            self.table.update_rows({str(j.id): job_row(j, now) for j in self.jobs.jobs.values()})
            self._show_parts()

    def on_resource_table_cursor_moved(self, _event: ResourceTable.CursorMoved) -> None:
        """Show the parts of the job the cursor moved to."""
        self._show_parts()

    def _show_parts(self) -> None:
        cursor = self.table.cursor_id()
        job = self.jobs.jobs.get(int(cursor)) if cursor else None
        panel = self.query_one("#job-parts", Static)
        panel.display = bool(job and job.parts)
        if job and job.parts:
            lines = job.parts[:MAX_PARTS_SHOWN]
            if len(job.parts) > MAX_PARTS_SHOWN:
                lines.append(f"… and {len(job.parts) - MAX_PARTS_SHOWN} more")
            panel.update("\n".join([f"#{job.id} {job.title}:", *(f"  {line}" for line in lines)]))

    def action_close(self) -> None:
        """Back to the panes."""
        self.dismiss()

    def action_cancel_jobs(self) -> None:
        """Cancel the chosen running jobs, after asking."""
        chosen = [self.jobs.jobs[int(i)] for i in self.table.selected_ids() if int(i) in self.jobs.jobs]
        running = [j for j in chosen if j.state == "running"]
        if not running:
            self.notify("Choose a running job to cancel.", severity="warning")
            return

        def answered(answer: tuple[bool, bool] | None) -> None:
            if answer and answer[0]:
                for job in running:
                    self.jobs.cancel(job.id)

        self.app.push_screen(
            ConfirmScreen(
                f"Stop {len(running)} job(s)?",
                [f"#{j.id} {j.title} ({j.host})" for j in running],
                "Stop job",
                keep="Keep it",
            ),
            answered,
        )
