"""Hostile clients against a real endpoint (offline model, 127.0.0.1), issue 13.

Keys that cannot travel in a header, keys in query strings, the API docs, clients that hang up
mid-upload, and a burst of 1,100 idle sockets against a server limited to 1,024 descriptors.
"""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import time

import httpx
import pytest
from conftest import start_server, stop_server

from flexaudio_helpers.deploy.server_process import free_port
from flexaudio_helpers.protocol import GENERATIONS_ROUTE, MAX_JSON_DEPTH

BODY = {"inputs": "idle burst", "parameters": {"num_inference_steps": 2, "audio_end_in_s": 1.0}}
SERVER_FILE_LIMIT = 1024  # the common default soft limit, set in the server for a deterministic test
IDLE_SOCKETS = 1100


def _log_since(server, start: int) -> str:
    return server.log()[start:]


@pytest.mark.slow  # a server of its own that must refuse to start
def test_a_key_that_cannot_travel_in_a_header_stops_the_server_from_starting(tmp_path):
    key = "ключ-" + "x" * 30  # UTF-8: latin-1 would have turned each Cyrillic letter into "?"
    environment = {**os.environ, "FLEXAUDIO_API_KEY": key, "FLEXAUDIO_STATE_DIR": str(tmp_path / "state")}
    command = [sys.executable, "-m", "flexaudio_helpers.serving", "--model", "offline"]
    try:
        finished = subprocess.run(
            [*command, "--port", str(free_port())],
            env=environment,
            capture_output=True,
            text=True,
            timeout=60,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the server started with a key no HTTP header can carry")
    assert finished.returncode != 0
    assert "cannot be sent in an HTTP header" in finished.stderr
    assert "ключ" not in finished.stdout + finished.stderr and "x" * 30 not in finished.stderr


def test_a_key_in_the_query_string_is_not_logged_and_the_docs_are_off(offline_server):
    start = len(offline_server.log())
    secret = "query-secret-5f2e9a7c"
    assert httpx.get(f"{offline_server.url}/health?api_key={secret}", timeout=10).status_code == 200
    answer = httpx.post(f"{offline_server.url}{GENERATIONS_ROUTE}?key={secret}", json={}, timeout=10)
    assert answer.status_code == 401
    for route in ("/docs", "/redoc", "/openapi.json"):
        assert httpx.get(offline_server.url + route, timeout=10).status_code == 404, route
    time.sleep(0.5)  # the access log line is written after the answer is sent
    logged = _log_since(offline_server, start)
    assert "GET /health?<hidden>" in logged, logged  # the request is logged, its query is not
    assert secret not in logged


def test_a_client_leaving_mid_upload_leaves_no_traceback(offline_server):
    start = len(offline_server.log())
    port = int(offline_server.url.rsplit(":", 1)[1])
    head = (
        f"POST {GENERATIONS_ROUTE} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {offline_server.api_key}\r\nContent-Type: application/json\r\n"
        "Content-Length: 1000\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(head.encode() + b'{"inputs": "gone')
        time.sleep(0.3)
    deadline = time.monotonic() + 10
    while "disconnected while sending" not in _log_since(offline_server, start):
        assert time.monotonic() < deadline, _log_since(offline_server, start)
        time.sleep(0.1)
    logged = _log_since(offline_server, start)
    assert "Traceback" not in logged and "Exception in ASGI" not in logged, logged
    assert httpx.get(offline_server.url + "/health", timeout=10).status_code == 200


def _limit_descriptors() -> None:  # runs in the server's process, before it starts
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (SERVER_FILE_LIMIT, hard))


@pytest.fixture
def enough_descriptors():
    """This process must hold 1,100 sockets: raise its soft limit up to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = IDLE_SOCKETS + 256
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.skip(f"the hard open-file limit ({hard}) is below {wanted}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.slow  # an endpoint of its own, with a low open-file limit
def test_a_burst_of_idle_sockets_does_not_stop_health_or_generation(tmp_path, enough_descriptors):
    server = start_server(tmp_path, preexec_fn=_limit_descriptors)
    port = int(server.url.rsplit(":", 1)[1])
    idle: list[socket.socket] = []
    try:
        for _ in range(IDLE_SOCKETS):  # they connect and never send a byte
            idle.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        time.sleep(2.0)  # let the server accept them all (and hit its limit)

        started = time.monotonic()
        health = httpx.get(server.url + "/health", timeout=5)
        took = time.monotonic() - started
        assert health.status_code == 200
        assert took < 1.0, f"/health took {took:.2f} s with {IDLE_SOCKETS} idle sockets open"

        headers = server.headers()
        answer = httpx.post(server.url + GENERATIONS_ROUTE, json=BODY, headers=headers, timeout=120)
        assert answer.status_code == 200 and answer.content.startswith(b"RIFF")
    finally:
        for connection in idle:
            connection.close()
        stop_server(server)
    log = server.log()
    assert log.count("Too many open files") + log.count("out of system resource") <= 3, log[-2000:]
    assert len(log) < 100_000, f"the log grew to {len(log)} bytes"
    assert "closing the oldest idle ones" in log  # the one line that says what happened


def test_a_generation_whose_client_left_stops_between_steps(offline_server):
    """A 1,000-step run (minutes on a CPU) is abandoned; the next request does not wait for it."""
    url = offline_server.url + GENERATIONS_ROUTE
    long = {"inputs": "abandoned", "parameters": {"num_inference_steps": 1000, "audio_end_in_s": 1.0}}
    with pytest.raises(httpx.ReadTimeout):  # the client gives up and hangs up mid-generation
        httpx.post(url, json=long, headers=offline_server.headers(), timeout=httpx.Timeout(3.0, connect=5.0))
    started = time.monotonic()
    answer = httpx.post(url, json=BODY, headers=offline_server.headers(), timeout=120)
    assert answer.status_code == 200
    waited = float(answer.headers["x-queue-seconds"])
    assert waited < 60, f"the next request waited {waited:.0f} s behind the abandoned run"
    print(f"\nnext request: queued {waited:.1f} s, answered in {time.monotonic() - started:.1f} s")


def test_json_nested_hundreds_deep_is_a_400_naming_the_limit_without_a_traceback(offline_server):
    start = len(offline_server.log())
    # About 960 levels parse, then repr() of the value overflowed the stack: a 500 and a traceback.
    for depth in [MAX_JSON_DEPTH + 1, *range(900, 1000, 4)]:
        body = "[" * depth + "]" * depth
        answer = httpx.post(
            offline_server.url + GENERATIONS_ROUTE, content=body, headers=offline_server.headers(), timeout=30
        )
        assert answer.status_code == 400, (depth, answer.text)
        assert f"nested too deeply (over {MAX_JSON_DEPTH} levels)" in answer.json()["error"]["message"]
    time.sleep(0.5)  # the access log line is written after the answer is sent
    assert "Traceback" not in _log_since(offline_server, start)
