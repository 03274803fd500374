"""A host's LXD as a feed: its member instances, read again every few seconds while shown."""

from __future__ import annotations

from backends.hosts import HostSession
from backends.lxd import LxdBackend
from backends.lxd_models import MemberInstance
from tui.models.host_feed import HostFeed, PollSource

POLL_SECONDS = 5.0
"""How often the list is read again while its view is on screen (and after every action)."""

Instances = dict[str, MemberInstance]
"""A host's member instances by name."""


class LxdSource(PollSource[LxdBackend, Instances]):
    """LXD's member instances: LXD has no event stream berth follows, so the list is polled."""

    engine = "LXD"
    every = POLL_SECONDS

    async def connect(self, session: HostSession) -> LxdBackend:
        """The host's LXD socket (forwarded for an SSH host, once its connection is up)."""
        return await LxdBackend.for_session(session)

    async def read(self, backend: LxdBackend) -> Instances:
        """Every member instance on the host."""
        return {instance.name: instance for instance in await backend.members()}


LxdFeed = HostFeed[LxdBackend, Instances]
"""One host's member instances as the Members pane reads them."""
