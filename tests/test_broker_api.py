"""The broker's HTTP API on a real `berth broker serve` with a real provider: limits and their
errors (413, 400, 429), /healthz, /metrics, waiting on and cancelling tasks, client tokens."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

from broker_helpers import Broker, Procs, http, start_paired_provider
from cli_helpers import BERTH


def test_bad_uploads_and_a_full_queue_get_their_own_errors_and_the_broker_keeps_serving(
    procs: Procs, tmp_path: Path, wasm_programs: dict[str, Path]
) -> None:
    broker = procs.broker(tmp_path / "broker", None, "--max-upload", "1KiB", "--queue-limit", "10")
    start_paired_provider(procs, broker, "p1")
    url = broker.url

    status, body = http(
        url + "/api/v1/modules?name=echo.wasm", "POST", data=wasm_programs["echo"].read_bytes()
    )
    assert status == 413, body
    assert (
        body["error"]
        == f"The module is {wasm_programs['echo'].stat().st_size:,} bytes; this broker takes at most 1,024."
    )

    status, body = http(url + "/api/v1/modules?name=x.wasm", "POST", data=b"#!/bin/sh\necho hi\n")
    assert status == 400, body
    assert body["error"].startswith("That is not a WebAssembly module (it does not start with \\0asm")

    status, body = http(
        url + "/api/v1/modules?name=bad.wasm", "POST", data=wasm_programs["invalid"].read_bytes()
    )
    assert status == 400, body
    assert body["error"].startswith("That is not a valid WebAssembly module:")

    ref = broker.upload(wasm_programs["trivial"])
    status, body = http(url + "/api/v1/tasks", "POST", [{"module": ref}] * 11)
    assert status == 429, body
    assert body["error"] == "The queue is full (0 tasks waiting or running, limit 10)."

    status, body = http(url + "/api/v1/tasks", "POST", {"module": "sha256:" + "0" * 64})
    assert status == 400 and body["error"].startswith("No module 'sha256:000"), body
    status, body = http(url + "/api/v1/tasks", "POST", {"modul": ref})
    assert status == 400 and body["error"].startswith("Bad task:"), body
    status, body = http(url + "/api/v1/tasks?batch=x", "POST", {"module": ref})
    assert status == 400 and body["error"].startswith("A batch id is 8 to 64"), body

    ids = broker.submit([{"module": ref}] * 10)  # exactly the limit is fine
    for task_id in ids:
        view = broker.wait_task(task_id)
        assert (view["state"], view["kind"], view["exit_code"], view["provider"]) == ("done", "exit", 0, "p1")


def test_healthz_metrics_wait_and_cancel_of_a_queued_and_a_running_task(
    broker_with_provider: str, wasm_programs: dict[str, Path]
) -> None:
    broker = Broker.at(broker_with_provider)
    assert http(broker.url + "/healthz") == (200, "ok\n")

    loop, slow = broker.upload(wasm_programs["loop"]), broker.upload(wasm_programs["slow"])
    # One worker: the loop runs first, the slow ones wait behind it (on the provider as far as the
    # broker prefetches, the rest in the broker's queue).
    ids = broker.submit([{"module": loop, "limits": {"timeout": 60}}] + [{"module": slow}] * 20)
    running, behind, queued = ids[0], ids[1], ids[-1]
    assert broker.get(f"/api/v1/tasks/{queued}")["state"] == "queued"
    assert broker.get(f"/api/v1/tasks/{running}")["state"] == "running"

    status, view = http(f"{broker.url}/api/v1/tasks/{queued}", "DELETE")
    assert status == 200 and view["state"] == "cancelled", view
    assert broker.wait_task(queued)["attempts"] == 0  # it never went anywhere

    started = time.monotonic()
    view = broker.get(f"/api/v1/tasks/{running}?wait=0.5")
    assert 0.4 < time.monotonic() - started < 3 and view["state"] == "running", view
    status, _ = http(f"{broker.url}/api/v1/tasks/{running}", "DELETE")
    assert status == 200
    view = broker.get(f"/api/v1/tasks/{running}?wait=5")
    assert (view["state"], view["kind"], view["provider"]) == ("cancelled", "cancelled", "p1"), view

    view = broker.get(f"/api/v1/tasks/{behind}?wait=5")
    assert (view["state"], view["kind"], view["exit_code"]) == ("done", "exit", 0), view
    assert view["stdout"] == "".join(f"tick {i}\n" for i in range(10))

    status, body = http(f"{broker.url}/api/v1/tasks/{behind}", "DELETE")
    assert status == 409 and body["error"] == f"Task {behind} has already finished (done).", body
    status, body = http(f"{broker.url}/api/v1/tasks/t-nope?wait=1")
    assert status == 404 and body["error"] == "No task t-nope.", body

    for task_id in ids[2:-1]:  # the rest: cancelled wherever they are (or done, if they just ended)
        assert http(f"{broker.url}/api/v1/tasks/{task_id}", "DELETE")[0] in (200, 409)
    states = [broker.wait_task(task_id, 10)["state"] for task_id in ids]
    assert set(states) <= {"done", "cancelled"}

    metrics = http(broker.url + "/metrics")[1]
    values = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line and not line.startswith("#")
    }
    assert values["berth_broker_tasks_queued"] == 0
    assert values["berth_broker_tasks_running"] == 0
    assert values['berth_broker_tasks_finished_total{state="done"}'] == states.count("done")
    assert values['berth_broker_tasks_finished_total{state="failed"}'] == 0
    assert values['berth_broker_tasks_finished_total{state="cancelled"}'] == states.count("cancelled") >= 3
    assert values["berth_broker_providers"] == 1
    assert values["berth_broker_workers_free"] == 1
    for gauge in ("tasks_queued", "tasks_running", "providers", "workers_free"):
        assert f"# TYPE berth_broker_{gauge} gauge" in metrics
    assert "# TYPE berth_broker_task_latency_seconds histogram" in metrics
    buckets = [v for k, v in values.items() if k.startswith("berth_broker_task_latency_seconds_bucket")]
    assert buckets == sorted(buckets) and buckets[-1] == len(ids)  # cumulative, +Inf holds every task
    assert values['berth_broker_task_latency_seconds_bucket{le="+Inf"}'] == len(ids)
    assert values["berth_broker_task_latency_seconds_count"] == len(ids)
    assert values["berth_broker_task_latency_seconds_sum"] > 1.0  # the slow task alone took 1 s
    assert re.search(r'berth_broker_task_latency_seconds_bucket\{le="0\.001"\} \d', metrics)


def test_client_tokens_are_required_where_the_broker_has_them(
    procs: Procs, tmp_path: Path, wasm_programs: dict[str, Path]
) -> None:
    tokens = "alice=s3cret,bob=other,admin:root=r00t"
    broker = procs.broker(tmp_path / "broker", None, "--tokens", tokens, token="s3cret", admin="r00t")
    start_paired_provider(procs, broker, "p1")  # the provider socket needs no client token
    url = broker.url

    for token in (None, "wrong", "alice"):
        status, body = http(url + "/api/v1/status", token=token)
        assert (status, body["error"], body["hint"]) == (
            401,
            "This broker asks for a token.",
            "Send the header Authorization: Bearer TOKEN; "
            "from berth's CLI, pass --token TOKEN or set BERTH_BROKER_TOKEN.",
        )
    assert http(url + "/healthz")[0] == 200
    assert http(url + "/metrics")[0] == 200

    ref = broker.upload(wasm_programs["trivial"])
    (task_id,) = broker.submit([{"module": ref}], token="other")
    view = broker.wait_task(task_id, token="other")  # bob's task: only bob (or an admin) sees it
    assert (view["state"], view["client"]) == ("done", "bob"), view

    denied = subprocess.run(
        [BERTH, "submit", "--broker", url, str(wasm_programs["echo"]), "--", "x"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert denied.returncode != 0
    assert "This broker asks for a token." in denied.stdout + denied.stderr
    ran = subprocess.run(
        [BERTH, "submit", "--broker", url, "--token", "s3cret", str(wasm_programs["echo"]), "--", "x"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines()[:2] == ["arg 0: echo.wasm", "arg 1: x"]
