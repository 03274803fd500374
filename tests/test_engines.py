"""Smoke tests for the real engines the tests start: dockerd, LXD and sshd."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import uuid
from collections.abc import Callable
from pathlib import Path

import asyncssh
import pytest
from engines.dockerd import DockerEngine
from engines.images import DOCKER_REPO, DOCKER_TAG, busybox_applets, busybox_rootfs_tar
from engines.lxd import LxdEngine, echo_in_netns, launch_busybox
from engines.sshd import SshServer

pytestmark = pytest.mark.engines


# --- images ---------------------------------------------------------------------------------


def test_busybox_rootfs_is_deterministic_and_complete() -> None:
    import io
    import tarfile

    first = busybox_rootfs_tar({"etc/motd": b"hello\n", "/usr/local/bin/x": b"#!/bin/sh\n"})
    assert first == busybox_rootfs_tar({"etc/motd": b"hello\n", "/usr/local/bin/x": b"#!/bin/sh\n"})
    with tarfile.open(fileobj=io.BytesIO(first)) as tar:
        members = {m.name: m for m in tar.getmembers()}
        inittab = tar.extractfile("etc/inittab")
        assert inittab is not None
        assert b"::sysinit:/bin/ip link set lo up" in inittab.read()
    assert members["sbin/init"].linkname == "/bin/busybox"
    assert members["bin/sh"].linkname == "busybox"
    assert members["usr/local/bin/x"].mode == 0o755
    assert members["tmp"].mode == 0o1777
    assert {f"bin/{a}" for a in busybox_applets() if a != "busybox"} <= set(members)


# --- dockerd --------------------------------------------------------------------------------


def test_dockerd_runs_busybox_and_reads_logs(dockerd: DockerEngine, docker_busybox: str) -> None:
    client = dockerd.client()
    try:
        assert client.images.get(f"{DOCKER_REPO}:{DOCKER_TAG}").id == docker_busybox
        line = f"berth-smoke-{uuid.uuid4().hex[:8]}"
        container = client.containers.run(
            docker_busybox, ["sh", "-c", f"echo {line}; ls /sys/class/net"], detach=True
        )
        try:
            assert container.wait(timeout=30)["StatusCode"] == 0
            out = container.logs(stdout=True, stderr=True).decode().split()
            assert out[0] == line
            assert out[1:] == ["lo"], "containers must get no network beyond loopback"
        finally:
            container.remove(force=True)
        assert not client.containers.list(all=True, filters={"id": container.id})
    finally:
        client.close()


def test_dockerd_restarts_in_place(dockerd: DockerEngine, docker_busybox: str) -> None:
    old_pid, sock = dockerd.pid, dockerd.socket
    took = dockerd.restart()
    assert dockerd.pid != old_pid
    assert dockerd.socket == sock and dockerd.ping()
    assert took < 20
    client = dockerd.client()
    try:
        assert client.images.get(docker_busybox).id == docker_busybox
    finally:
        client.close()


# --- lxd ------------------------------------------------------------------------------------


def test_lxd_busybox_instance_exec_and_proxy(lxd: LxdEngine) -> None:
    name = f"smoke-{uuid.uuid4().hex[:6]}"
    inst = launch_busybox(lxd, name)
    try:
        inst.sync()
        assert inst.status == "Running"
        result = inst.execute(["echo", "hi"])
        assert (result.exit_code, result.stdout) == (0, "hi\n")
        links = inst.execute(["ip", "-o", "link"]).stdout
        assert "lo:" in links and "UP" in links.split("lo:")[1].splitlines()[0]
        assert "eth0" not in links, "LXD test instances must have no network device"

        # An echo server inside: busybox nc runs cat for each connection (-ll: keeps listening).
        listener = "nc -ll -p 7000 -e cat"
        started = inst.execute(["sh", "-c", f"setsid sh -c '{listener}' </dev/null >/dev/null 2>&1 &"])
        assert started.exit_code == 0
        inst.devices["fwd"] = {
            "type": "proxy",
            "listen": "tcp:127.0.0.1:17001",
            "connect": "tcp:127.0.0.1:7000",
        }
        inst.save(wait=True)

        # The proxy listens in LXD's network namespace, not on this host's loopback.
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", 17001), timeout=1).close()
        client = echo_in_netns(lxd, 17001, "ping-through-proxy")
        assert client.returncode == 0, client.stderr
        assert client.stdout.strip() == "ping-through-proxy"
    finally:
        inst.stop(force=True, wait=True)
        inst.delete(wait=True)
    assert not lxd.client().instances.exists(name)


# --- sshd -----------------------------------------------------------------------------------


async def test_sshd_runs_a_command(sshd: SshServer) -> None:
    assert sshd.url == f"ssh://{sshd.user}@127.0.0.1:{sshd.port}"
    async with asyncssh.connect(
        sshd.host,
        port=sshd.port,
        username=sshd.user,
        client_keys=[str(sshd.client_key)],
        known_hosts=str(sshd.known_hosts),
        agent_path=None,
        config=None,
    ) as conn:
        result = await conn.run("echo ok", check=True)
    assert result.stdout == "ok\n"


async def test_sshd_rejects_a_wrong_host_key(sshd: SshServer, tmp_path: Path) -> None:
    other = asyncssh.generate_private_key("ssh-ed25519")
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"[{sshd.host}]:{sshd.port} {other.export_public_key().decode()}")
    opts = sshd.asyncssh_options() | {"known_hosts": str(wrong)}
    with pytest.raises(asyncssh.HostKeyNotVerifiable):
        async with asyncssh.connect(**opts):
            pass


async def test_sshd_session_child_can_be_killed(sshd: SshServer) -> None:
    before = set(sshd.session_children())
    conn = await asyncssh.connect(**sshd.asyncssh_options())
    try:
        assert (await conn.run("echo ok", check=True)).stdout == "ok\n"
        new = set(sshd.session_children()) - before
        assert len(new) == 1
        os.kill(new.pop(), signal.SIGKILL)
        await asyncio.wait_for(conn.wait_closed(), 10)
    finally:
        conn.close()
    assert sshd.alive()


async def test_make_sshd_starts_several(make_sshd: Callable[..., SshServer]) -> None:
    servers = [make_sshd(), make_sshd()]
    assert len({s.port for s in servers}) == 2
    for server in servers:
        async with asyncssh.connect(**server.asyncssh_options()) as conn:
            assert (await conn.run("echo ok", check=True)).stdout == "ok\n"
    # Each server has its own host key: one server's known_hosts does not vouch for the other.
    crossed = servers[0].asyncssh_options() | {"known_hosts": str(servers[1].known_hosts)}
    with pytest.raises(asyncssh.HostKeyNotVerifiable):
        async with asyncssh.connect(**crossed):
            pass
