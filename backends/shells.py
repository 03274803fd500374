"""Shells a person opens in a container or an instance: the argv the console runs in the terminal
it steps aside from, recorded in the audit log as the shell opens (container.exec, member.shell).

What happens inside a shell is the person's own and is not recorded; that one was opened is.
"""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

from backends.audit import audit
from backends.errors import NotFound

if TYPE_CHECKING:  # the engines' modules are loaded by whoever made the backend
    from backends.docker import DockerBackend
    from backends.lxd import LxdBackend

_SHELL = "command -v bash >/dev/null && exec bash || exec sh"
"""bash where the image has it, else sh."""


def container_shell(backend: DockerBackend, container_id: str, name: str) -> list[str]:
    """argv for an interactive shell in a container, through the `docker` client aimed at the
    backend's socket (the forwarded one for an SSH host: the shell goes through berth's tunnel).

    NotFound when the docker command is not installed here. Recorded as container.exec, by id and
    name."""
    docker = shutil.which("docker")
    if docker is None:
        raise NotFound("The docker command is not installed here; a shell needs it.")
    argv = [docker, "-H", f"unix://{backend.socket_path}", "exec", "-it", container_id, "sh", "-c", _SHELL]
    audit(backend.host_name, "container.exec", [container_id], names=[name])
    return argv


def member_shell(backend: LxdBackend, name: str) -> list[str]:
    """argv for an interactive root shell in instance `name` (see `LxdBackend.shell_argv`).
    Recorded as member.shell."""
    argv = backend.shell_argv(name)
    audit(backend.host_name, "member.shell", [name])
    return argv
