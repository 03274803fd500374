"""`berth wasm tasks`: the task history a pool wrote, as JSON and as a table; images for `wasm run`."""

import json
from pathlib import Path

from cli_helpers import berth
from engines.dockerd import DockerEngine
from wasm_helpers import build_image

from backends.wasm.history import TaskHistory
from backends.wasm.pool import TaskPool
from backends.wasm.runtime import run_task
from backends.wasm.spec import TaskSpec
from backends.wasm.store import ModuleStore
from tui.cli import CliContext
from tui.cli_wasm_tasks import image_task, is_image


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
