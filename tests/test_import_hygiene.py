"""backends/ is the engine and must never pull in the UI toolkits (DESIGN: rules of the house); a
start loads only what it needs (the quick verbs and the console's first screen)."""

import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import BERTH
from docker_helpers import Spawn
from engines.dockerd import DockerEngine
from engines.lxd import LxdEngine

import backends

ROOT = Path(__file__).resolve().parent.parent


def all_backend_modules() -> list[str]:
    return ["backends"] + [m.name for m in pkgutil.walk_packages(backends.__path__, prefix="backends.")]


def test_every_backend_module_imports_without_textual_or_rich() -> None:
    modules = all_backend_modules()
    assert "backends.config" in modules and "backends.errors" in modules
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich'))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "", f"backends loaded UI modules: {result.stdout.strip()}"


# --- what a start loads (issue 16: start-up) ----------------------------------------------------

SLOW_TO_LOAD = ("aiohttp", "wasmtime", "pylxd", "asyncssh", "msgspec")
"""Libraries that cost tens of milliseconds each to import: loaded on first use only."""


def loaded_by(argv: list[str], env: dict[str, str] | None = None) -> set[str]:
    """The top-level packages `python -X importtime ARGV...` imported, from its import trace."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env or dict(os.environ),
        timeout=120,
    )
    trace = [line for line in result.stderr.splitlines() if line.startswith("import time:")]
    assert trace, f"no import trace: {result.stderr[-2000:]}"
    return {line.rsplit("|", 1)[1].strip().split(".")[0] for line in trace}


@pytest.mark.parametrize("verb", [["--version"], ["config", "path"]])
def test_quick_verbs_load_none_of_the_slow_libraries(verb: list[str], tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    loaded = loaded_by([BERTH, "--config", str(config), *verb])
    assert "click" in loaded and "backends" in loaded  # the trace is of the real command
    slow = sorted(loaded & set(SLOW_TO_LOAD))
    assert not slow, f"berth {' '.join(verb)} loaded {slow}"
    assert "textual" not in loaded


HIDDEN_ON_THE_FIRST_SCREEN = (
    *("pylxd", "asyncssh", "wasmtime", "docker", "aiohttp", "msgspec"),
    *("tui.panes.members", "tui.panes.wasm", "tui.panes.providers"),
    *("backends.lxd", "backends.wasm.pool", "backends.broker.protocol"),
    *("tui.keymap", "tui.screens.help", "tui.screens.jobs", "tui.screens.audit"),
)
"""What the console's first screen must not load: libraries slow to load, and the modules of
what is not on show (a module name, or a top-level package and everything in it)."""

FIRST_SCREEN = """
import asyncio, sys, time
from pathlib import Path

from backends.config import Config, HostConfig, UiConfig
from tui.app import BerthApp

docker_socket, lxd_socket, name, folder, watched = sys.argv[1:]


async def main() -> None:
    host = HostConfig("local", docker_socket=docker_socket, lxd_socket=lxd_socket)
    app = BerthApp(Config(ui=UiConfig(), hosts=[host], path=Path(folder) / "config.toml"))
    async with app.run_test(size=(160, 50)) as pilot:
        deadline = time.monotonic() + 60
        while name not in app.export_screenshot():
            assert time.monotonic() < deadline, "the container's name never showed"
            await pilot.pause(0.05)
        await pilot.pause(2.0)  # and a while after: nothing loads them behind the first screen either
        wanted = watched.split(",")
        print(",".join(sorted(m for m in sys.modules if m in wanted or m.split(".")[0] in wanted)))
        await pilot.press("3")  # the Wasm pane: built, and its modules loaded, when shown
        deadline = time.monotonic() + 60
        while "MODULE" not in app.export_screenshot():  # the task table's header
            assert time.monotonic() < deadline, "the Wasm pane never showed"
            await pilot.pause(0.05)
        print(",".join(m for m in ("backends.wasm.pool", "tui.panes.wasm") if m in sys.modules))


asyncio.run(main())
"""


@pytest.mark.engines
def test_the_consoles_first_screen_loads_no_lxd_ssh_or_wasm_library(
    dockerd: DockerEngine, lxd: LxdEngine, spawn: Spawn, tmp_path: Path
) -> None:
    """The Containers pane of a local host shows its rows (the host has an LXD too) without
    pylxd, asyncssh, wasmtime, the docker SDK or aiohttp (client or server: berth talks to the
    engine's socket with its own HTTP client), nor any module of the panes not on show (Members,
    Wasm, Providers), their backends (LXD, the task pool, the broker's protocol and msgspec),
    help or the keymap check: those load when first wanted (3 shows the Wasm pane and loads its
    modules)."""
    container = spawn()
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            FIRST_SCREEN,
            str(dockerd.socket),
            str(lxd.socket),
            container.name,
            str(tmp_path),
            ",".join(HIDDEN_ON_THE_FIRST_SCREEN),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    first_screen, wasm_shown = result.stdout.split("\n")[:2]
    assert first_screen == "", f"the first screen loaded {first_screen}"
    assert wasm_shown == "backends.wasm.pool,tui.panes.wasm"
