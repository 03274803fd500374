"""A private image registry for tests: Debian's ``docker-registry`` (distribution 2.8) on 127.0.0.1.

It keeps its blobs under its own root (filesystem storage), listens on ``127.0.0.1:<free port>``
over plain HTTP (dockerd treats 127.0.0.0/8 registries as insecure, so no TLS is needed) and asks
for htpasswd basic auth (bcrypt, made with apache2-utils' ``htpasswd -Bbn``). It is started as a
child process and stopped by its PID, like the other test engines.

:func:`push` puts an image of a test dockerd there under a reference; :func:`push_fresh` makes
an image with a layer nobody has yet (a new id each time) and pushes it, so a pull really
downloads something and an update sees a new image under the same tag. :class:`SlowProxy` is a
way to the registry slow enough to watch a pull's progress, or to cancel it halfway.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import secrets
import socket
import subprocess
import tarfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import docker

from engines import (
    EngineError,
    EngineRecord,
    find_binary,
    log_tail,
    popen_options,
    register,
    remove_root,
    stop_process,
    wait_for,
)
from engines.sshd import free_port

#: Override the registry binary (a path, or a name looked up on PATH).
REGISTRY_ENV = "BERTH_TEST_REGISTRY"
HOST = "127.0.0.1"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
USERNAME = "berth"


@dataclass
class Registry:
    """A running test registry and the credentials it takes.

    ``host`` is what an image reference starts with (``127.0.0.1:PORT``).
    """

    root: Path
    port: int
    username: str
    password: str
    pid: int
    version: str
    start_seconds: float = 0.0
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)
    _record: EngineRecord | None = field(default=None, repr=False, compare=False)

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``: the registry part of an image reference."""
        return f"{HOST}:{self.port}"

    @property
    def log(self) -> Path:
        """The registry's log file (stdout and stderr)."""
        return self.root / "registry.log"

    @property
    def auth_config(self) -> dict[str, str]:
        """The credentials as the docker SDK's ``auth_config`` takes them."""
        return {"username": self.username, "password": self.password, "serveraddress": self.host}

    def alive(self) -> bool:
        """True while the registry process runs."""
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> None:
        """Same as :func:`stop_registry`."""
        stop_registry(self)


def _status(port: int, path: str = "/v2/") -> int | None:
    """The HTTP status of a GET on the registry, or None when nothing answers yet."""
    try:
        with socket.create_connection((HOST, port), timeout=2.0) as conn:
            conn.sendall(f"GET {path} HTTP/1.0\r\nHost: {HOST}:{port}\r\n\r\n".encode())
            head = conn.recv(256).split(b"\r\n", 1)[0].split()
    except OSError:
        return None
    return int(head[1]) if len(head) >= 2 and head[1].isdigit() else None


def _config_text(root: Path, port: int) -> str:
    return f"""\
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: {root / "storage"}
  delete:
    enabled: true
http:
  addr: {HOST}:{port}
  secret: {secrets.token_hex(16)}
auth:
  htpasswd:
    realm: berth-test
    path: {root / "htpasswd"}
"""


def start_registry(root: Path) -> Registry:
    """Start a registry whose every file lives under ``root``; wait until ``/v2/`` asks for auth.

    Raises :class:`engines.EngineError` (with the log tail) when a binary is missing or it does
    not come up; a port taken meanwhile is retried with another.
    """
    binary = find_binary("docker-registry", REGISTRY_ENV)
    htpasswd = find_binary("htpasswd")
    root.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(12)
    made = subprocess.run(
        [htpasswd, "-Bbn", USERNAME, password], capture_output=True, check=False, timeout=30
    )
    if made.returncode != 0:
        raise EngineError(f"htpasswd failed: {made.stderr.decode(errors='replace').strip()}")
    (root / "htpasswd").write_bytes(made.stdout)
    version = (
        subprocess.run([binary, "--version"], capture_output=True, check=False, timeout=10)
        .stdout.decode()
        .split()
    )
    last: EngineError | None = None
    for _ in range(3):
        port = free_port(HOST)
        try:
            registry = _launch(binary, root, port, password, version[-1] if version else "unknown")
        except EngineError as exc:
            last = exc
            if "address already in use" not in str(exc):
                break
            continue
        registry._record = register(
            EngineRecord(
                "registry",
                f"docker-registry {registry.version}",
                registry.pid,
                registry.start_seconds,
                stopper=functools.partial(stop_registry, registry),
            )
        )
        return registry
    assert last is not None
    raise last


def _launch(binary: str, root: Path, port: int, password: str, version: str) -> Registry:
    config = root / "config.yml"
    config.write_text(_config_text(root, port))
    log = root / "registry.log"
    begin = time.monotonic()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [binary, "serve", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=root,
            env=env,
            **popen_options(),
        )
    try:
        wait_for(
            lambda: _status(port) == 401,
            timeout=START_TIMEOUT,
            alive=lambda: proc.poll() is None,
            what=f"docker-registry on {HOST}:{port}",
            logs=[log],
        )
    except EngineError:
        stop_process(proc, proc.pid, 5.0)
        raise
    return Registry(
        root=root,
        port=port,
        username=USERNAME,
        password=password,
        pid=proc.pid,
        version=version,
        start_seconds=time.monotonic() - begin,
        _proc=proc,
    )


def stop_registry(registry: Registry, remove: bool = True) -> None:
    """Stop the registry by PID (SIGTERM, SIGKILL after 10 s) and (``remove``) delete its root."""
    if registry._record is not None and registry._record.stop_seconds is not None:
        return
    begin = time.monotonic()
    stop_process(registry._proc, registry.pid, STOP_TIMEOUT)
    if remove:
        remove_root(registry.root)
    if registry._record is not None:
        registry._record.stop_seconds = time.monotonic() - begin


def registry_log_tail(registry: Registry, lines: int = 40) -> str:
    """The last lines of the registry's log, for assertion messages."""
    return log_tail(registry.log, lines)


# --- putting images there -----------------------------------------------------------------------


def _split(ref: str) -> tuple[str, str]:
    """``host:port/repo:tag`` as (repository, tag)."""
    repo, _, tag = ref.rpartition(":")
    if not repo or "/" in tag:
        raise ValueError(f"{ref!r} has no tag")
    return repo, tag


def push(client: docker.DockerClient, registry: Registry, image: str, ref: str) -> str:
    """Push ``image`` (an id or name on ``client``'s engine) to ``registry`` as ``ref``
    (``<registry.host>/repo:tag``); return the pushed manifest's digest.

    The image is tagged ``ref`` for the push only: the tag is removed after, so the engine's
    image list looks as before (an image that had no other name goes with it).
    """
    repo, tag = _split(ref)
    if not repo.startswith(registry.host + "/"):
        raise ValueError(f"{ref!r} is not on {registry.host}")
    client.images.get(image).tag(repo, tag)
    try:
        digest = ""
        for message in client.images.push(
            repo, tag, auth_config=registry.auth_config, stream=True, decode=True
        ):
            if message.get("error"):
                raise EngineError(f"pushing {ref} failed: {message['error']}")
            digest = str((message.get("aux") or {}).get("Digest") or digest)
    finally:
        client.images.remove(ref)
    if not digest:
        raise EngineError(f"pushing {ref} gave no digest")
    return digest


def _layer_tar(payload: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("payload.bin")
        info.size = len(payload)
        info.mtime = int(time.time())
        tar.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


def push_fresh(
    client: docker.DockerClient,
    registry: Registry,
    base: str,
    ref: str,
    *,
    size: int = 2 << 20,
    changes: list[str] | None = None,
) -> tuple[str, str]:
    """Make a new image from ``base`` with one more layer of ``size`` random bytes
    (``/payload.bin``), push it as ``ref`` and remove it from ``client``'s engine again.

    Returns (image id, digest). The id is new each time, so pushing under a tag that exists
    replaces it with "a new image under the same tag", and pulling it downloads a layer the
    engine lacks (with progress). ``changes`` are Dockerfile lines for ``docker commit``
    (``CMD ["true"]``, ``ENV A=b``).
    """
    container = client.containers.create(base, command=["true"])
    try:
        container.put_archive("/", _layer_tar(secrets.token_bytes(size)))
        image = container.commit(changes=changes or [])
    finally:
        container.remove(force=True)
    image_id = str(image.id)
    digest = push(client, registry, image_id, ref)
    return image_id, digest


# --- a slow way to it ---------------------------------------------------------------------------


class SlowProxy:
    """A TCP relay on 127.0.0.1:<free port> to the registry that sends its answers at
    ``rate`` bytes a second, so a pull takes long enough to be watched or cancelled.

    ``host`` starts references that go through it (the registry takes any Host header; the
    credentials are filed under this host, as the docker CLI would). ``sent`` counts the bytes
    relayed towards the engine: once a pull is cancelled, it stops growing.
    """

    CHUNK = 16 << 10

    def __init__(self, registry: Registry, rate: int) -> None:
        self.registry = registry
        self.rate = rate
        self.sent = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server((HOST, 0))
        self.port = self._listener.getsockname()[1]
        self._open: set[socket.socket] = set()
        self._closed = threading.Event()
        threading.Thread(target=self._accept, name="slow-proxy", daemon=True).start()

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT`` of the relay."""
        return f"{HOST}:{self.port}"

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection((HOST, self.registry.port), timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open |= {client, upstream}
            threading.Thread(target=self._pump, args=(client, upstream, 0), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, self.rate), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, rate: int) -> None:
        try:
            while data := source.recv(self.CHUNK):
                sink.sendall(data)
                if rate:
                    with self._lock:
                        self.sent += len(data)
                    time.sleep(len(data) / rate)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
                with self._lock:
                    self._open.discard(sock)

    def close(self) -> None:
        """Stop listening and cut every relayed connection."""
        self._closed.set()
        self._listener.close()
        with self._lock:
            open_now = list(self._open)
        for sock in open_now:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
