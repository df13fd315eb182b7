"""The parameter explorer: a small ipywidgets app for hearing and seeing what parameters do.

    from flexaudio_helpers.explorer import explore
    explorer = explore()          # the endpoint "stable-audio-open" (or INFERENCE_URL/INFERENCE_API_KEY)
    explorer                      # shows the app; explore(endpoint) or explore(client) works too
    explorer.generate("Rain on a tin roof", seed=42)        # what the buttons do, from code
    explorer.sweep("guidance_scale", [3, 7, 12])
    explorer.vary(1, count=4)                               # clip #1's request, new seeds
    explorer.start_from(1, init_noise_level=2.0)            # audio-to-audio from clip #1
    explorer.compare(1, 2)
    explorer.export("my-session")

One module per part of the app, each owning its widgets:

- `controls`: prompt, sliders and seed (bounds from `params` and the endpoint's reported maximum
  duration, so they cannot make an invalid request), Generate/Cancel and the status line. Random
  seeds are drawn here, so every clip's seed is known even when an endpoint does not report it.
- `result`: the newest clip's player, waveform + spectrogram, parameters, seed and timing.
- `history`: every clip of the session with its tempo, loudness and brightness and where it came
  from (``#7 ← varied from #3``); replay, re-plot, save as WAV/FLAC, load back into the controls,
  Vary (new seeds, side by side), Start from this take (audio-to-audio at a noise level), and
  Extend, Loop and Repaint (past the 47.55 s window, `longer`).
- `compare`: two clips side by side, spectrograms on one colour scale, and their similarity.
- `sweep`: one parameter over a few values, made with `generate_many` (bounded concurrency), with
  what the value did in numbers (loudness, brightness, noisiness) charted under the grid.
- `export`: every clip as FLAC plus a ``manifest.jsonl`` that ``flexaudio batch`` can replay.
- `banner`: the "noise, not music" notice, shown once the endpoint or a clip says it is offline.
- `verbs`: what makes takes (Generate, Vary, Start from this take, Extend, Loop, Repaint), one at a
  time in a worker thread, with one Cancel; a verb is a `make` (worker) and `finish` (widgets) pair.
- `render`: the HTML boxes and PNG figures they share; `app`: `explore()` and `Explorer`, which
  lays the parts out and gives code the verbs that wait for their outcome.
- `session`: the takes (each saved as FLAC, only the last 8 held in memory), saving and export,
  and the worker jobs, without any widget.
"""

from .app import TAB_TITLES, Explorer, explore
from .compare import Comparison
from .controls import MAX_SLIDER_SECONDS, MAX_WIDGET_SEED
from .render import PLOT_DPI, figure_png
from .sweep import SweepResult

__all__ = [
    "MAX_SLIDER_SECONDS",
    "MAX_WIDGET_SEED",
    "PLOT_DPI",
    "TAB_TITLES",
    "Comparison",
    "Explorer",
    "SweepResult",
    "explore",
    "figure_png",
]
