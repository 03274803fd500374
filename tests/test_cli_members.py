"""The installed `berth` CLI's member verbs against the test LXD, run as a user would."""

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pylxd
import pytest
from cli_helpers import berth
from engines.lxd import LxdEngine
from engines.sshd import keygen

from backends.config import Config, HostConfig, save_config

pytestmark = pytest.mark.engines


@pytest.fixture
def inventory(lxd: LxdEngine, tmp_path: Path) -> Path:
    """A config whose local host's LXD is the test one (and whose Docker is nowhere)."""
    path = tmp_path / "config.toml"
    host = HostConfig("local", docker_socket=str(tmp_path / "no-docker.sock"), lxd_socket=str(lxd.socket))
    save_config(Config(hosts=[host]), path)
    return path


@pytest.fixture
def made(lxd: LxdEngine) -> Iterator[list[str]]:
    """Names of instances the test creates; force-deleted afterwards."""
    names: list[str] = []
    yield names
    client = lxd.client()
    for name in names:
        if client.instances.exists(name):
            inst = client.instances.get(name)
            if inst.status != "Stopped":
                inst.stop(force=True, wait=True)
            inst.delete(wait=True)


def test_member_lifecycle(inventory: Path, made: list[str], lxd: LxdEngine, tmp_path: Path) -> None:
    client: pylxd.Client = lxd.client()
    name = f"c-{uuid.uuid4().hex[:6]}"
    made.append(name)
    key = keygen(tmp_path / "ann", "ann@laptop")
    pub = tmp_path / "ann.pub"
    create = ["member", "create", name, "--member", "ann", "--image", "busybox", "--key", str(pub)]
    out = berth(inventory, *create, "--cpu", "1", "--memory", "256MiB")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"{name} is running for ann on local."
    assert client.instances.get(name).config["user.berth.member"] == "ann"

    listed = json.loads(berth(inventory, "--json", "members").stdout)
    mine = next(m for m in listed if m["name"] == name)
    assert {k: mine[k] for k in ("member", "state", "snapshots", "forwards", "host")} == {
        "member": "ann", "state": "Running", "snapshots": 0, "forwards": [], "host": "local",
    }  # fmt: skip
    table = berth(inventory, "members").stdout.splitlines()
    assert table[0].split()[:3] == ["NAME", "MEMBER", "STATE"] and any(
        line.startswith(name) for line in table
    )

    keys = berth(inventory, "member", "keys", name)
    assert keys.stdout.split()[:2] == key.split()
    keygen(tmp_path / "bob", "bob@desk")
    added = berth(inventory, "--json", "member", "keys", name, "--add", str(tmp_path / "bob.pub"))
    assert len(json.loads(added.stdout)) == 2

    failed = berth(inventory, "member", "exec", name, "--", "sh", "-c", "echo hi; echo oops >&2; exit 7")
    assert (failed.returncode, failed.stdout, failed.stderr) == (7, "hi\n", "oops\n")
    assert berth(inventory, "member", "exec", name, "--", "sh", "-c", "echo one > /root/f").returncode == 0

    snap = berth(inventory, "member", "snapshot", name, "first")
    assert (snap.returncode, snap.stdout.strip()) == (0, "first")
    generated = berth(inventory, "member", "snapshot", name).stdout.strip()
    assert generated.startswith("snap-")
    berth(inventory, "member", "exec", name, "--", "sh", "-c", "echo two > /root/f")
    assert berth(inventory, "member", "restore", name, "first").returncode == 0
    assert berth(inventory, "member", "exec", name, "--", "cat", "/root/f").stdout == "one\n"

    port = 20000 + uuid.uuid4().int % 10000
    fwd = berth(inventory, "--json", "member", "forward", name, str(port), "22", "--listen", "127.0.0.1")
    assert fwd.returncode == 0, fwd.stderr
    assert json.loads(fwd.stdout)["device"] == f"berth-tcp-{port}"
    again = berth(inventory, "member", "forward", name, str(port), "23")
    assert again.returncode == 1 and f"Host port {port}/tcp on local is already forwarded" in again.stderr
    assert (
        berth(
            inventory, "member", "forward", name, str(port), "53", "--udp", "--listen", "127.0.0.1"
        ).returncode
        == 0
    )

    backup = tmp_path / "c.tar.gz"
    saved = berth(inventory, "member", "backup", name, str(backup))
    assert saved.returncode == 0 and backup.stat().st_size > 0, saved.stderr

    refused = berth(inventory, "member", "delete", name)
    assert refused.returncode == 2 and "Add --yes" in refused.stderr
    assert berth(inventory, "member", "delete", name, "--yes").returncode == 0
    assert not client.instances.exists(name)

    imported = berth(inventory, "--json", "member", "import", str(backup), "--name", name + "-b")
    made.append(name + "-b")
    assert json.loads(imported.stdout)["name"] == name + "-b"
    assert client.instances.get(name + "-b").config["user.berth.member"] == "ann"


def test_member_errors_are_sentences(inventory: Path, made: list[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.pub"
    bad.write_text("ssh-ed25519 not-a-key me\n")
    name = f"c-{uuid.uuid4().hex[:6]}"
    made.append(name)
    out = berth(inventory, "member", "create", name, "--member", "x", "--image", "busybox", "--key", str(bad))
    assert out.returncode == 2 and out.stderr.startswith("berth: Not an SSH public key")
    out = berth(inventory, "member", "create", name, "--member", "x", "--image", "nope")
    assert out.returncode == 1 and "No image 'nope' on local" in out.stderr
    out = berth(inventory, "member", "create", name, "--member", "x", "--image", "busybox", "--cpu", "4096")
    assert out.returncode == 2 and "asks for 4096 CPUs" in out.stderr
    out = berth(inventory, "member", "exec", "no-such", "--", "true")
    assert out.returncode == 1 and "No instance 'no-such' on local" in out.stderr
    assert "Traceback" not in out.stderr
