"""Driving the installed `berth` in a real terminal: a private tmux server, keys in, screen out."""

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from engines.required import unavailable


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
