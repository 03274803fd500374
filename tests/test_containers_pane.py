"""The Containers pane driven with keys against the test dockerd; the docker SDK checks the outcome."""

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import pytest
from docker_helpers import Spawn
from engines.dockerd import DockerEngine
from textual.pilot import Pilot
from textual.widgets import Label

from backends.config import Config, HostConfig, UiConfig
from backends.docker_models import StatsPoint
from tui.app import BerthApp
from tui.panes.containers import ContainersPane
from tui.screens.confirm import ConfirmScreen
from tui.screens.logs import LogScreen
from tui.screens.top import TopScreen
from tui.widgets.resource_table import ResourceTable

pytestmark = pytest.mark.engines
SIZE = (150, 40)


def make_app(
    dockerd: DockerEngine, tmp_path: Path, *, read_only: bool = False, extra: list[HostConfig] = ()
) -> BerthApp:  # type: ignore[assignment]
    hosts = [HostConfig("local", docker_socket=str(dockerd.socket), read_only=read_only), *extra]
    return BerthApp(Config(ui=UiConfig(), hosts=hosts, path=tmp_path / "config.toml"))


async def until(
    pilot: Pilot[None], check: Callable[[], object], timeout: float = 10.0, what: str = ""
) -> float:
    """Pause until `check()` is true; the seconds it took."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, f"timed out waiting for {what or check}"
        await pilot.pause(0.02)
    return time.monotonic() - started


def pane(app: BerthApp) -> ContainersPane:
    return app.query_one(ContainersPane)


async def select(pilot: Pilot[None], app: BerthApp, container: Any) -> ResourceTable:
    """Wait for `container`'s row, filter the table down to it and put the cursor on it."""
    table = pane(app).table
    await until(pilot, lambda: container.id in table.rows)
    table.set_filter(container.name)
    assert table.move_cursor_to(container.id)
    return table


async def test_new_containers_appear_within_a_second(
    dockerd: DockerEngine, spawn: Spawn, tmp_path: Path
) -> None:
    app = make_app(dockerd, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: pane(app).changes_seen > 0, what="the first list")
        listed_before = pane(app).changes_seen
        c = spawn()  # returns once the engine has created and started it
        took = await until(pilot, lambda: c.id in pane(app).table.rows, what="the new row")
        assert took < 1.0
        assert pane(app).containers[c.id].state == "running"
        # Events, not polling: one full list at the start, then small changes only.
        assert pane(app).changes_seen - listed_before <= 3


async def test_stop_restart_and_remove_with_confirmation(
    dockerd: DockerEngine, spawn: Spawn, sdk: docker.DockerClient, tmp_path: Path
) -> None:
    c = spawn("trap 'exit 0' TERM; while :; do sleep 0.1; done")
    app = make_app(dockerd, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        table = await select(pilot, app, c)
        await pilot.press("s")
        await until(pilot, lambda: sdk.containers.get(c.id).status == "exited", what="stopped")
        await until(pilot, lambda: pane(app).containers[c.id].state == "exited", what="the row to say so")
        await pilot.press("S")
        await until(pilot, lambda: sdk.containers.get(c.id).status == "running", what="started")
        started = sdk.containers.get(c.id).attrs["State"]["StartedAt"]
        await pilot.press("r")
        await until(
            pilot, lambda: sdk.containers.get(c.id).attrs["State"]["StartedAt"] != started, what="restart"
        )

        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert c.name in str(app.screen.query_one(".targets").render())
        await pilot.press("n")
        await pilot.pause(0.3)
        assert sdk.containers.get(c.id).status == "running"  # cancelled: nothing removed
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: not sdk.containers.list(all=True, filters={"id": c.id}), what="removed")
        await until(pilot, lambda: c.id not in table.rows, what="the row to go")


async def test_filter_and_marks_pick_what_actions_apply_to(
    dockerd: DockerEngine, spawn: Spawn, sdk: docker.DockerClient, tmp_path: Path
) -> None:
    tag = f"mk{time.monotonic_ns() % 10_000}"
    quick = "trap 'exit 0' TERM; while :; do sleep 0.1; done"  # stops at once, unlike a bare sleep
    mine = [spawn(quick, name=f"{tag}-web-{i}") for i in range(3)]
    other = spawn(name=f"{tag}-db")
    app = make_app(dockerd, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        table = pane(app).table
        await until(pilot, lambda: all(c.id in table.rows for c in [*mine, other]))
        await pilot.press("slash", *f"~^{tag}-web-[01]$", "enter")
        await until(pilot, lambda: set(table.visible_ids()) == {mine[0].id, mine[1].id}, what="the filter")
        await pilot.press("space", "space")
        assert set(table.selected_ids()) == {mine[0].id, mine[1].id}
        await pilot.press("s")
        await until(
            pilot, lambda: {sdk.containers.get(c.id).status for c in mine[:2]} == {"exited"}, what="stop"
        )
        assert sdk.containers.get(mine[2].id).status == "running"
        assert sdk.containers.get(other.id).status == "running"


async def test_logs_show_every_line_in_order_and_search_finds_the_nth_match(
    dockerd: DockerEngine, spawn: Spawn, tmp_path: Path
) -> None:
    c = spawn("i=0; while [ $i -lt 500 ]; do i=$((i+1)); echo line-$i; done; sleep 600")
    app = make_app(dockerd, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, app, c)
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, LogScreen))
        assert isinstance(app.screen, LogScreen)
        view = app.screen.view
        await until(pilot, lambda: view.line_count >= 500, what="500 lines")
        texts = [view.line(i).text for i in range(view.line_count) if view.line(i).stream == "stdout"]
        assert texts == [f"line-{i}" for i in range(1, 501)]
        await pilot.press("slash", *"line-4", "enter")
        # "line-4", "line-40".."line-49", "line-400".."line-499": 111 matches; n walks them in order.
        first = view.current_match
        assert first is not None
        found = [view.line(first).text]
        for _ in range(3):
            await pilot.press("n")
            match = view.current_match
            assert match is not None
            found.append(view.line(match).text)
        assert all(t.startswith("line-4") for t in found) and len(set(found)) == 4
        await pilot.press("escape", "escape")
        await until(pilot, lambda: not isinstance(app.screen, LogScreen), what="back to the pane")


async def test_top_and_inspect(dockerd: DockerEngine, spawn: Spawn, tmp_path: Path) -> None:
    c = spawn()
    app = make_app(dockerd, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, app, c)
        await pilot.press("t")
        await until(pilot, lambda: isinstance(app.screen, TopScreen) and app.screen.reads > 0, what="top")
        await pilot.press("escape")
        await pilot.press("i")
        await until(pilot, lambda: isinstance(app.screen, LogScreen), what="inspect")
        assert isinstance(app.screen, LogScreen)
        text = "\n".join(app.screen.view.line(i).text for i in range(app.screen.view.line_count))
        assert f'"Id": "{c.id}"' in text


async def test_read_only_host_refuses_actions(
    dockerd: DockerEngine, spawn: Spawn, sdk: docker.DockerClient, tmp_path: Path
) -> None:
    c = spawn()
    app = make_app(dockerd, tmp_path, read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, app, c)
        await pilot.press("s", "d")
        await pilot.pause(0.3)
        assert not isinstance(app.screen, ConfirmScreen)
        assert sdk.containers.get(c.id).status == "running"
        assert any("read-only" in n.message for n in app._notifications)


async def test_images_view_moves_an_image_to_another_host(
    dockerd: DockerEngine, make_dockerd: Callable[..., DockerEngine], docker_busybox: str, tmp_path: Path
) -> None:
    other = make_dockerd()
    app = make_app(dockerd, tmp_path, extra=(HostConfig("web-2", docker_socket=str(other.socket)),))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("v")
        images = pane(app).images_table
        await until(pilot, lambda: docker_busybox in images.rows, what="the image list")
        images.move_cursor_to(docker_busybox)
        await pilot.press("m")
        await pilot.pause(0.2)
        await pilot.press("enter")  # the picker offers web-2, the only other host
        client = other.client()
        try:
            await until(
                pilot, lambda: [i.id for i in client.images.list()] == [docker_busybox], 30, "the move"
            )
        finally:
            client.close()


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def test_a_million_line_flood_keeps_the_log_view_bounded(
    dockerd: DockerEngine, spawn: Spawn, tmp_path: Path
) -> None:
    total = 1_000_000
    # It waits for the file to appear, so the flood starts once the log view follows it.
    flood = f"yes 'flood line 0123456789 abcdefghijklmnopqrstuvwxyz' | head -n {total}"
    c = spawn(f"while [ ! -e /tmp/go ]; do sleep 0.1; done; {flood}; sleep 600")
    app = make_app(dockerd, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, app, c)
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, LogScreen))
        assert isinstance(app.screen, LogScreen)
        buffer = app.screen.view.buffer
        await pilot.pause(0.5)
        before = peak = rss_bytes()
        assert c.exec_run(["touch", "/tmp/go"]).exit_code == 0
        started = time.monotonic()
        while buffer.end < total:
            peak = max(peak, rss_bytes())
            assert time.monotonic() - started < 150, f"only {buffer.end} of {total} lines arrived"
            await pilot.pause(0.1)
        assert buffer.end == total  # every line, none doubled
        assert len(buffer) == buffer.max_lines == 100_000
        assert buffer[len(buffer) - 1].text.startswith("flood line")
        assert peak - before < 120 * 2**20, f"RSS grew {(peak - before) / 2**20:.0f} MiB"


async def test_stats_fill_cpu_and_memory_of_rows_on_screen(
    dockerd: DockerEngine, spawn: Spawn, tmp_path: Path
) -> None:
    busy = spawn("while :; do :; done")
    app = make_app(dockerd, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        table = await select(pilot, app, busy)
        await until(pilot, lambda: table.rows[busy.id].cells["cpu"] != "", 15, "a CPU figure")
        cpu = float(str(table.rows[busy.id].cells["cpu"]).rstrip("%"))
        assert cpu > 20 and table.rows[busy.id].cells["mem"].endswith("B")  # type: ignore[union-attr]
        assert len(pane(app).stats[busy.id]) >= 2


async def test_a_stats_sample_that_changes_no_figure_leaves_the_table_alone(
    dockerd: DockerEngine, spawn: Spawn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An idle console's samples mostly read as before; rebuilding 300 rows for them was idle CPU.
    c = spawn()
    cpu = [12.5]
    monkeypatch.setattr("tui.models.stats_schedule.STATS_SECONDS", 0.05)
    app = make_app(dockerd, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        table = await select(pilot, app, c)
        feed = pane(app).feeds["local"]
        await until(pilot, lambda: feed.backend is not None, what="the backend")

        async def stats_many(ids: list[str], concurrency: int = 8) -> dict[str, StatsPoint]:
            return {cid: StatsPoint(cpu[0], 4 << 20, 64 << 20, 0, 0, time.time()) for cid in ids}

        monkeypatch.setattr(feed.backend, "stats_many", stats_many)
        await until(pilot, lambda: table.rows[c.id].cells["cpu"] == "12.5%", what="a CPU figure")
        updates: list[object] = []
        update_rows = table.update_rows
        monkeypatch.setattr(table, "update_rows", lambda rows: updates.append(rows) or update_rows(rows))
        history = pane(app).stats[c.id]
        seen = len(history)
        await until(pilot, lambda: len(history) >= min(seen + 3, history.maxlen or 0), what="more samples")
        assert updates == []  # the same figures: the rows were left as they were
        assert str(app.query_one("#cpu-label", Label).render()) == "CPU 12.5%"
        cpu[0] = 50.0
        await until(pilot, lambda: table.rows[c.id].cells["cpu"] == "50.0%", what="the new CPU figure")
        assert len(updates) == 1
