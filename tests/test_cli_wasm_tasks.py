"""`berth wasm tasks`: the task history a pool wrote, as JSON and as a table; images for `wasm run`."""

import functools
import json
from pathlib import Path

from cli_helpers import berth
from engines.dockerd import DockerEngine
from pilot_helpers import log_lines
from test_containers_pane import until
from wasm_helpers import build_image

from backends.config import Config, HostConfig
from backends.wasm.history import TaskHistory
from backends.wasm.pool import TaskPool
from backends.wasm.runtime import run_task
from backends.wasm.spec import TaskSpec
from backends.wasm.store import ModuleStore
from tui.app import BerthApp
from tui.cli.context import CliContext
from tui.cli.wasm_tasks import image_task, is_image
from tui.panes.wasm import WasmPane
from tui.screens.logs import LogScreen


async def test_wasm_tasks_lists_the_history_a_pool_wrote(
    tmp_path: Path, wasm_programs: dict[str, Path]
) -> None:
    pool = TaskPool(tmp_path / "modules", TaskHistory(), workers=1)  # the default history file
    await pool.start()
    try:
        ok = await pool.wait((await pool.submit(TaskSpec(module=str(wasm_programs["hello"])))).id)
        three = await pool.wait((await pool.submit(TaskSpec(module=str(wasm_programs["exit3"])))).id)
    finally:
        await pool.close()
    config = tmp_path / "config.toml"

    listed = berth(config, "--json", "wasm", "tasks")
    assert listed.returncode == 0, listed.stderr
    tasks = json.loads(listed.stdout)
    assert [t["id"] for t in tasks] == [three.id, ok.id]
    assert {k: tasks[1][k] for k in ("module", "state", "exit_code")} == {
        "module": "hello.wasm",
        "state": "done",
        "exit_code": 0,
    }
    assert tasks[0]["state"] == "failed" and tasks[0]["exit_code"] == 3
    assert tasks[1]["duration_ms"] == round(ok.duration_ms or 0, 3)

    shown = berth(config, "wasm", "tasks")
    assert shown.returncode == 0, shown.stderr
    header, first, second = shown.stdout.splitlines()
    assert header.split()[:5] == ["ID", "STATE", "MODULE", "EXIT", "DURATION"]
    assert first.split()[:4] == [three.id, "failed", "exit3.wasm", "3"]
    assert second.split()[:4] == [ok.id, "done", "hello.wasm", "0"]


def test_image_task_takes_the_image_from_the_chosen_hosts_docker(
    tmp_path: Path, dockerd: DockerEngine, wasm_programs: dict[str, Path]
) -> None:
    """What `berth wasm run IMAGE` uses: the image from --host's Docker, ready for run_task."""
    client = dockerd.client()
    dockerfile = 'FROM scratch\nCOPY echo.wasm /echo.wasm\nENV FROM_IMAGE=yes\nENTRYPOINT ["/echo.wasm"]\n'
    build_image(
        client, "berth-test/echo-wasm:latest", dockerfile, **{"echo.wasm": wasm_programs["echo"].read_bytes()}
    )
    config = tmp_path / "config.toml"
    config.write_text(f'[[hosts]]\nname = "box"\nurl = "local"\ndocker_socket = "{dockerd.socket}"\n')
    try:
        assert is_image("berth-test/echo-wasm:latest") and not is_image(str(wasm_programs["echo"]))
        spec, cleanup = image_task(
            CliContext(config, "box"), TaskSpec(image="berth-test/echo-wasm:latest", args=("hi",))
        )
        try:
            result = run_task(spec, ModuleStore(tmp_path / "modules"))
        finally:
            cleanup()
        assert result.ok, result
        lines = result.stdout.decode().splitlines()
        assert lines[1] == "arg 1: hi" and "env FROM_IMAGE=yes" in lines[2:]
        assert not Path(spec.dirs[0].host).exists()
    finally:
        client.images.remove("berth-test/echo-wasm:latest", force=True)
        client.close()


async def test_wasm_run_is_kept_in_the_history_like_docker_run_in_ps_all(
    tmp_path: Path, wasm_programs: dict[str, Path]
) -> None:
    """Issue 15, item 9: what `berth wasm run` ran is listed by `berth wasm tasks` and shown in
    the console's Wasm tasks pane, its output with it (not when berth runs read-only)."""
    config = tmp_path / "config.toml"
    three = berth(config, "wasm", "run", str(wasm_programs["exit3"]))
    assert (three.returncode, three.stdout) == (3, "exiting with 3\n"), three.stderr
    echo = berth(config, "--json", "wasm", "run", str(wasm_programs["echo"]), "--", "kept")
    assert echo.returncode == 0, echo.stderr
    looked = berth(config, "--read-only", "wasm", "run", str(wasm_programs["hello"]))
    assert looked.returncode == 0, looked.stderr

    listed = berth(config, "--json", "wasm", "tasks")
    assert listed.returncode == 0, listed.stderr
    tasks = json.loads(listed.stdout)
    assert [(t["module"], t["state"], t["exit_code"]) for t in tasks] == [
        ("echo.wasm", "done", 0),
        ("exit3.wasm", "failed", 3),
    ]
    assert all(t["started_at"] and t["ended_at"] >= t["started_at"] for t in tasks)
    shown = berth(config, "wasm", "tasks")
    assert shown.stdout.splitlines()[2].split()[:4] == [tasks[1]["id"], "failed", "exit3.wasm", "3"]

    nowhere = "/nonexistent/berth-test"
    host = HostConfig("local", docker_socket=f"{nowhere}/docker.sock", lxd_socket=f"{nowhere}/lxd.sock")
    app = BerthApp(Config(hosts=[host], path=config))
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.press("3")
        wasm = app.query_one(WasmPane)
        failed = tasks[1]["id"]
        await until(pilot, lambda: failed in wasm.table.rows, timeout=30, what=wasm.table.empty_message)
        row = wasm.table.rows[tasks[1]["id"]].cells
        assert (str(row["state"]), str(row["exit"]), row["name"]) == ("failed", "exit 3", "exit3.wasm")
        for task, said in ((tasks[1], "exiting with 3"), (tasks[0], "arg 1: kept")):
            assert wasm.table.move_cursor_to(task["id"])
            await pilot.press("l")
            await until(pilot, lambda: isinstance(app.screen, LogScreen))
            await until(pilot, functools.partial(shows, app, said), timeout=10, what=str(log_lines(app)))
            await pilot.press("escape")
            await pilot.pause()


def shows(app: BerthApp, line: str) -> bool:
    """True when the log view on screen holds `line`."""
    return line in log_lines(app)
