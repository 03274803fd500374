"""A host's Docker as a feed: reached through its session, followed through its event stream."""

from __future__ import annotations

from collections.abc import AsyncIterator

from backends.docker import DockerBackend
from backends.docker_models import ContainerChange
from backends.hosts import HostSession
from tui.models.host_feed import FeedSource, HostFeed, Lost


class DockerSource(FeedSource[DockerBackend, ContainerChange]):
    """Docker's container list, kept current by its events (`DockerBackend.watch`, which
    reconnects by itself and says when the engine went away)."""

    engine = "Docker"

    async def connect(self, session: HostSession) -> DockerBackend:
        """The host's Docker socket (forwarded for an SSH host, once its connection is up)."""
        return await DockerBackend.for_session(session)

    async def follow(
        self, feed: HostFeed[DockerBackend, ContainerChange], backend: DockerBackend
    ) -> AsyncIterator[ContainerChange | Lost]:
        """A full list, then the containers each burst of events names; `Lost` while it is away."""
        async for change in backend.watch():
            yield Lost(change.error) if change.error else change


DockerFeed = HostFeed[DockerBackend, ContainerChange]
"""One host's containers as the Containers pane (and the views over Docker) read them."""
