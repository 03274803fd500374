"""Docker running a new container from an image: name, command, env, ports, mounts, network,
restart policy and limits."""

from __future__ import annotations

from backends.docker_calls import EngineCalls


class RunCalls(EngineCalls):
    """A base of `DockerBackend`: the calls this module's docstring names."""
