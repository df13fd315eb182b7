"""The client against hostile servers on 127.0.0.1 (issue 13): what a server can make it do is bounded.

An endless body, a gzip bomb and a FLAC bomb end in `ResponseTooLarge` with the client's memory
far below what they would cost decoded; a server trickling bytes meets the overall deadline; a
key that cannot be sent is a typed error. (A slow-to-parse error page, malformed headers and a
gzip-encoded clip need no socket: they are in test_client_mock.py.) The bombs are measured in
a separate client process, so its peak RSS is the client's alone (VmHWM, not ru_maxrss, which
carries pytest's own peak across exec).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from fault_server import FaultServer, endless, flac_bomb, gzip_bomb, trickle

from flexaudio_helpers.client import AudioClient
from flexaudio_helpers.errors import (
    AuthenticationError,
    FlexAudioError,
    GenerationTimeout,
    ResponseTooLarge,
)

KEY = "test-key-0123456789"
PEAK_RSS_LIMIT_MB = 400  # the client with numpy and soundfile is ~100 MB; a bomb decoded is 1-2 GB


def _client(server: FaultServer, **options) -> AudioClient:
    return AudioClient(server.url, KEY, **{"max_retries": 0, "backoff": 0.01, **options})


def _bounded(call, seconds: float):
    """Run `call` in a thread; fail if it has not finished within `seconds` (it may never)."""
    outcome: dict = {}

    def run() -> None:
        started = time.monotonic()
        try:
            outcome["value"] = call()
        except BaseException as exc:
            outcome["error"] = exc
        outcome["took"] = time.monotonic() - started

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s"
    return outcome


@pytest.mark.parametrize("bomb", [endless, gzip_bomb, flac_bomb], ids=["endless", "gzip", "flac"])
def test_a_bomb_is_refused_as_too_large(bomb):
    with FaultServer(then=bomb()) as server:
        outcome = _bounded(lambda: _client(server).generate("x"), 60)
    assert isinstance(outcome.get("error"), ResponseTooLarge), outcome


def test_the_client_memory_stays_bounded_against_every_bomb(tmp_path):
    """Peak RSS of a separate client process that meets all three bombs in turn."""
    script = textwrap.dedent(
        f"""
        import json, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from fault_server import peak_rss_mb
        from flexaudio_helpers.client import AudioClient
        from flexaudio_helpers.errors import ResponseTooLarge
        outcomes = {{}}
        for name, url in json.loads(sys.argv[1]).items():
            try:
                AudioClient(url, {KEY!r}, max_retries=0).generate("x")
                outcomes[name] = "no error"
            except ResponseTooLarge:
                outcomes[name] = "too large"
            except Exception as exc:
                outcomes[name] = type(exc).__name__
        outcomes["peak_rss_mb"] = peak_rss_mb()
        print(json.dumps(outcomes))
        """
    )
    servers = {"endless": FaultServer(then=endless()), "gzip": FaultServer(then=gzip_bomb())}
    servers["flac"] = FaultServer(then=flac_bomb())
    with servers["endless"], servers["gzip"], servers["flac"]:
        urls = json.dumps({name: server.url for name, server in servers.items()})
        finished = subprocess.run(
            [sys.executable, "-c", script, urls], capture_output=True, text=True, timeout=300
        )
    assert finished.returncode == 0, finished.stderr[-2000:]
    outcomes = json.loads(finished.stdout.splitlines()[-1])
    print(f"\nclient against the bombs: {outcomes}")
    assert {outcomes[name] for name in servers} == {"too large"}, outcomes
    assert outcomes["peak_rss_mb"] < PEAK_RSS_LIMIT_MB, outcomes


def test_a_trickling_server_meets_the_overall_deadline():
    with FaultServer(then=trickle(0.5)) as server:
        outcome = _bounded(lambda: _client(server, read_timeout=2.0, total_timeout=3.0).generate("x"), 30)
    assert isinstance(outcome.get("error"), GenerationTimeout), outcome
    assert "total_timeout" in str(outcome["error"])
    assert outcome["took"] < 15


@pytest.mark.parametrize("key", ["ключ-0123456789", "key with space", "key\nnewline"])
def test_a_key_that_cannot_be_sent_is_a_typed_error_without_the_key(key):
    with pytest.raises(AuthenticationError) as caught:
        AudioClient("http://127.0.0.1:9", key)
    assert key not in str(caught.value) and "HTTP header" in str(caught.value)
    assert isinstance(caught.value, FlexAudioError) and not isinstance(caught.value, UnicodeError)


def test_a_real_clip_is_well_under_the_limits(offline_server, tmp_path):
    """The limits leave room: the longest clip the model makes (47.55 s stereo) comes through."""
    with AudioClient(offline_server.url, offline_server.api_key, max_retries=0) as client:
        clip = client.generate("long", audio_end_in_s=47.5, num_inference_steps=1, seed=1)
    assert clip.duration == pytest.approx(47.5, abs=0.05)
    assert Path(clip.save(tmp_path / "long.flac")).stat().st_size > 0
