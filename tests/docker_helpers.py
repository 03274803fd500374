"""Fixtures for tests of the Docker backend and pane: a backend on the test dockerd, and containers
made with the docker SDK (the ground truth) and removed afterwards."""

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import docker
import pytest
from engines.dockerd import DockerEngine

from backends.docker import DockerBackend

Spawn = Callable[..., Any]


@pytest.fixture
async def backend(dockerd: DockerEngine) -> AsyncIterator[DockerBackend]:
    """berth's backend on the test dockerd."""
    instance = DockerBackend("local", str(dockerd.socket))
    yield instance
    await instance.close()


@pytest.fixture
def sdk(dockerd: DockerEngine) -> Iterator[docker.DockerClient]:
    """A docker SDK client on the test dockerd."""
    client = dockerd.client()
    yield client
    client.close()


@pytest.fixture
def spawn(sdk: docker.DockerClient, docker_busybox: str) -> Iterator[Spawn]:
    """`spawn(command, name=None, **run_kwargs)`: a busybox container (detached), removed after the test."""
    made: list[str] = []

    def run(command: str | list[str] = "sleep 600", name: str | None = None, **kwargs: Any) -> Any:
        cname = name or f"t-{uuid.uuid4().hex[:8]}"
        argv = ["sh", "-c", command] if isinstance(command, str) else command
        container = sdk.containers.run(docker_busybox, argv, name=cname, detach=True, **kwargs)
        made.append(container.id)
        return container

    yield run
    for cid in made:
        with contextlib.suppress(docker.errors.NotFound):
            sdk.containers.get(cid).remove(force=True)
