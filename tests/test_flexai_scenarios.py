"""The tour's FlexAI steps against every CLI behaviour the public material leaves open.

The real ``flexai`` CLI cannot be installed here and FlexAI's cloud cannot be reached, so each
test puts the scripted stand-in (`flexai_stand_in.py`) first on PATH as ``flexai`` and picks one
of its `SCENARIOS`: the documented formats, or an assumed variant of them (key on stderr, in a
box table, a prompting ``delete``, cobra's exit 0 on an unknown subcommand, ...). The endpoint
URL it reports points at a real local endpoint (offline model), so readiness makes a real
generation with the key the wrapper saved.
"""

from __future__ import annotations

import stat
import time
from pathlib import Path

import pytest
from flexai_stand_in import OTHER_TOKEN, OTHER_UUID, SCENARIOS
from test_deploy_flexai import HF_TOKEN, StandIn, fast, install_stand_in

from flexaudio_helpers.deploy import FlexAIDeployment, LocalDeployment, connect, store
from flexaudio_helpers.errors import ApiKeyNotFound, FlexAudioError, NotLoggedIn, UnsupportedCommand

NAME = "stable-audio-open"
WAIT_TIMEOUT = 15.0  # the status wait's bound in these tests
SLACK = 15.0  # generous: a busy 2-core machine starts each stand-in call slowly

READY = {"login": "in", "serve": "key saved", "rerun": "reused", "wait": "ready", "delete": "deleted"}
EXPECTED: dict[str, dict[str, str]] = {
    "documented": READY,
    "key_on_stderr": READY,
    "key_in_box_table": READY,
    "key_with_ansi_colours": READY,
    "key_label_access_key": READY,
    "key_label_api_key_snake": READY,
    "key_label_bare_key": READY,
    "key_after_english_word": READY,
    "serve_fails_after_key": {**READY, "serve": "key saved, CommandFailed"},
    "serve_keeps_running": READY,
    "serve_fails_without_key": {
        **READY,
        "serve": "ApiKeyNotFound, output saved unshown",
        "rerun": "ApiKeyNotFound",
        "wait": "CommandFailed",  # nothing was created: inspect keeps saying "not found"
    },
    "no_key_in_output": {
        **READY,
        "serve": "ApiKeyNotFound, output saved unshown",
        "rerun": "ApiKeyNotFound",
        "wait": "ApiKeyNotFound",
    },
    "delete_prompts_with_flag": READY,
    "delete_prompts_without_flag": {**READY, "delete": "EndpointStillRunning"},
    "delete_lingers_deleting": READY,
    "cobra_missing_verbs": {**READY, "delete": "UnsupportedCommand, scaled to zero"},
    "auth_exit0_not_authenticated": {"login": "out"},
    "auth_token_refreshed": READY,
    "status_rejected": {**READY, "wait": "EndpointFailed"},
    "status_stop_in_progress": {**READY, "wait": "EndpointFailed"},
    "unknown_status": READY,
    "inspect_fails_after_create": READY,
    "stop_does_nothing": READY,  # the tour does not stop: see test_flexai_safety
    "truncated_table_cells": READY,
    "serve_name_already_exists": READY,
}


@pytest.fixture
def flexai(tmp_path, monkeypatch) -> StandIn:
    """The stand-in installed as `flexai`, first on PATH, with a fresh state folder."""
    return install_stand_in(tmp_path, monkeypatch)


def test_every_scenario_has_an_expectation_and_a_tag():
    assert set(EXPECTED) == set(SCENARIOS)
    for tag, _ in SCENARIOS.values():
        assert tag.startswith(("documented", "assumed variant")), tag


class Tour:
    """Runs the tour's deploy calls, recording each outcome and everything shown to the user."""

    def __init__(self, stand_in: StandIn) -> None:
        self.stand_in = stand_in
        self.outcome: dict[str, str] = {}
        self.shown: list[str] = []  # exception texts, reasons, inspect JSON, logs
        self.errors: dict[str, FlexAudioError] = {}

    def step(self, label: str, action, success: str) -> float:
        """Run `action`; record `success` or the error's class name; return the seconds it took."""
        started = time.monotonic()
        try:
            action()
            self.outcome[label] = success
        except FlexAudioError as error:
            self.outcome[label] = type(error).__name__
            self.errors[label] = error
            self.shown.append(str(error))
        return time.monotonic() - started

    def endpoint_running(self) -> bool:
        endpoints = self.stand_in.state()["endpoints"]
        return NAME in endpoints and "deleting" not in endpoints[NAME]


# The fast tier runs the documented scenarios; the assumed variants run in the slow one.
TIERED = [
    pytest.param(name, marks=() if tag.startswith("documented") else pytest.mark.slow)
    for name, (tag, _) in SCENARIOS.items()
]


@pytest.mark.parametrize("scenario", TIERED)
def test_tour_keeps_the_key_and_the_bill_safe(scenario, flexai, offline_server, capfd):
    """Secret, serve (twice, as a rerun of notebook 02), wait, inspect, delete against one scenario.

    Uses the stand-in ``flexai`` (see the module docstring). Asserts the outcome of each step, and
    for every scenario: the key is saved (the right one) or reported unshown with the saved-output
    path; nothing shown holds the key, the HF token or another id from serve's output; no endpoint
    is left running while its record is deleted; every wait ends within its bound.
    """
    _, settings = SCENARIOS[scenario]
    key = offline_server.api_key
    flexai.scenario(
        api_key=key,
        url=offline_server.url,
        **{"statuses": [["enqueued", None], ["running", "{url}"]], **settings},
    )
    tour = Tour(flexai)
    deployment: FlexAIDeployment | None = None

    def log_in() -> None:
        nonlocal deployment
        deployment = fast(connect("flexai"))
        tour.shown.append(deployment.reason)

    tour.step("login", log_in, "in")
    if deployment is None:
        assert isinstance(tour.errors["login"], NotLoggedIn)
        chosen = connect()
        assert isinstance(chosen, LocalDeployment)
        assert "not logged in" in chosen.reason and "Not authenticated" in chosen.reason
        tour.outcome["login"] = "out"
        assert tour.outcome == EXPECTED[scenario]
        return

    deployment.create_secret("MY_HF_TOKEN", HF_TOKEN)
    assert deployment.secret_exists("MY_HF_TOKEN")
    assert [call["argv"][:2] for call in flexai.calls()].count(["secret", "create"]) == 1

    serve_seconds = tour.step(
        "serve", lambda: deployment.serve(NAME, hf_token_secret="MY_HF_TOKEN"), "key saved"
    )
    assert serve_seconds < deployment.serve_exit_grace + SLACK  # even when serve never exits
    record = store.load_record("flexai", NAME)
    if record and record.get("api_key"):
        assert record["api_key"] == key  # the key, not a word that followed a colon
        assert stat.S_IMODE(store.record_path("flexai", NAME).stat().st_mode) == 0o600
        if tour.outcome["serve"] != "key saved":
            tour.outcome["serve"] = f"key saved, {tour.outcome['serve']}"
    else:
        saved_output = store.state_dir() / f"flexai-serve-{NAME}.out"
        assert str(saved_output) in str(tour.errors["serve"])
        assert stat.S_IMODE(saved_output.stat().st_mode) == 0o600
        tour.outcome["serve"] += ", output saved unshown"

    tour.step("rerun", lambda: deployment.serve(NAME, hf_token_secret="MY_HF_TOKEN"), "reused")
    assert [call["argv"][:2] for call in flexai.calls()].count(["inference", "serve"]) <= 2

    wait_seconds = tour.step("wait", lambda: deployment.wait_until_ready(NAME, timeout=WAIT_TIMEOUT), "ready")
    bound = WAIT_TIMEOUT + deployment.inspect_grace + SLACK
    if tour.outcome["wait"] == "ready":
        bound += deployment.confirm_timeout
    assert wait_seconds < bound
    if tour.outcome["wait"] == "EndpointFailed":  # ended by the status, not by the timeout
        assert wait_seconds < WAIT_TIMEOUT
        tour.shown.append(tour.errors["wait"].logs)

    if tour.endpoint_running():
        info = deployment.inspect(NAME)
        tour.shown.append(info.to_json())

    record_before_delete = store.load_record("flexai", NAME)

    def delete() -> None:
        try:
            deployment.delete(NAME)
        except UnsupportedCommand as error:
            assert "--min-replicas 0" in str(error)
            tour.shown.append(str(error))
            deployment.scale_to_zero(NAME)
            raise

    delete_seconds = tour.step("delete", delete, "deleted")
    if tour.outcome["delete"] == "UnsupportedCommand":
        tour.outcome["delete"] += ", scaled to zero"
        scales = [call["argv"] for call in flexai.calls() if call["argv"][:2] == ["inference", "scale"]]
        assert scales == [["inference", "scale", NAME, "--min-replicas", "0", "--max-replicas", "1"]]
    assert delete_seconds < deployment.gone_timeout + SLACK

    # No endpoint left running while its record (and key) is forgotten.
    if tour.endpoint_running() and record_before_delete:
        assert store.load_record("flexai", NAME) == record_before_delete
    if tour.outcome["delete"] == "EndpointStillRunning":
        message = str(tour.errors["delete"])
        assert "still running and still billed" in message and f"flexai inference delete {NAME}" in message
    # Every delete had a closed stdin: a prompt read end-of-file.
    assert all(call["stdin"] == "" for call in flexai.calls() if call["argv"][:2] == ["inference", "delete"])

    captured = capfd.readouterr()
    everything = [captured.out, captured.err, *tour.shown, *deployment.commands]
    for secret in (key, HF_TOKEN, OTHER_UUID, OTHER_TOKEN):
        assert not [text for text in everything if secret in text], f"{secret[:6]}... was shown"
    assert tour.outcome == EXPECTED[scenario]


def assert_saved_output_holds(path: Path, text: str) -> None:
    assert text in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_output_without_a_key_is_saved_whole_and_shown_masked(flexai, capfd):
    """serve exits 1 printing an id and a token but no key (stand-in scenario serve_fails_without_key)."""
    flexai.scenario(**SCENARIOS["serve_fails_without_key"][1])
    deployment = connect("flexai")
    with pytest.raises(ApiKeyNotFound, match="quota exceeded") as caught:
        deployment.serve(NAME)
    saved = store.state_dir() / f"flexai-serve-{NAME}.out"
    assert_saved_output_holds(saved, OTHER_UUID)
    assert_saved_output_holds(saved, OTHER_TOKEN)
    captured = capfd.readouterr()
    for text in (str(caught.value), captured.out, captured.err, *deployment.commands):
        assert OTHER_UUID not in text and OTHER_TOKEN not in text
