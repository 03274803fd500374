"""pytest fixtures and hooks for the real engines.

Import them into ``tests/conftest.py``::

    from engines.fixtures import (
        docker_busybox, dockerd, lxd, make_dockerd, make_sshd, pytest_terminal_summary, registry,
        registry_busybox, sshd,
    )

The session fixtures start their engine the first time a test asks for it (never otherwise),
once per session, and stop it by PID when the session ends. An engine that cannot start (not
root, binary missing, start failure) skips the test with the reason, or fails it under
``CI=true`` / ``BERTH_REQUIRE_ENGINES=1`` (see :mod:`engines.required`).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

from engines import EngineError, make_root, remove_root, summary_line
from engines.dockerd import DockerEngine, start_dockerd, stop_dockerd
from engines.images import import_docker_busybox
from engines.lxd import LxdEngine, start_lxd, stop_lxd
from engines.registry import Registry, push, start_registry, stop_registry
from engines.required import unavailable
from engines.sshd import SshServer, start_sshd, stop_sshd

_E = TypeVar("_E")

__all__ = [
    "docker_busybox",
    "dockerd",
    "lxd",
    "make_dockerd",
    "make_sshd",
    "pytest_terminal_summary",
    "registry",
    "registry_busybox",
    "sshd",
]


def _need_root(what: str) -> None:
    """Skip (or fail under CI) unless we run as root, which these engines need."""
    if os.geteuid() != 0:
        unavailable(f"{what} needs root to run; the tests run as uid {os.geteuid()}")


def _start(what: str, start: Callable[[Path], _E]) -> _E:
    """Start an engine in a fresh root, or skip/fail (outside the except, for a clean report)."""
    root = make_root()
    try:
        return start(root)
    except EngineError as exc:
        reason = f"{what} could not start: {exc}"
    remove_root(root)
    unavailable(reason)


@pytest.fixture(scope="session")
def dockerd() -> Iterator[DockerEngine]:
    """A private dockerd (no bridge, no iptables) for the whole session, started on first use."""
    _need_root("dockerd")
    engine = _start("dockerd", start_dockerd)
    try:
        yield engine
    finally:
        stop_dockerd(engine)


@pytest.fixture(scope="session")
def docker_busybox(dockerd: DockerEngine) -> str:
    """Id of the busybox image ``berth-test/busybox:latest`` imported into the test dockerd."""
    if dockerd.busybox_image:
        return dockerd.busybox_image
    try:
        dockerd.busybox_image = import_docker_busybox(dockerd.client())
        return dockerd.busybox_image
    except EngineError as exc:
        reason = f"busybox image for dockerd: {exc}"
    unavailable(reason)


@pytest.fixture
def make_dockerd() -> Iterator[Callable[..., DockerEngine]]:
    """A factory ``make_dockerd(*extra_args)`` for extra dockerds (a second "host", or one with
    ``--live-restore``), each stopped when the test ends.
    """
    _need_root("dockerd")
    started: list[DockerEngine] = []

    def factory(*extra_args: str) -> DockerEngine:
        engine = _start("dockerd", functools.partial(start_dockerd, extra_args=extra_args))
        started.append(engine)
        return engine

    try:
        yield factory
    finally:
        for engine in reversed(started):
            stop_dockerd(engine)


@pytest.fixture(scope="session")
def lxd() -> Iterator[LxdEngine]:
    """A private LXD (own LXD_DIR and netns, ``dir`` pool, no network, image alias
    ``busybox``) for the whole session, started on first use.
    """
    _need_root("lxd")
    engine = _start("lxd", start_lxd)
    try:
        yield engine
    finally:
        stop_lxd(engine)


@pytest.fixture(scope="session")
def sshd() -> Iterator[SshServer]:
    """A private sshd on 127.0.0.1:<free port> for the whole session, started on first use."""
    _need_root("sshd")
    server = _start("sshd", start_sshd)
    try:
        yield server
    finally:
        stop_sshd(server)


@pytest.fixture
def make_sshd() -> Iterator[Callable[..., SshServer]]:
    """A factory ``make_sshd(port=None, extra_config=()) -> SshServer`` for extra sshd servers
    (each with its own keys and port, `extra_config` lines added to its config); all of them are
    stopped when the test ends.
    """
    _need_root("sshd")
    started: list[SshServer] = []

    def factory(port: int | None = None, extra_config: Sequence[str] = ()) -> SshServer:
        server = _start("sshd", functools.partial(start_sshd, port=port, extra_config=extra_config))
        started.append(server)
        return server

    try:
        yield factory
    finally:
        for server in reversed(started):
            stop_sshd(server)


@pytest.fixture(scope="session")
def registry() -> Iterator[Registry]:
    """A private image registry (docker-registry) on 127.0.0.1:<free port> with htpasswd basic
    auth, for the whole session, started on first use; `registry.host` starts its references.
    """
    server = _start("docker-registry", start_registry)
    try:
        yield server
    finally:
        stop_registry(server)


@pytest.fixture(scope="session")
def registry_busybox(registry: Registry, dockerd: DockerEngine, docker_busybox: str) -> str:
    """``<registry.host>/berth-test/busybox:1``: the busybox test image pushed to the registry
    (its id is `docker_busybox`; the test dockerd does not keep the registry's tag).
    """
    ref = f"{registry.host}/berth-test/busybox:1"
    client = dockerd.client()
    try:
        push(client, registry, docker_busybox, ref)
        return ref
    except EngineError as exc:
        reason = f"pushing busybox to the registry: {exc}"
    finally:
        client.close()
    unavailable(reason)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print which engines ran in this session, with versions, PIDs and start/stop times."""
    terminalreporter.write_line(summary_line())
