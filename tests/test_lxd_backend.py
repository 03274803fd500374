"""The LXD backend against the test LXD: member instances, keys, snapshots, backups, forwards, refusals."""

import asyncio
import random
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pylxd
import pytest
from engines.lxd import LxdEngine, echo_in_netns
from engines.sshd import keygen

from backends.audit import read_audit
from backends.errors import Conflict, Invalid, NotFound, Unreachable
from backends.lxd import LxdBackend
from backends.lxd_models import Forward, MemberSpec, lxd_time, port_set, proxy_address
from backends.parse_keys import check_key
from backends.units import parse_size

pytestmark = pytest.mark.engines


@pytest.fixture
def client(lxd: LxdEngine) -> pylxd.Client:
    """pylxd on the test LXD: the ground truth the backend is checked against."""
    return lxd.client()


@pytest.fixture
async def members(lxd: LxdEngine, client: pylxd.Client) -> AsyncIterator[LxdBackend]:
    """berth's LXD backend on the test LXD; instances the test made are force-deleted afterwards."""
    before = {i.name for i in client.instances.all()}
    backend = LxdBackend("local", str(lxd.socket))
    yield backend
    await backend.close()
    for inst in client.instances.all():
        if inst.name not in before:
            if inst.status != "Stopped":
                inst.stop(force=True, wait=True)
            inst.delete(wait=True)


def fresh(prefix: str = "m") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def names(client: pylxd.Client) -> set[str]:
    return {i.name for i in client.instances.all()}


def read_file(client: pylxd.Client, name: str, path: str) -> tuple[str, bytes]:
    """(mode, content) of a file inside, read through the files API."""
    response = client.api.instances[name].files.get(params={"path": path}, is_api=False)
    return response.headers["X-LXD-Mode"], response.content


async def sh(members: LxdBackend, name: str, script: str) -> str:
    result = await members.exec(name, ["sh", "-c", script])
    assert result.code == 0, result.stderr
    return result.stdout


def test_models_parse_lxd_notations() -> None:
    assert parse_size("512MiB") == 512 * 1024**2 and parse_size("2GB") == 2 * 1000**3
    assert parse_size("1024") == 1024
    with pytest.raises(Invalid, match="Not a size: 'lots'"):
        parse_size("lots")
    assert proxy_address("udp:[::1]:53") == ("udp", "::1", "53")
    assert proxy_address("unix:/run/x.sock") is None
    assert port_set("80,8000-8002") == {80, 8000, 8001, 8002}
    forward = Forward.from_device(
        "web", {"type": "proxy", "listen": "tcp:0.0.0.0:8080", "connect": "tcp:127.0.0.1:80"}
    )
    assert forward == Forward("web", "tcp", "0.0.0.0", 8080, 80)
    assert Forward("d", "udp", "::1", 53, 5353).listen() == "udp:[::1]:53"
    assert lxd_time("2024-05-01T12:00:00.123456789Z") == pytest.approx(1714564800.123456)


async def test_create_with_key_then_keys_exec_snapshots(
    members: LxdBackend, client: pylxd.Client, tmp_path: Path
) -> None:
    key = keygen(tmp_path / "ann", "ann@laptop")
    name = fresh()
    said: list[str] = []
    spec = MemberSpec(name, "ann", "busybox", keys=(key,), contact="ann@example.org", cpu=1, memory="256MiB")
    made = await members.create(spec, said.append)
    assert (made.name, made.member, made.contact, made.state) == (name, "ann", "ann@example.org", "Running")
    assert made.limits == {"limits.cpu": "1", "limits.memory": "256MiB"}
    assert made.image == "berth test busybox" and made.memory is not None and said

    # The ground truth, through LXD's own API: tag, key file content and modes.
    inst = client.instances.get(name)
    assert inst.config["user.berth.member"] == "ann"
    mode, content = read_file(client, name, "/root/.ssh/authorized_keys")
    assert mode == "0600" and content.decode().split() == key.split()
    assert read_file(client, name, "/root/.ssh")[0] == "0700"
    assert "cloud-init.user-data" not in inst.config  # busybox has no cloud-init

    listed = {m.name: m for m in await members.members()}
    assert listed[name].member == "ann"
    as_json = listed[name].to_json("local")
    assert {k: as_json[k] for k in ("name", "member", "state", "snapshots", "forwards", "host")} == {
        "name": name, "member": "ann", "state": "Running", "snapshots": 0, "forwards": [], "host": "local",
    }  # fmt: skip

    # Keys: add (twice is once), list, remove by type and data whatever the comment.
    other = keygen(tmp_path / "bob", "bob@desk")
    await members.add_key(name, other + " bob@desk")
    await members.add_key(name, other)
    assert [k.split()[1] for k in await members.keys(name)] == [key.split()[1], other.split()[1]]
    await members.remove_key(name, key)
    assert [k.split()[1] for k in await members.keys(name)] == [other.split()[1]]
    with pytest.raises(NotFound, match=f"{name} has no such key"):
        await members.remove_key(name, key)
    with pytest.raises(Invalid, match="Not an SSH public key"):
        await members.add_key(name, "ssh-ed25519 not-base64")

    # Exec: output, error output and exit code.
    result = await members.exec(name, ["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (result.code, result.stdout, result.stderr) == (3, "out\n", "err\n")

    # Snapshot, change a file, restore: the file is back.
    await sh(members, name, "echo before > /root/data")
    snap = await members.snapshot(name)
    assert snap.startswith("snap-") and [s.name for s in await members.snapshots(name)] == [snap]
    await members.snapshot(name, "named")
    with pytest.raises(Conflict, match="already has a snapshot 'named'"):
        await members.snapshot(name, "named")
    await sh(members, name, "echo after > /root/data")
    await members.restore(name, snap)
    assert await sh(members, name, "cat /root/data") == "before\n"
    assert (await members.member(name)).snapshots == 2
    await members.delete_snapshot(name, "named")
    assert [s.name for s in await members.snapshots(name)] == [snap]
    with pytest.raises(NotFound, match="has no snapshot 'nope'"):
        await members.restore(name, "nope")

    await members.set_schedule(name, "@daily", "2w")
    inst.sync()
    assert (inst.config["snapshots.schedule"], inst.config["snapshots.expiry"]) == ("@daily", "2w")
    with pytest.raises(Invalid, match="Schedule must be of the form"):
        await members.set_schedule(name, "whenever")

    actions = [r["action"] for r in read_audit() if name in r["targets"]]
    assert {"member.create", "member.snapshot", "member.restore", "member.schedule"} <= set(actions)


async def test_backup_delete_import(members: LxdBackend, client: pylxd.Client, tmp_path: Path) -> None:
    name = fresh()
    await members.create(MemberSpec(name, "cat", "busybox"))
    await sh(members, name, "echo precious > /root/data")
    await members.snapshot(name, "s1")
    seen: list[int] = []
    file = await members.backup(name, tmp_path / "m.tar.gz", seen.append)
    assert file.stat().st_size > 0 and seen and seen[-1] == file.stat().st_size
    assert not list(tmp_path.glob("*.part"))
    assert not client.api.instances[name].backups.get().json()["metadata"]  # nothing left on LXD

    await members.delete(name)
    assert name not in names(client)
    assert (await members.import_backup(file)).name == name
    with pytest.raises(Conflict, match=f"An instance named '{name}' already exists"):
        await members.import_backup(file)
    back = await members.member(name)
    assert (back.member, back.state, back.snapshots) == ("cat", "Stopped", 1)
    await members.act(name, "start")
    assert await sh(members, name, "cat /root/data") == "precious\n"

    copy = (await members.import_backup(file, "copy-" + name)).name
    assert (await members.member(copy)).member == "cat"
    with pytest.raises(Invalid, match="is not an LXD backup"):
        (tmp_path / "junk").write_bytes(b"not a tarball")
        await members.import_backup(tmp_path / "junk")


async def test_forward_reaches_a_listener_and_refuses_a_taken_port(
    members: LxdBackend, lxd: LxdEngine
) -> None:
    first, second = fresh(), fresh()
    await members.create(MemberSpec(first, "dan", "busybox"))
    await members.create(MemberSpec(second, "eve", "busybox"))
    await sh(members, first, "setsid sh -c 'nc -ll -p 7000 -e cat' </dev/null >/dev/null 2>&1 &")
    host_port = random.randint(20000, 30000)
    forward = await members.add_forward(first, host_port, 7000, listen_address="127.0.0.1")
    assert forward == Forward(f"berth-tcp-{host_port}", "tcp", "127.0.0.1", host_port, 7000)
    assert (await members.member(first)).forwards == (forward,)

    client = await asyncio.to_thread(echo_in_netns, lxd, host_port, "hello-member")
    assert client.returncode == 0, client.stderr
    assert client.stdout.strip() == "hello-member"

    with pytest.raises(Conflict, match=f"Host port {host_port}/tcp on local is already forwarded to {first}"):
        await members.add_forward(second, host_port, 22, listen_address="127.0.0.1")
    udp = await members.add_forward(second, host_port, 53, protocol="udp", listen_address="127.0.0.1")
    with pytest.raises(Invalid, match="Not an IP address"):
        await members.add_forward(second, host_port + 1, 22, listen_address="everywhere")

    await members.remove_forward(first, forward.device)
    assert (await members.member(first)).forwards == ()
    await members.remove_forward(second, udp.device)
    with pytest.raises(NotFound, match=f"{first} has no forward"):
        await members.remove_forward(first, forward.device)


async def test_refusals_leave_nothing_half_made(
    members: LxdBackend, client: pylxd.Client, tmp_path: Path
) -> None:
    taken = fresh()
    await members.create(MemberSpec(taken, "fay", "busybox"))
    before = names(client)
    key = keygen(tmp_path / "k", "k")
    cases: list[tuple[MemberSpec, type[Exception], str]] = [
        (
            MemberSpec(fresh(), "x", "busybox", keys=(key, "ssh-rsa AAAAnope x")),
            Invalid,
            "Not an SSH public key",
        ),
        (MemberSpec(fresh(), "x", "no-such-image"), NotFound, "No image 'no-such-image' on local"),
        (MemberSpec(taken, "x", "busybox"), Conflict, f"An instance named '{taken}' already exists"),
        (MemberSpec(fresh(), "x", "busybox", cpu=4096), Invalid, "asks for 4096 CPUs but local has"),
        (MemberSpec(fresh(), "x", "busybox", memory="64PiB"), Invalid, "asks for 64PiB of memory"),
        (MemberSpec(fresh(), "x", "busybox", memory="lots"), Invalid, "Not a memory limit: 'lots'"),
        (MemberSpec(fresh(), "x", "busybox", disk="64PiB"), Invalid, "asks for a 64PiB disk but pool"),
        (MemberSpec("9-bad_name", "x", "busybox"), Invalid, "not a valid instance name"),
        (MemberSpec(fresh(), "x", "busybox", profile="nope"), NotFound, "No profile 'nope'"),
    ]
    for spec, kind, message in cases:
        with pytest.raises(kind, match=message):
            await members.create(spec)
        assert names(client) == before, spec

    # A failure after the instance exists (here: its start) removes it again.
    late = fresh()
    original = members._state

    async def failing_start(name: str, action: str, **kwargs: Any) -> None:
        if action == "start":
            raise Conflict("start refused for the test")
        await original(name, action, **kwargs)

    members._state = failing_start  # type: ignore[method-assign]
    with pytest.raises(Conflict, match="start refused"):
        await members.create(MemberSpec(late, "x", "busybox", keys=(key,)))
    members._state = original  # type: ignore[method-assign]
    assert late not in names(client)


async def test_actions_logs_shell_and_busy_delete(members: LxdBackend, client: pylxd.Client) -> None:
    name = fresh()
    await members.create(MemberSpec(name, "gus", "busybox"))
    await members.act(name, "freeze")
    assert (await members.member(name)).state == "Frozen"
    await members.act(name, "unfreeze")
    with pytest.raises(Conflict, match="already running"):
        await members.act(name, "start")
    await members.act(name, "stop", force=True)
    assert (await members.member(name)).state == "Stopped"
    assert await members.console_log(name) is not None
    assert any(line for line in await members.instance_log(name))
    await members.act(name, "start")
    with pytest.raises(Invalid, match="Unknown instance action 'pause'"):
        await members.act(name, "pause")

    # The interactive shell's argv works with LXD 5.0.2's lxc (stdin fed instead of a terminal).
    shell = await asyncio.to_thread(
        subprocess.run,
        members.shell_argv(name),
        input="echo shell-$((40 + 2))\nexit\n",
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert shell.returncode == 0 and "shell-42" in shell.stdout, shell.stderr

    # A command still running through LXD keeps the instance from being deleted.
    body = {
        "command": ["sleep", "3"],
        "record-output": True,
        "wait-for-websocket": False,
        "interactive": False,
    }
    operation = client.api.instances[name].exec.post(json=body).json()["metadata"]["id"]
    with pytest.raises(Conflict, match=f"{name} on local is busy"):
        await members.delete(name)
    await asyncio.to_thread(client.api.operations[operation].wait.get, params={"timeout": 30})
    await members.delete(name)  # running: it is stopped first
    assert name not in names(client)
    with pytest.raises(NotFound, match=f"No instance '{name}' on local"):
        await members.member(name)


async def test_unknown_socket_is_unreachable(tmp_path: Path) -> None:
    backend = LxdBackend("far", str(tmp_path / "none.sock"))
    with pytest.raises(Unreachable, match=r"No LXD socket at .* on far"):
        await backend.members()


def test_check_key_accepts_one_public_key_line(tmp_path: Path) -> None:
    key = keygen(tmp_path / "k", "me@here")
    assert check_key(f"  {key} me@here\n") == f"{key} me@here"
    for bad in ("", "hello", f"{key}\n{key}"):
        with pytest.raises(Invalid):
            check_key(bad)
