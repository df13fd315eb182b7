"""AudioClient against the real offline endpoint (happy paths) and a real fault-injecting server.

Only what a real socket shows is here: a reset, a body cut mid-way, nothing listening, a stall,
and curl run for real. Status mapping, retries and Retry-After, audio checks and batches need no
socket: they are in test_client_mock.py. The fault server (`tests/fault_server.py`) is a
threading http.server on 127.0.0.1 that answers each generation request with a scripted action
and records every request, so each test checks the error and the exact number of requests.
"""

from __future__ import annotations

import io
import secrets
import shlex
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fault_server import FaultServer, cut, reply, reset, stall

from flexaudio_helpers.audio import Clip
from flexaudio_helpers.client import AudioClient
from flexaudio_helpers.deploy import Deployment, Endpoint, EndpointInfo
from flexaudio_helpers.errors import (
    EndpointNotConfigured,
    EndpointUnavailable,
    GenerationTimeout,
    InvalidParameters,
    SilentAudioWarning,
)
from flexaudio_helpers.params import GenerationRequest
from flexaudio_helpers.protocol import SEED_HEADER
from flexaudio_helpers.urls import normalise_url

KEY = f"sk-fault-{secrets.token_hex(16)}"
CHEAP = {"audio_end_in_s": 1.0, "num_inference_steps": 2}


@pytest.fixture
def fault():
    with FaultServer() as server:
        yield server


def client_for(server, **options) -> AudioClient:
    options = {"url": server.url, "api_key": KEY, "backoff": 0.01, "max_retries": 3, **options}
    return AudioClient(**options)


def assert_no_secret(*texts: object) -> None:
    for text in texts:
        assert KEY not in str(text)


# ----- the real endpoint ---------------------------------------------------------------------
def test_generate_on_the_offline_endpoint(offline_server):
    # A pasted full route is normalised to the base URL rather than doubled.
    with AudioClient(offline_server.url + "/v1/audios/generations", offline_server.api_key) as client:
        assert client.url == offline_server.url
        clip = client.generate("Rain on a tin roof", seed=11, **CHEAP)
        models = client.models()

    assert isinstance(clip, Clip)
    assert (clip.sample_rate, clip.channels, clip.frames) == (44_100, 2, 44_100)
    assert clip.seed == 11 and clip.offline
    assert clip.request == GenerationRequest.build("Rain on a tin roof", seed=11, **CHEAP)
    assert set(clip.timings) == {"request", "generation", "queue"}
    assert clip.timings["request"] >= clip.timings["generation"] > 0
    assert models["data"][0]["id"] == "offline"


def test_generate_many_on_the_offline_endpoint(offline_server, tmp_path):
    items = [
        "first prompt",
        {"inputs": "second prompt", "parameters": {**CHEAP, "seed": 5}},
        {"inputs": "bad", "parameters": {"seed": -1}},  # fails locally; the others still run
    ]
    with AudioClient(offline_server.url, offline_server.api_key) as client:
        results = client.generate_many(
            [GenerationRequest.build(items[0], **CHEAP), *items[1:]], out_dir=tmp_path, progress=False
        )

    assert [r.index for r in results] == [0, 1, 2]
    assert [r.ok for r in results] == [True, True, False]
    assert [r.clip.prompt for r in results[:2]] == ["first prompt", "second prompt"]
    assert results[1].clip.seed == 5
    assert isinstance(results[2].error, InvalidParameters) and results[2].error.field == "parameters.seed"
    for result in results[:2]:
        saved = Clip.load(result.path)
        assert saved.request == result.request and saved.seed == result.clip.seed
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "0000-first-prompt.wav",
        "0001-second-prompt.wav",
        "manifest.jsonl",
    ]


# ----- configuration -------------------------------------------------------------------------
@pytest.mark.parametrize("url", ["127.0.0.1:8000", "ftp://example.com", "http://"])
def test_a_url_that_is_not_http_is_refused(url):
    with pytest.raises(EndpointNotConfigured, match="http:// or https://"):
        AudioClient(url, KEY)


class FoundRunning(Deployment):
    """A target whose endpoint is already running at `url`: `wait_until_ready` goes straight to
    its confirming request (the verbs it does not use are left out)."""

    target, poll_interval = "test", 0.0
    create_secret = secret_exists = _serve = logs = stop = delete = None

    def __init__(self, url: str) -> None:
        self.url = url

    def inspect(self, name: str) -> EndpointInfo:
        return EndpointInfo(name, "running", self.url, self.target)

    def _ready_endpoint(self, name: str, info: EndpointInfo) -> Endpoint:
        return Endpoint(name, info.url, KEY, self.target)


# Every form of the base URL that people paste, each with {base} = http://127.0.0.1:PORT.
URL_FORMS = [
    "{base}",
    "{base}/",
    "{base}/v1",
    "{base}/v1/",
    "{base}/v1/audios/generations",
    "{base}/v1/audios/generations/",
    "{base}/v1/audios/generations/v1/audios/generations",
    "  {base}/v1\n",
    "HTTP://{host}/v1",
]


@pytest.mark.parametrize("form", URL_FORMS)
def test_the_client_and_wait_until_ready_send_every_url_form_to_one_route(fault, form, tmp_path, monkeypatch):
    monkeypatch.delenv("INFERENCE_URL", raising=False)  # no override: the target's own URL is used
    monkeypatch.chdir(tmp_path)
    url = form.format(base=fault.url, host=fault.url.removeprefix("http://"))
    with client_for(fault, url=url) as client:
        client.generate("x")
    FoundRunning(url).wait_until_ready("demo", timeout=30)
    assert [(r.method, r.path, r.headers["Authorization"]) for r in fault.requests] == [
        ("POST", "/v1/audios/generations", f"Bearer {KEY}")
    ] * 2


def test_normalise_url_removes_route_suffixes():
    base = "https://inference-x.platform.flex.ai"
    for given in (base, base + "/", base + "/v1", base + "/v1/audios/generations/v1/audios/generations"):
        assert normalise_url(given)[0] == base
    assert normalise_url(base + "/v1/audios/generations") == (base, ["/v1/audios/generations"])
    assert normalise_url(base + "/v1/audio/generate/") == (base, ["/v1/audio/generate"])  # vLLM-Omni's


# ----- faults --------------------------------------------------------------------------------
def test_connection_reset_is_retried(fault):
    fault.play(reset())
    assert client_for(fault).generate("x").seed == 7
    assert len(fault.generations) == 2


@pytest.mark.parametrize("action", [reset, cut], ids=["reset", "cut-mid-body"])
def test_dropped_connections_until_the_retries_run_out(fault, action):
    fault.play(then=action())
    with pytest.raises(EndpointUnavailable, match="after 4 attempts") as caught:
        client_for(fault).generate("x")
    assert len(fault.generations) == 4
    assert_no_secret(caught.value)


def test_nothing_listening(tmp_path):
    with FaultServer() as server:
        url = server.url  # a port that was just free again
    with pytest.raises(
        EndpointUnavailable, match=r"after 2 attempts; last: ConnectError.*is the endpoint running"
    ):
        AudioClient(url, KEY, max_retries=1, backoff=0.01).generate("x")


def test_a_stall_past_the_read_timeout_is_not_retried(fault):
    fault.play(stall(30))
    with pytest.raises(GenerationTimeout, match=r"read timeout of 0\.5 s") as caught:
        client_for(fault, read_timeout=0.5).generate("x")
    assert isinstance(caught.value, TimeoutError)
    assert len(fault.generations) == 1


# ----- secrets and curl ----------------------------------------------------------------------
def test_repr_and_curl_command_hide_the_key(fault, tmp_path):
    client = client_for(fault)
    assert KEY not in repr(client) and "<hidden>" in repr(client)
    command = client.curl_command("it's raining", output=str(tmp_path / "rain.wav"), seed=3)
    assert KEY not in command and '"Authorization: Bearer $INFERENCE_API_KEY"' in command

    # The command is real: run it, and the fault server sees the same request the client sends.
    subprocess.run(
        ["bash", "-c", command], check=True, env={"INFERENCE_API_KEY": KEY, "PATH": "/usr/bin:/bin"}
    )
    client.generate("it's raining", seed=3)
    by_curl, by_client = fault.generations
    assert by_curl.json() == by_client.json() == {"inputs": "it's raining", "parameters": {"seed": 3}}
    assert by_curl.headers["Authorization"] == by_client.headers["Authorization"] == f"Bearer {KEY}"
    assert Path(tmp_path / "rain.wav").read_bytes()[:4] == b"RIFF"
    assert shlex.split(command)[0] == "curl"


def test_a_generation_past_the_read_timeout_says_how_fast_the_device_is(offline_server):
    """A slow device (Apple's MPS: minutes for 200 steps) outlasts a read timeout: the error says
    what the endpoint measured, so the learner knows how long to allow."""
    with AudioClient(offline_server.url, offline_server.api_key) as client:
        client.generate("Rain on a tin roof", seed=11, **CHEAP)  # a run of 2 steps measures the device
    with (
        AudioClient(offline_server.url, offline_server.api_key, read_timeout=2.0, max_retries=0) as impatient,
        pytest.raises(GenerationTimeout, match=r"\(cpu\) takes about .* s per step: 1000 steps need about"),
    ):
        impatient.generate("Rain on a tin roof", audio_end_in_s=1.0, num_inference_steps=1000)


def test_a_silent_answer_warns(fault):
    """The endpoint's audio is checked too: all-zero samples (a real WAV of silence) warn."""
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros((4410, 2)), 44_100, format="WAV", subtype="PCM_16")
    fault.play(reply(200, buffer.getvalue(), {SEED_HEADER: "5"}, "audio/wav"))
    with pytest.warns(SilentAudioWarning, match="the clip of seed 5 is silent"):
        client_for(fault).generate("x")
