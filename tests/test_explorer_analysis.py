"""The explorer's numbers: each take's tempo, loudness and brightness, and a sweep's metric chart.

Driven headless against the real offline endpoint, as tests/test_explorer.py does; 1 s, 2 steps.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from PIL import Image

from flexaudio_helpers.analysis import analyze
from flexaudio_helpers.client import AudioClient
from flexaudio_helpers.explorer import PLOT_DPI, Explorer, figure_png
from flexaudio_helpers.plots import plot_comparison

# Where the sweep's picture is kept for people to look at (the Makefile's test-artifacts/).
ARTIFACTS = Path(os.environ.get("FLEXAUDIO_TEST_ARTIFACTS", Path(__file__).parents[1] / "test-artifacts"))


@pytest.fixture
def explorer(offline_server, tmp_path):
    with AudioClient(offline_server.url, offline_server.api_key) as client:
        app = Explorer(client, folder=tmp_path / "session")
        assert app.wait(60), "the endpoint check did not finish"
        yield app
        app.close()


def test_history_rows_show_tempo_loudness_and_brightness(explorer):
    explorer.prompt.value = "Techno at 128 bpm"
    explorer.duration.value, explorer.steps.value = 1.0, 2
    explorer.use_seed(3)
    explorer.generate()
    assert explorer.wait(120)
    ((label, _),) = explorer.history.options
    analysis = analyze(explorer.session.get(1).clip)
    # Offline noise: no beat; its loudness and centroid as measured, in the row.
    assert "no beat" in label
    assert f"{analysis.loudness_lufs:.1f} LUFS" in label and f"{analysis.centroid_hz:,.0f} Hz" in label


def test_the_sweep_tab_charts_the_metrics_under_the_grid(explorer):
    explorer.prompt.value = "Rain on a tin roof"
    explorer.duration.value, explorer.steps.value = 1.0, 2
    explorer.use_seed(5)
    explorer.sweep_parameter.value = "guidance_scale"
    explorer.sweep_values.value = "1, 4, 9"
    explorer.sweep()
    assert explorer.wait(180)
    assert "3 of 3 clips" in explorer.sweep_status.value, explorer.sweep_status.value
    _, picture = explorer.sweep_view.children
    clips = [take.clip for take in explorer.session.takes]
    grid_only = figure_png(plot_comparison(clips, columns=3), PLOT_DPI)
    shown, plain = Image.open(io.BytesIO(bytes(picture.value))), Image.open(io.BytesIO(grid_only))
    # The same grid, plus a row of charts under it.
    assert shown.width == plain.width and shown.height > plain.height + PLOT_DPI
    assert all("LUFS" in label for label, _ in explorer.history.options)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "explorer-sweep-metrics.png").write_bytes(bytes(picture.value))
