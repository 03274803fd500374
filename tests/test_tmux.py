"""End to end: the installed `berth` in a real terminal (tmux), driven by keys, read off the screen."""

import time
from pathlib import Path

import pytest
from docker_helpers import Spawn
from engines.dockerd import DockerEngine
from tmux_helpers import Tmux, berth_env, installed_berth

from backends.config import Config, HostConfig, load_config, save_config


def test_installed_berth_in_a_real_terminal(
    tmux: Tmux, offline_config: Config, isolated_home: Path, tmp_path: Path
) -> None:
    assert offline_config.path is not None
    save_config(offline_config, offline_config.path)
    env = berth_env(isolated_home)
    tmux.start([installed_berth(), "--config", str(offline_config.path)], env)
    screen = tmux.wait_for("docker absent")
    header = screen.splitlines()[0]
    assert "berth" in header and "local" in header and "offline" in header
    assert "does not answer" in screen  # the Containers pane says why it shows nothing

    tmux.keys("2")
    tmux.wait_for("SNAPS")  # the Members table
    tmux.keys("4")
    tmux.wait_for("RUNNING/WORKERS")  # the Providers table
    tmux.wait_for("(embedded)")  # the console's own broker came up on its free port

    tmux.keys("?")
    tmux.wait_for("Keys and commands")
    tmux.wait_for("pane.next")
    tmux.keys("Escape")
    # A key sent right after Escape would reach berth as Alt+key: wait for the help to close.
    tmux.wait_gone("Keys and commands")

    tmux.keys(":")
    tmux.keys("theme berth-light", literal=True)
    tmux.keys("Enter")
    deadline = time.monotonic() + 10
    while load_config(offline_config.path).ui.theme != "berth-light":
        assert time.monotonic() < deadline, f"the theme never reached the config; screen:\n{tmux.screen()}"
        time.sleep(0.1)

    tmux.keys(":")
    tmux.keys("host web-1", literal=True)
    tmux.keys("Enter")
    tmux.wait_for("web-1")

    tmux.keys("q")
    deadline = time.monotonic() + 10
    while tmux.alive():
        assert time.monotonic() < deadline, f"berth did not quit on q; screen:\n{tmux.screen()}"
        time.sleep(0.1)


@pytest.mark.engines
@pytest.mark.parametrize("where", ["local", "ssh"])
def test_exec_shell_suspends_the_console_and_comes_back(
    tmux: Tmux,
    dockerd: DockerEngine,
    spawn: Spawn,
    isolated_home: Path,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    where: str,
) -> None:
    """`e` opens a shell in the container; over SSH it goes through berth's forwarded socket."""
    c = spawn()
    if where == "ssh":
        host = request.getfixturevalue("ssh_host")(
            request.getfixturevalue("sshd"), docker_socket=str(dockerd.socket)
        )
    else:
        host = HostConfig("local", docker_socket=str(dockerd.socket))
    config = Config(hosts=[host], path=tmp_path / "config.toml")
    save_config(config, tmp_path / "config.toml")
    env = berth_env(isolated_home)
    tmux.start([installed_berth(), "--config", str(tmp_path / "config.toml")], env)
    tmux.wait_for(c.name)
    tmux.keys("/")
    tmux.keys(c.name, literal=True)
    tmux.keys("Enter")
    tmux.wait_for("esc Clear filter")  # back on the table: the footer offers to clear the filter
    tmux.keys("e")
    tmux.wait_for("/ #")  # busybox sh root prompt, in place of the console
    tmux.keys("echo inside-$((6*7))", literal=True)
    tmux.keys("Enter")
    tmux.wait_for("inside-42")
    tmux.keys("exit", literal=True)
    tmux.keys("Enter")
    screen = tmux.wait_for("PROJECT/SERVICE")  # the console is back
    assert c.name in screen
    tmux.keys("q")
