"""What the Docker calls of every kind share: the engine's HTTP client and the host's name.

`DockerBackend` (backends/docker.py) is made of one class of calls per kind of resource, each
in its own module (volumes, networks, disk usage, pulls, updates, runs, copies); each is written
against this base, so it can use the client and name the host in its messages and audit records.
"""

from __future__ import annotations

from backends.engine_http import EngineHttp


class EngineCalls:
    """The state every kind of Docker call reads: set by `DockerBackend.__init__`."""

    host_name: str
    """The inventory host the engine is on, named in every message."""
    http: EngineHttp
    """The Engine API client over the host's (maybe forwarded) unix socket."""
