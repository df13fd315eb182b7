"""The client's side of bad input, by property: checked locally, before any network call.

Hypothesis draws prompts and keyword parameters, valid and not. An independent reading of the
documented rules (`violations`, written from `params.ALLOWED`, not from the pydantic model)
says which fields are at fault. Then:
- an invalid call raises `InvalidParameters` naming one of those fields (and listing exactly
  them), from `generate`, `generate_many` and `curl_command` alike, and nothing reaches the
  endpoint (an ``httpx.MockTransport`` that counts every request the client sends);
- a valid call serialises (as httpx puts it on the wire) to bytes that the server's parsing
  path (``json.loads`` then `GenerationRequest.from_body`, as in serving/app.py) accepts as
  the same request.
"""

from __future__ import annotations

import json
import math
import warnings

import httpx
import pytest
from conftest import examples
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from flexaudio_helpers.client import AudioClient
from flexaudio_helpers.errors import GenerationFailed, InvalidParameters
from flexaudio_helpers.params import (
    MAX_AUDIO_SECONDS,
    MAX_GUIDANCE,
    MAX_PROMPT_CHARS,
    MAX_SEED,
    MAX_STEPS,
    MIN_AUDIO_SECONDS,
    GenerationRequest,
)

NUMBER_RANGES = {  # (low, low included, high, high included)
    "audio_end_in_s": (MIN_AUDIO_SECONDS, True, MAX_AUDIO_SECONDS, True),  # at least one latent frame
    "audio_start_in_s": (0.0, True, MAX_AUDIO_SECONDS, False),
    "guidance_scale": (0.0, True, MAX_GUIDANCE, True),
}
INTEGER_RANGES = {"num_inference_steps": (1, MAX_STEPS), "seed": (0, MAX_SEED)}
TEXT_FIELDS = {"negative_prompt"}
ALIAS = "audio_length_in_s"


def _text_ok(value, *, min_chars: int) -> bool:
    if not isinstance(value, str) or not min_chars <= len(value) <= MAX_PROMPT_CHARS:
        return False
    try:
        value.encode("utf-8")  # lone surrogates cannot travel as JSON text
    except UnicodeEncodeError:
        return False
    return True


def _number_ok(name: str, value) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return False
    low, low_in, high, high_in = NUMBER_RANGES[name]
    return (value >= low if low_in else value > low) and (value <= high if high_in else value < high)


def violations(prompt, parameters: dict) -> set[str]:
    """The fields at fault, read from the documented rules alone."""
    faults = set()
    if not _text_ok(prompt, min_chars=1) or not prompt.strip():
        faults.add("inputs")
    parameters = dict(parameters)
    if ALIAS in parameters:
        if "audio_end_in_s" in parameters:
            return faults | {f"parameters.{ALIAS}"}
        parameters["audio_end_in_s"] = parameters.pop(ALIAS)
    for name, value in parameters.items():
        if value is None and (name in NUMBER_RANGES or name in INTEGER_RANGES or name in TEXT_FIELDS):
            continue  # None means "the server's default"
        if name in NUMBER_RANGES:
            ok = _number_ok(name, value)
        elif name in INTEGER_RANGES:
            low, high = INTEGER_RANGES[name]
            ok = isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
        elif name in TEXT_FIELDS:
            ok = _text_ok(value, min_chars=0)
        else:
            ok = False  # an unknown name
        if not ok:
            faults.add(f"parameters.{name}")
    start, end = parameters.get("audio_start_in_s"), parameters.get("audio_end_in_s")
    if (
        start is not None
        and end is not None
        and {"parameters.audio_start_in_s", "parameters.audio_end_in_s"}.isdisjoint(faults)
        and end - start < MIN_AUDIO_SECONDS  # the kept window holds at least one latent frame
    ):
        faults.add("parameters.audio_start_in_s")
    return faults


# Values around and beyond each documented bound, and of every wrong type.
wrong_scalars = st.one_of(
    st.booleans(),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
    st.sampled_from([math.nan, math.inf, -math.inf, b"7", 3j]),
)
wrong_types = st.one_of(wrong_scalars, st.dictionaries(st.text(max_size=3), st.integers(), max_size=1))
numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-1, max_value=MAX_AUDIO_SECONDS + 5),
    st.integers(min_value=-5, max_value=60),
    st.sampled_from([0, 0.0, -0.0, 5e-324, 1e-9, MIN_AUDIO_SECONDS, MIN_AUDIO_SECONDS - 1e-9]),
    st.sampled_from([MAX_AUDIO_SECONDS, MAX_AUDIO_SECONDS + 1e-9, 50, 50.0001]),
)
integers = st.one_of(
    st.integers(min_value=-3, max_value=MAX_STEPS + 3),
    st.integers(min_value=MAX_SEED - 3, max_value=MAX_SEED + 3),
    st.integers(),
    st.sampled_from([1.0, 2.5, 0.0]),
)
texts = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["", " ", "\ud800", "a\udfffb", "é" * MAX_PROMPT_CHARS, "x" * (MAX_PROMPT_CHARS + 1)]),
)
VALUES = {
    **{name: numbers for name in NUMBER_RANGES},
    ALIAS: numbers,
    **{name: integers for name in INTEGER_RANGES},
    "negative_prompt": texts,
}
mixed_parameter_sets = st.dictionaries(
    st.sampled_from([*VALUES, "steps", "duration", "cfg", "Seed", "audio_end_in_s "]),
    st.none(),
    max_size=4,
).flatmap(
    lambda names: st.fixed_dictionaries(
        {name: st.one_of(VALUES.get(name, wrong_types), wrong_types, st.none()) for name in names}
    )
)
valid_parameter_sets = st.fixed_dictionaries(
    {},
    optional={
        "audio_end_in_s": st.floats(min_value=MIN_AUDIO_SECONDS, max_value=MAX_AUDIO_SECONDS),
        "audio_start_in_s": st.floats(min_value=0, max_value=5),
        "num_inference_steps": st.integers(min_value=1, max_value=MAX_STEPS),
        "guidance_scale": st.floats(min_value=0, max_value=MAX_GUIDANCE),
        "negative_prompt": st.text(st.characters(codec="utf-8"), max_size=30),
        "seed": st.integers(min_value=0, max_value=MAX_SEED),
    },
)
parameter_sets = st.one_of(mixed_parameter_sets, valid_parameter_sets)
prompts = st.one_of(
    st.text(min_size=1, max_size=40),
    texts,
    st.sampled_from(["Rain on a tin roof", "\t\n", "🎹" * MAX_PROMPT_CHARS]),
    wrong_scalars,  # (a dict would be a whole body)
    st.none(),
)
CASES = settings(
    max_examples=examples(800), deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


class Endpoint:
    """A transport that refuses every request it is sent (HTTP 500), and counts them."""

    def __init__(self) -> None:
        self.sent = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.sent += 1
        return httpx.Response(500, text="this test endpoint answers nothing")

    def requests(self) -> int:
        """The requests sent since the last call."""
        sent, self.sent = self.sent, 0
        return sent


@pytest.fixture(scope="module")
def endpoint():
    return Endpoint()


@pytest.fixture(scope="module")
def client(endpoint):
    # max_retries=0: should a bad request slip through, the test fails fast.
    transport = httpx.MockTransport(endpoint)
    with AudioClient("http://127.0.0.1:9", "client-key-0123456789", max_retries=0, transport=transport) as c:
        yield c


def _quietly(call, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the alias warns; that is tested in test_params.py
        return call(*args, **kwargs)


def _check_refusal(exc: InvalidParameters, faults: set[str]) -> None:
    assert exc.field in faults, (exc.field, faults, str(exc))
    assert {field for field, _ in exc.problems} == faults, (exc.problems, faults)
    name = exc.field.rsplit(".", 1)[-1]
    assert name in str(exc) or repr(name) in str(exc), str(exc)


@CASES
@given(prompt=prompts, parameters=parameter_sets)
def test_invalid_calls_fail_locally_naming_the_field_and_valid_ones_serialise(
    client, endpoint, prompt, parameters
):
    faults = violations(prompt, parameters)
    event("invalid" if faults else "valid")  # shown by --hypothesis-show-statistics
    if faults:
        # A prompt that is not text is not a request at all: the whole body is at fault.
        direct_faults = faults if isinstance(prompt, str) else {"body"}
        with pytest.raises(InvalidParameters) as caught:
            _quietly(client.generate, prompt, **parameters)
        _check_refusal(caught.value, direct_faults)
        with pytest.raises(InvalidParameters) as caught:
            _quietly(client.curl_command, prompt, **parameters)
        _check_refusal(caught.value, direct_faults)
        [result] = _quietly(
            client.generate_many, [{"inputs": prompt, "parameters": parameters}], progress=False
        )
        assert not result.ok and isinstance(result.error, InvalidParameters)
        _check_refusal(result.error, faults)
        assert endpoint.requests() == 0, "an invalid request reached the network"
        return

    request = _quietly(GenerationRequest.build, prompt, **parameters)
    # Exactly the bytes httpx would send, read back the way the endpoint reads them.
    wire = httpx.Request("POST", client.generations_url, json=request.to_body()).content
    assert GenerationRequest.from_body(json.loads(wire)) == request
    command = client.curl_command(request)
    assert "client-key" not in command and "$INFERENCE_API_KEY" in command
    assert endpoint.requests() == 0


def test_the_transport_does_see_a_request_that_is_sent(client, endpoint):
    """The no-network check above can fail: a valid request does reach the transport."""
    with pytest.raises(GenerationFailed):  # the test endpoint answers 500
        client.generate("Rain on a tin roof", num_inference_steps=2)
    assert endpoint.requests() == 1
