"""The parameter explorer: a small ipywidgets app for hearing and seeing what parameters do.

    from flexaudio_helpers.explorer import explore
    explorer = explore()          # the endpoint "stable-audio-open" (or INFERENCE_URL/INFERENCE_API_KEY)
    explorer                      # shows the app; explore(endpoint) or explore(client) works too

- **Generate**: the request runs in a worker thread, so the kernel stays free; the button is
  disabled meanwhile, the elapsed time shows, and Cancel abandons the result. Errors appear as a
  message in the app. The result: player, waveform + spectrogram, parameters, seed and timing.
- **History**: every clip of the session with its tempo, loudness and brightness; replay, re-plot,
  save as WAV/FLAC, load back into the controls.
- **Compare**: two clips side by side, spectrograms on one colour scale.
- **Sweep**: one parameter over a few values, made with `generate_many` (bounded concurrency),
  with what the value did in numbers (loudness, brightness, noisiness) charted under the grid.
- **Export**: every clip as FLAC plus a ``manifest.jsonl`` that ``flexaudio batch`` can replay.

The sliders' bounds come from `params` and from the endpoint's reported maximum duration, so the
controls cannot make an invalid request. Random seeds are drawn here, not by the endpoint, so the
seed of every clip is known even when an endpoint does not report it.
"""

from __future__ import annotations

import html
import io
import os
import secrets
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from .audio import Clip
from .cli import shell_command
from .errors import FlexAudioError, InvalidParameters
from .explorer_session import MANIFEST_NAME, SWEEPABLE, Job, Session, Take, sweep_requests
from .params import ALLOWED, MAX_AUDIO_SECONDS, MAX_GUIDANCE, MAX_STEPS, GenerationRequest

DEFAULT_ENDPOINT = "stable-audio-open"
MIN_SECONDS = 0.5
# Stable Audio Open's own limit is 47.55 s; the slider stops at a round 47.5.
MAX_SLIDER_SECONDS = min(47.5, MAX_AUDIO_SECONDS)
# The browser holds widget numbers as JavaScript doubles: integers above 2**53 - 1 lose digits.
MAX_WIDGET_SEED = 2**53 - 1
RANDOM_SEEDS = 2**31  # like the endpoint's own random seeds: short, and exact everywhere
DEFAULTS = {"audio_end_in_s": 10.0, "num_inference_steps": 100, "guidance_scale": 7.0}
PLOT_DPI = 90
OFFLINE_BANNER = (
    "<b>Offline model:</b> this endpoint runs the real Stable Audio pipeline with random weights, "
    "so every clip is <b>noise, not music</b>. The controls, timings and plots are real; for real "
    "audio, deploy on FlexAI or use a GPU machine with the Hugging Face weights."
)
WIDE = widgets.Layout(width="95%")


def explore(endpoint_or_client: Any = None, *, name: str = DEFAULT_ENDPOINT, **options: Any) -> Explorer:
    """An `Explorer` for an `Endpoint`, an `AudioClient`, or (None) the saved endpoint `name`.

    With None, ``INFERENCE_URL``/``INFERENCE_API_KEY`` win when set (see `deploy.endpoint`); else the
    endpoint `name` that a deployment served earlier. `options` go to `Explorer` (e.g. ``folder``).
    """
    if endpoint_or_client is None:
        from .deploy import endpoint

        endpoint_or_client = endpoint(name)
    return Explorer(endpoint_or_client, **options)


def _client_of(endpoint_or_client: Any) -> Any:
    """An `AudioClient` (or anything with ``generate``/``generate_many``) from an endpoint or client."""
    if hasattr(endpoint_or_client, "generate"):
        return endpoint_or_client
    if hasattr(endpoint_or_client, "client"):
        return endpoint_or_client.client()
    raise TypeError(f"explore() needs an Endpoint or an AudioClient, not {type(endpoint_or_client).__name__}")


def figure_png(figure: Any, dpi: int = PLOT_DPI) -> bytes:
    """A matplotlib figure as PNG bytes (figures from `plots` are not pyplot's: nothing to close)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


TAB_TITLES = ("Result", "History", "Compare", "Sweep", "Export")
# The controls' labels for the wire fields, so that errors name what the person sees.
CONTROL_LABELS = {
    "inputs": "Prompt",
    "parameters.negative_prompt": "Negative prompt",
    "parameters.audio_end_in_s": "Duration (s)",
    "parameters.num_inference_steps": "Steps",
    "parameters.guidance_scale": "Guidance",
    "parameters.seed": "Seed",
}


def error_html(exc: BaseException) -> str:
    """A short, readable message for the app (never a traceback)."""
    label = CONTROL_LABELS.get(getattr(exc, "field", None) or "")
    if isinstance(exc, InvalidParameters) and label and exc.allowed:
        blank = exc.value is None or (isinstance(exc.value, str) and not exc.value.strip())
        given = "empty" if blank else repr(exc.value)
        text = f"{given} is not allowed; allowed: {exc.allowed}"
        return _box(f"<b>{html.escape(label)}:</b> {html.escape(text)}", "#fdecea", "#b71c1c")
    if isinstance(exc, InvalidParameters):
        kind = "Invalid parameters"
    elif isinstance(exc, FlexAudioError):
        kind = type(exc).__name__
    else:
        kind = f"Unexpected error ({type(exc).__name__})"
    return _box(f"<b>{html.escape(kind)}:</b> {html.escape(str(exc))}", "#fdecea", "#b71c1c")


def _box(content: str, background: str, colour: str) -> str:
    return (
        f'<div style="background:{background};color:{colour};padding:6px 10px;border-radius:4px;'
        f'white-space:pre-wrap">{content}</div>'
    )


def _note(text: str) -> str:
    return _box(html.escape(text), "#e8f4fd", "#0d47a1")


def _details_html(take: Take) -> str:
    """The parameters, seed and timings of a take, as a small table."""
    clip = take.clip
    rows = [("prompt", clip.prompt or "")]
    rows += [(name, value) for name, value in take.parameters().items() if name != "seed"]
    rows.append(("seed used", clip.seed))
    timings = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in sorted(clip.timings.items()))
    if take.click_to_audio is not None:
        timings += f"{', ' if timings else ''}click to audio {take.click_to_audio:.2f} s"
    rows.append(("timing", timings or "not reported"))
    body = "".join(
        f'<tr><th style="text-align:left;padding-right:1em">{html.escape(str(name))}</th>'
        f"<td>{html.escape(str(value))}</td></tr>"
        for name, value in rows
    )
    return f'<table class="flexaudio-details" style="font-size:90%">{body}</table>'


class Explorer:
    """The app. `widget` is what is displayed; the controls are attributes, for tests and scripts.

    `folder` is where saved clips, sweeps and exports go (default ``explorer-sessions/<time>``
    under the working directory). `concurrency` is the sweep's default number of parallel requests.
    """

    def __init__(
        self, endpoint_or_client: Any, *, folder: str | os.PathLike | None = None, concurrency: int = 2
    ):
        self.client = _client_of(endpoint_or_client)
        self.session = Session()
        self.folder = Path(folder or Path("explorer-sessions") / time.strftime("%Y%m%d-%H%M%S"))
        self.max_seconds = MAX_SLIDER_SECONDS
        self.model_facts: dict[str, Any] = {}
        self.job: Job | None = None  # the running (or last) generation
        self.sweep_job: Job | None = None
        self.probe_job: Job | None = None
        self._last_generation_seconds: float | None = None
        self._pngs: dict[int, bytes] = {}  # plots of takes, by number
        self._sweeps = 0
        self._build(concurrency)
        self.probe_job = Job(self._probe_endpoint, on_result=self._show_model, on_error=self._no_model_facts)
        self.probe_job.start()

    # ----- layout ---------------------------------------------------------------------------
    def _build(self, concurrency: int) -> None:
        slider = {"continuous_update": False, "style": {"description_width": "9em"}, "layout": WIDE}
        self.banner = widgets.HTML(layout=widgets.Layout(display="none"))
        self.banner.add_class("flexaudio-offline-banner")
        self.prompt = widgets.Textarea(
            value="Relaxing piano music with soft ambient sounds, calm and peaceful",
            description="Prompt",
            placeholder="What should it sound like?",
            rows=2,
            **slider,
        )
        self.negative_prompt = widgets.Textarea(
            description="Negative prompt", placeholder="e.g. distorted, low quality", rows=1, **slider
        )
        self.duration = widgets.FloatSlider(
            value=DEFAULTS["audio_end_in_s"],
            min=MIN_SECONDS,
            max=self.max_seconds,
            step=0.5,
            description="Duration (s)",
            tooltip=ALLOWED["audio_end_in_s"],
            **slider,
        )
        self.steps = widgets.IntSlider(
            value=DEFAULTS["num_inference_steps"],
            min=1,
            max=MAX_STEPS,
            description="Steps",
            tooltip=ALLOWED["num_inference_steps"],
            **slider,
        )
        self.guidance = widgets.FloatSlider(
            value=DEFAULTS["guidance_scale"],
            min=0.0,
            max=MAX_GUIDANCE,
            step=0.5,
            description="Guidance",
            tooltip=ALLOWED["guidance_scale"],
            **slider,
        )
        self.seed = widgets.BoundedIntText(
            value=42, min=0, max=MAX_WIDGET_SEED, description="Seed", disabled=True,
            style=slider["style"], tooltip=ALLOWED["seed"],
        )  # fmt: skip
        self.random_seed = widgets.Checkbox(value=True, description="random", indent=False)
        self.reuse_seed = widgets.Button(description="Reuse last seed", icon="repeat", disabled=True)
        self.generate_button = widgets.Button(description="Generate", button_style="primary", icon="play")
        self.generate_button.add_class("flexaudio-generate")
        self.cancel_button = widgets.Button(description="Cancel", icon="stop", disabled=True)
        self.progress = widgets.FloatProgress(value=0.0, min=0.0, max=1.0, layout=widgets.Layout(width="30%"))
        self.status = widgets.HTML("Ready.")
        self.status.add_class("flexaudio-status")
        self.message = widgets.HTML()
        self.player = widgets.HTML()
        self.player.add_class("flexaudio-player")
        self.plot = widgets.Image(format="png", layout=widgets.Layout(max_width="900px"))
        self.plot.add_class("flexaudio-spectrogram")
        self.details = widgets.HTML()

        self.random_seed.observe(self._on_random_seed, names="value")
        self.reuse_seed.on_click(lambda _: self.use_seed(self._last_seed()))
        self.generate_button.on_click(lambda _: self.generate())
        self.cancel_button.on_click(lambda _: self.cancel())

        controls = widgets.VBox(
            [
                self.prompt,
                self.negative_prompt,
                self.duration,
                self.steps,
                self.guidance,
                widgets.HBox([self.seed, self.random_seed, self.reuse_seed]),
                widgets.HBox([self.generate_button, self.cancel_button, self.progress, self.status]),
                self.message,
            ]
        )
        self.result = widgets.VBox([self.player, self.plot, self.details])
        pages = [self.result, self._build_history(), self._build_compare()]
        pages += [self._build_sweep(concurrency), self._build_export()]
        self.tabs = widgets.Tab(pages)
        for index, title in enumerate(TAB_TITLES):
            self.tabs.set_title(index, title)
        self.widget = widgets.VBox([self.banner, controls, self.tabs])
        self.widget.add_class("flexaudio-explorer")

    def _build_history(self) -> widgets.Widget:
        self.history = widgets.Select(options=[], rows=6, layout=WIDE)
        self.history.add_class("flexaudio-history")
        buttons = {
            "Play": self._replay,
            "Plot": self._replot,
            "Save WAV": lambda take: self._save(take, "wav"),
            "Save FLAC": lambda take: self._save(take, "flac"),
            "Load into controls": self.load_into_controls,
        }
        self.history_buttons = {}
        for label, action in buttons.items():
            button = widgets.Button(description=label, disabled=True)
            button.on_click(lambda _, action=action: self._on_history(action))
            self.history_buttons[label] = button
        self.history.observe(self._on_history_selection, names="value")
        self.history_message = widgets.HTML()
        self.history_view = widgets.VBox()
        return widgets.VBox(
            [
                self.history,
                widgets.HBox(list(self.history_buttons.values())),
                self.history_message,
                self.history_view,
            ]
        )

    def _build_compare(self) -> widgets.Widget:
        self.compare_a = widgets.Dropdown(options=[], description="A", layout=widgets.Layout(width="45%"))
        self.compare_b = widgets.Dropdown(options=[], description="B", layout=widgets.Layout(width="45%"))
        self.compare_button = widgets.Button(description="Compare A/B", icon="columns")
        self.compare_button.on_click(lambda _: self.compare())
        self.compare_view = widgets.VBox()
        self.compare_view.add_class("flexaudio-compare")
        self.compare_message = widgets.HTML()
        return widgets.VBox(
            [
                widgets.HBox([self.compare_a, self.compare_b]),
                self.compare_button,
                self.compare_message,
                self.compare_view,
            ]
        )

    def _build_sweep(self, concurrency: int) -> widgets.Widget:
        self.sweep_parameter = widgets.Dropdown(
            options=list(SWEEPABLE), value="guidance_scale", description="Vary"
        )
        self.sweep_values = widgets.Text(
            value="3, 7, 12", description="Values", placeholder="2 to 8 values, e.g. 3, 7, 12"
        )
        self.sweep_concurrency = widgets.IntSlider(
            value=concurrency, min=1, max=4, description="Parallel", continuous_update=False
        )
        self.sweep_button = widgets.Button(description="Run sweep", icon="th", button_style="primary")
        self.sweep_button.on_click(lambda _: self.sweep())
        self.sweep_cancel = widgets.Button(description="Cancel", icon="stop", disabled=True)
        self.sweep_cancel.on_click(lambda _: self.cancel_sweep())
        self.sweep_status = widgets.HTML(
            "Uses the controls above for everything else; each clip also goes into History."
        )
        self.sweep_view = widgets.VBox()
        return widgets.VBox(
            [
                widgets.HBox([self.sweep_parameter, self.sweep_values, self.sweep_concurrency]),
                widgets.HBox([self.sweep_button, self.sweep_cancel]),
                self.sweep_status,
                self.sweep_view,
            ]
        )

    def _build_export(self) -> widgets.Widget:
        self.export_folder = widgets.Text(value=str(self.folder), description="Folder", layout=WIDE)
        self.export_button = widgets.Button(description="Export session", icon="download")
        self.export_button.on_click(lambda _: self.export())
        self.export_message = widgets.HTML(
            f"Saves every clip as FLAC (request and seed inside) and {MANIFEST_NAME}, "
            "which <code>flexaudio batch</code> can replay."
        )
        return widgets.VBox([self.export_folder, self.export_button, self.export_message])

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    # ----- the endpoint --------------------------------------------------------------------
    def _probe_endpoint(self) -> dict[str, Any]:
        models = self.client.models()
        data = models.get("data") if isinstance(models, dict) else None
        return data[0] if data and isinstance(data[0], dict) else {}

    def _show_model(self, facts: dict[str, Any]) -> None:
        self.model_facts = facts
        reported = facts.get("max_audio_seconds")
        if isinstance(reported, int | float) and reported >= MIN_SECONDS:
            self.max_seconds = min(MAX_SLIDER_SECONDS, float(reported))
            self.duration.max = self.max_seconds  # ipywidgets clamps the value too
        if facts.get("offline"):
            self._show_offline_banner()

    def _no_model_facts(self, exc: BaseException) -> None:
        # FlexServe endpoints need not offer /v1/models: keep the shared model's limits.
        self.model_facts = {}

    def _show_offline_banner(self) -> None:
        if self.banner.layout.display == "none":
            self.banner.value = _box(OFFLINE_BANNER, "#fff3cd", "#664d03")
            self.banner.layout.display = None

    # ----- generate ------------------------------------------------------------------------
    def request(self) -> GenerationRequest:
        """The request the controls describe (a random seed is drawn when "random" is ticked)."""
        seed = secrets.randbelow(RANDOM_SEEDS) if self.random_seed.value else self.seed.value
        return GenerationRequest.build(
            self.prompt.value,
            audio_end_in_s=float(self.duration.value),
            num_inference_steps=int(self.steps.value),
            guidance_scale=float(self.guidance.value),
            negative_prompt=self.negative_prompt.value.strip() or None,
            seed=int(seed),
        )

    def generate(self) -> Job | None:
        """Start one generation in a worker thread (what the Generate button does)."""
        if self.job is not None and self.job.running:
            return None
        self.message.value = ""
        try:
            request = self.request()
        except InvalidParameters as exc:
            self.message.value = error_html(exc)
            return None
        self._set_running(True)
        self.status.value = "Generating..."
        self.progress.value = 0.0
        job = Job(
            lambda: self._make(request),
            on_result=lambda result: self._finished(job, *result),
            on_error=lambda exc: self._failed(job, exc),
            on_tick=lambda elapsed: self._tick(job, elapsed),
        )
        self.job = job
        return job.start()

    def _make(self, request: GenerationRequest) -> tuple[Clip, bytes]:
        clip = self.client.generate(request)
        return clip, self._plot_png(clip)

    @staticmethod
    def _plot_png(clip: Clip) -> bytes:
        from .plots import plot_clip

        return figure_png(plot_clip(clip))

    def _tick(self, job: Job, elapsed: float) -> None:
        if job is not self.job:
            return
        expected = self._last_generation_seconds
        if expected:
            self.progress.value = min(0.95, elapsed / expected)
            self.status.value = f"Generating... {elapsed:.1f} s (the last one took {expected:.1f} s)"
        else:
            self.progress.value = (elapsed % 10) / 10  # no estimate yet: a moving bar
            self.status.value = f"Generating... {elapsed:.1f} s"

    def _finished(self, job: Job, clip: Clip, png: bytes) -> None:
        take = self.session.add(clip, "generate", click_to_audio=job.elapsed)
        self._pngs[take.number] = png
        self._last_generation_seconds = job.elapsed
        self.player.value = clip._repr_html_()
        self.plot.value = png
        self.details.value = _details_html(take)
        if clip.offline:
            self._show_offline_banner()
        self._refresh_history(select=take.number)
        self.tabs.selected_index = 0
        self.progress.value = 1.0
        self.status.value = f"Clip #{take.number} in {job.elapsed:.1f} s (seed {clip.seed})."
        self._set_running(False)

    def _failed(self, job: Job, exc: BaseException) -> None:
        self.message.value = error_html(exc)
        self.status.value = f"Failed after {job.elapsed:.1f} s."
        self.progress.value = 0.0
        self._set_running(False)

    def cancel(self) -> None:
        """Abandon the running generation's result (the endpoint may still finish it)."""
        job = self.job
        if job is None or not job.running:
            return
        job.cancel()
        self.status.value = f"Cancelled after {job.elapsed:.1f} s; its result will be discarded."
        self.progress.value = 0.0
        self._set_running(False)

    def show_tab(self, title: str) -> None:
        """Bring a tab to the front by its title (one of `TAB_TITLES`, e.g. ``"Sweep"``)."""
        if title not in TAB_TITLES:
            raise ValueError(f"no tab {title!r}; the tabs are {', '.join(TAB_TITLES)}")
        self.tabs.selected_index = TAB_TITLES.index(title)

    def _set_running(self, running: bool) -> None:
        self.generate_button.disabled = running
        self.cancel_button.disabled = not running

    def wait(self, timeout: float | None = 600.0) -> bool:
        """Wait for the running generation, sweep and endpoint check; False if one is still running."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for job in (self.probe_job, self.job, self.sweep_job):
            if job is not None and not job.cancelled:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                if not job.wait(left):
                    return False
        return True

    # ----- seeds and controls ----------------------------------------------------------------
    def _on_random_seed(self, change: dict[str, Any]) -> None:
        self.seed.disabled = change["new"]

    def _last_seed(self) -> int | None:
        takes = self.session.takes
        return takes[-1].clip.seed if takes else None

    def use_seed(self, seed: int | None) -> None:
        """Put `seed` in the seed box and turn "random" off (the "Reuse last seed" button)."""
        if seed is None:
            return
        if seed > MAX_WIDGET_SEED:
            self.message.value = _note(f"seed {seed} is above 2**53 - 1, which a browser cannot hold exactly")
            return
        self.random_seed.value = False
        self.seed.value = int(seed)

    def load_into_controls(self, take: Take) -> None:
        """Set every control from a take's request (its seed included)."""
        values = {**DEFAULTS, **take.parameters()}
        self.prompt.value = take.clip.prompt or ""
        self.negative_prompt.value = values.get("negative_prompt") or ""
        self.duration.value = min(float(values["audio_end_in_s"]), self.max_seconds)
        self.steps.value = int(values["num_inference_steps"])
        self.guidance.value = float(values["guidance_scale"])
        self.use_seed(take.clip.seed)
        self.history_message.value = _note(f"Clip #{take.number}'s parameters are in the controls.")

    # ----- history -------------------------------------------------------------------------
    def _refresh_history(self, select: int | None = None) -> None:
        options = [(take.label(), take.number) for take in self.session.takes]
        self.history.options = options
        if select is not None:
            self.history.value = select
        # A new clip: compare the newest two by default (any two can be picked).
        self.compare_a.options = self.compare_b.options = options
        if options:
            self.compare_a.value = options[-2 if len(options) > 1 else -1][1]
            self.compare_b.value = options[-1][1]
        self.reuse_seed.disabled = not options

    def _on_history_selection(self, change: dict[str, Any]) -> None:
        for button in self.history_buttons.values():
            button.disabled = change["new"] is None

    def _on_history(self, action) -> None:
        if self.history.value is None:
            return
        self.history_message.value = ""
        try:
            action(self.session.get(self.history.value))
        except Exception as exc:
            self.history_message.value = error_html(exc)

    def _png(self, take: Take) -> bytes:
        if take.number not in self._pngs:
            self._pngs[take.number] = self._plot_png(take.clip)
        return self._pngs[take.number]

    def _replay(self, take: Take) -> None:
        self.history_view.children = [
            widgets.HTML(take.clip._repr_html_()),
            widgets.HTML(_details_html(take)),
        ]

    def _replot(self, take: Take) -> None:
        self.history_view.children = [widgets.Image(value=self._png(take), format="png")]

    def _save(self, take: Take, fmt: str) -> Path:
        path = self.session.save(take, self.folder, fmt)
        self.history_message.value = _note(f"Saved clip #{take.number} as {path}")
        return path

    # ----- compare -------------------------------------------------------------------------
    def compare(self) -> None:
        """Show clips A and B side by side, spectrograms on one colour scale."""
        from .plots import plot_comparison

        if self.compare_a.value is None or self.compare_b.value is None:
            self.compare_message.value = _note("Make at least one clip first.")
            return
        takes = [self.session.get(self.compare_a.value), self.session.get(self.compare_b.value)]
        self.compare_message.value = ""
        columns = [
            widgets.VBox(
                [
                    widgets.HTML(f"<b>{side}: clip #{take.number}</b>"),
                    widgets.HTML(take.clip._repr_html_()),
                    widgets.HTML(_details_html(take)),
                ],
                layout=widgets.Layout(width="50%"),
            )
            for side, take in zip("AB", takes, strict=True)
        ]
        figure = plot_comparison(
            [take.clip for take in takes],
            titles=[
                f"{side}: #{t.number} {t.short_parameters()}" for side, t in zip("AB", takes, strict=True)
            ],
            columns=2,  # A beside B, under their players
        )
        self.compare_view.children = [
            widgets.HBox(columns),
            widgets.Image(value=figure_png(figure), format="png"),
        ]

    # ----- sweep ---------------------------------------------------------------------------
    def sweep(self) -> Job | None:
        """Generate the controls' request once per sweep value, then show a comparison grid."""
        if self.sweep_job is not None and self.sweep_job.running:
            return None
        try:
            base = self.request()
            requests = sweep_requests(base, self.sweep_parameter.value, self.sweep_values.value)
        except InvalidParameters as exc:
            self.sweep_status.value = error_html(exc)
            return None
        self._sweeps += 1
        number, parameter = self._sweeps, self.sweep_parameter.value
        out_dir = self.folder / f"sweep-{number:02d}"
        self.sweep_button.disabled, self.sweep_cancel.disabled = True, False
        self.sweep_view.children = []
        self.sweep_status.value = f"Sweep {number}: {len(requests)} clips..."
        job = Job(
            lambda: self.client.generate_many(
                requests, concurrency=self.sweep_concurrency.value, progress=False, out_dir=out_dir
            ),
            on_result=lambda results: self._sweep_finished(job, number, parameter, results),
            on_error=lambda exc: self._sweep_failed(job, exc),
            on_tick=lambda elapsed: self._sweep_tick(job, len(requests), out_dir, elapsed),
            tick_seconds=0.5,
        )
        self.sweep_job = job
        return job.start()

    def _sweep_tick(self, job: Job, total: int, out_dir: Path, elapsed: float) -> None:
        # generate_many saves each clip as it arrives: the files are the progress.
        done = (
            sum(1 for path in out_dir.glob("*") if path.suffix in (".wav", ".flac"))
            if out_dir.exists()
            else 0
        )
        self.sweep_status.value = f"Sweep: {done}/{total} clips after {elapsed:.0f} s..."

    def _sweep_finished(self, job: Job, number: int, parameter: str, results: Sequence[Any]) -> None:
        from .plots import plot_sweep

        takes, problems = [], []
        for result in results:
            value = result.request.parameters.model_dump()[parameter]
            if result.ok:
                takes.append((value, self.session.add(result.clip, f"sweep {number}: {parameter}={value}")))
            else:
                problems.append(f"{parameter}={value}: {result.error}")
        self._refresh_history()
        children = []
        if takes:
            # The spectrograms, and under them loudness, brightness and noisiness against the value.
            figure = plot_sweep(
                [take.clip for _, take in takes],
                parameter,
                values=[value for value, _ in takes],
                titles=[f"#{take.number} {parameter}={value}" for value, take in takes],
                columns=min(3, len(takes)),
            )
            players = [
                widgets.VBox(
                    [widgets.HTML(f"<b>{parameter}={value}</b>"), widgets.HTML(take.clip._repr_html_())]
                )
                for value, take in takes
            ]
            children = [widgets.HBox(players, layout=widgets.Layout(flex_flow="row wrap"))]
            children.append(widgets.Image(value=figure_png(figure), format="png"))
        if any(take.clip.offline for _, take in takes):
            self._show_offline_banner()
        summary = f"Sweep {number}: {len(takes)} of {len(results)} clips in {job.elapsed:.1f} s."
        self.sweep_status.value = html.escape(summary) + "".join(
            error_html(FlexAudioError(problem)) for problem in problems
        )
        self.sweep_view.children = children
        self.sweep_button.disabled, self.sweep_cancel.disabled = False, True

    def _sweep_failed(self, job: Job, exc: BaseException) -> None:
        self.sweep_status.value = error_html(exc)
        self.sweep_button.disabled, self.sweep_cancel.disabled = False, True

    def cancel_sweep(self) -> None:
        """Abandon the running sweep's results (clips already saved stay in its folder)."""
        if self.sweep_job is not None and self.sweep_job.running:
            self.sweep_job.cancel()
            self.sweep_status.value = "Sweep cancelled; its results will be discarded."
            self.sweep_button.disabled, self.sweep_cancel.disabled = False, True

    # ----- export --------------------------------------------------------------------------
    def export(self, folder: str | os.PathLike | None = None) -> Path | None:
        """Save the whole session (FLAC files + manifest.jsonl) in `folder`; return the manifest path."""
        folder = Path(folder or self.export_folder.value)
        if not len(self.session):
            self.export_message.value = _note("Nothing to export yet: make a clip first.")
            return None
        try:
            manifest = self.session.export(folder)
        except (OSError, FlexAudioError) as exc:
            self.export_message.value = error_html(exc)
            return None
        replay = folder / "replay"
        self.export_message.value = _note(
            f"Exported {len(self.session)} clips and {manifest}.\n"
            f"Replay them from a shell: {shell_command()} batch {manifest} -o {replay}"
        )
        return manifest

    def close(self) -> None:
        """Abandon running work and close the widgets."""
        for job in (self.job, self.sweep_job):
            if job is not None:
                job.cancel()
        self.widget.close()
