"""Docker updating a container to a newly pulled image: recreate safely, swap back on failure."""

from __future__ import annotations

from backends.docker_calls import EngineCalls


class UpdateCalls(EngineCalls):
    """A base of `DockerBackend`: the calls this module's docstring names."""
