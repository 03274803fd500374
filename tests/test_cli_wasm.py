"""The installed `berth wasm run`, with the C test programs, run as a user would."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from cli_helpers import BERTH, berth
from engines.dockerd import DockerEngine
from wasm_helpers import build_image

Programs = dict[str, Path]


def test_hello(tmp_path: Path, wasm_programs: Programs) -> None:
    done = berth(tmp_path / "config.toml", "wasm", "run", str(wasm_programs["hello"]))
    assert (done.returncode, done.stdout, done.stderr) == (0, "hello from wasm\n", "")


def test_args_env_and_stdin(tmp_path: Path, wasm_programs: Programs) -> None:
    echo = str(wasm_programs["echo"])
    done = berth(tmp_path / "c.toml", "wasm", "run", echo, "--env", "K=v=1", "--", "a", "--not-an-option")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["arg 0: echo.wasm", "arg 1: a", "arg 2: --not-an-option", "env K=v=1"]

    (tmp_path / "in.txt").write_text("from a file\n")
    cat = str(wasm_programs["cat"])
    done = berth(tmp_path / "c.toml", "wasm", "run", cat, "--stdin", str(tmp_path / "in.txt"))
    assert (done.returncode, done.stdout) == (0, "from a file\n")


def test_exit_code_is_the_modules(tmp_path: Path, wasm_programs: Programs) -> None:
    done = berth(tmp_path / "c.toml", "wasm", "run", str(wasm_programs["exit3"]))
    assert (done.returncode, done.stdout, done.stderr) == (3, "exiting with 3\n", "")


def test_failures_say_what_happened(tmp_path: Path, wasm_programs: Programs) -> None:
    config = tmp_path / "c.toml"
    cases = [
        (["trap"], 1, "berth: trap: wasm `unreachable` instruction executed\n"),
        (["loop", "--fuel", "1000"], 1, "berth: out of fuel after 1,000 units\n"),
        (["loop", "--timeout", "0.3"], 124, "berth: timed out after 0.3 s\n"),
        (["missing_import"], 1, "berth: missing import env::foo (berth runs WASI preview 1 modules)\n"),
        (["invalid"], 1, "berth: not a wasm module: malformed section id (at offset 0x8)\n"),
    ]
    for (name, *options), code, stderr in cases:
        done = berth(config, "wasm", "run", str(wasm_programs[name]), *options)
        assert (done.returncode, done.stderr) == (code, stderr), name

    done = berth(config, "wasm", "run", str(wasm_programs["membomb"]), "--memory", "8MiB")
    assert done.returncode == 1
    assert done.stderr.startswith("malloc failed after ")  # the module's own stderr comes through
    assert "\nberth: out of memory: it used " in done.stderr

    done = berth(config, "wasm", "run", str(tmp_path / "nope.wasm"))
    assert (done.returncode, done.stderr) == (
        1,
        f"berth: No module file {tmp_path / 'nope.wasm'}. Check the path.\n",
    )
    done = berth(config, "wasm", "run", str(wasm_programs["hello"]), "--memory", "lots")
    assert done.returncode == 2
    assert "Not a size: 'lots'" in done.stderr


def test_dirs_read_only_and_writable(tmp_path: Path, wasm_programs: Programs) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    write = str(wasm_programs["writefile"])
    config = tmp_path / "c.toml"
    done = berth(config, "wasm", "run", write, "--dir", f"{shared}:/data", "--", "/data/f", "x")
    assert done.returncode == 1
    assert done.stderr.startswith("cannot open /data/f: ")
    assert not (shared / "f").exists()
    done = berth(config, "wasm", "run", write, "--rw-dir", f"{shared}:/data", "--", "/data/f", "x")
    assert (done.returncode, done.stdout) == (0, "written\n")
    assert (shared / "f").read_text() == "x"


def test_json_and_the_cache(tmp_path: Path, wasm_programs: Programs) -> None:
    config = tmp_path / "c.toml"
    for _ in range(2):
        done = berth(config, "--json", "wasm", "run", str(wasm_programs["hello"]))
        assert done.returncode == 0
        result = json.loads(done.stdout)
        assert {k: result[k] for k in ("kind", "exit_code", "stdout", "stdout_bytes")} == {
            "kind": "exit",
            "exit_code": 0,
            "stdout": "hello from wasm\n",
            "stdout_bytes": 16,
        }
    modules = Path(os.environ["XDG_DATA_HOME"]) / "berth" / "modules"
    assert len(list(modules.glob("blobs/*.wasm"))) == 1
    assert len(list(modules.glob("compiled/*/*.cwasm"))) == 1


def test_output_streams_live_and_ctrl_c_cancels(tmp_path: Path, wasm_programs: Programs) -> None:
    def start(name: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [BERTH, "--config", str(tmp_path / "c.toml"), "wasm", "run", str(wasm_programs[name])],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            # A test runner may ignore SIGINT, and the child would inherit that.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )

    slow = start("slow")
    assert slow.stdout is not None
    arrived = []
    for line in slow.stdout:
        arrived.append((time.monotonic(), line))
    assert slow.wait(timeout=30) == 0
    assert [line for _, line in arrived] == [b"tick %d\n" % i for i in range(10)]
    assert arrived[-1][0] - arrived[0][0] >= 0.7  # one by one, not all at the end

    loop = start("loop")
    time.sleep(1)
    loop.send_signal(signal.SIGINT)
    assert loop.wait(timeout=10) == 130
    assert loop.stderr is not None
    assert loop.stderr.read() == b"berth: cancelled while running\n"


@pytest.mark.engines
def test_a_wasi_image_runs_from_the_hosts_docker(
    tmp_path: Path, dockerd: DockerEngine, wasm_programs: Programs
) -> None:
    client = dockerd.client()
    dockerfile = (
        'FROM scratch\nCOPY echo.wasm /bin/echo.wasm\nENV FROM_IMAGE=yes\nCMD ["/bin/echo.wasm", "x"]\n'
    )
    build_image(
        client, "berth-test/cli-echo-wasm:1", dockerfile, **{"echo.wasm": wasm_programs["echo"].read_bytes()}
    )
    config = tmp_path / "config.toml"
    config.write_text(f'[[hosts]]\nname = "box"\nurl = "local"\ndocker_socket = "{dockerd.socket}"\n')
    try:
        done = berth(config, "--host", "box", "wasm", "run", "berth-test/cli-echo-wasm:1", "--env", "K=v")
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert lines[1] == "arg 1: x"
        assert {"env FROM_IMAGE=yes", "env K=v"} <= set(lines[2:])
    finally:
        client.images.remove("berth-test/cli-echo-wasm:1", force=True)
        client.close()
