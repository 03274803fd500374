"""Compose projects: up, down, restart and stop (and a service's pull and up) through the host's
compose CLI, on berth's socket.

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
SERVICE_ACTIONS = {
    "pull": ["pull"],
    "up": ["up", "-d"],
}
"""What is run on one service of a project (an update: pull its image, then recreate it); `up`
without --remove-orphans, which would reach past the service."""


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


def compose_argv(
    project: ComposeProject, action: str, command: list[str], service: str | None = None
) -> list[str]:
    """The full command line for `action` on `project` (on its `service` only, when given) with
    `command`, from its labelled files."""
    actions = COMPOSE_ACTIONS if service is None else SERVICE_ACTIONS
    if action not in actions:
        raise Invalid(f"Unknown compose action {action!r}.", f"Use one of {', '.join(actions)}.")
    argv = [*command, "-p", project.name]
    for f in project.config_files:
        argv += ["-f", f]
    if project.working_dir:
        argv += ["--project-directory", project.working_dir]
    return argv + actions[action] + ([service] if service is not None else [])


async def run_compose(
    session: HostSession, project: ComposeProject, action: str, service: str | None = None
) -> str:
    """Run `action` on `project` (on its `service` only, when given) on the host, against its
    Docker; the output on success."""
    on = {"service": service} if service is not None else {}
    with audited(session.host.name, f"compose.{action}", [project.name], **on):
        argv = compose_argv(project, action, await compose_command(session), service)
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
        what = project.name if service is None else f"{service} in {project.name}"
        raise BerthError(f"compose {action} of {what!r} failed: {last}", "See `berth` error log.")
    return text
