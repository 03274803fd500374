"""Registry credentials the way the docker CLI keeps them: `config.json` under `$DOCKER_CONFIG`
(else `~/.docker`), its `auths` entries and its credential helpers (`credsStore`, `credHelpers`).

Reading is the docker SDK's `docker.auth` (the same lookup the CLI does, helpers included), not
a copy of it; writing is what `docker login` writes: the password handed to the configured
helper (the file then keeps an empty entry for the registry), or else base64 `user:password` in
`auths`, the rest of the file kept as it was, mode 0600. The SDK is imported inside the
functions: it costs a start ~100 ms. Credential helpers are programs: call these from a thread.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

from backends.errors import BerthError, Invalid

DOCKER_HUB = "docker.io"
DOCKER_HUB_KEY = "https://index.docker.io/v1/"
"""The key the docker CLI files Docker Hub's credentials under."""


def config_file() -> Path:
    """Where the docker CLI keeps its settings: `$DOCKER_CONFIG/config.json`, else `~/.docker/`."""
    folder = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    return Path(folder) / "config.json"


def repository_and_tag(ref: str) -> tuple[str, str]:
    """An image reference as the Engine API's pull takes it: (repository, tag or digest), the
    tag `latest` when it names none."""
    if "@" in ref:
        name, digest = ref.split("@", 1)
        return name, digest
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        tag = last.split(":", 1)[1]
        return ref[: len(ref) - len(tag) - 1], tag
    return ref, "latest"


def registry_of(ref: str) -> str:
    """The registry an image reference is pulled from (`docker.io` when it names none)."""
    from docker.auth import resolve_repository_name

    return str(resolve_repository_name(repository_and_tag(ref)[0])[0])


def registry_name(text: str) -> str:
    """A registry as `docker login` takes it (`https://ghcr.io/`, `index.docker.io`, `host:5000`)
    in the form image references name it (`ghcr.io`, `docker.io`, `host:5000`)."""
    from docker.auth import resolve_index_name

    name = str(resolve_index_name(text.strip()))
    if not name or any(ch.isspace() for ch in name):
        raise Invalid(f"{text.strip()!r} is not a registry.", "Name it as image references do: host[:port].")
    return name


def server_key(registry: str) -> str:
    """The name the docker CLI files a registry's credentials under."""
    return DOCKER_HUB_KEY if registry == DOCKER_HUB else registry


def _load() -> Any:
    """The docker SDK's view of the config file (an `AuthConfig`). The file is read here and
    handed over: given no file, or one it cannot parse, the SDK falls back to
    `~/.docker/config.json` and `~/.dockercfg`, which the docker CLI never reads."""
    from docker.auth import AuthConfig, load_config
    from docker.errors import InvalidConfigFile

    path = config_file()
    settings = _read_settings(path)
    try:
        return load_config(config_dict=settings) if settings else AuthConfig({})
    except InvalidConfigFile as exc:
        raise Invalid(f"{path} cannot be read: {exc}.", "Fix or move that file.") from exc


def auth_header(registry: str) -> str | None:
    """The `X-Registry-Auth` value for `registry` from the docker CLI's settings; None when they
    hold nothing for it (an anonymous pull)."""
    from docker.auth import encode_header
    from docker.errors import DockerException

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the SDK warns of a missing helper before it fails
            found = _load().resolve_authconfig(registry)
    except DockerException as exc:  # a credential helper that failed
        why = str(exc.__cause__ or exc).rstrip(".")  # the helper's words, not the SDK's wrapping
        raise BerthError(
            f"The credential helper for {registry} failed: {why}.",
            f"Check it, or log in again with berth login {registry}.",
        ) from exc
    return encode_header(found).decode("ascii") if found else None


def store_credentials(registry: str, username: str, password: str) -> str:
    """Keep `username`/`password` for `registry` as `docker login` does; return where they went
    (the helper's name, or the file)."""
    from docker.credentials import Store, StoreError

    key = server_key(registry)
    helper = _load().get_credential_store(key)
    path = config_file()
    settings = _read_settings(path)
    auths = settings.setdefault("auths", {})
    if not isinstance(auths, dict):
        raise Invalid(f"{path}: auths is not a mapping.", "Fix or move that file.")
    if helper:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                store: Any = Store(helper)  # types-docker leaves store() untyped
            store.store(key, username, password)
        except StoreError as exc:
            raise BerthError(
                f"The credential helper docker-credential-{helper} could not store the password "
                f"for {registry}: {exc}.",
                f"Check the helper, or remove credsStore/credHelpers from {path}.",
            ) from exc
        auths[key] = {}
        where = f"docker-credential-{helper}"
    else:
        auths[key] = {"auth": base64.b64encode(f"{username}:{password}".encode()).decode("ascii")}
        where = str(path)
    _write_settings(path, settings)
    return where


def _read_settings(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise BerthError(f"{path} cannot be read: {exc.strerror}.", "Check its permissions.") from exc
    try:
        settings = json.loads(text) if text.strip() else {}
    except ValueError as exc:
        raise Invalid(f"{path} is not valid JSON: {exc}; fix it or move it aside.") from exc
    if not isinstance(settings, dict):
        raise Invalid(f"{path} is not a JSON object.", "Fix or move that file.")
    return settings


def _write_settings(path: Path, settings: dict[str, Any]) -> None:
    """Replace the file at once (a reader never sees half of it), readable by its owner only."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=".config.json.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(settings, out, indent="\t")
            out.write("\n")
        os.chmod(temp, 0o600)
        os.replace(temp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise BerthError(
            f"{path} cannot be written: {exc.strerror}.", "Check its folder's permissions."
        ) from exc
