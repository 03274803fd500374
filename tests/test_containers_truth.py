"""What the Containers pane shows is true (issue 15): each item driven the way a user does, with
keys in the console (Pilot) or the installed `berth` in tmux, then checked on the screen and in
the engine (the test dockerd, read through the docker SDK)."""

import io
import json
import re
import tarfile
import time
import types
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import docker
import pytest
from docker_helpers import Spawn
from engines.dockerd import DockerEngine
from test_containers_pane import make_app, pane, select, until
from test_read_only import toasts
from textual.geometry import Region
from textual.widget import Widget
from tmux_helpers import Tmux, berth_env, installed_berth

import tui.panes.containers as containers_module
from backends.audit import read_audit
from backends.config import Config, HostConfig, save_config
from backends.docker_models import human_duration
from tui.app import BerthApp
from tui.panes.container_rows import ERROR_STATUS_WIDTH
from tui.screens.audit import AuditScreen
from tui.screens.logs import LogScreen
from tui.screens.picker import PickerScreen
from tui.widgets.log_view import LogView
from tui.widgets.resource_table import ResourceTable

pytestmark = pytest.mark.engines
SIZE = (150, 40)
# Stops in ~2 s: the TERM trap waits before it exits (a restart takes as long), so there is
# time to see what the row says while the engine is still at it.
SLOW_STOP = "trap 'sleep 2; exit 0' TERM; while :; do sleep 0.1; done"
SNAPSHOTS = Path(__file__).parent / "__snapshots__"
# Busy a moment, then idle: a CPU history with a shape; and a line each round for the log view.
BUSY_THEN_IDLE = "while :; do i=0; while [ $i -lt 3000 ]; do i=$((i+1)); done; echo tick-$i; sleep 0.3; done"


def cell(table: ResourceTable, key: str, column: str) -> str:
    """The text the grid draws in one cell."""
    value = table.grid.cell(key, column)
    return str(getattr(value, "plain", value))


def engine_state(sdk: docker.DockerClient, cid: str) -> dict[str, Any]:
    state: dict[str, Any] = sdk.api.inspect_container(cid)["State"]
    return state


# 1. Image move from the images view ------------------------------------------------------------


@pytest.fixture
def tagged_image(sdk: docker.DockerClient) -> Iterator[tuple[str, list[str]]]:
    """A one-file image of its own with two tags on the test dockerd: (id, [repo:v1, repo:v2])."""
    repo = f"berth-test/move-{uuid.uuid4().hex[:8]}"
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        payload = repo.encode()
        info = tarfile.TarInfo("marker")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    answer = sdk.api.import_image_from_data(data.getvalue(), repository=repo, tag="v1")
    image_id = json.loads(answer.strip().splitlines()[-1])["status"]
    sdk.api.tag(image_id, repo, "v2")
    yield image_id, [f"{repo}:v1", f"{repo}:v2"]
    sdk.api.remove_image(image_id, force=True)


async def test_m_in_the_images_view_moves_the_image_with_all_its_tags(
    dockerd: DockerEngine,
    make_dockerd: Callable[..., DockerEngine],
    tagged_image: tuple[str, list[str]],
    tmp_path: Path,
) -> None:
    image_id, tags = tagged_image
    other = make_dockerd()
    hosts = [
        HostConfig("web-2", docker_socket=str(other.socket)),
        # The same engine under a second name: a move there would only load the image onto itself.
        HostConfig("also-local", docker_socket=str(dockerd.socket)),
    ]
    app = make_app(dockerd, tmp_path, extra=hosts)
    target = other.client()
    try:
        async with app.run_test(size=SIZE) as pilot:
            said = toasts(app)
            await pilot.press("v")
            images = pane(app).images_table
            await until(pilot, lambda: image_id in images.rows, what="the image list")
            assert images.move_cursor_to(image_id)

            await pilot.press("m")
            await until(pilot, lambda: isinstance(app.screen, PickerScreen), what="the host picker")
            await pilot.press("enter")  # web-2, the first other host
            await until(pilot, lambda: any("is now on web-2" in s for s in said), 30, "the move")
            moved = target.images.get(image_id)
            assert moved.id == image_id and sorted(moved.tags) == tags  # no <none>:<none>
            assert [i.id for i in target.images.list(all=True)] == [image_id]
            assert f"{tags[0]}, {tags[1]} is now on web-2." in said

            await pilot.press("m")
            await until(pilot, lambda: isinstance(app.screen, PickerScreen), what="the host picker")
            await pilot.press("down", "enter")  # also-local: the engine the image is on
            await until(pilot, lambda: any("already on also-local" in s for s in said), 30, "the refusal")
            assert not any("is now on also-local" in s for s in said)
    finally:
        target.close()
    moves = [r for r in read_audit() if r["action"] == "image.move"]
    assert [(r["targets"], r["to"], r["outcome"][:6]) for r in moves] == [
        (tags, "web-2", "ok"),
        (tags, "also-local", "failed"),
    ]


# 2. Timestamps in a container's log view --------------------------------------------------------


async def test_t_shows_the_engines_timestamps_and_ctrl_s_saves_them(
    dockerd: DockerEngine, spawn: Spawn, isolated_home: Path, tmp_path: Path
) -> None:
    c = spawn("for i in 1 2 3 4 5; do echo stamped-$i; done; sleep 600")
    app = make_app(dockerd, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, app, c)
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, LogScreen), what="the log view")
        view = app.screen.query_one(LogView)
        await until(pilot, lambda: view.line_count >= 5, what="the five lines")
        await pilot.press("t")
        await pilot.pause()
        engine = c.logs(timestamps=True).decode().splitlines()  # "2026-…Z stamped-1"
        stamps = {text: stamp for stamp, _, text in (line.partition(" ") for line in engine)}
        shown = [line.strip() for line in view.visible_text() if "stamped-" in line]
        assert len(shown) == 5 and "timestamps" in view.status_text()
        for line in shown:
            text = line.rsplit(" ", 1)[-1]
            date, clock = stamps[text].split("T")
            assert line.startswith(f"{date} {clock[:12]}"), (line, stamps[text])  # to the millisecond

        await pilot.press("ctrl+s", "enter")  # the offered file in the home folder
        await until(pilot, lambda: list(isolated_home.glob("berth-*.log")), what="the saved file")
    (saved,) = isolated_home.glob("berth-*.log")
    assert saved.read_text().splitlines() == engine  # the engine's own stamps, line for line


# 3. STATUS ages ----------------------------------------------------------------------------------


async def test_status_ages_from_startedat_without_an_event(
    dockerd: DockerEngine,
    spawn: Spawn,
    sdk: docker.DockerClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    c = spawn()
    monkeypatch.setattr(containers_module, "STATUS_TICK", 0.5)  # a minute, made short
    app = make_app(dockerd, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        table = await select(pilot, app, c)
        # Docker counts seconds; between once-a-minute redraws that count would go stale.
        await until(pilot, lambda: cell(table, c.id, "status") == "Up Less than a minute", what="the age")
        docker_says = sdk.api.containers(filters={"id": c.id})[0]["Status"]
        assert re.fullmatch(r"Up (Less than a second|\d+ seconds?)", docker_says)
        seen = pane(app).changes_seen
        started = engine_state(sdk, c.id)["StartedAt"]

        # Five minutes on (the pane's clock moved on): the tick redraws the age, and only that cell.
        real_time = time.time
        monkeypatch.setattr(containers_module, "time", types.SimpleNamespace(time=lambda: real_time() + 300))
        updates: list[frozenset[tuple[str, str]]] = []
        update_rows = table.update_rows

        def recorded(rows: Any) -> Any:
            result = update_rows(rows)
            updates.append(result.changed)
            return result

        monkeypatch.setattr(table, "update_rows", recorded)
        await until(pilot, lambda: cell(table, c.id, "status") == "Up 5 minutes", 10, "the age to tick")
        assert pane(app).changes_seen == seen  # no Docker event did it
        aged = next(changed for changed in updates if (c.id, "status") in changed)
        assert {column for _key, column in aged} <= {"status", "cpu", "mem"}  # not the whole row
        assert not table.last_update.reordered
        assert "Up 5 minutes" in str(app.query_one("#strip-summary").render())
        # What Docker would say five minutes after the StartedAt it reports.
        assert engine_state(sdk, c.id)["StartedAt"] == started
        age = real_time() + 300 - datetime.fromisoformat(started[:26] + "+00:00").timestamp()
        assert f"Up {human_duration(age)}" == "Up 5 minutes"


def test_ages_read_as_docker_words_them() -> None:
    # go-units' HumanDuration, which Docker's status uses; the pane's ages come from it.
    cases = {0.4: "Less than a second", 1: "1 second", 59: "59 seconds", 61: "About a minute"}
    cases |= {300: "5 minutes", 3600: "About an hour", 5400: "2 hours", 3 * 86400: "3 days"}
    assert {seconds: human_duration(seconds) for seconds in cases} == cases


# 4. The sparkline strip, and no stray glyphs ----------------------------------------------------

STRAY = re.compile(r"([▁▂▃▄▅▆▇])\1")  # a scrollbar thumb's end: two equal partial blocks
BORDER = re.compile(r"█[▀▄]*█")  # a dialog's thick border


def strays(lines: list[str]) -> list[str]:
    return [line for line in lines if STRAY.search(BORDER.sub("", line))]


def start_berth(tmux: Tmux, dockerd: DockerEngine, home: Path, tmp_path: Path) -> None:
    """The installed berth in tmux, on the test dockerd."""
    config = Config(hosts=[HostConfig("local", docker_socket=str(dockerd.socket))], path=tmp_path / "c.toml")
    save_config(config, config.path)
    tmux.start([installed_berth(), "--config", str(config.path)], berth_env(home))


def test_the_cpu_and_mem_strip_shows_under_the_table_at_every_size(
    tmux: Tmux, dockerd: DockerEngine, spawn: Spawn, isolated_home: Path, tmp_path: Path
) -> None:
    c = spawn(BUSY_THEN_IDLE)
    start_berth(tmux, dockerd, isolated_home, tmp_path)
    tmux.wait_for(c.name)
    for width, height in ((80, 24), (160, 48), (200, 120)):
        tmux.run("resize-window", "-t", "berth", "-x", str(width), "-y", str(height))
        deadline = time.monotonic() + 20
        while True:
            lines = tmux.screen().splitlines()
            strip = lines[height - 3 : height - 1]  # the two lines over the footer
            if len(lines) >= height and "CPU " in strip[0] and re.search("[▁▂▃▄▅▆▇█]", strip[1]):
                break
            assert time.monotonic() < deadline, f"no strip at {width}x{height}:\n" + "\n".join(lines)
            time.sleep(0.2)
        assert c.name in strip[0] and "MEM " in strip[0] and c.short_id in strip[1]
        assert not strays(lines[: height - 3]), f"stray glyphs at {width}x{height}"


def test_no_stray_glyph_over_the_log_view_inspect_help_or_the_wasm_pane(
    tmux: Tmux, dockerd: DockerEngine, spawn: Spawn, isolated_home: Path, tmp_path: Path
) -> None:
    c = spawn(BUSY_THEN_IDLE)
    start_berth(tmux, dockerd, isolated_home, tmp_path)
    tmux.run("resize-window", "-t", "berth", "-x", "160", "-y", "48")
    tmux.wait_for(c.name)
    tmux.keys("/")
    tmux.keys(c.name, literal=True)
    tmux.keys("Enter")
    tmux.wait_for("esc Clear filter")
    tmux.keys("l")
    tmux.wait_for("following")
    tmux.wait_for("tick-3000")
    time.sleep(3)  # more lines than fit: the view scrolls, with a scrollbar
    assert not strays(tmux.screen().splitlines()), "stray glyphs over the log view:\n" + tmux.screen()
    tmux.keys("Escape")
    tmux.wait_gone("following")
    tmux.keys("i")
    tmux.wait_for(f"inspect · {c.name}")
    assert not strays(tmux.screen().splitlines()), "stray glyphs over inspect:\n" + tmux.screen()
    tmux.keys("Escape")
    tmux.wait_gone(f"inspect · {c.name}")
    time.sleep(0.3)  # a key right after Escape would arrive as Alt+key
    tmux.keys("?")
    tmux.wait_for("Keys and commands")
    screen = tmux.screen().splitlines()
    assert not strays(screen[:-3]), "stray glyphs over help:\n" + "\n".join(screen)  # the strip behind
    tmux.keys("Escape")
    tmux.wait_gone("Keys and commands")
    time.sleep(0.3)
    tmux.keys("3")
    tmux.wait_for("New task")
    assert not strays(tmux.screen().splitlines()), "stray glyphs over the Wasm pane:\n" + tmux.screen()


def test_no_committed_snapshot_holds_a_stray_glyph() -> None:
    found = {svg.name: STRAY.findall(BORDER.sub("", svg.read_text())) for svg in SNAPSHOTS.rglob("*.svg")}
    assert found and not any(found.values()), found


# 10. Stop and restart say so until the engine reports it ---------------------------------------


async def test_restart_and_stop_show_what_is_under_way_until_the_engine_says_done(
    dockerd: DockerEngine, spawn: Spawn, sdk: docker.DockerClient, tmp_path: Path
) -> None:
    c = spawn(SLOW_STOP)
    app = make_app(dockerd, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        table = await select(pilot, app, c)
        started = engine_state(sdk, c.id)["StartedAt"]
        await pilot.press("r")
        await until(pilot, lambda: cell(table, c.id, "state") == "restarting…", 2, "restarting…")
        assert engine_state(sdk, c.id)["StartedAt"] == started  # the engine is still at it
        while engine_state(sdk, c.id)["StartedAt"] == started:
            assert cell(table, c.id, "state") == "restarting…"  # said all the while
            await pilot.pause(0.05)
        await until(pilot, lambda: cell(table, c.id, "state") == "running", 3, "running again")

        await pilot.press("s")
        await until(pilot, lambda: cell(table, c.id, "state") == "stopping…", 2, "stopping…")
        assert engine_state(sdk, c.id)["Running"]
        while engine_state(sdk, c.id)["Running"]:
            assert cell(table, c.id, "state") == "stopping…"
            await pilot.pause(0.05)
        await until(pilot, lambda: cell(table, c.id, "state") == "exited", 3, "exited")


# 18. The audit log names every container ---------------------------------------------------------


async def test_the_audit_log_names_every_container_acted_on(
    dockerd: DockerEngine, spawn: Spawn, sdk: docker.DockerClient, tmp_path: Path
) -> None:
    tag = f"au{uuid.uuid4().hex[:6]}"
    quick = "trap 'exit 0' TERM; while :; do sleep 0.1; done"
    mine = [spawn(quick, name=f"{tag}-{i}") for i in range(2)]
    app = make_app(dockerd, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        table = pane(app).table
        await until(pilot, lambda: all(c.id in table.rows for c in mine))
        await pilot.press("slash", *tag, "enter", "ctrl+a", "s")
        await until(pilot, lambda: {sdk.containers.get(c.id).status for c in mine} == {"exited"}, what="stop")
        await until(pilot, lambda: len([r for r in read_audit() if r["action"] == "container.stop"]) == 2)
        await pilot.press("colon", *"audit", "enter")
        await until(pilot, lambda: isinstance(app.screen, AuditScreen), what=":audit")
        audit_table = app.screen.query_one(ResourceTable)
        await until(pilot, lambda: len(audit_table.rows) >= 2, what="the audit rows")
        shown = [cell(audit_table, key, "details") for key in audit_table.visible_ids()]
        for c in mine:
            assert any(f'"{c.name}"' in details for details in shown), (c.name, shown)
    records = {r["targets"][0]: r for r in read_audit() if r["action"] == "container.stop"}
    assert {cid: r["names"] for cid, r in records.items()} == {c.id: [c.name] for c in mine}


# 22. A dead host's error row keeps to its column -------------------------------------------------


async def test_a_dead_hosts_error_keeps_status_narrow_and_is_shown_whole_below(
    dockerd: DockerEngine, spawn: Spawn, tmp_path: Path
) -> None:
    c = spawn()
    hosts = [
        HostConfig("local", docker_socket=str(dockerd.socket)),
        HostConfig("dead", docker_socket=str(tmp_path / "no-docker-here.sock")),
    ]
    app = BerthApp(Config(hosts=hosts, path=tmp_path / "config.toml"), "all")
    async with app.run_test(size=SIZE) as pilot:
        table = pane(app).table
        await until(pilot, lambda: "dead/!" in table.rows and f"local/{c.id}" in table.rows)
        table.set_filter(f"~^({c.name}|dead)$")  # this test's container, and the error row
        status = cell(table, "dead/!", "status")
        assert len(status) <= ERROR_STATUS_WIDTH and status.endswith("…")
        widths = table.grid.render_widths()
        assert widths["status"] <= ERROR_STATUS_WIDTH + 2, widths
        assert sum(widths.values()) <= SIZE[0], widths  # every column on screen, PROJECT/SERVICE too
        error = str(table.rows["dead/!"].cells["error"])
        assert "dead" in error and "does not answer" in error and len(error) > 60
        assert table.move_cursor_to("dead/!")
        summary = app.query_one("#strip-summary", Widget)
        await until(pilot, lambda: "dead:" in " ".join(drawn(summary)), what="the error under the table")
        assert " ".join(" ".join(drawn(summary)).split()) == f"dead: {error}"  # all of it, on screen


def drawn(widget: Widget) -> list[str]:
    """The text of the lines `widget` draws now."""
    return [strip.text for strip in widget.render_lines(Region(0, 0, widget.size.width, widget.size.height))]
