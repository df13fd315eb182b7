"""AudioClient behaviour that needs no socket, through ``httpx.MockTransport`` (fast).

Status -> typed error, retries and Retry-After, what a body must be to count as audio, the key
kept out of messages, and batches with their manifest. Each handler records the requests it saw,
so every test checks the exact number of attempts. What only a real socket shows (a reset, a
stall, a cut-off body, bombs, a trickle) stays in test_client.py and test_fuzz_client.py.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import logging
import threading
import time

import httpx
import pytest
from fault_server import wav_bytes

from flexaudio_helpers import settings
from flexaudio_helpers.client import AudioClient
from flexaudio_helpers.errors import (
    AuthenticationError,
    EndpointNotConfigured,
    EndpointNotFound,
    EndpointUnavailable,
    FlexAudioError,
    GenerationFailed,
    HTTPError,
    InvalidAudioResponse,
    InvalidParameters,
    InvalidResponse,
)
from flexaudio_helpers.params import GenerationRequest
from flexaudio_helpers.protocol import OFFLINE_HEADER, SEED_HEADER, error_body
from flexaudio_helpers.retry import retry_after

URL = "https://inference-test.example"
KEY = "sk-mock-0123456789abcdef"
AUDIO_HEADERS = {SEED_HEADER: "7", OFFLINE_HEADER: "false", "X-Generation-Seconds": "0.010"}


def ok_audio(seed: int = 7, seconds: float = 0.1) -> httpx.Response:
    return httpx.Response(200, content=wav_bytes(seconds), headers={**AUDIO_HEADERS, SEED_HEADER: str(seed)})


def failure(
    status: int, message: str = "injected", param: str | None = None, **headers: str
) -> httpx.Response:
    return httpx.Response(status, json=error_body(message, "injected_error", param), headers=headers)


class NetworkStream(httpx.SyncByteStream):
    """A body that arrives in 64 KB reads, as from a socket."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __iter__(self):
        for start in range(0, len(self.data), 65536):
            yield self.data[start : start + 65536]


class Endpoint:
    """A scripted endpoint: answers each request with the next item of the script, then `then`.

    An item is an ``httpx.Response`` or an exception to raise (a transport failure). Every
    request is recorded, with the time it arrived.
    """

    def __init__(self, *script, then=None) -> None:
        self.script = list(script)
        self.then = then if then is not None else ok_audio()
        self.requests: list[httpx.Request] = []
        self.times: list[float] = []
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            request.read()
            self.requests.append(request)
            self.times.append(time.monotonic())
            item = self.script.pop(0) if self.script else self.then
        if isinstance(item, Exception):
            raise item
        # A fresh copy each time (a response, once read and closed, cannot be sent again), its
        # body a stream as from a socket: httpx reads a bytes body at once, so no raw stream is left.
        return httpx.Response(
            item.status_code, headers=item.headers, stream=NetworkStream(b"".join(item.stream))
        )

    def bodies(self) -> list[dict]:
        return [json.loads(request.content) for request in self.requests]


def client_for(endpoint: Endpoint, *, waits: list | None = None, **options) -> AudioClient:
    """A client over `endpoint`; its retry waits are recorded in `waits` instead of slept."""
    options = {"url": URL, "api_key": KEY, "max_retries": 3, **options}
    client = AudioClient(**options, transport=httpx.MockTransport(endpoint))
    client.retry = dataclasses.replace(
        client.retry, sleep=(waits.append if waits is not None else lambda _: None)
    )
    return client


@pytest.fixture
def seen(caplog):
    """Everything the client logs (at every level), to check that the key never shows."""
    caplog.set_level(logging.DEBUG)
    return caplog


# ----- status -> typed error ----------------------------------------------------------------
def test_401_is_an_authentication_error_without_the_key(seen):
    endpoint = Endpoint(failure(401, "missing or wrong API key"))
    client = client_for(endpoint)
    with pytest.raises(AuthenticationError, match=r"\(HTTP 401\): missing or wrong API key") as caught:
        client.generate("x")
    assert len(endpoint.requests) == 1  # never retried
    assert endpoint.requests[0].headers["Authorization"] == f"Bearer {KEY}"
    assert KEY not in str(endpoint.requests[0].url)
    assert caught.value.status_code == 401 and caught.value.server_message == "missing or wrong API key"
    for text in (caught.value, repr(caught.value), repr(client), seen.text):
        assert KEY not in str(text)


def test_401_without_a_key_says_none_was_sent(monkeypatch, tmp_path):
    monkeypatch.delenv("INFERENCE_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    endpoint = Endpoint(failure(401, "missing API key"))
    with pytest.raises(AuthenticationError, match="no API key was sent"):
        client_for(endpoint, api_key=None).generate("x")
    assert "Authorization" not in endpoint.requests[0].headers


@pytest.mark.parametrize("key", [KEY, "sk-1234", "k"], ids=["long", "7-characters", "1-character"])
def test_a_key_the_server_echoes_back_is_masked_whatever_its_length(key):
    endpoint = Endpoint(failure(500, f"bad key {key} for this model"))
    with pytest.raises(GenerationFailed) as caught:
        client_for(endpoint, api_key=key).generate("x")
    assert key not in str(caught.value) and key not in caught.value.server_message
    if len(key) > 1:
        assert "bad key *** for" in str(caught.value)


def test_404_explains_the_url():
    endpoint = Endpoint(httpx.Response(404, text="Not Found"))
    client = client_for(endpoint, url=URL + "/v1/audio/generations")  # "audio", not "audios"
    with pytest.raises(EndpointNotFound) as caught:
        client.generate("x")
    message = str(caught.value)
    assert "HTTP 404: Not Found" in message and "looks like part of a route" in message
    assert "jq .config.endpointUrl" in message and caught.value.status_code == 404
    assert [r.url.path for r in endpoint.requests] == ["/v1/audio/generations/v1/audios/generations"]


@pytest.mark.parametrize(
    "answer",
    [
        failure(
            422, "parameters.guidance_scale=9 is too high for this model", param="parameters.guidance_scale"
        ),
        httpx.Response(
            422, json={"detail": [{"loc": ["body", "parameters", "guidance_scale"], "msg": "too high"}]}
        ),
    ],
    ids=["our-shape", "fastapi-shape"],
)
def test_422_names_the_field(answer):
    endpoint = Endpoint(answer)
    with pytest.raises(InvalidParameters, match="HTTP 422") as caught:
        client_for(endpoint).generate("x", guidance_scale=9.0)
    assert caught.value.field == "parameters.guidance_scale"
    assert caught.value.value == 9.0 and caught.value.status_code == 422
    assert "too high" in str(caught.value) and "0 to 50" in caught.value.allowed
    assert len(endpoint.requests) == 1


def test_a_server_error_is_not_retried():
    endpoint = Endpoint(failure(500, "generation failed: RuntimeError: CUDA out of memory"))
    with pytest.raises(
        GenerationFailed, match=r"HTTP 500\): generation failed: .*CUDA out of memory"
    ) as caught:
        client_for(endpoint).generate("x")
    assert len(endpoint.requests) == 1 and caught.value.status_code == 500


def test_a_redirect_names_its_target_without_its_secrets():
    endpoint = Endpoint(
        httpx.Response(302, headers={"Location": "https://user:pw@elsewhere.example/x?token=1"})
    )
    with pytest.raises(
        GenerationFailed, match=r"redirects \(HTTP 302\) to https://\*\*\*@elsewhere"
    ) as caught:
        client_for(endpoint).generate("x")
    assert "pw" not in str(caught.value) and "token=1" not in str(caught.value)
    assert caught.value.status_code == 302 and len(endpoint.requests) == 1


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, InvalidParameters),
        (413, InvalidParameters),
        (403, AuthenticationError),
        (405, EndpointNotFound),
        (418, GenerationFailed),
        (501, GenerationFailed),
    ],
)
def test_every_error_status_is_an_http_error_with_its_status(status, kind):
    endpoint = Endpoint(failure(status, "told you"))
    with pytest.raises(kind) as caught:
        client_for(endpoint).generate("x")
    assert isinstance(caught.value, HTTPError) and isinstance(caught.value, FlexAudioError)
    assert (caught.value.status_code, caught.value.server_message) == (status, "told you")


def test_the_models_route_answers_json_or_a_typed_error():
    endpoint = Endpoint(
        httpx.Response(200, json={"data": [{"id": "offline"}]}), httpx.Response(200, text="<html>")
    )
    client = client_for(endpoint)
    assert client.models()["data"][0]["id"] == "offline"
    with pytest.raises(GenerationFailed, match="did not answer JSON"):
        client.models()
    assert [r.url.path for r in endpoint.requests] == ["/v1/models"] * 2


# ----- retries and Retry-After --------------------------------------------------------------
def test_429_honours_retry_after_then_succeeds():
    waits: list[float] = []
    endpoint = Endpoint(failure(429, "slow down", **{"Retry-After": "1"}))
    clip = client_for(endpoint, waits=waits).generate("x")
    assert clip.seed == 7 and len(endpoint.requests) == 2
    assert waits == [1.0]  # the client waited what Retry-After asked


def test_503_then_success_is_retried():
    waits: list[float] = []
    endpoint = Endpoint(failure(503, "busy"), failure(502, "bad gateway"), failure(504, "gateway timeout"))
    clip = client_for(endpoint, waits=waits, backoff=0.5).generate("x")
    assert clip.frames > 0 and clip.timings["generation"] == pytest.approx(0.01)
    assert len(endpoint.requests) == 4
    # Exponential backoff with jitter: 0.5, 1, 2 s, each scaled by 0.5 to 1.
    for wait, base in zip(waits, (0.5, 1.0, 2.0), strict=True):
        assert base * 0.5 <= wait <= base


def test_busy_until_the_retries_run_out():
    endpoint = Endpoint(then=failure(503, "the queue is full"))
    with pytest.raises(
        EndpointUnavailable, match="after 3 attempts; last: HTTP 503: the queue is full"
    ) as caught:
        client_for(endpoint, max_retries=2).generate("x")
    assert len(endpoint.requests) == 3
    assert len({r.content for r in endpoint.requests}) == 1  # the same request every time
    assert caught.value.status_code == 503 and caught.value.server_message == "the queue is full"


def test_a_nan_retry_after_is_not_a_crash():
    waits: list[float] = []
    endpoint = Endpoint(then=httpx.Response(503, json={"error": "busy"}, headers={"Retry-After": "nan"}))
    with pytest.raises(EndpointUnavailable, match="HTTP 503"):
        client_for(endpoint, waits=waits, max_retries=1, backoff=0.01).generate("x")
    assert len(endpoint.requests) == 2, "retried once, after a normal backoff"
    assert 0.005 <= waits[0] <= 0.01


def test_a_refused_connection_is_retried_then_explained():
    endpoint = Endpoint(then=httpx.ConnectError("[Errno 111] Connection refused"))
    with pytest.raises(
        EndpointUnavailable, match=r"after 2 attempts; last: ConnectError.*is the endpoint running"
    ) as caught:
        client_for(endpoint, max_retries=1).generate("x")
    assert len(endpoint.requests) == 2 and caught.value.status_code is None


def test_a_transport_error_retrying_cannot_fix_fails_at_once():
    endpoint = Endpoint(then=httpx.ProxyError("proxy says no"))
    with pytest.raises(EndpointUnavailable, match=r"POST https://inference-test\S* failed: ProxyError"):
        client_for(endpoint).generate("x")
    assert len(endpoint.requests) == 1


def test_retry_after_as_seconds_or_an_http_date():
    assert retry_after(httpx.Response(503, headers={"Retry-After": "2.5"})) == 2.5
    response = httpx.Response(503, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    assert retry_after(response) == 0.0  # in the past: retry at once
    assert retry_after(httpx.Response(429, headers={"Retry-After": "86400"})) == 120.0  # capped
    assert retry_after(httpx.Response(503, headers={"Retry-After": "soon"})) is None
    assert retry_after(httpx.Response(503)) is None


# ----- what counts as audio ------------------------------------------------------------------
def test_a_body_that_is_not_audio_is_an_invalid_response():
    page = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
    endpoint = Endpoint(httpx.Response(200, text=page, headers={"Content-Type": "audio/wav"}))
    with pytest.raises(InvalidAudioResponse, match="HTML instead of audio"):
        client_for(endpoint).generate("x")
    assert len(endpoint.requests) == 1


def test_a_riff_file_that_is_not_wave_is_not_audio():
    data = wav_bytes()
    endpoint = Endpoint(httpx.Response(200, content=data[:8] + b"AVI " + data[12:]))
    with pytest.raises(InvalidAudioResponse, match="instead of audio"):
        client_for(endpoint).generate("x")


def test_truncated_audio_is_an_invalid_response():
    data = wav_bytes(0.5)
    endpoint = Endpoint(httpx.Response(200, content=data[: len(data) // 3], headers={SEED_HEADER: "7"}))
    with pytest.raises(InvalidAudioResponse, match="truncated"):
        client_for(endpoint).generate("x")
    assert len(endpoint.requests) == 1


@pytest.mark.parametrize(
    "seed", ["-5", "abc", str(2**64), "9" * 5000], ids=["-5", "abc", "2**64", "5000-digits"]
)
def test_a_seed_header_that_is_not_a_seed_is_a_typed_error(seed):
    endpoint = Endpoint(httpx.Response(200, content=wav_bytes(), headers={SEED_HEADER: seed}))
    with pytest.raises(InvalidResponse, match="X-Seed"):
        client_for(endpoint).generate("x")


def test_a_gzip_encoded_clip_is_inflated_within_the_limit():
    """The bounded gzip path still gives a gzip-encoded WAV back whole."""
    headers = {"Content-Encoding": "gzip", SEED_HEADER: "7"}
    endpoint = Endpoint(httpx.Response(200, content=gzip.compress(wav_bytes()), headers=headers))
    clip = client_for(endpoint).generate("x")
    assert clip.seed == 7 and clip.samples.shape[0] == 2 and clip.samples.shape[1] > 0


def test_an_html_error_page_built_to_be_slow_is_parsed_in_linear_time():
    page = b"<html>" + b"<title>" * 20_000
    endpoint = Endpoint(httpx.Response(500, content=page, headers={"Content-Type": "text/html"}))
    started = time.monotonic()
    with pytest.raises(GenerationFailed, match="HTTP 500"):
        client_for(endpoint).generate("x")
    assert time.monotonic() - started < 5


# ----- configuration and local refusals ------------------------------------------------------
def test_url_and_key_from_the_environment_or_a_dotenv_file(tmp_path, monkeypatch):
    monkeypatch.delenv("INFERENCE_URL", raising=False)
    monkeypatch.delenv("INFERENCE_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    endpoint = Endpoint()
    transport = httpx.MockTransport(endpoint)
    with pytest.raises(EndpointNotConfigured, match="INFERENCE_URL"):
        AudioClient(transport=transport)

    (tmp_path / ".env").write_text(f"INFERENCE_URL={URL}/v1\nINFERENCE_API_KEY={KEY}\n")
    with AudioClient(transport=transport) as client:
        assert client.url == URL
        client.generate("from the .env file")
    assert endpoint.requests[-1].headers["Authorization"] == f"Bearer {KEY}"

    monkeypatch.setenv("INFERENCE_URL", "https://from-the-environment.example")
    monkeypatch.setenv("INFERENCE_API_KEY", "sk-from-the-environment-wins")
    with AudioClient(transport=transport) as client:
        client.generate("environment first")
    sent = endpoint.requests[-1]
    assert (sent.url.host, sent.headers["Authorization"]) == (
        "from-the-environment.example",
        "Bearer sk-from-the-environment-wins",
    )


def test_the_url_and_the_key_never_come_from_two_sources(tmp_path, monkeypatch):
    """A key is only ever sent to the URL named beside it: both from the environment, or both from .env."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(f"INFERENCE_URL={URL}\nINFERENCE_API_KEY={KEY}\n")
    endpoint = Endpoint()
    transport = httpx.MockTransport(endpoint)

    # The environment names another URL but no key: the .env key is not sent there.
    monkeypatch.setenv("INFERENCE_URL", "https://chosen-in-the-environment.example")
    monkeypatch.delenv("INFERENCE_API_KEY", raising=False)
    with AudioClient(transport=transport) as client:
        client.generate("x")
    assert endpoint.requests[-1].url.host == "chosen-in-the-environment.example"
    assert "Authorization" not in endpoint.requests[-1].headers

    # The environment holds a key but no URL: the key is not sent to the URL .env names.
    monkeypatch.delenv("INFERENCE_URL")
    monkeypatch.setenv("INFERENCE_API_KEY", "sk-meant-for-another-endpoint")
    with AudioClient(transport=transport) as client:
        client.generate("x")
    assert endpoint.requests[-1].headers["Authorization"] == f"Bearer {KEY}"


def test_a_dotenv_in_a_parent_folder_is_never_read(tmp_path, monkeypatch):
    monkeypatch.delenv("INFERENCE_URL", raising=False)
    monkeypatch.delenv("INFERENCE_API_KEY", raising=False)
    project = tmp_path / "project"
    (project / "notebooks" / "deep").mkdir(parents=True)
    monkeypatch.setattr(settings, "PROJECT_ROOT", project)
    (tmp_path / ".env").write_text("INFERENCE_URL=https://someone-elses.example\nINFERENCE_API_KEY=sk-x\n")
    endpoint = Endpoint()
    for folder in (project, project / "notebooks"):
        monkeypatch.chdir(folder)
        with pytest.raises(EndpointNotConfigured):
            AudioClient(transport=httpx.MockTransport(endpoint))

    # The project's own .env (beside its pyproject.toml) is read from a folder inside it.
    (project / "pyproject.toml").write_text("")
    (project / ".env").write_text(f"INFERENCE_URL={URL}\nINFERENCE_API_KEY={KEY}\n")
    monkeypatch.chdir(project / "notebooks" / "deep")
    with AudioClient(transport=httpx.MockTransport(endpoint)) as client:
        client.generate("x")
    assert endpoint.requests[-1].headers["Authorization"] == f"Bearer {KEY}"
    assert endpoint.requests[-1].url.host == "inference-test.example"


def test_bad_parameters_are_refused_before_any_request():
    endpoint = Endpoint()
    with client_for(endpoint) as client, pytest.raises(InvalidParameters) as caught:
        client.generate("x", seed=-1)
    assert caught.value.field == "parameters.seed" and "allowed" in str(caught.value)
    assert caught.value.status_code is None  # refused here, not by the endpoint
    assert endpoint.requests == []


# ----- batches -------------------------------------------------------------------------------
def test_a_batch_keeps_going_leaves_no_partial_file_and_reruns_only_what_is_missing(tmp_path):
    prompts = ["one", "two", "three", ""]
    endpoint = Endpoint(ok_audio(seed=1), failure(500, "boom"), ok_audio(seed=3))
    with client_for(endpoint) as client:
        results = client.generate_many(prompts, concurrency=1, out_dir=tmp_path, progress=False)

    assert [r.ok for r in results] == [True, False, True, False]
    assert isinstance(results[1].error, GenerationFailed) and results[1].path is None
    assert isinstance(results[3].error, InvalidParameters)
    assert len(endpoint.requests) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0000-one.wav", "0002-three.wav", "manifest.jsonl"]
    lines = [json.loads(line) for line in (tmp_path / "manifest.jsonl").read_text().splitlines()]
    assert [line["status"] for line in lines] == ["ok", "failed", "ok", "failed"]
    assert [line["request"]["inputs"] for line in lines] == prompts
    assert lines[0]["path"] == "0000-one.wav" and lines[0]["seed"] == 1
    assert "(HTTP 500): boom" in lines[1]["error"] and lines[1]["path"] is None

    # Again: the two saved clips are reused, only "two" is generated.
    with client_for(endpoint) as client:
        again = client.generate_many(prompts[:3], concurrency=2, out_dir=tmp_path, progress=False)
    assert [r.ok for r in again] == [True, True, True]
    assert [r.reused for r in again] == [True, False, True]
    assert endpoint.bodies()[-1]["inputs"] == "two"
    assert len(endpoint.requests) == 4
    assert (tmp_path / "0001-two.wav").is_file()


def test_a_changed_request_is_not_reused(tmp_path):
    endpoint = Endpoint()
    with client_for(endpoint) as client:
        client.generate_many([GenerationRequest.build("rain", seed=1)], out_dir=tmp_path, progress=False)
        client.generate_many([GenerationRequest.build("rain", seed=2)], out_dir=tmp_path, progress=False)
    assert [body["parameters"]["seed"] for body in endpoint.bodies()] == [1, 2]
