"""Docker disk usage (`GET /system/df`, cached briefly) and pruning each kind."""

from __future__ import annotations

from backends.docker_calls import EngineCalls


class DiskCalls(EngineCalls):
    """A base of `DockerBackend`: the calls this module's docstring names."""
