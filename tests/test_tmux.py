"""End to end: the installed `berth` in a real terminal (tmux), driven by keys, read off the screen."""

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from docker_helpers import Spawn
from engines.dockerd import DockerEngine
from engines.required import unavailable

from backends.config import Config, HostConfig, load_config, save_config


class Tmux:
    """A private tmux server (own socket name) running one program in a 120x32 window."""

    def __init__(self) -> None:
        self.socket = f"berth-test-{uuid.uuid4().hex[:8]}"

    def run(self, *args: str) -> str:
        # An explicit environment: with none, the child gets the C-level one, where something in
        # the test process has set COLUMNS=80 and LINES=24, which would pin berth to that size.
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "TMUX")}
        result = subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=10, env=env
        )
        if result.returncode != 0:
            raise RuntimeError(f"tmux {args[0]} failed: {result.stderr.strip()}")
        return result.stdout

    def start(self, command: list[str], env: dict[str, str]) -> None:
        env_args = [arg for key, value in env.items() for arg in ("-e", f"{key}={value}")]
        self.run(
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "berth",
            "-x",
            "120",
            "-y",
            "32",
            *env_args,
            *command,
        )

    def alive(self) -> bool:
        try:
            return "berth" in self.run("list-sessions", "-F", "#{session_name}")
        except RuntimeError:
            return False

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "berth")

    def keys(self, *keys: str, literal: bool = False) -> None:
        self.run("send-keys", "-t", "berth", *(["-l"] if literal else []), *keys)

    def wait_for(self, text: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            if not self.alive():
                raise AssertionError(f"berth exited while waiting for {text!r}; last screen:\n{screen}")
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.1)
        raise AssertionError(f"{text!r} never appeared; screen:\n{screen}")

    def wait_gone(self, text: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while text in (screen := self.screen()):
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} never went away; screen:\n{screen}")
            time.sleep(0.1)

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=10)


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    if shutil.which("tmux") is None:
        unavailable("tmux is not installed (apt-get install tmux)")
    session = Tmux()
    yield session
    session.kill()


def berth_env(home: Path) -> dict[str, str]:
    """A colour terminal and the test's own XDG folders, nothing else from this process."""
    return {
        "TERM": "xterm-256color",
        "COLORTERM": "truecolor",
        "HOME": str(home),  # the test's own ~/.ssh
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_STATE_HOME": str(home / "state"),
        "XDG_RUNTIME_DIR": str(home / "run"),
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    }


def installed_berth() -> str:
    candidate = Path(sys.executable).parent / "berth"
    found = str(candidate) if candidate.exists() else shutil.which("berth")
    if found is None:
        pytest.fail("the berth console script is not installed: run pip install -e .[test]")
    return found


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
    tmux.wait_for("BUSY/WORKERS")  # the Providers table
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
