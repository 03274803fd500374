"""Hosts over SSH against the test sshd: forwarded engine sockets, host keys, reconnects."""

import asyncio
import dataclasses
import os
import signal
import stat
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from docker_helpers import Spawn
from engines.dockerd import DockerEngine
from engines.lxd import LxdEngine, launch_busybox
from engines.sshd import SshServer, keygen
from ssh_helpers import SshHost, known_hosts

from backends.config import HostConfig
from backends.docker import DockerBackend
from backends.errors import Denied, HostKeyChanged, HostKeyUnknown, NotFound
from backends.hosts import HostSession, probe_host
from backends.lxd import LxdBackend

pytestmark = pytest.mark.engines


async def test_tunnel_reaches_the_same_docker_and_lxd(
    sshd: SshServer, dockerd: DockerEngine, lxd: LxdEngine, spawn: Spawn, ssh_host: SshHost
) -> None:
    chatty = spawn("for i in $(seq 1 300); do echo line $i; done; echo oops >&2; sleep 600")
    host = ssh_host(sshd, docker_socket=str(dockerd.socket), lxd_socket=str(lxd.socket))
    session = HostSession(host)
    direct = DockerBackend("direct", str(dockerd.socket))
    tunnelled = await DockerBackend.for_session(session)
    try:
        assert tunnelled.socket_path != str(dockerd.socket)
        listed = {c.id: c.name for c in await tunnelled.containers()}
        assert listed == {c.id: c.name for c in await direct.containers()}
        assert chatty.id in listed

        async def read(backend: DockerBackend) -> list[tuple[str, str]]:
            got = []
            async for batch in backend.logs(chatty.id, timestamps=True):
                got += [(line.stream, line.text) for line in batch]
            return got

        near: list[tuple[str, str]] = []
        while len(near) < 301:  # until the container has written everything
            near = await read(direct)
        far = await read(tunnelled)
        assert far == near and ("stderr", "oops") in far

        # Only berth may use the forwarded sockets: 0600 in a 0700 folder.
        forwarded = Path(tunnelled.socket_path)
        assert stat.S_IMODE(forwarded.stat().st_mode) == 0o600
        assert stat.S_IMODE(forwarded.parent.stat().st_mode) == 0o700

        state = await probe_host(session)
        engines = {e.engine: e for e in state.engines}
        assert state.state == "online" and engines["docker"].state == "up" and engines["lxd"].state == "up"
        assert engines["lxd"].socket == str(session.local_socket("lxd"))
        # The LXD backend runs unchanged through the forwarded socket.
        far_lxd = await LxdBackend.for_session(session)
        near_lxd = LxdBackend("direct", str(lxd.socket))
        instance = await asyncio.to_thread(launch_busybox, lxd, f"t-{uuid.uuid4().hex[:6]}", False)
        try:
            listed = [m.name for m in await far_lxd.members()]
            assert instance.name in listed and listed == [m.name for m in await near_lxd.members()]
        finally:
            await asyncio.to_thread(instance.delete, wait=True)
            await asyncio.gather(far_lxd.close(), near_lxd.close())
        # One SSH connection carries everything (the listener's children are per connection).
        assert len(sshd.session_children()) == 1
    finally:
        await asyncio.gather(direct.close(), tunnelled.close())
        await session.close()
    assert not forwarded.exists()


async def test_a_host_without_the_engine_says_where_it_looked(sshd: SshServer, ssh_host: SshHost) -> None:
    session = HostSession(ssh_host(sshd, docker_socket="/nonexistent/docker.sock"))
    try:
        with pytest.raises(NotFound, match=r"No docker socket on box \(looked at /nonexistent/docker.sock\)"):
            await DockerBackend.for_session(session)
    finally:
        await session.close()


async def test_unknown_key_is_reported_with_its_fingerprint_then_trusted(
    sshd: SshServer, dockerd: DockerEngine, ssh_host: SshHost
) -> None:
    host = ssh_host(sshd, trusted=False, docker_socket=str(dockerd.socket))
    session = HostSession(host)
    try:
        with pytest.raises(HostKeyUnknown) as caught:
            await session.ready()
        assert session.state == "untrusted"
        assert caught.value.fingerprint == fingerprint_of(sshd)
        assert not known_hosts().exists()  # nothing recorded until the user says so
        session.trust()
        await asyncio.wait_for(session.ready(), 15)
        assert session.state == "online"
        assert f"[127.0.0.1]:{sshd.port} ssh-ed25519" in known_hosts().read_text()
    finally:
        await session.close()


async def test_changed_key_is_refused_with_both_fingerprints(
    sshd: SshServer, ssh_host: SshHost, tmp_path: Path
) -> None:
    impostor = keygen(tmp_path / "other_host_key", "someone-else")
    known_hosts().parent.mkdir(mode=0o700, exist_ok=True)
    known_hosts().write_text(f"[127.0.0.1]:{sshd.port} {impostor}\n")
    before = known_hosts().read_text()
    session = HostSession(ssh_host(sshd, trusted=False), accept_new=True)
    try:
        with pytest.raises(HostKeyChanged) as caught:
            await session.ready()
    finally:
        await session.close()
    message = str(caught.value)
    assert fingerprint_of(sshd) in message and fingerprint_from_line(impostor, tmp_path) in message
    assert "CHANGED" in message and session.state == "refused"
    assert known_hosts().read_text() == before  # never overridden, not even with accept_new


@pytest.mark.parametrize("wrong", ["user", "key"])
async def test_wrong_user_or_key_is_permission_denied_for_user_at_host(
    sshd: SshServer, ssh_host: SshHost, tmp_path: Path, wrong: str
) -> None:
    good = ssh_host(sshd)
    user = "no-such-user" if wrong == "user" else sshd.user
    identity = good.identity
    if wrong == "key":
        keygen(tmp_path / "stranger", "not-authorised")
        identity = str(tmp_path / "stranger")
    session = HostSession(HostConfig("box", f"ssh://{user}@127.0.0.1:{sshd.port}", identity=identity))
    try:
        with pytest.raises(Denied, match=f"Permission denied for {user}@127.0.0.1:{sshd.port}"):
            await session.ready()
        assert session.state == "offline"  # and it keeps retrying, in case the key gets authorised
    finally:
        await session.close()


async def test_ssh_config_alias_user_port_and_identity_are_honoured(
    sshd: SshServer, dockerd: DockerEngine, ssh_host: SshHost
) -> None:
    ssh_host(sshd)  # records the host key
    config = Path("~/.ssh/config").expanduser()
    config.write_text(
        f"Host testbox\n  HostName 127.0.0.1\n  Port {sshd.port}\n  User {sshd.user}\n"
        f"  IdentityFile {sshd.client_key}\n"
    )
    session = HostSession(HostConfig("aliased", "ssh://testbox", docker_socket=str(dockerd.socket)))
    try:
        backend = await DockerBackend.for_session(session)
        assert (await backend.version())["ApiVersion"]
        await backend.close()
    finally:
        await session.close()


async def test_reconnects_after_the_connection_dies_and_logs_resume_exactly(
    sshd: SshServer, dockerd: DockerEngine, spawn: Spawn, ssh_host: SshHost
) -> None:
    counter = spawn("i=0; while :; do i=$((i+1)); echo $i; sleep 0.02; done")
    session = HostSession(ssh_host(sshd, docker_socket=str(dockerd.socket)))
    states: list[str] = []
    session.subscribe(lambda s: states.append(s.state))
    backend = await DockerBackend.for_session(session)
    seen: list[int] = []

    async def follow() -> None:
        async for batch in backend.logs(counter.id, follow=True):
            seen.extend(int(line.text) for line in batch if line.stream != "system")

    reader = asyncio.create_task(follow())
    try:
        await wait_until(lambda: len(seen) > 20, 10)
        (child,) = sshd.session_children()
        os.kill(child, signal.SIGKILL)
        await wait_until(lambda: "reconnecting" in states, 10)
        lost_at = len(seen)
        await wait_until(lambda: session.state == "online", 10)
        await wait_until(lambda: len(seen) > lost_at + 50, 15)
    finally:
        reader.cancel()
        await backend.close()
        await session.close()
    assert seen == list(range(seen[0], seen[0] + len(seen))), "lines were lost or doubled"
    assert session.connects == 2


async def wait_until(check: object, timeout: float) -> None:
    """Poll `check()` every 20 ms until it is true, failing after `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


def fingerprint_of(server: SshServer) -> str:
    """The SHA256 fingerprint of the server's host key, as ssh-keygen -l prints it."""
    return fingerprint_from_line(server.host_key_pub, server.root)


def fingerprint_from_line(public_line: str, folder: Path) -> str:
    """The SHA256 fingerprint of a public key line (asked of ssh-keygen, the reference)."""
    import subprocess

    path = folder / "fingerprint.pub"
    path.write_text(public_line + "\n")
    out = subprocess.run(["ssh-keygen", "-l", "-f", str(path)], capture_output=True, text=True, check=True)
    return out.stdout.split()[1]


async def test_jump_host_from_the_inventory(
    make_sshd: Callable[..., SshServer], dockerd: DockerEngine, ssh_host: SshHost
) -> None:
    jump_server = make_sshd()
    bastion = ssh_host(jump_server, "bastion")
    inner = ssh_host(make_sshd(), "inner", docker_socket=str(dockerd.socket))
    inner = dataclasses.replace(inner, jump="bastion")
    inventory = {h.name: h for h in (bastion, inner)}
    session = HostSession(inner, inventory.get)
    try:
        backend = await DockerBackend.for_session(session)
        assert (await backend.version())["ApiVersion"]
        await backend.close()
        assert len(jump_server.session_children()) == 1  # the way in went through the bastion
    finally:
        await session.close()
    await wait_until(lambda: not jump_server.session_children(), 5)  # closed with the connection
