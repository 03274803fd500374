"""Docker pulling images with progress, with the docker CLI's registry credentials."""

from __future__ import annotations

from backends.docker_calls import EngineCalls


class PullCalls(EngineCalls):
    """A base of `DockerBackend`: the calls this module's docstring names."""
