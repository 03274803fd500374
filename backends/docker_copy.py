"""Docker copying files in and out of a container, streamed as tar."""

from __future__ import annotations

from backends.docker_calls import EngineCalls


class CopyCalls(EngineCalls):
    """A base of `DockerBackend`: the calls this module's docstring names."""
