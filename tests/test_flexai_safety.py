"""The FlexAI wrapper's safety rules, one by one: stop, login, waits, tables, flags.

The real ``flexai`` CLI cannot be installed here and FlexAI's cloud cannot be reached, so these
tests run the wrapper against the scripted stand-in (`flexai_stand_in.py`, first on PATH as
``flexai``) in one of its scenarios, documented or assumed (see its `SCENARIOS`). The pure
parsers are tested on their own with text shaped like the CLI's.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from flexai_stand_in import SCENARIOS
from test_deploy_flexai import StandIn, fast, install_stand_in

from flexaudio_helpers.deploy import (
    FlexAIDeployment,
    LocalDeployment,
    clean_up,
    connect,
    server_process,
    store,
)
from flexaudio_helpers.deploy.flexai_output import non_interactive_flag, table_lookup
from flexaudio_helpers.errors import (
    ApiKeyNotFound,
    CommandFailed,
    DeploymentTimeout,
    EndpointFailed,
    EndpointStillRunning,
    NotLoggedIn,
    UnsupportedCommand,
)

NAME = "sa"
SLACK = 15.0  # generous: a busy 2-core machine starts each stand-in call slowly


@pytest.fixture
def flexai(tmp_path, monkeypatch) -> StandIn:
    """The stand-in installed as `flexai`, first on PATH, with a fresh state folder."""
    return install_stand_in(tmp_path, monkeypatch)


def served(stand_in: StandIn, scenario: str = "documented", **extra) -> FlexAIDeployment:
    """A fast deployment with endpoint `NAME` served in `scenario` (plus `extra` settings)."""
    stand_in.scenario(**{**SCENARIOS[scenario][1], **extra})
    deployment = fast(connect("flexai"))
    deployment.serve(NAME)
    return deployment


def argvs(stand_in: StandIn, *prefix: str) -> list[list[str]]:
    return [call["argv"] for call in stand_in.calls() if call["argv"][: len(prefix)] == list(prefix)]


def test_stop_is_confirmed_and_keeps_the_key(flexai):
    """Documented-shape stop (stand-in marks the endpoint stopped): confirmed by inspect, key kept."""
    deployment = served(flexai)
    deployment.stop(NAME)
    assert deployment.inspect(NAME).status == "stopped"
    assert store.load_record("flexai", NAME)["api_key"]
    assert argvs(flexai, "inference", "stop") == [
        ["inference", "stop", "--help"],
        ["inference", "stop", NAME],
    ]


def test_stop_that_does_nothing_says_it_is_still_billed(flexai):
    """Assumed variant stop_does_nothing: exit 0, still running: a clear error within the bound."""
    deployment = served(flexai, "stop_does_nothing")
    started = time.monotonic()
    with pytest.raises(EndpointStillRunning, match="still running and still billed") as caught:
        deployment.stop(NAME)
    assert time.monotonic() - started < deployment.gone_timeout + SLACK
    assert "--min-replicas 0 --max-replicas 1" in str(caught.value)
    assert store.load_record("flexai", NAME)["api_key"]


def test_missing_stop_offers_scale_to_zero(flexai):
    """cobra_missing_verbs: no stop; the error teaches scale-to-zero, which then runs for real."""
    deployment = served(flexai, "cobra_missing_verbs")
    with pytest.raises(UnsupportedCommand, match="scale_to_zero") as caught:
        deployment.stop(NAME)
    assert f"flexai inference scale {NAME} --min-replicas 0 --max-replicas 1" in str(caught.value)
    assert not argvs(flexai, "inference", "stop")  # cobra would have exited 0 doing nothing
    deployment.scale_to_zero(NAME)
    assert flexai.state()["endpoints"][NAME]["replicas"] == [0, 1]
    assert store.load_record("flexai", NAME)["api_key"]


def test_delete_passes_the_listed_flag_with_a_closed_stdin(flexai):
    """delete_prompts_with_flag: --help lists -f/--force, so --force is passed; stdin is empty."""
    deployment = served(flexai, "delete_prompts_with_flag")
    deployment.delete(NAME)
    deletes = [call for call in flexai.calls() if call["argv"][:2] == ["inference", "delete"]]
    assert [call["argv"] for call in deletes] == [
        ["inference", "delete", "--help"],
        ["inference", "delete", "--force", NAME],
    ]
    assert all(call["stdin"] == "" for call in deletes)
    assert NAME not in flexai.state()["endpoints"] and not store.load_record("flexai", NAME)


def test_delete_that_aborts_keeps_the_key_and_says_so(flexai):
    """delete_prompts_without_flag: the prompt reads EOF, aborts, exits 0: the key must stay."""
    deployment = served(flexai, "delete_prompts_without_flag")
    key = store.load_record("flexai", NAME)["api_key"]
    started = time.monotonic()
    with pytest.raises(EndpointStillRunning) as caught:
        deployment.delete(NAME)
    assert time.monotonic() - started < deployment.gone_timeout + SLACK
    message = str(caught.value)
    assert "still running and still billed" in message
    assert f"flexai inference delete {NAME}" in message and "console" in message
    assert str(store.record_path("flexai", NAME)) in message and key not in message
    assert store.load_record("flexai", NAME)["api_key"] == key


def test_delete_accepts_a_terminal_deleting_state(flexai):
    """delete_lingers_deleting: inspect shows "deleting" afterwards, which counts as deleted."""
    deployment = served(flexai, "delete_lingers_deleting")
    deployment.delete(NAME)
    assert flexai.state()["endpoints"][NAME]["deleting"] >= 1  # still listed, as deleting
    assert not store.load_record("flexai", NAME)


def sleeper() -> subprocess.Popen:
    """A real process to record as a local server (a model would only slow the test down)."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])


def test_clean_up_deletes_on_flexai_and_stops_a_recorded_local_server(flexai, capfd):
    """Notebook 08 on FlexAI: the endpoint is deleted, and notebook 06's local server is stopped."""
    deployment = served(flexai)
    local_server = sleeper()
    try:
        server_process.record(NAME, pid=local_server.pid, url="http://127.0.0.1:9", model="offline", port=9)
        done = clean_up(deployment, NAME)
        assert done == [
            f"Deleted {NAME} on FlexAI.",
            f"Stopped the local server {NAME} too (started here, e.g. by notebook 06).",
        ]
        assert NAME not in flexai.state()["endpoints"] and not store.load_record("flexai", NAME)
        assert local_server.wait(timeout=30) is not None and not server_process.recorded(NAME)
        assert "$ flexai inference delete" in capfd.readouterr().out  # each CLI step shows its command
    finally:
        local_server.kill()
        local_server.wait()


def test_clean_up_scales_to_zero_without_delete_and_touches_no_local_server(flexai):
    """cobra_missing_verbs: no delete, so scale to zero; no local server recorded, so none is stopped."""
    deployment = served(flexai, "cobra_missing_verbs")
    assert clean_up(deployment, NAME) == [
        f"Scaled {NAME} to zero on FlexAI (this CLI cannot delete it); its API key stays saved."
    ]
    assert flexai.state()["endpoints"][NAME]["replicas"] == [0, 1]
    assert store.load_record("flexai", NAME)["api_key"]


def test_clean_up_says_when_delete_left_the_endpoint_running(flexai):
    """delete_prompts_without_flag: delete exits 0 but nothing happens: reported, key kept."""
    deployment = served(flexai, "delete_prompts_without_flag")
    done = clean_up(deployment, NAME)
    assert done == [f"{NAME} is STILL RUNNING on FlexAI, and billed: see the message above."]
    assert store.load_record("flexai", NAME)["api_key"]


@pytest.mark.parametrize(
    ("said", "exit_code", "logged_in"),
    [
        ("Not authenticated. Please log in with: flexai auth login", 0, False),
        ("Authentication required", 0, False),
        ("Please log in first", 0, False),
        ("Token refreshed. Logged in as ada@example.com", 0, True),
        ("Logged in as ada@example.com; token expires in 11h59m", 0, True),
        ("Logged in as ada@example.com", 3, False),
    ],
)
def test_login_is_judged_by_what_the_cli_says(flexai, said, exit_code, logged_in):
    """The stand-in's `auth status` prints `said` and exits `exit_code` (assumed variants)."""
    flexai.scenario(auth_output=said, auth_exit=exit_code)
    ok, why = FlexAIDeployment().cli.logged_in()
    assert ok is logged_in
    assert said in why  # connect() explains its choice with the CLI's own words
    chosen = connect()
    assert isinstance(chosen, FlexAIDeployment if logged_in else LocalDeployment)
    assert said in chosen.reason
    if not logged_in:
        with pytest.raises(NotLoggedIn, match="flexai auth login"):
            connect("flexai")


def test_inspect_failing_for_good_ends_the_wait_after_its_grace(flexai):
    """inspect never recovers after create: retried with backoff, then the wait ends (grace bound)."""
    deployment = served(flexai, "inspect_fails_after_create", inspect_failures=10_000)
    deployment.inspect_grace = 2.0
    started = time.monotonic()
    with pytest.raises(CommandFailed, match="kept failing"):
        deployment.wait_until_ready(NAME, timeout=30)
    assert time.monotonic() - started < deployment.inspect_grace + SLACK
    assert len(argvs(flexai, "inference", "inspect")) >= 2  # it retried


def test_unknown_status_keeps_waiting_and_is_shown_as_it_is(flexai, capfd):
    """An unknown status word ("warming up") is waited on, shown verbatim, and the timeout holds."""
    deployment = served(flexai, statuses=[["enqueued", None], ["warming up", None]])
    started = time.monotonic()
    with pytest.raises(DeploymentTimeout, match="warming up"):
        deployment.wait_until_ready(NAME, timeout=2)
    assert time.monotonic() - started < 2 + SLACK
    assert "warming up" in capfd.readouterr().out  # the status line (plain text on stdout)


@pytest.mark.parametrize(
    ("status", "words"),
    [
        ("rejected", "is 'rejected'"),
        ("error", "is 'error'"),
        ("stopping", "being stopped"),
        ("deleting", "being deleted"),
    ],
)
def test_statuses_that_cannot_become_ready_end_the_wait(flexai, status, words):
    """Terminal and winding-down statuses end the wait at once, with the last log lines."""
    deployment = served(flexai, statuses=[["enqueued", None], [status, None]], logs=["the last log line"])
    started = time.monotonic()
    with pytest.raises(EndpointFailed, match=words) as caught:
        deployment.wait_until_ready(NAME, timeout=30)
    assert time.monotonic() - started < SLACK
    assert "the last log line" in str(caught.value) and caught.value.status == status


def test_serve_that_never_prints_a_key_is_stopped_at_its_timeout(flexai):
    """Assumed variant: serve prints no key and never exits; the wait for it is bounded."""
    assert FlexAIDeployment.serve_timeout >= 900  # a slow create is allowed for by default
    flexai.scenario(serve_output="Creating inference endpoint...\n", serve_keeps_running=40)
    deployment = fast(connect("flexai"))
    deployment.serve_timeout = 1.5
    started = time.monotonic()
    with pytest.raises(ApiKeyNotFound, match="did not finish within"):
        deployment.serve(NAME)
    assert time.monotonic() - started < deployment.serve_timeout + SLACK


def test_secret_inspect_is_asked_first_unless_cobra_would_lie(flexai):
    """Documented `secret inspect` decides by exit code; without it (cobra exits 0), the list decides."""
    deployment = connect("flexai")
    assert not deployment.secret_exists("MY_HF_TOKEN")
    assert argvs(flexai, "secret", "inspect") == [["secret", "inspect", "MY_HF_TOKEN"]]
    assert not argvs(flexai, "secret", "list")

    flexai.scenario(**SCENARIOS["cobra_missing_verbs"][1])
    deployment = connect("flexai")
    assert not deployment.secret_exists("NOPE")  # `secret inspect NOPE` would print help, exit 0
    assert len(argvs(flexai, "secret", "inspect")) == 1


def test_table_lookup_reads_real_tables():
    """Bars of several table styles, and cells truncated with an ellipsis count as maybe."""
    for bar in "│┃║┆|":
        assert (
            table_lookup(f"NAME {bar} STATUS\nstable-audio-open {bar} running", "stable-audio-open") == "yes"
        )
    assert table_lookup("┃ stable-au… ┃ running ┃", "stable-audio-open") == "maybe"
    assert table_lookup("| stable-au... | running |", "stable-audio-open") == "maybe"
    assert table_lookup("┃ other-end… ┃ running ┃", "stable-audio-open") == "no"
    assert table_lookup("│ stable-audio-open-2 │", "stable-audio-open") == "no"


def test_non_interactive_flag_is_read_from_help():
    """Only a listed --yes/--force/-y/-f counts; -f that means --file does not."""
    assert non_interactive_flag("Flags:\n  -y, --yes   skip the prompt\n  -h, --help\n") == "--yes"
    assert non_interactive_flag("Flags:\n  -f, --force   no prompt\n") == "--force"
    assert non_interactive_flag("Flags:\n  -f          force it\n") == "-f"
    assert non_interactive_flag("Flags:\n  -f, --file string   a file\n  -h, --help\n") is None
    assert non_interactive_flag("Flags:\n  -h, --help   help for delete\n") is None
