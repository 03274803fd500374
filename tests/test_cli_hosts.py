"""The installed `berth` CLI over SSH hosts: --host NAME|all|URL, --accept-new, `hosts`, `hosts add`."""

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_helpers import berth
from docker_helpers import Spawn
from engines.dockerd import DockerEngine
from engines.sshd import SshServer, free_port, keygen
from ssh_helpers import SshHost, known_hosts
from test_ssh_hosts import fingerprint_from_line, fingerprint_of

from backends.config import Config, HostConfig, load_config, save_config


def inventory(tmp_path: Path, *hosts: HostConfig) -> Path:
    path = tmp_path / "config.toml"
    save_config(Config(hosts=list(hosts)), path)
    return path


@pytest.mark.engines
def test_unknown_key_refused_without_accept_new_then_recorded_with_it(
    sshd: SshServer, dockerd: DockerEngine, spawn: Spawn, ssh_host: SshHost, tmp_path: Path
) -> None:
    c = spawn()
    config = inventory(tmp_path, ssh_host(sshd, trusted=False, docker_socket=str(dockerd.socket)))
    refused = berth(config, "--host", "box", "ps")
    assert refused.returncode == 1
    assert "not known" in refused.stderr and fingerprint_of(sshd) in refused.stderr
    assert "--accept-new" in refused.stderr and not known_hosts().exists()

    accepted = berth(config, "--host", "box", "--accept-new", "ps")
    assert accepted.returncode == 0, accepted.stderr
    assert c.name in accepted.stdout
    assert f"[127.0.0.1]:{sshd.port} ssh-ed25519" in known_hosts().read_text()
    again = berth(config, "--host", "box", "--json", "ps")  # known now: no flag needed
    assert c.id in {row["id"] for row in json.loads(again.stdout)}


@pytest.mark.engines
def test_changed_key_refused_even_with_accept_new(sshd: SshServer, ssh_host: SshHost, tmp_path: Path) -> None:
    impostor = keygen(tmp_path / "impostor", "impostor")
    known_hosts().parent.mkdir(mode=0o700, exist_ok=True)
    known_hosts().write_text(f"[127.0.0.1]:{sshd.port} {impostor}\n")
    config = inventory(tmp_path, ssh_host(sshd, trusted=False))
    out = berth(config, "--host", "box", "--accept-new", "ps")
    assert out.returncode == 1 and "CHANGED" in out.stderr
    assert fingerprint_of(sshd) in out.stderr and fingerprint_from_line(impostor, tmp_path) in out.stderr
    assert known_hosts().read_text() == f"[127.0.0.1]:{sshd.port} {impostor}\n"


@pytest.mark.engines
def test_adhoc_url_with_a_wrong_user_is_permission_denied(
    sshd: SshServer, ssh_host: SshHost, tmp_path: Path
) -> None:
    ssh_host(sshd)  # its key is known
    out = berth(tmp_path / "none.toml", "--host", f"ssh://no-such-user@127.0.0.1:{sshd.port}", "ps")
    assert out.returncode == 1
    assert f"Permission denied for no-such-user@127.0.0.1:{sshd.port}" in out.stderr


@pytest.mark.engines
def test_all_hosts_ps_and_hosts_json(
    make_sshd: Callable[..., SshServer],
    dockerd: DockerEngine,
    spawn: Spawn,
    ssh_host: SshHost,
    tmp_path: Path,
) -> None:
    c = spawn()
    live = [ssh_host(make_sshd(), f"web-{i}", docker_socket=str(dockerd.socket)) for i in (1, 2)]
    dead = HostConfig("dead", f"ssh://root@127.0.0.1:{free_port()}")
    local = HostConfig("local", docker_socket=str(dockerd.socket), lxd_socket="/nonexistent/lxd.sock")
    config = inventory(tmp_path, local, *live, dead)

    listed = berth(config, "--host", "all", "--json", "ps")
    assert listed.returncode == 1  # a host failed: scripts notice, the others still print
    assert "dead: Cannot reach root@127.0.0.1" in listed.stderr and "Connection refused" in listed.stderr
    rows = json.loads(listed.stdout)
    assert {r["host"] for r in rows if r["id"] == c.id} == {"local", "web-1", "web-2"}
    table = berth(config, "--host", "all", "ps").stdout.splitlines()
    assert table[0].split()[:2] == ["HOST", "NAME"]

    probed = berth(config, "--json", "hosts")
    states = {h["name"]: h for h in json.loads(probed.stdout)}
    assert probed.returncode == 1
    assert set(states["web-1"]) >= {"name", "url", "state", "latency_ms", "engines"}
    assert states["web-1"]["state"] == "online" and states["web-1"]["latency_ms"] > 0
    assert states["web-1"]["engines"]["docker"]["state"] == "up"
    assert states["web-1"]["engines"]["lxd"]["state"] == "absent"
    assert states["local"]["state"] == "online" and states["dead"]["state"] == "offline"
    assert "Connection refused" in states["dead"]["detail"]


def test_hosts_add_writes_the_inventory_and_refuses_bad_input(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    key = tmp_path / "id_ed25519"
    added = berth(config, "hosts", "add", "web-9", "ssh://ops@10.0.0.9:2222", "--identity", str(key))
    assert added.returncode == 0, added.stderr
    host = load_config(config).host("web-9")
    assert host is not None and host.url == "ssh://ops@10.0.0.9:2222" and host.identity == str(key)
    before = config.read_text()
    duplicate = berth(config, "hosts", "add", "web-9", "ssh://ops@10.0.0.10")
    assert duplicate.returncode != 0 and "already a host called 'web-9'" in duplicate.stderr
    malformed = berth(config, "hosts", "add", "web-10", "ops@10.0.0.10")
    assert malformed.returncode == 2 and "expected local or ssh://user@host[:port]" in malformed.stderr
    reserved = berth(config, "hosts", "add", "all", "local")
    assert reserved.returncode == 2 and "'all' is reserved" in reserved.stderr
    assert config.read_text() == before
