"""Compose projects: up, down, restart and stop through the host's compose CLI, on berth's socket.

berth does not reimplement compose: it runs `docker compose` (the plugin) or `docker-compose`
with `DOCKER_HOST` pointing at the same socket the rest of berth uses, and the project's own
files, found in the labels compose put on its containers.
"""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
import subprocess
from pathlib import Path

from backends.audit import audited
from backends.docker_models import ComposeProject
from backends.errors import BerthError, Invalid, NotFound

COMPOSE_ACTIONS = {
    "up": ["up", "-d", "--remove-orphans"],
    "down": ["down"],
    "restart": ["restart"],
    "stop": ["stop"],
}


@functools.cache
def compose_command() -> list[str]:
    """The compose CLI here: `docker compose` when the plugin answers, else `docker-compose`."""
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    if legacy:
        return [legacy]
    raise NotFound(
        "Neither `docker compose` nor `docker-compose` is installed here.",
        "Install the compose plugin (docker-compose-plugin) or docker-compose.",
    )


def compose_argv(project: ComposeProject, action: str) -> list[str]:
    """The full command line for `action` on `project`, from the files in its labels."""
    if action not in COMPOSE_ACTIONS:
        raise Invalid(f"Unknown compose action {action!r}.", f"Use one of {', '.join(COMPOSE_ACTIONS)}.")
    files = project.config_files
    missing = [f for f in files if not Path(f).is_file()]
    if not files or missing:
        raise NotFound(
            f"The compose files of project {project.name!r} are not on this machine"
            + (f" ({', '.join(missing)})." if missing else "."),
            "Run compose where the project lives, or start berth there.",
        )
    argv = [*compose_command(), "-p", project.name]
    for f in files:
        argv += ["-f", f]
    if project.working_dir:
        argv += ["--project-directory", project.working_dir]
    return argv + COMPOSE_ACTIONS[action]


async def run_compose(host: str, project: ComposeProject, action: str, socket_path: str) -> str:
    """Run `action` on `project` against the engine at `socket_path`; its output on success."""
    with audited(host, f"compose.{action}", [project.name]):
        return await _run(project, action, socket_path)


async def _run(project: ComposeProject, action: str, socket_path: str) -> str:
    # Probing the CLI and checking the files block: off the event loop.
    argv = await asyncio.to_thread(compose_argv, project, action)
    env = {**os.environ, "DOCKER_HOST": f"unix://{socket_path}"}
    proc = await asyncio.create_subprocess_exec(
        *argv,
        env=env,
        cwd=project.working_dir if project.working_dir and Path(project.working_dir).is_dir() else None,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    text = out.decode("utf-8", "replace").strip()
    if proc.returncode != 0:
        last = text.splitlines()[-1] if text else f"exit status {proc.returncode}"
        raise BerthError(f"compose {action} of {project.name!r} failed: {last}", "See `berth` error log.")
    return text
