"""The parameter explorer, driven headless (no kernel): real widgets, a real offline endpoint.

Buttons are `.click()`ed as a person would, and the verbs (`generate`, `sweep`, `compare`,
`export`) are called as a notebook does; the worker threads talk over HTTP to the `offline_server`
fixture. Every generation is 1 s and 2 steps, to keep the run short.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from concurrent.futures import CancelledError
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from flexaudio_helpers.analysis import similarity
from flexaudio_helpers.audio import Clip
from flexaudio_helpers.batch import MANIFEST_NAME
from flexaudio_helpers.client import AudioClient
from flexaudio_helpers.errors import InvalidParameters, UnsafeStateError
from flexaudio_helpers.explorer import MAX_SLIDER_SECONDS, MAX_WIDGET_SEED, TAB_TITLES, Explorer, explore
from flexaudio_helpers.explorer.session import HELD_TAKES, IN_USE_NAME, TAKES_PREFIX, Job, Session, Take
from flexaudio_helpers.params import MAX_GUIDANCE, MAX_STEPS, GenerationRequest

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def is_png(value) -> bool:
    return bytes(value).startswith(PNG_MAGIC)


@pytest.fixture
def client(offline_server):
    with AudioClient(offline_server.url, offline_server.api_key) as client:
        yield client


@pytest.fixture
def explorer(client, tmp_path):
    app = Explorer(client, folder=tmp_path / "session")
    assert app.wait(60), "the endpoint check did not finish"
    yield app
    app.close()


def cheap(app: Explorer, seed: int | None = 7) -> None:
    """The cheapest request the controls can make: 1 s, 2 steps, a fixed seed."""
    app.prompt.value = "A short test of the explorer"
    app.duration.value = 1.0
    app.steps.value = 2
    app.guidance.value = 5.0
    if seed is None:
        app.random_seed.value = True
    else:
        app.use_seed(seed)


def test_bounds_come_from_the_parameter_model_and_the_endpoint(explorer):
    # The offline endpoint reports 47.55 s; the slider stops at 47.5.
    assert explorer.model_facts["offline"] is True
    assert explorer.duration.max == MAX_SLIDER_SECONDS == 47.5
    explorer.duration.value = 100.0
    assert explorer.duration.value == 47.5
    explorer.duration.value = 0.01
    assert explorer.duration.value == 0.5
    explorer.steps.value = 5000
    assert explorer.steps.value == MAX_STEPS
    explorer.steps.value = 0
    assert explorer.steps.value == 1
    explorer.guidance.value = 99.0
    assert explorer.guidance.value == MAX_GUIDANCE
    explorer.guidance.value = -1.0
    assert explorer.guidance.value == 0.0
    explorer.random_seed.value = False
    explorer.seed.value = -5
    assert explorer.seed.value == 0
    explorer.seed.value = 2**60
    assert explorer.seed.value == MAX_WIDGET_SEED
    # Whatever the sliders hold, the request they describe is valid.
    request = explorer.request()
    assert request.parameters.audio_end_in_s == 0.5 and request.parameters.seed == MAX_WIDGET_SEED

    # What the sliders cannot stop is refused before anything is sent, naming the control (not the
    # wire field) and what it allows.
    explorer.prompt.value = "   "
    explorer.generate_button.click()
    message = explorer.message.value
    assert "Prompt:</b> empty is not allowed" in message and "allowed: a non-empty prompt" in message, message
    assert "inputs" not in message
    assert explorer.job is None and not explorer.generate_button.disabled and len(explorer.session) == 0
    with pytest.raises(InvalidParameters, match="a non-empty prompt"):  # the verb, from code: the same
        explorer.generate()
    assert explorer.message.value == message and explorer.job is None

    explorer.prompt.value = "rain"
    explorer.sweep_parameter.value = "guidance_scale"
    explorer.sweep_values.value = "3, 99"
    explorer.sweep_button.click()
    status = explorer.sweep_status.value
    assert "Guidance:</b> 99.0 is not allowed" in status and "allowed: a number from 0 to 50" in status, (
        status
    )
    explorer.sweep_values.value = "7"
    explorer.sweep_button.click()
    assert (
        "2 to 8 values" in explorer.sweep_status.value
        and "(got 1: &#x27;7&#x27;)" in explorer.sweep_status.value
    )
    explorer.sweep_values.value = "3, abc"  # a typo is named, not counted
    explorer.sweep_button.click()
    status = explorer.sweep_status.value
    assert "&#x27;abc&#x27; is not a number" in status and "got" not in status, status
    with pytest.raises(InvalidParameters, match="'abc' is not a number"):
        explorer.sweep()
    assert explorer.sweep_job is None and not explorer.sweep_button.disabled and len(explorer.session) == 0


def test_generate_shows_the_clip_and_keeps_it(explorer, tmp_path):
    cheap(explorer, seed=7)
    assert explorer.banner.layout.display is None, "the offline banner is shown once the endpoint says so"
    started = time.monotonic()
    explorer.generate_button.click()
    # While it runs: Generate is disabled, Cancel enabled, and the click returned at once.
    assert explorer.generate_button.disabled and not explorer.cancel_button.disabled
    assert explorer.job is not None and explorer.job.running
    assert explorer.wait(120)
    print(f"headless click to audio: {time.monotonic() - started:.2f} s")

    assert not explorer.generate_button.disabled and explorer.cancel_button.disabled
    assert explorer.message.value == ""
    assert len(explorer.session) == 1
    take = explorer.session.get(1)
    assert take.clip.seed == 7 and take.clip.offline
    assert take.request.parameters.num_inference_steps == 2
    assert "<audio" in explorer.player.value and "noise" in explorer.player.value
    assert is_png(explorer.plot.value)
    assert "seed used" in explorer.details.value and "<td>7</td>" in explorer.details.value
    assert "click to audio" in explorer.details.value
    assert explorer.status.value.startswith("Clip #1")
    assert [value for _, value in explorer.history.options] == [1]
    assert "#1 A short test" in explorer.history.options[0][0]

    # Random seeds are drawn here and reported; "reuse last seed" brings the last one back.
    explorer.random_seed.value = True
    assert explorer.seed.disabled
    explorer.reuse_seed.click()
    assert explorer.random_seed.value is False and explorer.seed.value == 7 and not explorer.seed.disabled

    # History: replay, re-plot, save WAV and FLAC (request and seed inside), load into controls.
    explorer.history.value = 1
    explorer.history_buttons["Play"].click()
    assert "<audio" in explorer.history_view.children[0].value
    explorer.history_buttons["Plot"].click()
    assert is_png(explorer.history_view.children[0].value)
    for label, suffix in (("Save WAV", ".wav"), ("Save FLAC", ".flac")):
        explorer.history_buttons[label].click()
        saved = list((tmp_path / "session").glob(f"*{suffix}"))
        assert len(saved) == 1, explorer.history_message.value
        assert Clip.load(saved[0]).request == take.request
    explorer.prompt.value, explorer.steps.value, explorer.duration.value = "something else", 50, 20.0
    explorer.history_buttons["Load into controls"].click()
    assert explorer.prompt.value == "A short test of the explorer"
    assert (explorer.steps.value, explorer.duration.value, explorer.guidance.value) == (2, 1.0, 5.0)
    assert explorer.request() == take.request


def test_cancel_abandons_the_result(explorer):
    cheap(explorer, seed=3)
    explorer.generate_button.click()
    job = explorer.job
    explorer.cancel_button.click()
    assert not explorer.generate_button.disabled and explorer.cancel_button.disabled
    assert "Cancelled" in explorer.status.value
    assert job.wait(120)  # the worker finished its request...
    time.sleep(0.3)
    assert len(explorer.session) == 0  # ...and its clip was dropped
    assert explorer.player.value == "" and "Cancelled" in explorer.status.value


def test_a_wrong_key_is_a_message_not_a_traceback(offline_server, tmp_path):
    with AudioClient(offline_server.url, "not-the-key", max_retries=0) as client:
        app = Explorer(client, folder=tmp_path)
        cheap(app)
        app.generate_button.click()
        assert app.wait(60)
        assert "AuthenticationError" in app.message.value and "API key" in app.message.value
        assert "Traceback" not in app.message.value and "not-the-key" not in app.message.value
        assert app.status.value.startswith("Failed")
        assert not app.generate_button.disabled and len(app.session) == 0
        app.close()


def test_sweep_compare_and_export(explorer, offline_server, tmp_path):
    cheap(explorer, seed=11)
    explorer.sweep_parameter.value = "seed"
    explorer.sweep_values.value = "1, 2"
    explorer.sweep_concurrency.value = 2
    explorer.sweep_button.click()
    assert explorer.sweep_button.disabled and not explorer.sweep_cancel.disabled
    assert explorer.wait(180)
    assert "2 of 2 clips" in explorer.sweep_status.value, explorer.sweep_status.value
    assert [take.clip.seed for take in explorer.session.takes] == [1, 2]
    assert all(take.origin.startswith("sweep 1: seed=") for take in explorer.session.takes)
    players, grid = explorer.sweep_view.children
    assert len(players.children) == 2 and is_png(grid.value)
    assert len(list((tmp_path / "session" / "sweep-01").glob("*.wav"))) == 2
    assert not explorer.sweep_button.disabled

    # A/B: the two clips side by side, then one comparison figure.
    assert (explorer.compare_a.value, explorer.compare_b.value) == (1, 2)  # the newest two by default
    explorer.compare_a.value, explorer.compare_b.value = 2, 1
    explorer.compare_button.click()
    columns, score, figure = explorer.compare_view.children
    headings = [column.children[0].value for column in columns.children]
    assert headings == ["<b>A: clip #2</b>", "<b>B: clip #1</b>"]
    assert all("<audio" in column.children[1].value for column in columns.children)
    assert "Similarity of A and B: " in score.value and "means nothing" in score.value  # offline
    assert is_png(figure.value)
    explorer.compare_a.value = 1  # another pick: the view no longer shows what A and B say
    assert explorer.compare_view.children == ()

    # Export: every clip as FLAC plus a manifest with the requests that remake them.
    out = tmp_path / "export"
    explorer.export_folder.value = str(out)
    explorer.export_button.click()
    lines = [json.loads(line) for line in (out / MANIFEST_NAME).read_text().splitlines()]
    assert [line["seed"] for line in lines] == [1, 2]
    for line, take in zip(lines, explorer.session.takes, strict=True):
        assert line["request"] == take.request.to_body()
        assert Clip.load(out / line["path"]).request == take.request
    assert "flexaudio batch" in explorer.export_message.value

    # `flexaudio batch` replays the manifest: the same requests and seeds make the same clips.
    replay = tmp_path / "replay"
    env = {**os.environ, "INFERENCE_URL": offline_server.url, "INFERENCE_API_KEY": offline_server.api_key}
    command = [str(Path(sys.executable).with_name("flexaudio")), "batch", str(out / MANIFEST_NAME)]
    done = subprocess.run(
        [*command, "-o", str(replay), "--no-progress"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    replayed = [json.loads(line) for line in (replay / MANIFEST_NAME).read_text().splitlines()]
    assert [line["request"] for line in replayed] == [line["request"] for line in lines]
    for line, take in zip(replayed, explorer.session.takes, strict=True):
        again = Clip.load(replay / line["path"])
        assert again.seed == take.clip.seed
        np.testing.assert_allclose(again.samples, take.clip.samples, atol=1e-3)


def test_explore_takes_an_endpoint_or_the_environment(offline_server, tmp_path, monkeypatch):
    monkeypatch.setenv("INFERENCE_URL", offline_server.url)
    monkeypatch.setenv("INFERENCE_API_KEY", offline_server.api_key)
    monkeypatch.setenv("FLEXAUDIO_STATE_DIR", str(tmp_path / "state"))
    app = explore(folder=tmp_path)
    assert app.wait(60) and app.model_facts.get("offline") is True
    assert offline_server.api_key not in repr(app.client)
    app.close()
    with pytest.raises(TypeError, match="Endpoint or an AudioClient"):
        explore(42)


def test_the_verbs_do_what_the_buttons_do_and_wait(explorer, tmp_path):
    take = explorer.generate(
        "A short test of the verbs", audio_end_in_s=1.0, num_inference_steps=2, guidance_scale=5.0, seed=7
    )
    # It waited: the clip is shown and kept, and the controls hold what made it.
    assert take.number == 1 and take.clip.seed == 7 and explorer.session.takes == (take,)
    assert explorer.status.value.startswith("Clip #1") and not explorer.generate_button.disabled
    assert "<audio" in explorer.player.value and is_png(explorer.plot.value)
    assert (explorer.duration.value, explorer.steps.value, explorer.guidance.value) == (1.0, 2, 5.0)
    assert (explorer.random_seed.value, explorer.seed.value) == (False, 7)
    assert explorer.request() == take.request
    card = take._repr_html_()  # what a notebook shows
    assert "Clip #1 (generate)" in card and "<audio" in card and "<td>7</td>" in card

    sweep = explorer.sweep("seed", [1, 2])
    assert explorer.tabs.selected_index == TAB_TITLES.index("Sweep") and explorer.sweep_values.value == "1, 2"
    assert sweep.summary.startswith("Sweep 1: 2 of 2 clips") and sweep.summary in explorer.sweep_status.value
    assert [take.clip.seed for _, take in sweep.takes] == [1, 2] and not sweep.problems
    assert [origin.origin for origin in explorer.session.takes[1:]] == ["sweep 1: seed=1", "sweep 1: seed=2"]
    assert is_png(sweep.png) and sweep._repr_html_().count("<audio") == 2
    assert repr(sweep) == f"<SweepResult {sweep.summary}>"

    comparison = explorer.compare(1, 3)
    assert explorer.tabs.selected_index == TAB_TITLES.index("Compare")
    assert (explorer.compare_a.value, explorer.compare_b.value) == (1, 3)
    columns, _, figure = explorer.compare_view.children
    assert [column.children[0].value for column in columns.children] == [
        "<b>A: clip #1</b>",
        "<b>B: clip #3</b>",
    ]
    assert (comparison.a.number, comparison.b.number) == (1, 3) and bytes(figure.value) == comparison.png
    assert "A: clip #1" in comparison._repr_html_() and "B: clip #3" in comparison._repr_html_()
    assert repr(comparison) == "<Comparison A: clip #1, B: clip #3>"
    with pytest.raises(ValueError, match="allowed: clip numbers 1 to 3"):
        explorer.compare(1, 9)
    assert "clip numbers 1 to 3" in explorer.compare_message.value
    # A sweep's own takes, by value: right whatever else the session made before or after.
    assert sweep.take(2) is sweep.takes[1][1] and sweep.take(2).number == 3
    comparison = explorer.compare(sweep.take(2), sweep.take(1))
    assert (comparison.a.number, comparison.b.number) == (3, 2)
    with pytest.raises(ValueError, match=r"sweep 1 made no clip with seed=5 \(it made: 1, 2\)"):
        sweep.take(5)

    manifest = explorer.export(tmp_path / "export")
    assert manifest == tmp_path / "export" / MANIFEST_NAME and explorer.export_folder.value == str(
        manifest.parent
    )
    lines = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert [line["seed"] for line in lines] == [7, 1, 2]
    assert "flexaudio batch" in explorer.export_message.value


def test_the_verbs_refuse_what_the_controls_cannot_hold(explorer, tmp_path):
    # The flat widget names are the components' widgets.
    assert explorer.prompt is explorer.controls.prompt and explorer.history is explorer.history_tab.clips
    parts = (
        explorer.result_view,
        explorer.history_tab,
        explorer.compare_tab,
        explorer.sweep_tab,
        explorer.export_tab,
    )
    assert list(explorer.tabs.children) == [part.widget for part in parts]
    prompt = explorer.prompt.value
    # A value a slider would silently clamp is refused, naming the control and its range; nothing is set.
    with pytest.raises(
        InvalidParameters, match=r"audio_end_in_s=100.0 is not allowed; allowed: seconds, from 0.5"
    ):
        explorer.generate("rain", audio_end_in_s=100.0)
    assert "Duration (s):</b> 100.0 is not allowed" in explorer.message.value
    assert explorer.prompt.value == prompt and explorer.duration.value == 10.0
    with pytest.raises(InvalidParameters, match="num_inference_steps"):
        explorer.generate(num_inference_steps=2.5)
    with pytest.raises(InvalidParameters, match="no control for 'steps'; allowed names: audio_end_in_s"):
        explorer.generate(steps=2)
    with pytest.raises(InvalidParameters, match=r"2\*\*53 - 1"):
        explorer.generate(seed=2**60)
    with pytest.raises(InvalidParameters, match="cannot sweep 'prompt'"):
        explorer.sweep("prompt", [1, 2])
    with pytest.raises(
        InvalidParameters, match="concurrency=9 is not allowed; allowed: an integer from 1 to 4"
    ):
        explorer.sweep("seed", [1, 2], concurrency=9)
    assert explorer.sweep_parameter.value == "guidance_scale" and explorer.sweep_concurrency.value == 2
    with pytest.raises(ValueError, match="Make at least one clip first"):
        explorer.compare()
    with pytest.raises(ValueError, match="Nothing to export yet"):
        explorer.export(tmp_path / "empty")
    assert "Nothing to export yet" in explorer.export_message.value and not (tmp_path / "empty").exists()
    assert explorer.job is None and explorer.sweep_job is None and len(explorer.session) == 0


@pytest.mark.slow  # five generations, three of them encoding a source window (the buttons test stays fast)
def test_vary_and_start_from_keep_the_lineage(explorer, tmp_path):
    first = explorer.generate(
        "A short test of variations", audio_end_in_s=1.0, num_inference_steps=2, guidance_scale=5.0, seed=7
    )
    # Vary: the same request with new seeds, counted up from a random base, shown side by side.
    varied = explorer.vary(first, count=2)
    base = varied[0].seed
    assert [take.number for take in varied] == [2, 3] and [take.seed for take in varied] == [base, base + 1]
    assert base != first.seed, "a variation should have a new seed"
    for take in varied:
        assert take.request == first.request.with_parameters(seed=take.seed)
        assert (take.parent, take.source, take.init_noise_level) == (1, None, None)
        assert take.label().startswith(f"#{take.number} ← varied from #1 · A short test")
    assert not np.allclose(varied[0].clip.samples, varied[1].clip.samples)
    assert explorer.tabs.selected_index == TAB_TITLES.index("History") and explorer.vary_count.value == 2
    status = explorer.status.value
    assert status.startswith("Clips #2 to #3 in") and f"seeds {base} to {base + 1}" in status
    (row,) = explorer.history_view.children
    for column, take in zip(row.children, varied, strict=True):
        heading, player, waveform = column.children
        assert heading.value == f"<b>#{take.number} · seed {take.seed}</b>" and "<audio" in player.value
        assert is_png(waveform.value)
    assert "2 variations of clip #1" in explorer.history_message.value

    # Start from a take: its audio under noise of the level, a new seed; compared with its source.
    result = explorer.start_from(first, init_noise_level=2.0)
    assert (result.number, result.parent, result.source, result.init_noise_level) == (4, 1, 1, 2.0)
    assert result.label().startswith("#4 ← from #1 at level 2 · A short test")
    assert result.prompt == first.prompt and result.seed != first.seed
    assert explorer.noise_level.value == 2.0 and explorer.status.value.startswith("Clip #4")
    assert explorer.tabs.selected_index == TAB_TITLES.index("Compare")
    assert (explorer.compare_a.value, explorer.compare_b.value) == (1, 4)
    _, score, figure = explorer.compare_view.children
    measured = similarity(first.clip, result.clip)
    assert measured.offline and -1.0 <= measured <= 1.0
    assert f"Similarity of A and B: {measured:.2f}" in score.value and "means nothing" in score.value
    assert "<audio" in explorer.player.value and is_png(figure.value)

    # Varying a take made from another's audio starts from that audio again, at its level.
    again = explorer.vary(4, count=1)
    assert [(t.number, t.parent, t.source, t.init_noise_level) for t in again] == [(5, 4, 1, 2.0)]
    assert again[0].label().startswith("#5 ← varied from #4 · ")
    another = explorer.start_from(again[0], 50.0, prompt="Another prompt", seed=3)
    assert (another.prompt, another.seed, another.source, another.origin) == (
        "Another prompt", 3, 5, "from #5 at level 50",
    )  # fmt: skip

    # The manifest keeps the lineage.
    lines = [json.loads(line) for line in explorer.export(tmp_path / "export").read_text().splitlines()]
    assert [(line.get("parent"), line.get("source"), line.get("init_noise_level")) for line in lines] == [
        (None, None, None), (1, None, None), (1, None, None), (1, 1, 2.0), (4, 1, 2.0), (5, 5, 50.0),
    ]  # fmt: skip


def test_vary_and_start_from_buttons_and_refusals(explorer):
    with pytest.raises(ValueError, match="Make at least one clip first"):
        explorer.vary(1)
    cheap(explorer, seed=5)
    explorer.generate()

    # The buttons act on the take selected in History, with the sliders' count and level.
    explorer.history.value = 1
    explorer.vary_count.value = 2
    explorer.history_buttons["Vary"].click()
    assert explorer.generate_button.disabled and not explorer.cancel_button.disabled
    with pytest.raises(RuntimeError, match="already running"):
        explorer.start_from(1)  # one generation at a time, whichever button started it
    explorer.history_buttons["Start from this take"].click()
    assert "already running" in explorer.history_message.value
    assert explorer.wait(180)
    assert [take.parent for take in explorer.session.takes] == [None, 1, 1], explorer.history_message.value
    explorer.history.value = 2
    explorer.noise_level.value = 5.0
    explorer.history_buttons["Start from this take"].click()
    assert explorer.wait(120)
    newest = explorer.session.get(4)
    assert (newest.origin, newest.source, newest.init_noise_level) == ("from #2 at level 5", 2, 5.0)
    assert "#4 ← from #2 at level 5" in explorer.history.options[-1][0]
    assert "Similarity of A and B" in explorer.compare_view.children[1].value

    # Bad input is refused before anything starts, naming what is allowed.
    with pytest.raises(ValueError, match="9 is not a clip of this session; allowed: clip numbers 1 to 4"):
        explorer.start_from(9)
    with pytest.raises(
        InvalidParameters, match="count: 9 variations is not allowed; allowed: an integer from 1 to 8"
    ):
        explorer.vary(1, count=9)
    for level in (0.3, 101, float("nan"), "1"):
        with pytest.raises(InvalidParameters, match=r"init_noise_level=.* allowed: more than 0.3 up to 100"):
            explorer.start_from(1, init_noise_level=level)
    with pytest.raises(InvalidParameters, match="num_inference_steps"):
        explorer.start_from(1, num_inference_steps=0)
    assert not explorer.job.running and len(explorer.session) == 4
    assert (explorer.vary_count.value, explorer.noise_level.value) == (2, 5.0)


def noise_clip(seed: int, seconds: float = 0.5) -> Clip:
    """A short stereo clip as an endpoint gives it: samples, request, seed, timings."""
    samples = np.random.default_rng(seed).uniform(-0.5, 0.5, (2, int(seconds * 44_100)))
    request = GenerationRequest.from_body({"inputs": f"noise {seed}", "parameters": {"audio_end_in_s": 1.0}})
    return Clip(samples, 44_100, request, seed, {"request": 0.25 * seed}, offline=True)


def test_a_session_holds_only_the_last_takes_samples(tmp_path):
    session = Session()
    folder = session.folder
    extra = 3
    alive = []  # weak references: they die when nothing holds the samples any more
    for seed in range(1, HELD_TAKES + extra + 1):
        clip = noise_clip(seed)
        alive.append(weakref.ref(clip.samples))
        session.add(clip, "test")
        del clip
    gc.collect()
    numbers = list(range(1, HELD_TAKES + extra + 1))
    assert session.held() == tuple(numbers[extra:])
    assert [ref() is None for ref in alive] == [True] * extra + [False] * HELD_TAKES
    saved = sorted(path.name for path in folder.iterdir() if path.name != IN_USE_NAME)
    assert saved == [take.file_name() for take in session.takes]

    # An evicted take still knows everything but its samples, and reads them back when asked.
    first = session.get(1)
    assert (first.seed, first.prompt, first.offline, first.duration) == (1, "noise 1", True, 0.5)
    assert "seed 1" in first.short_parameters() and "request 0.25 s" in first.details_html()
    again = first.clip
    facts = (again.seed, again.reproducible_request(), again.timings, again.offline)
    assert facts == (1, first.request, {"request": 0.25}, True)
    original = noise_clip(1).samples
    np.testing.assert_allclose(again.samples, original, atol=1 / 32_768)  # 16-bit FLAC
    assert session.held() == (*numbers[extra + 1 :], 1)  # held again as the newest; the oldest let go

    # A temporary folder goes with the session; a folder given to it stays.
    session.close()
    assert not folder.exists()
    with pytest.raises(FileNotFoundError, match=r"clip #2: .* is gone"):
        session.clip(session.get(2))
    collected = Session()
    folder = collected.folder
    collected.add(noise_clip(1))
    del collected
    gc.collect()
    assert not folder.exists()
    kept = Session(tmp_path / "takes")
    kept.add(noise_clip(1))
    kept.close()
    assert (tmp_path / "takes" / "clip-001-seed1.flac").exists()


def _let_go(session: Session) -> Take:
    """Take #1, added with enough takes after it that its samples must be read back from its file."""
    for seed in range(1, HELD_TAKES + 2):
        session.add(noise_clip(seed, seconds=0.1), "test")
    assert 1 not in session.held()
    return session.get(1)


def _read_and_save(session: Session, take: Take, folder: Path, refused: list[str]) -> None:
    """Read `take` back and save it as FLAC in `folder`; each refusal's message goes in `refused`."""
    for attempt in (lambda: session.clip(take), lambda: session.save(take, folder, "flac")):
        try:
            attempt()
        except UnsafeStateError as exc:
            refused.append(str(exc))


def test_a_take_file_swapped_after_saving_is_refused_not_read(tmp_path):
    session = Session()
    take = _let_go(session)
    other = tmp_path / "other.flac"
    noise_clip(99, seconds=0.1).save(other)
    ten_minutes = tmp_path / "long.flac"
    with sf.SoundFile(ten_minutes, "w", 44_100, 2, format="FLAC") as stream:
        for _ in range(600):
            stream.write(np.zeros((44_100, 2), dtype=np.int16))
    notes = tmp_path / "notes.txt"
    notes.write_text("not audio, and not yours to export\n")

    def swap(make) -> None:
        take.path.unlink()
        make(take.path)

    for make in (
        lambda path: path.symlink_to(other),
        lambda path: path.symlink_to(notes),
        lambda path: os.mkfifo(path),
        lambda path: path.write_bytes(ten_minutes.read_bytes()),
        lambda path: path.write_bytes(other.read_bytes()),
    ):
        swap(make)
        refused: list[str] = []
        # In a thread: a FIFO would block it for good.
        reader = threading.Thread(
            target=_read_and_save, args=(session, take, tmp_path / "out", refused), daemon=True
        )
        reader.start()
        reader.join(30)
        assert not reader.is_alive() and len(refused) == 2, refused
        assert all(str(take.path) in message for message in refused)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    session.close()


def test_takes_folders_of_killed_kernels_are_removed_on_the_next_start():
    killed = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, signal; from flexaudio_helpers.explorer.session import Session; "
            "session = Session(); print(session.folder, flush=True); os.kill(os.getpid(), signal.SIGKILL)",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    left = Path(killed.stdout.strip())
    assert killed.returncode == -9 and left.is_dir()  # what a killed kernel leaves behind
    unmarked = Path(tempfile.mkdtemp(prefix=TAKES_PREFIX))  # no in-use mark: not known to be ours
    live = Session()
    try:
        assert not left.exists()
        assert unmarked.is_dir() and live.folder.is_dir()
        Session().close()  # another start keeps the folder a live session holds
        assert live.folder.is_dir()
    finally:
        live.close()
        unmarked.rmdir()


def test_a_take_whose_samples_were_let_go_still_plays_compares_and_exports(explorer, tmp_path):
    take = explorer.generate("A short test of memory", audio_end_in_s=1.0, num_inference_steps=2, seed=7)
    samples = weakref.ref(take.clip.samples)
    made = take.clip.samples.copy()
    for seed in range(1, HELD_TAKES + 1):
        explorer.session.add(noise_clip(seed), "test")
    explorer.history_tab.refresh()
    explorer.compare_tab.refresh()
    gc.collect()
    assert 1 not in explorer.session.held() and samples() is None, "take #1's samples are still held"

    card = take._repr_html_()
    assert "Clip #1 (generate)" in card and "<audio" in card and "<td>7</td>" in card
    explorer.history.value = 1
    explorer.history_buttons["Play"].click()
    assert (
        "<audio" in explorer.history_view.children[0].value
        and "seed 7" in explorer.history_view.children[0].value
    )
    player = explorer.history_view.children[0]
    explorer.history_buttons["Plot"].click()
    assert is_png(explorer.history_view.children[0].value)
    # ipywidgets keeps a widget until it is closed: what a view stops showing is closed.
    assert player.comm is None, "the replaced player was not closed"
    explorer.history_buttons["Load into controls"].click()
    assert explorer.request() == take.request

    comparison = explorer.compare(1, 2)
    assert (comparison.a, comparison.b) == (take, explorer.session.get(2)) and is_png(comparison.png)
    assert comparison._repr_html_().count("<audio") == 2
    columns, _, figure = explorer.compare_view.children
    explorer.compare(3, 1)
    assert figure.comm is None and all(
        widget.comm is None for column in columns.children for widget in column.children
    )

    manifest = explorer.export(tmp_path / "export")
    lines = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert [line["seed"] for line in lines] == [7, *range(1, HELD_TAKES + 1)]
    assert lines[0]["timings"] == take.timings and "request" in take.timings
    exported = Clip.load(manifest.parent / lines[0]["path"])
    assert exported.request == take.clip.request and exported.seed == 7
    np.testing.assert_allclose(exported.samples, made, atol=1 / 32_768)
    assert len(explorer.session.held()) == HELD_TAKES

    folder = explorer.session.folder
    explorer.close()
    assert not folder.exists(), "closing the explorer removes its takes' temporary folder"


def test_a_job_result_waits_like_a_future():
    gate = threading.Event()
    job = Job(lambda: gate.wait(10) and 42, on_result=lambda value: value + 1, on_error=print).start()
    with pytest.raises(TimeoutError):
        job.result(0.05)
    gate.set()
    assert job.result(10) == 43  # what on_result returned

    failing = Job(lambda: 1 / 0, on_result=print, on_error=lambda exc: None).start()
    with pytest.raises(ZeroDivisionError):
        failing.result(10)

    stuck = threading.Event()
    abandoned = Job(lambda: stuck.wait(10), on_result=print, on_error=print).start()
    abandoned.cancel()
    started = time.monotonic()
    with pytest.raises(CancelledError):
        abandoned.result(10)
    assert time.monotonic() - started < 1, "cancel() should not wait for the work"
    stuck.set()


def test_extend_loop_and_repaint_buttons_make_takes_with_their_lineage(explorer):
    cheap(explorer, seed=5)
    explorer.duration.value = 4.0
    first = explorer.generate()
    explorer.history.value = 1
    assert explorer.repaint_section.max == 4.0 and explorer.repaint_section.value == (1.6, 2.4)

    # Extend: one window through the endpoint, keeping the take's last seconds; progress per window.
    explorer.extend_to.value = 30.0
    explorer.history_buttons["Extend"].click()
    assert explorer.wait(180), explorer.message.value
    extended = explorer.session.get(2)
    assert (extended.parent, extended.origin, extended.duration) == (1, "#1 extended to 30.0 s", 30.0)
    lineage = extended.clip.lineage
    assert lineage["verb"] == "extend" and lineage["windows"][0]["prompt"] == first.prompt
    assert lineage["windows"][0]["seed"] == extended.seed != first.seed  # a new seed, recorded
    assert explorer.status.value.startswith("Clip #2") and explorer.progress.value == 1.0
    assert (explorer.compare_a.value, explorer.compare_b.value) == (1, 2)

    # Repaint a section with a new prompt: the take's length, the section in the lineage.
    explorer.history.value = 1
    explorer.repaint_section.value = (1.0, 2.0)
    explorer.edit_prompt.value = "A roll of thunder"
    explorer.history_buttons["Repaint"].click()
    assert explorer.wait(180), explorer.message.value
    repainted = explorer.session.get(3)
    assert (repainted.parent, repainted.duration, repainted.prompt) == (1, 4.0, "A roll of thunder")
    assert repainted.clip.lineage["section"] == [1.0, 2.0]

    # Loop: whole bars at the given tempo.
    explorer.history.value = 1
    explorer.edit_prompt.value = ""
    explorer.loop_bars.value, explorer.loop_bpm.value = 1, 120.0
    explorer.history_buttons["Loop"].click()
    assert explorer.wait(180), explorer.message.value
    looped = explorer.session.get(4)
    assert (looped.origin, looped.duration, looped.prompt) == ("loop of #1, 1 bars", 2.0, first.prompt)
    assert looped.clip.lineage["bars"] == 1 and looped.clip.lineage["bpm"] == 120.0

    # A section of length zero fails naming the field; nothing is added.
    explorer.history.value = 1
    explorer.repaint_section.value = (2.0, 2.0)
    explorer.history_buttons["Repaint"].click()
    assert explorer.wait(60)
    assert "end: 2.0 is out of range" in explorer.message.value and len(explorer.session) == 4


def test_stopping_an_extension_keeps_nothing(explorer):
    cheap(explorer, seed=5)
    explorer.generate()
    job = explorer.verbs.start_edit(1, "extend", to=200.0)  # 6 windows: 47.55 s, then 37.55 s each
    deadline = time.monotonic() + 120
    while explorer.verbs.windows is None and time.monotonic() < deadline:  # the first window is made
        time.sleep(0.05)
    assert explorer.verbs.windows[:2] == (0, 6), explorer.message.value
    explorer.cancel()
    assert job.wait(120), "the extension went on after Stop"
    assert explorer.verbs.windows[0] < 4, "it ran to the end"
    with pytest.raises(CancelledError):
        job.result(1)
    assert (
        len(explorer.session) == 1 and [p.name for p in explorer.session.folder.iterdir() if p.is_dir()] == []
    )
