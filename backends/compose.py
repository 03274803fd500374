"""Compose projects: up, down, restart and stop through the host's compose CLI, on berth's socket.

berth does not reimplement compose: it runs `docker compose` (the plugin) or `docker-compose` on
the host itself (over its SSH connection when it is remote), with `DOCKER_HOST` pointing at the
engine berth works on and the project's own files, found in the labels compose put on its
containers.
"""

from __future__ import annotations

import weakref

from backends.audit import audited
from backends.docker_models import ComposeProject
from backends.errors import BerthError, Invalid, NotFound
from backends.hosts import HostSession

COMPOSE_ACTIONS = {
    "up": ["up", "-d", "--remove-orphans"],
    "down": ["down"],
    "restart": ["restart"],
    "stop": ["stop"],
}


_COMMANDS: weakref.WeakKeyDictionary[HostSession, list[str]] = weakref.WeakKeyDictionary()
_PROBE = "docker compose version >/dev/null 2>&1 && echo plugin || command -v docker-compose || true"
_MISSING = 'for f in "$@"; do [ -f "$f" ] || echo "$f"; done'


async def compose_command(session: HostSession) -> list[str]:
    """The host's compose CLI: `docker compose` when the plugin answers, else `docker-compose`."""
    known = _COMMANDS.get(session)
    if known is not None:
        return known
    found = (await session.run(["sh", "-c", _PROBE])).output.strip().splitlines()
    if not found:
        raise NotFound(
            f"Neither `docker compose` nor `docker-compose` is installed on {session.host.name}.",
            "Install the compose plugin (docker-compose-plugin) or docker-compose there.",
        )
    command = ["docker", "compose"] if found[-1] == "plugin" else [found[-1]]
    _COMMANDS[session] = command
    return command


def compose_argv(project: ComposeProject, action: str, command: list[str]) -> list[str]:
    """The full command line for `action` on `project` with `command`, from its labelled files."""
    if action not in COMPOSE_ACTIONS:
        raise Invalid(f"Unknown compose action {action!r}.", f"Use one of {', '.join(COMPOSE_ACTIONS)}.")
    argv = [*command, "-p", project.name]
    for f in project.config_files:
        argv += ["-f", f]
    if project.working_dir:
        argv += ["--project-directory", project.working_dir]
    return argv + COMPOSE_ACTIONS[action]


async def run_compose(session: HostSession, project: ComposeProject, action: str) -> str:
    """Run `action` on `project` on the host, against its Docker; the output on success."""
    with audited(session.host.name, f"compose.{action}", [project.name]):
        argv = compose_argv(project, action, await compose_command(session))
        files = project.config_files
        missing = (await session.run(["sh", "-c", _MISSING, "sh", *files])).output.split()
        if not files or missing:
            raise NotFound(
                f"The compose files of project {project.name!r} are not on {session.host.name}"
                + (f" ({', '.join(missing)})." if missing else "."),
                "Run compose where the project lives.",
            )
        socket = await session.remote_socket("docker")
        result = await session.run(argv, env={"DOCKER_HOST": f"unix://{socket}"}, cwd=project.working_dir)
    text = result.output.strip()
    if result.returncode != 0:
        last = text.splitlines()[-1] if text else f"exit status {result.returncode}"
        raise BerthError(f"compose {action} of {project.name!r} failed: {last}", "See `berth` error log.")
    return text
