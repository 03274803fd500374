"""Who may do what on a real `berth broker serve`: admin and client tokens (from a file, not argv),
a client sees and cancels only its own tasks, web pages (a foreign Origin, text/plain and form
bodies, a provider WebSocket) are refused, a tokenless broker answers only its own Host names and
only on loopback, a paired key is revoked with `berth broker unpair`, and the console's embedded
broker makes and uses an admin token of its own."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
import urllib.request
from pathlib import Path

import aiohttp
import pytest
from broker_helpers import Procs, free_port, http, new_key, start_paired_provider, wait_for
from cli_helpers import BERTH

from backends.audit import read_audit

ROOT, ALICE, BOB = "root-3f9a8c1d2e", "alice-77b1c0aa", "bob-0c4d2e9f1b"
EVIL = "http://evil.example"


def _berth(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BERTH, *args], capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})}
    )


def _tokens_file(path: Path, mode: int = 0o600) -> Path:
    path.write_text(f"# who may use the broker\nadmin:root={ROOT}\nclient:alice={ALICE}\n\nbob={BOB}\n")
    path.chmod(mode)
    return path


# Roles ----------------------------------------------------------------------------------------


def test_a_client_token_submits_and_sees_only_its_own_tasks_and_only_an_admin_manages_providers(
    procs: Procs, tmp_path: Path, wasm_programs: dict[str, Path]
) -> None:
    tokens = _tokens_file(tmp_path / "tokens")
    broker = procs.broker(tmp_path / "broker", None, "--tokens-file", str(tokens), token=ALICE, admin=ROOT)
    # The tokens came from a file: `ps` (the command line) shows none of them.
    cmdline = Path(f"/proc/{broker.proc.pid}/cmdline").read_bytes() if broker.proc else b""
    assert b"--tokens-file" in cmdline and not any(t.encode() in cmdline for t in (ROOT, ALICE, BOB))
    start_paired_provider(procs, broker, "p1")
    url = broker.url

    (bobs,) = broker.submit([{"module": broker.upload(wasm_programs["trivial"])}], token=BOB)
    assert broker.wait_task(bobs, token=BOB)["client"] == "bob"
    ref = broker.upload(wasm_programs["loop"])  # runs until cancelled
    status, answer = http(url + "/api/v1/tasks?batch=alice-batch-1", "POST", {"module": ref}, token=ALICE)
    assert status == 202, answer
    (mine,) = answer["ids"]

    # Bob can't tell Alice's task or batch from none, nor cancel it, nor take her batch id.
    for method in ("GET", "DELETE"):
        status, body = http(f"{url}/api/v1/tasks/{mine}", method, token=BOB)
        assert (status, body["error"]) == (404, f"No task {mine}."), body
    status, body = http(f"{url}/api/v1/batches/alice-batch-1/results", token=BOB)
    assert (status, body["error"]) == (404, "No batch alice-batch-1."), body
    status, body = http(url + "/api/v1/tasks?batch=alice-batch-1", "POST", {"module": ref}, token=BOB)
    assert (status, body["error"]) == (409, "Batch id alice-batch-1 is taken by another client."), body
    assert [v["id"] for v in broker.get("/api/v1/tasks", token=BOB)["tasks"]] == [bobs]
    assert http(url + "/api/v1/status", token=BOB)[0] == 200

    # Nor may a client token touch providers.
    fingerprint = broker.get("/api/v1/providers", token=ROOT)[0]["fingerprint"]
    refused = f"Only an admin token may do that; the token of {'bob'!r} is a client token."
    for method, path in (
        ("GET", "/api/v1/providers"),
        ("GET", "/api/v1/providers/pending"),
        ("GET", f"/api/v1/providers/log?fingerprint={fingerprint}"),
        ("POST", "/api/v1/providers/pair"),
        ("POST", "/api/v1/providers/unpair"),
        ("POST", "/api/v1/providers/drain"),
        ("POST", "/api/v1/providers/disconnect"),
    ):
        body = {"fingerprint": fingerprint, "name": "mine now"} if method == "POST" else None
        status, answer = http(url + path, method, body, token=BOB)
        assert (status, answer["error"]) == (403, refused), (path, answer)
    assert broker.online("p1")  # still paired, connected, undrained

    # The admin sees every task; Alice her own, and she may cancel it.
    assert {mine, bobs} <= {v["id"] for v in broker.get("/api/v1/tasks", token=ROOT)["tasks"]}
    assert [v["id"] for v in broker.get("/api/v1/tasks", token=ALICE)["tasks"]] == [mine]
    status, view = http(f"{url}/api/v1/tasks/{mine}", "DELETE", token=ALICE)
    assert status == 200, view
    assert broker.wait_task(mine, token=ALICE)["state"] == "cancelled"

    # The CLI says the same to a client token, and works with the admin's (from the environment).
    denied = _berth("broker", "providers", "--broker", url, "--token", ALICE)
    assert denied.returncode != 0 and "Only an admin token may do that" in denied.stdout + denied.stderr
    listed = _berth("--json", "broker", "providers", "--broker", url, env={"BERTH_BROKER_TOKEN": ROOT})
    assert listed.returncode == 0, listed.stderr
    assert [p["name"] for p in json.loads(listed.stdout)] == ["p1"]

    # No token, or a wrong one: 401, with a hint for API and CLI users alike.
    for token in (None, "wrong-token", "alice"):
        status, body = http(url + "/api/v1/status", token=token)
        assert (status, body["error"]) == (401, "This broker asks for a token."), body
        assert "Authorization: Bearer TOKEN" in body["hint"] and "--token" in body["hint"]
        assert "BERTH_BROKER_TOKEN" in body["hint"]


def test_a_tokens_file_others_may_read_is_refused_and_tokens_in_argv_are_warned_about(
    procs: Procs, tmp_path: Path
) -> None:
    loose = _tokens_file(tmp_path / "tokens", 0o644)
    done = _berth("broker", "serve", "--listen", f"127.0.0.1:{free_port()}", "--data", str(tmp_path / "b"),
                  "--tokens-file", str(loose))  # fmt: skip
    assert done.returncode != 0
    said = f"The tokens file {loose} is open to other users (mode 0644): run chmod 600 {loose}."
    assert said in done.stderr

    broker = procs.broker(tmp_path / "broker2", None, "--tokens", f"admin:root={ROOT}", admin=ROOT)
    assert broker.proc is not None
    assert "--tokens on the command line is shown to every user by ps" in broker.proc.output()
    assert broker.get("/api/v1/providers", token=ROOT) == []

    bad = _berth("broker", "serve", "--listen", f"127.0.0.1:{free_port()}", "--data", str(tmp_path / "b3"),
                 env={"BERTH_BROKER_TOKENS": "boss:x=abcdefgh"})  # fmt: skip
    assert bad.returncode != 0 and "Token 'x' has role 'boss': use admin or client." in bad.stderr


# Web pages ------------------------------------------------------------------------------------


def test_web_pages_cannot_pair_a_key_or_call_the_api_of_a_broker_without_tokens(
    procs: Procs, tmp_path: Path, wasm_programs: dict[str, Path]
) -> None:
    broker = procs.broker(tmp_path / "broker")
    url = broker.url
    # A key a page would like admitted: its own provider, waiting to be paired.
    key = tmp_path / "page.key"
    fingerprint = new_key(key)
    procs.provider(url, key, "page-provider")
    wait_for(lambda: broker.pending(fingerprint), 30, "the key to wait for pairing")
    pair = json.dumps({"fingerprint": fingerprint, "name": "pwned"}).encode()

    # What a page's fetch() or <form> sends cross-site without a preflight: Origin set, a body
    # typed text/plain, form-urlencoded or multipart.
    boundary = "----WebKitFormBoundaryc2VjcmV0"
    multipart = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="fingerprint"\r\n\r\n{fingerprint}\r\n'
        f"--{boundary}--\r\n"
    ).encode()
    shapes = [
        ("text/plain;charset=UTF-8", pair),
        ("application/x-www-form-urlencoded", f"fingerprint={fingerprint}&name=pwned".encode()),
        (f"multipart/form-data; boundary={boundary}", multipart),
    ]
    for kind, body in shapes:
        status, answer = http(url + "/api/v1/providers/pair", "POST", data=body,
                              headers={"Origin": EVIL, "Content-Type": kind})  # fmt: skip
        assert status == 403, answer
        assert answer["error"] == f"This broker refuses requests from web pages (Origin {EVIL!r})."
        assert "--allow-origin" in answer["hint"]
        # A browser (or an extension) that leaves Origin out gets no further: the body type.
        status, answer = http(
            url + "/api/v1/providers/pair", "POST", data=body, headers={"Content-Type": kind}
        )
        assert status == 415, answer
        assert "needs the header Content-Type: application/json" in answer["error"]
    status, answer = http(url + "/api/v1/providers/pending", headers={"Origin": EVIL})
    assert status == 403, answer  # nor may it read anything
    status, answer = http(url + "/api/v1/tasks/t-1", "DELETE", headers={"Origin": "null"})
    assert status == 403, answer

    # Uploads need a type no page can send cross-site; curl's default (a form) is refused too.
    module = wasm_programs["trivial"].read_bytes()
    for kind in ("text/plain", "application/x-www-form-urlencoded"):
        status, answer = http(url + "/api/v1/modules", "POST", data=module, headers={"Content-Type": kind})
        assert status == 415 and "needs a Content-Type header such as application/wasm" in answer["error"]
    wasm = {"Content-Type": "application/wasm"}
    status, answer = http(url + "/api/v1/modules", "POST", data=module, headers=wasm)
    assert status == 201, answer

    # Nothing was paired: the key still waits.
    assert broker.pending(fingerprint)
    assert broker.get("/api/v1/providers") == []


async def test_a_provider_websocket_from_a_foreign_origin_is_refused(procs: Procs, tmp_path: Path) -> None:
    broker = procs.broker(tmp_path / "broker", None, "--allow-origin", "https://app.example")
    ws_url = broker.url.replace("http", "ws") + "/api/v1/provider"
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(ws_url, origin=EVIL)
        assert refused.value.status == 403
        # The allowed origin gets its socket (the handshake then asks for a key), and may read
        # answers (CORS), a preflight included; a foreign one still can't.
        async with session.ws_connect(ws_url, origin="https://app.example") as ws:
            assert not ws.closed
        headers = {"Origin": "https://app.example"}
        async with session.get(broker.url + "/api/v1/status", headers=headers) as answer:
            assert answer.status == 200
            assert answer.headers["Access-Control-Allow-Origin"] == "https://app.example"
        preflight = {**headers, "Access-Control-Request-Method": "POST"}
        async with session.options(broker.url + "/api/v1/tasks", headers=preflight) as answer:
            assert answer.status == 204
            assert "Content-Type" in answer.headers["Access-Control-Allow-Headers"]
        async with session.get(broker.url + "/api/v1/status", headers={"Origin": EVIL}) as answer:
            assert answer.status == 403 and "Access-Control-Allow-Origin" not in answer.headers


def test_a_broker_without_tokens_answers_only_names_of_its_own_and_only_on_loopback(
    procs: Procs, tmp_path: Path
) -> None:
    broker = procs.broker(tmp_path / "broker")
    # DNS rebinding: a page at evil.example:PORT whose name now points at 127.0.0.1 is same-origin
    # with the broker as the browser sees it, and sends no Origin on a GET.
    rebound = {"Host": f"evil.example:{broker.port}"}
    status, body = http(broker.url + "/api/v1/providers/pending", headers=rebound)
    assert status == 403, body
    assert body["error"] == f"The Host 'evil.example:{broker.port}' does not name this broker."
    for host in (f"127.0.0.1:{broker.port}", f"localhost:{broker.port}", "[::1]"):
        assert http(broker.url + "/api/v1/providers/pending", headers={"Host": host})[0] == 200, host

    # With tokens the token is what counts, whatever the name.
    tokened = procs.broker(tmp_path / "broker2", None, "--tokens-file", str(_tokens_file(tmp_path / "t")))
    status, _ = http(tokened.url + "/api/v1/status", token=ALICE, headers={"Host": "broker.example.org"})
    assert status == 200

    # Beyond loopback a broker without tokens does not start (nothing is bound: it stops first).
    port = free_port()
    done = _berth("broker", "serve", "--listen", f"0.0.0.0:{port}", "--data", str(tmp_path / "b3"))
    assert done.returncode != 0
    said = done.stdout + done.stderr
    assert "A broker without tokens lets anyone who reaches it do anything" in said
    assert "--insecure-no-tokens" in said and "--tokens-file" in said


# Unpairing ------------------------------------------------------------------------------------


def test_berth_broker_unpair_revokes_a_key_which_is_then_refused_like_an_unknown_one(
    procs: Procs, tmp_path: Path, wasm_programs: dict[str, Path]
) -> None:
    tokens = _tokens_file(tmp_path / "tokens")
    broker = procs.broker(tmp_path / "broker", None, "--tokens-file", str(tokens), token=ALICE, admin=ROOT)
    provider = start_paired_provider(procs, broker, "p1")
    fingerprint = broker.get("/api/v1/providers", token=ROOT)[0]["fingerprint"]

    denied = _berth("broker", "unpair", fingerprint, "--broker", broker.url, "--token", BOB)
    assert denied.returncode != 0 and "Only an admin token may do that" in denied.stdout + denied.stderr
    assert broker.online("p1")

    done = _berth("broker", "unpair", fingerprint, "--broker", broker.url, env={"BERTH_BROKER_TOKEN": ROOT})
    assert done.returncode == 0, done.stderr
    assert f"Unpaired {fingerprint}" in done.stdout
    # Disconnected, then refused as a key never paired: it waits to be paired again.
    wait_for(lambda: f"key {fingerprint} is not paired" in provider.output(), 30, "the refusal")
    assert broker.get("/api/v1/providers", token=ROOT) == []
    wait_for(lambda: broker.pending(fingerprint), 30, "the key to wait again")
    # It runs nothing any more.
    (task,) = broker.submit([{"module": broker.upload(wasm_programs["trivial"])}])
    time.sleep(1.0)
    assert broker.get(f"/api/v1/tasks/{task}")["state"] == "queued"
    entry = next(e for e in read_audit() if e.get("action") == "provider.unpair" and e.get("outcome") == "ok")
    assert entry["targets"] == [fingerprint]

    again = _berth("broker", "unpair", fingerprint, "--broker", broker.url, "--token", ROOT)
    assert again.returncode != 0
    assert f"No paired provider has key {fingerprint}" in again.stdout + again.stderr


# The console's own broker ---------------------------------------------------------------------


async def test_the_embedded_broker_makes_a_private_admin_token_and_its_client_uses_it(tmp_path: Path) -> None:
    from backends.broker.embedded import ADMIN_TOKEN_FILE, open_broker
    from backends.config import BrokerConfig

    data = tmp_path / "console-broker"
    handle = await open_broker(BrokerConfig(listen="127.0.0.1:0", data_dir=str(data)), workers=1)
    try:
        token_file = data / ADMIN_TOKEN_FILE
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        token = token_file.read_text().split("admin:console=", 1)[1].strip()
        # Its own client is an admin; nobody without the token gets anything.
        assert [p["name"] for p in await handle.client.call("GET", "/api/v1/providers")] == ["local"]
        async with aiohttp.ClientSession() as session:
            async with session.get(handle.url + "/api/v1/providers/pending") as answer:
                assert answer.status == 401
            auth = {"Authorization": f"Bearer {token}"}
            async with session.get(handle.url + "/api/v1/providers/pending", headers=auth) as answer:
                assert answer.status == 200
    finally:
        await handle.close()
    # The next start uses the same token.
    handle = await open_broker(BrokerConfig(listen="127.0.0.1:0", data_dir=str(data)), workers=1)
    try:
        assert token_file.read_text().count("admin:console=") == 1
        assert token in token_file.read_text()
        assert await handle.client.call("GET", "/api/v1/providers/pending") == []
    finally:
        await handle.close()


def test_a_client_cancels_with_a_bare_delete_and_a_stream_it_drops_costs_the_broker_nothing(
    procs: Procs, tmp_path: Path, wasm_programs: dict[str, Path]
) -> None:
    """What `curl -X DELETE` sends (no body, no Content-Type) cancels a task of one's own; a
    client that hangs up on its batch's results stream leaves no traceback in the broker's log."""
    broker = procs.broker(tmp_path / "broker", None, "--tokens-file", str(_tokens_file(tmp_path / "tokens")))
    broker.token = ROOT
    start_paired_provider(procs, broker, "p1")
    broker.token = ALICE
    ref = broker.upload(wasm_programs["idle"])
    answer = broker.post("/api/v1/tasks", [{"module": ref, "limits": {"timeout": 60}}])
    task, batch = answer["ids"][0], answer["batch"]

    # The results stream, dropped after its first keep-alive line.
    request = urllib.request.Request(
        f"{broker.url}/api/v1/batches/{batch}/results", headers={"Authorization": f"Bearer {ALICE}"}
    )
    with urllib.request.urlopen(request, timeout=60) as stream:
        assert stream.readline() == b"{}\n"

    status, view = http(f"{broker.url}/api/v1/tasks/{task}", "DELETE", token=BOB)
    assert status == 404, view  # someone else's task is not there for bob
    req = urllib.request.Request(f"{broker.url}/api/v1/tasks/{task}", method="DELETE")
    req.add_header("Authorization", f"Bearer {ALICE}")
    with urllib.request.urlopen(req, timeout=60) as reply:
        assert reply.status == 200
    assert broker.wait_task(task)["state"] == "cancelled"
    time.sleep(0.5)
    assert broker.proc is not None
    assert "Traceback" not in broker.proc.output()
