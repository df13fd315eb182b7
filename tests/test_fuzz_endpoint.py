"""Fuzzing ``POST /v1/audios/generations`` on a real local endpoint (offline model, 127.0.0.1).

Over 1,000 cases from three sources:
- schemathesis: negative cases from the app's own OpenAPI document (bodies and headers that
  break the schema, wrong or missing bearer keys), plus a few positive ones;
- hypothesis: raw bodies a schema cannot describe (invalid JSON, NaN/Infinity, huge numbers,
  negative durations, lone surrogates, unicode, extra fields, wrong types, utf-16, wrong
  content types, wrong auth schemes);
- explicit oversized bodies (multi-megabyte prompts, with and without Content-Length).

Every answer is compared with what the shared parameter model says about the same bytes
(`expected_answer`): the status must match, nothing may be a 5xx, and every error carries our
JSON body with `param` naming the field at fault. A case the server would accept costs a real
generation (seconds on a CPU), so those are not sent in bulk: `hypothesis.reject` drops them
and a capped few run with 2 steps. Afterwards the server process must be alive, its log free
of tracebacks, and a valid request must still give a WAV.
"""

from __future__ import annotations

import io
import json
import warnings
from collections import Counter

import httpx
import pytest
import requests
import schemathesis
import soundfile as sf
from conftest import examples, start_server, stop_server
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from flexaudio_helpers.errors import InvalidParameters
from flexaudio_helpers.params import MAX_PROMPT_CHARS, MAX_SEED, GenerationRequest
from flexaudio_helpers.protocol import GENERATIONS_ROUTE
from flexaudio_helpers.serving.app import MAX_BODY_BYTES, TEXT_BODY_BYTES

FUZZ = settings(
    deadline=None,
    database=None,
    derandomize=True,  # the same cases on every run, so CI cost and failures are reproducible
    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow, HealthCheck.data_too_large],
)
SCHEMA_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
TIMEOUT = httpx.Timeout(30.0, connect=5.0)  # a refusal takes milliseconds; a generation a few seconds
FIELDS_NAMED: Counter[str | None] = Counter()  # for the closing summary
MAX_GENERATIONS = 3  # valid cases actually sent (each one a real generation)


class Fuzzing:
    """The server under test and the tally of what was sent and answered."""

    def __init__(self, server) -> None:
        self.server = server
        self.url = server.url + GENERATIONS_ROUTE
        self.statuses: Counter[int] = Counter()
        self.sources: Counter[str] = Counter()
        self.valid_dropped = 0
        self.generations = 0

    def good_auth(self) -> str:
        return f"Bearer {self.server.api_key}"


@pytest.fixture(scope="module")
def fuzzing(tmp_path_factory):
    """A fresh endpoint of our own, so its survival and its log speak for this file alone."""
    # --docs: schemathesis reads the served /openapi.json
    server = start_server(tmp_path_factory.mktemp("fuzz"), "--max-waiting", "4", "--docs")
    yield Fuzzing(server)
    stop_server(server)


def expected_answer(raw: bytes, headers: httpx.Headers | dict, api_key: str) -> tuple[int, str | None] | None:
    """(status, param) the endpoint must answer for these bytes, or None if it must generate.

    The oracle is the shared parameter model itself, applied in the endpoint's order: auth,
    size cap, JSON, then the model. Content-Type is not consulted (curl -d works as is).
    """
    # The header's bytes against the key's, as the endpoint compares them (str.strip would also
    # strip \x85 and \xa0; httpx would decode UTF-8).
    sent = [value for name, value in httpx.Headers(headers).raw if name.lower() == b"authorization"]
    scheme, _, given_key = (sent[0] if sent else b"").partition(b" ")
    if scheme.lower() != b"bearer" or given_key.strip() != api_key.encode():
        return 401, None
    # Room for an audio-to-audio source only when the body declares its length (`serving.app`);
    # bytes go out with a Content-Length, unless the headers say chunked.
    chunked = "chunked" in httpx.Headers(headers).get("transfer-encoding", "").lower()
    if len(raw) > (TEXT_BODY_BYTES if chunked else MAX_BODY_BYTES):
        return 413, "body"
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        return 400, "body"
    try:
        with warnings.catch_warnings():  # the audio_length_in_s alias warns; the server's log shows it
            warnings.simplefilter("ignore")
            GenerationRequest.from_body(body)
    except InvalidParameters as exc:
        return 422, exc.field
    return None


def check_refusal(response: httpx.Response | requests.Response, expected: tuple[int, str | None]) -> None:
    """A 4xx with our JSON error body naming the field (the same field the model names)."""
    status, param = expected
    assert response.status_code == status, (response.status_code, response.content[:300])
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    FIELDS_NAMED[error["param"]] += 1
    assert set(error) == {"message", "type", "param"}
    assert isinstance(error["message"], str) and error["message"]
    assert error["param"] == param
    if param and param != "body":
        name = param.rsplit(".", 1)[-1]
        assert name in error["message"] or repr(name) in error["message"], error["message"]
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"


def check_audio(response: httpx.Response | requests.Response) -> None:
    assert response.status_code == 200, response.content[:300]
    assert response.headers["content-type"] == "audio/wav"
    samples, rate = sf.read(io.BytesIO(response.content))
    assert rate == 44_100 and samples.ndim == 2 and samples.shape[1] == 2 and len(samples) > 0
    assert int(response.headers["x-seed"]) >= 0


# ---------------------------------------------------------------- schemathesis (OpenAPI)


@pytest.fixture(scope="module")
def generation_operation(fuzzing):
    """The generation route as schemathesis reads it from the served /openapi.json."""
    schema = schemathesis.openapi.from_url(fuzzing.server.url + "/openapi.json")
    return schema[GENERATIONS_ROUTE]["POST"]


def _send_case(fuzzing: Fuzzing, session: requests.Session, case, *, allow_generation: bool, real_key: bool):
    """Send a schemathesis case as it serialises it; returns (response, expected) or rejects.

    With `real_key` the real bearer key replaces the case's (schemathesis makes one up); else a
    case's own Authorization header (a broken one, in negative mode) is sent as it is.
    """
    has_auth = any(name.lower() == "authorization" for name in case.headers or {})
    auth = {"Authorization": fuzzing.good_auth()} if real_key or not has_auth else None
    kwargs = case.as_transport_kwargs(base_url=fuzzing.server.url, headers=auth)
    try:
        prepared = requests.Request(**kwargs).prepare()
    except (ValueError, TypeError):  # e.g. NaN that requests refuses to put in JSON: cannot be sent
        reject()
    raw = prepared.body or b""
    raw = raw.encode() if isinstance(raw, str) else raw
    expected = expected_answer(raw, dict(prepared.headers), fuzzing.server.api_key)
    if expected is None and not allow_generation:
        fuzzing.valid_dropped += 1
        reject()
    response = session.send(prepared, timeout=(5, 60))
    fuzzing.statuses[response.status_code] += 1
    fuzzing.sources["schemathesis"] += 1
    case.validate_response(response, checks=SCHEMA_CHECKS)
    return response, expected


def test_schemathesis_negative_cases_are_refused_naming_the_field(fuzzing, generation_operation):
    session = requests.Session()
    sent = Counter()

    @settings(FUZZ, max_examples=examples(550))
    @given(
        case=generation_operation.as_strategy(GenerationMode.NEGATIVE),
        real_key=st.sampled_from([True, True, False]),
    )
    def fuzz(case, real_key):
        # Most cases carry the real key, so broken bodies get past the auth check.
        response, expected = _send_case(fuzzing, session, case, allow_generation=False, real_key=real_key)
        check_refusal(response, expected)
        sent[response.status_code] += 1

    fuzz()
    assert sum(sent.values()) >= examples(500), sent  # few cases rejected before sending
    assert {401, 422} <= set(sent), sent  # both the auth and the body were fuzzed


def test_schemathesis_positive_cases_generate_or_are_refused_consistently(fuzzing, generation_operation):
    session = requests.Session()
    generated = []

    @settings(FUZZ, max_examples=examples(12))
    @given(case=generation_operation.as_strategy(GenerationMode.POSITIVE))
    def fuzz(case):
        if isinstance(case.body, dict):
            # Steps cost CPU time linearly (100 by default): 2 are enough to prove the path.
            parameters = case.body.get("parameters")
            if isinstance(parameters, dict):
                case.body["parameters"] = {**parameters, "num_inference_steps": 2}
            else:
                case.body["parameters"] = {"num_inference_steps": 2}
        allow = fuzzing.generations < MAX_GENERATIONS
        response, expected = _send_case(fuzzing, session, case, allow_generation=allow, real_key=True)
        if expected is None:
            fuzzing.generations += 1
            check_audio(response)
            generated.append(case.body)
        else:  # the schema cannot say "start before end" or "not only whitespace"
            check_refusal(response, expected)

    fuzz()
    assert generated, "at least one schema-valid case must have generated audio"


# ---------------------------------------------------------------- hypothesis (raw bodies)

NAMES = [
    "audio_end_in_s",
    "audio_length_in_s",
    "audio_start_in_s",
    "num_inference_steps",
    "guidance_scale",
    "negative_prompt",
    "seed",
]
SURROGATES = st.sampled_from(["\ud800", "a\udfffb", "\udbff\udc00", "\ud83c"])
unicode_text = st.one_of(
    st.text(max_size=40),
    st.text(st.characters(codec="utf-8"), max_size=40),
    SURROGATES,
    st.sampled_from(["", " ", "\t\n", "\u3000", "\x00", "🎹 calm piano", "ピアノ", "\u202e evil"]),
)
long_text = st.builds(lambda char, n: char * n, st.sampled_from(["a", "é", "🎹"]), st.integers(1990, 2100))
numbers = st.one_of(
    st.integers(),
    st.integers(min_value=MAX_SEED - 2, max_value=MAX_SEED + 2),
    st.integers(min_value=10**19, max_value=10**60),
    st.floats(),  # NaN and +-inf included: json.dumps writes NaN / Infinity tokens
    st.floats(max_value=0),  # negative durations
    st.sampled_from([0, -0.0, 1e-320, 1e308, 47.5544, 47.5545, 47.56, 1000, 1001, 50.0, 50.0001]),
)
scalar = st.one_of(st.none(), st.booleans(), numbers, unicode_text)
json_value = st.recursive(
    scalar, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(unicode_text, inner, max_size=3)
)
parameters = st.dictionaries(
    st.one_of(st.sampled_from(NAMES), unicode_text), st.one_of(numbers, json_value), max_size=5
)
body = st.one_of(
    # A fine prompt, so the parameters are what is at fault.
    st.fixed_dictionaries({"inputs": st.just("calm piano"), "parameters": parameters}),
    st.fixed_dictionaries(
        {"inputs": st.one_of(unicode_text, long_text, json_value)},
        optional={"parameters": st.one_of(parameters, json_value), "extra": json_value},
    ),
    st.dictionaries(unicode_text, json_value, max_size=3),
    json_value,
)


@st.composite
def raw_body(draw) -> bytes:
    """A body as bytes: encoded JSON, sometimes mangled or in another encoding."""
    text = json.dumps(draw(body), allow_nan=True, ensure_ascii=draw(st.booleans()))
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8", "utf-16", "latin-1"]))
    raw = text.encode(encoding, errors="surrogatepass" if encoding.startswith("utf") else "replace")
    mangle = draw(st.sampled_from(["none", "none", "none", "truncate", "append", "prefix"]))
    if mangle == "truncate" and raw:
        raw = raw[: draw(st.integers(0, len(raw) - 1))]
    elif mangle == "append":
        raw += draw(st.sampled_from([b"}", b",", b"x", b"\xff", b"\x00", b" garbage"]))
    elif mangle == "prefix":
        raw = draw(st.sampled_from([b"\xef\xbb\xbf", b"\xff", b"[", b"NaN", b"//"])) + raw
    return raw


raw_bodies = st.one_of(
    raw_body(),
    st.binary(max_size=64),
    st.sampled_from(
        [b"", b"{", b"NaN", b"Infinity", b"-Infinity", b"1e999", b"[" * 5000, b'{"inputs": "x"' * 1]
    ),
)
content_types = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
        "audio/wav",
        "",
        None,
    ]
)


def _auth_values(key: str):
    good = f"Bearer {key}"
    wrong = st.sampled_from(
        [
            f"bearer {key}",  # the scheme is case-insensitive (RFC 7235)
            f"Bearer  {key}",  # the key is stripped
            None,
            "",
            "Bearer",
            f"Bearer {key}x",
            f"Bearer {key[:-1]}",
            f"Basic {key}",
            f"Token {key}",
            key,
            "Bearer null",
        ]
    )
    return st.one_of(st.just(good), st.just(good), wrong)  # mostly the right key: fuzz the body


def test_raw_bodies_content_types_and_auth(fuzzing):
    client = httpx.Client(timeout=TIMEOUT)
    sent = Counter()

    @settings(FUZZ, max_examples=examples(520))
    @given(raw=raw_bodies, content_type=content_types, auth=_auth_values(fuzzing.server.api_key))
    def fuzz(raw, content_type, auth):
        headers = {}
        if content_type is not None:
            headers["Content-Type"] = content_type
        if auth is not None:
            headers["Authorization"] = auth
        expected = expected_answer(raw, headers, fuzzing.server.api_key)
        if expected is None:
            fuzzing.valid_dropped += 1
            reject()
        response = client.post(fuzzing.url, content=raw, headers=headers)
        fuzzing.statuses[response.status_code] += 1
        fuzzing.sources["hypothesis"] += 1
        sent[response.status_code] += 1
        check_refusal(response, expected)

    fuzz()
    assert sum(sent.values()) >= examples(500), sent
    assert {400, 401, 422} <= set(sent), sent


@pytest.mark.parametrize(
    ("size", "chunked"),
    # Without a Content-Length a body has a text body's room; with one, room for init_audio too.
    [(TEXT_BODY_BYTES + 1, True), (3 * 1024 * 1024, True), (MAX_BODY_BYTES + 1, False)],
)
def test_multi_megabyte_prompts_get_413_before_parsing(fuzzing, size, chunked):
    raw = json.dumps({"inputs": "a" * size}).encode()

    def pieces():  # a generator body goes out chunked, without Content-Length
        for start in range(0, len(raw), 65_536):
            yield raw[start : start + 65_536]

    response = httpx.post(
        fuzzing.url,
        content=pieces() if chunked else raw,
        headers={"Authorization": fuzzing.good_auth(), "Content-Type": "application/json"},
        timeout=TIMEOUT,
    )
    fuzzing.statuses[response.status_code] += 1
    fuzzing.sources["oversized"] += 1
    check_refusal(response, (413, "body"))


def test_a_prompt_just_over_the_limit_fits_the_cap_and_is_refused_by_the_model(fuzzing):
    raw = json.dumps({"inputs": "🎹" * (MAX_PROMPT_CHARS + 1)}).encode()  # \ud83c\udfb9 escapes: 12 B each
    assert len(raw) <= TEXT_BODY_BYTES
    response = httpx.post(fuzzing.url, content=raw, headers={"Authorization": fuzzing.good_auth()})
    fuzzing.statuses[response.status_code] += 1
    fuzzing.sources["oversized"] += 1
    check_refusal(response, (422, "inputs"))


# ---------------------------------------------------------------- afterwards


def test_the_server_survived_and_still_serves(fuzzing):
    """Run last in this file: the process is alive, the log clean, and a valid request is served."""
    response = httpx.post(
        fuzzing.url,
        json={"inputs": "after the fuzzing", "parameters": {"num_inference_steps": 2, "seed": 7}},
        headers={"Authorization": fuzzing.good_auth()},
        timeout=httpx.Timeout(120.0, connect=5.0),
    )
    check_audio(response)
    assert response.headers["x-seed"] == "7"
    assert fuzzing.server.process.poll() is None, "the server process died"
    log = fuzzing.server.log()
    assert "Traceback" not in log and "Exception in ASGI" not in log, log[-3000:]
    total = sum(fuzzing.statuses.values())
    server_errors = {code: n for code, n in fuzzing.statuses.items() if code >= 500}
    print(
        f"\nfuzz: {total} cases sent ({dict(fuzzing.sources)}),"
        f" statuses {dict(sorted(fuzzing.statuses.items()))}, {fuzzing.generations} valid generated,"
        f" {fuzzing.valid_dropped} valid cases drawn and not sent;\nfields named: {dict(FIELDS_NAMED)}"
    )
    assert not server_errors, server_errors
