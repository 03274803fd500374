"""The installed `berth` CLI's Docker verbs against the test dockerd(s), run as a user would."""

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import docker
import pytest
from docker_helpers import Spawn
from engines.dockerd import DockerEngine
from engines.images import DOCKER_REPO, DOCKER_TAG

pytestmark = pytest.mark.engines
BERTH = str(Path(sys.executable).parent / "berth")


def berth(dockerd: DockerEngine, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run berth with no config file; the local host finds the test dockerd through DOCKER_HOST."""
    env = {**os.environ, "DOCKER_HOST": dockerd.url}
    return subprocess.run([BERTH, *args], capture_output=True, text=True, env=env, timeout=timeout)


def test_ps_table_and_json(dockerd: DockerEngine, spawn: Spawn) -> None:
    running = spawn()
    stopped = spawn("true")
    stopped.wait(timeout=30)
    out = berth(dockerd, "ps")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0].split()[:4] == ["NAME", "ID", "IMAGE", "STATE"]
    assert running.name in out.stdout and stopped.name not in out.stdout
    listed = json.loads(berth(dockerd, "--json", "ps", "--all").stdout)
    mine = {item["name"]: item for item in listed}
    assert mine[running.name]["state"] == "running" and mine[stopped.name]["state"] == "exited"
    assert mine[running.name]["id"] == running.id and mine[running.name]["host"] == "local"
    assert mine[running.name]["image"] == running.attrs["Config"]["Image"]


def test_logs_forms(dockerd: DockerEngine, spawn: Spawn) -> None:
    c = spawn("seq 1 5; echo warn >&2")
    c.wait(timeout=30)
    out = berth(dockerd, "logs", c.name)
    assert out.stdout.split() == ["1", "2", "3", "4", "5"] and out.stderr.strip() == "warn"
    tail = berth(dockerd, "logs", "--tail", "2", "--timestamps", c.name)
    stamped = (tail.stdout + tail.stderr).splitlines()
    assert len(stamped) == 2 and all(line[:4].isdigit() and "T" in line.split()[0] for line in stamped)
    assert berth(dockerd, "logs", "--since", "1h", c.name).stdout.split() == ["1", "2", "3", "4", "5"]
    bad = berth(dockerd, "logs", "--since", "later", c.name)
    assert bad.returncode == 2 and "Not a time or duration: 'later'" in bad.stderr
    follower = spawn("for i in 1 2 3; do echo $i; sleep 0.2; done")
    assert berth(dockerd, "logs", "-f", follower.name, timeout=30).stdout.split() == ["1", "2", "3"]


def test_start_stop_restart_rm(dockerd: DockerEngine, spawn: Spawn, sdk: docker.DockerClient) -> None:
    a, b = (
        spawn("trap 'exit 0' TERM; while :; do sleep 0.1; done"),
        spawn("trap 'exit 0' TERM; sleep 600 & wait"),
    )
    out = berth(dockerd, "stop", a.name, b.name)
    assert out.returncode == 0 and out.stdout.split() == [a.name, b.name]
    assert {sdk.containers.get(x.id).status for x in (a, b)} == {"exited"}
    assert berth(dockerd, "start", a.name).returncode == 0
    assert sdk.containers.get(a.id).status == "running"
    assert berth(dockerd, "restart", a.name).returncode == 0
    refused = berth(dockerd, "rm", a.name, "no-such-thing")
    assert refused.returncode == 1
    assert "cannot remove a running container" in refused.stderr.lower() or "stop" in refused.stderr
    assert "No container 'no-such-thing' on local" in refused.stderr
    assert berth(dockerd, "rm", "--force", a.name, b.name).returncode == 0
    assert not sdk.containers.list(all=True, filters={"id": a.id})


def test_images_and_moving_one_to_another_host(
    dockerd: DockerEngine, make_dockerd: Callable[..., DockerEngine], docker_busybox: str, tmp_path: Path
) -> None:
    listed = berth(dockerd, "images")
    assert f"{DOCKER_REPO}:{DOCKER_TAG}" in listed.stdout
    other = make_dockerd()
    config = tmp_path / "config.toml"
    config.write_text(
        f'[[hosts]]\nname = "a"\nurl = "local"\ndocker_socket = "{dockerd.socket}"\n\n'
        f'[[hosts]]\nname = "b"\nurl = "local"\ndocker_socket = "{other.socket}"\n'
    )
    moved = berth(dockerd, "--config", str(config), "--json", "image", "move", docker_busybox, "--to", "b")
    assert moved.returncode == 0, moved.stderr
    assert json.loads(moved.stdout)["id"] == docker_busybox
    on_b = json.loads(berth(dockerd, "--config", str(config), "--host", "b", "--json", "images").stdout)
    assert [i["id"] for i in on_b] == [docker_busybox] and on_b[0]["host"] == "b"
    unknown = berth(dockerd, "--config", str(config), "image", "move", docker_busybox, "--to", "c")
    assert (
        unknown.returncode == 1 and "No host 'c'" in unknown.stderr and "Known hosts: a, b" in unknown.stderr
    )


def test_unreachable_docker_is_one_sentence(tmp_path: Path) -> None:
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/docker.sock"}
    out = subprocess.run([BERTH, "ps"], capture_output=True, text=True, env=env, timeout=30)
    assert out.returncode == 1
    assert (
        out.stderr.startswith("berth: Docker on local does not answer at ") and "Traceback" not in out.stderr
    )
