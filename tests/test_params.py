"""The shared parameter model: the same rules the client and the server apply."""

from __future__ import annotations

import json
import warnings

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flexaudio_helpers.errors import InvalidParameters
from flexaudio_helpers.params import (
    MAX_AUDIO_SECONDS,
    MAX_GUIDANCE,
    MAX_SEED,
    MAX_STEPS,
    MIN_AUDIO_SECONDS,
    GenerationRequest,
)

SEED_EXAMPLES = [
    {
        "inputs": "Relaxing piano music with soft ambient sounds, calm and peaceful",
        "parameters": {"audio_end_in_s": 10.0, "num_inference_steps": 200, "guidance_scale": 7.0, "seed": 42},
    },
    {
        "inputs": "Forest ambience with birds chirping and a gentle stream flowing",
        "parameters": {
            "audio_end_in_s": 15.0,
            "num_inference_steps": 200,
            "guidance_scale": 7.0,
            "negative_prompt": "distorted, low quality, muffled",
            "seed": 123,
        },
    },
    {
        "inputs": "Upbeat electronic music with synthesizers and energetic drums, 128 bpm",
        "parameters": {
            "audio_end_in_s": 20.0,
            "num_inference_steps": 200,
            "guidance_scale": 7.0,
            "seed": 456,
        },
    },
]


@pytest.mark.parametrize("body", SEED_EXAMPLES)
def test_serialising_gives_exactly_the_tutorial_body(body):
    request = GenerationRequest.build(body["inputs"], **body["parameters"])
    assert request.to_body() == body
    assert json.loads(json.dumps(request.to_body())) == body
    assert GenerationRequest.from_body(body) == request


def test_the_alias_warns_and_sends_the_real_name():
    with pytest.warns(UserWarning, match="audio_end_in_s"):
        request = GenerationRequest.build("rain", audio_length_in_s=12.5)
    assert request.to_body() == {"inputs": "rain", "parameters": {"audio_end_in_s": 12.5}}
    with pytest.raises(InvalidParameters) as both:
        GenerationRequest.build("rain", audio_length_in_s=12.5, audio_end_in_s=12.5)
    assert both.value.field == "parameters.audio_length_in_s"


@pytest.mark.parametrize(
    ("field", "value", "expected_in_message"),
    [
        ("audio_end_in_s", 0.0, "from 0.0464 (one latent frame)"),
        ("audio_end_in_s", 1e-9, "from 0.0464 (one latent frame)"),
        ("audio_end_in_s", MAX_AUDIO_SECONDS + 0.01, "47.5545"),
        ("num_inference_steps", MAX_STEPS + 1, f"1 to {MAX_STEPS}"),
        ("num_inference_steps", 3.0, "integer"),
        ("guidance_scale", -0.5, f"0 to {MAX_GUIDANCE:g}"),
        ("guidance_scale", float("inf"), "finite"),
        ("seed", MAX_SEED + 1, "2**64 - 1"),
        ("seed", True, "integer"),
        ("negative_prompt", "x" * 2001, "2000 characters"),
    ],
)
def test_errors_name_field_value_and_range(field, value, expected_in_message):
    with pytest.raises(InvalidParameters) as caught:
        GenerationRequest.build("a prompt", **{field: value})
    error = caught.value
    assert error.field == f"parameters.{field}"
    assert expected_in_message in str(error)
    assert error.allowed and error.allowed in str(error)


def test_range_errors_state_the_range_once_and_type_errors_keep_the_reason():
    with pytest.raises(InvalidParameters) as too_long:
        GenerationRequest.build("a prompt", audio_end_in_s=60.0)
    assert str(too_long.value) == (
        "parameters.audio_end_in_s=60.0 is not allowed; allowed: seconds, from 0.0464 (one latent frame) "
        "to 47.5545"
    )
    with pytest.raises(InvalidParameters) as not_a_number:
        GenerationRequest.build("a prompt", num_inference_steps="many")
    assert "(Input should be a valid integer" in str(not_a_number.value)


def test_unknown_parameters_list_the_allowed_names():
    with pytest.raises(InvalidParameters) as caught:
        GenerationRequest.build("a prompt", steps=10)
    assert caught.value.field == "parameters.steps"
    for name in ("audio_end_in_s", "num_inference_steps", "guidance_scale", "negative_prompt", "seed"):
        assert name in str(caught.value)


def test_every_problem_is_listed_and_long_values_are_shortened():
    with pytest.raises(InvalidParameters) as caught:
        GenerationRequest.from_body({"inputs": "y" * 5000, "parameters": {"seed": -1}})
    fields = [field for field, _ in caught.value.problems]
    assert fields == ["inputs", "parameters.seed"]
    assert len(str(caught.value)) < 600


def test_start_must_be_before_end():
    with pytest.raises(InvalidParameters) as caught:
        GenerationRequest.build("x", audio_start_in_s=5.0, audio_end_in_s=5.0)
    assert caught.value.field == "parameters.audio_start_in_s"
    assert (
        GenerationRequest.build("x", audio_start_in_s=1.0, audio_end_in_s=5.0).parameters.audio_start_in_s
        == 1
    )


valid_parameters = st.fixed_dictionaries(
    {},
    optional={
        "audio_end_in_s": st.floats(min_value=MIN_AUDIO_SECONDS, max_value=MAX_AUDIO_SECONDS),
        "num_inference_steps": st.integers(min_value=1, max_value=MAX_STEPS),
        "guidance_scale": st.floats(min_value=0, max_value=MAX_GUIDANCE),
        "negative_prompt": st.text(max_size=50),
        "seed": st.integers(min_value=0, max_value=MAX_SEED),
    },
)


@given(prompt=st.text(min_size=1, max_size=100).filter(str.strip), parameters=valid_parameters)
def test_valid_requests_round_trip_through_json(prompt, parameters):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no alias here, so no warning either
        request = GenerationRequest.build(prompt, **parameters)
    body = json.loads(json.dumps(request.to_body()))
    assert body == {"inputs": prompt, "parameters": parameters}
    assert GenerationRequest.from_body(body) == request
