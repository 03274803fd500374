"""Jobs: progress reported and shown live in :jobs, a failure named, a running job cancelled
from the jobs screen after asking."""

import asyncio

from test_containers_pane import until
from textual.app import App
from textual.widgets import Button

from backends.config import Config
from backends.errors import Unreachable
from tui.jobs import Job, Jobs, progress_bar
from tui.screens.confirm import ConfirmScreen
from tui.screens.jobs import JobsScreen


class Host(App[None]):
    """An app with jobs and nothing else."""

    def __init__(self) -> None:
        super().__init__()
        self.jobs = Jobs(self)


def toasts(app: App[None]) -> list[str]:
    return [f"{n.title} {n.message}" for n in app._notifications]


async def test_jobs_report_progress_end_fail_and_cancel_from_the_screen() -> None:
    app = Host()
    async with app.run_test(size=(140, 30)) as pilot:
        step = asyncio.Event()
        cancelled = asyncio.Event()

        async def copying(job: Job) -> None:
            for done in (25, 50):
                job.progress(done, 100, f"{done} MiB")
                await step.wait()
                step.clear()

        async def failing(job: Job) -> None:
            raise Unreachable("web-2 went away.")

        async def forever(job: Job) -> None:
            try:
                await asyncio.Event().wait()
            finally:
                cancelled.set()

        copy = app.jobs.start("move image busybox", "web-1", copying, done="busybox moved.")
        app.jobs.start("backup alice", "lxd-1", failing)
        stuck = app.jobs.start("compose up shop", "web-1", forever)
        await pilot.pause()
        assert progress_bar(copy) == "███░░░░░░░░░  25%"
        assert any("backup alice failed" in t and "web-2 went away." in t for t in toasts(app))

        await app.push_screen(JobsScreen(app.jobs))
        await pilot.pause()
        table = app.screen.query_one("#jobs-table")
        assert str(table.rows["1"].cells["progress"]).endswith("25%")
        assert str(table.rows["2"].cells["state"]) == "failed"
        step.set()
        await until(pilot, lambda: str(table.rows["1"].cells["progress"]).endswith("50%"))
        step.set()
        await until(pilot, lambda: str(table.rows["1"].cells["state"]) == "done")
        assert "busybox moved." in " ".join(toasts(app))

        # c on the running job asks, then cancels it where it waits.
        assert table.move_cursor_to(str(stuck.id))
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        # The buttons say which way each goes: "Cancel" would be both.
        buttons = [str(b.label) for b in app.screen.query(Button)]
        assert buttons == ["Stop job (y)", "Keep it (n)"], buttons
        assert str(app.screen.query_one(".dialog-title").render()) == "Stop 1 job(s)?"
        await pilot.press("y")
        await until(pilot, cancelled.is_set)
        await until(pilot, lambda: str(table.rows[str(stuck.id)].cells["state"]) == "cancelled")
        assert app.jobs.running() == []


async def test_quit_asks_while_a_job_runs_and_jobs_command_lists_it(offline_config: Config) -> None:
    from tui.app import BerthApp

    app = BerthApp(offline_config)
    async with app.run_test(size=(140, 30)) as pilot:
        await pilot.pause()
        app.jobs.start("import alice.tar.gz", "local", lambda job: asyncio.Event().wait())
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "1 job(s) still running" in str(app.screen.query_one(".dialog-title").render())
        await pilot.press("n")
        await pilot.pause()
        assert app.is_running

        await pilot.press("colon", *"jobs", "enter")
        await until(pilot, lambda: isinstance(app.screen, JobsScreen))
        table = app.screen.query_one("#jobs-table")
        assert str(table.rows["1"].cells["title"]) == "import alice.tar.gz"
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await pilot.pause()
    assert not app.is_running
