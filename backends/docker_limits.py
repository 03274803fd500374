"""Docker changing a running container's restart policy and limits, as `docker update` does
(`POST /containers/{id}/update`): memory, memory + swap, memory reservation, CPUs, processes."""

from __future__ import annotations

from typing import Any

from backends.audit import audited
from backends.docker_calls import EngineCalls
from backends.errors import Invalid
from backends.parse_container import RestartPolicy, written_restart_policy

UNLIMITED = {"memory_swap": -1, "pids": 0}
"""The limits `set_limits` can take away, each with the value that does it. The engine keeps the
others once set (0 leaves a memory, reservation or CPU limit as it is)."""


class LimitCalls(EngineCalls):
    """A base of `DockerBackend`: the calls this module's docstring names."""

    async def set_limits(
        self,
        container: str,
        *,
        name: str,
        restart: RestartPolicy | None = None,
        memory: int | None = None,
        memory_swap: int | None = None,
        memory_reservation: int | None = None,
        cpus: int | None = None,
        pids: int | None = None,
    ) -> None:
        """Change what is given of one container's settings (None: left as it is); `name` is its
        name, for the audit log. Sizes are bytes (`memory_swap` -1: no swap limit), `cpus` is
        NanoCpus, `pids` the most processes (0: no limit).

        A memory limit on a container that has no swap limit keeps it without one: the engine
        refuses a memory limit over the swap limit it has, and takes none as 0.
        """
        given = {
            "Memory": memory,
            "MemorySwap": memory_swap,
            "MemoryReservation": memory_reservation,
            "NanoCpus": cpus,
            "PidsLimit": pids,
        }
        body: dict[str, Any] = {key: value for key, value in given.items() if value is not None}
        if restart is not None:
            body["RestartPolicy"] = restart.to_api()
        if not body:
            raise Invalid("Nothing to change: give a restart policy or a limit.")
        doing = f"changing the limits of {container[:12]}"
        if memory is not None and memory_swap is None:
            inspected = await self.http.get_json(f"/containers/{container}/json", doing)
            if not (inspected.get("HostConfig") or {}).get("MemorySwap"):
                body["MemorySwap"] = -1
        # The audit record says what was asked for, in the Engine API's words.
        fields = {key: value for key, value in body.items() if key != "RestartPolicy"}
        if restart is not None:
            fields["RestartPolicy"] = written_restart_policy(restart)
        with audited(self.host_name, "container.limits", [container], names=[name], **fields):
            await self.http.post(f"/containers/{container}/update", doing, body=body)
