"""The explorer app: `explore()` and `Explorer`, which wires the components to the session and the jobs.

Each component owns its widgets (`banner`, `controls`, `result`, `history`, `compare`, `sweep`,
`export`); `verbs` runs what makes takes (Generate, Vary, "Start from this take", Extend, Loop and
Repaint share one worker slot: one at a time, one Cancel). `Explorer` lays them out and gives code
and notebooks the verbs that do what the buttons do and wait for the outcome.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from ..deploy.store import DEFAULT_NAME
from ..errors import InvalidParameters
from ..params import DEFAULT_INIT_NOISE_LEVEL, GenerationRequest
from .banner import OfflineBanner
from .compare import CompareTab, Comparison
from .controls import MIN_SECONDS, Controls
from .export import ExportTab
from .history import HistoryTab
from .result import ResultView
from .session import DEFAULT_VARIATIONS, Job, Session, Take
from .sweep import SweepResult, SweepTab
from .verbs import Verbs

TAB_TITLES = ("Result", "History", "Compare", "Sweep", "Export")
# The flat names that scripts and tests have always used for the widgets (``explorer.prompt``,
# ``explorer.sweep_status``, ...), by the component that owns each one now: flat name -> its name there.
# fmt: off
_FLAT_NAMES = {
    "controls": {name: name for name in (
        "prompt", "negative_prompt", "duration", "steps", "guidance", "seed", "random_seed", "reuse_seed",
        "generate_button", "cancel_button", "progress", "status", "message", "max_seconds",
    )},
    "offline_banner": {"banner": "widget"},
    "result_view": {"result": "widget", "player": "player", "plot": "plot", "details": "details"},
    "history_tab": {
        "history": "clips", "history_buttons": "buttons", "history_message": "message",
        "history_view": "view", "vary_count": "count", "noise_level": "level", "extend_to": "extend_to",
        "loop_bars": "bars", "loop_bpm": "bpm", "repaint_section": "section", "edit_prompt": "prompt",
    },
    "compare_tab": {f"compare_{name}": name for name in ("a", "b", "button", "message", "view")},
    "sweep_tab": {
        "sweep_parameter": "parameter", "sweep_values": "values", "sweep_concurrency": "concurrency",
        "sweep_button": "button", "sweep_cancel": "cancel_button", "sweep_status": "status",
        "sweep_view": "view", "sweep_job": "job",
    },
    "export_tab": {f"export_{name}": name for name in ("folder", "button", "message")},
}
# fmt: on
WIDGET_NAMES = {flat: (owner, name) for owner, names in _FLAT_NAMES.items() for flat, name in names.items()}


def explore(endpoint_or_client: Any = None, *, name: str = DEFAULT_NAME, **options: Any) -> Explorer:
    """An `Explorer` for an `Endpoint`, an `AudioClient`, or (None) the saved endpoint `name`.

    With None, ``INFERENCE_URL``/``INFERENCE_API_KEY`` win when set (see `deploy.endpoint`); else the
    endpoint `name` that a deployment served earlier. `options` go to `Explorer` (e.g. ``folder``).
    """
    if endpoint_or_client is None:
        from ..deploy import endpoint

        endpoint_or_client = endpoint(name)
    return Explorer(endpoint_or_client, **options)


def model_facts(client: Any) -> dict[str, Any]:
    """What the endpoint's ``/v1/models`` says about its model (e.g. ``max_audio_seconds``, ``offline``)."""
    models = client.models()
    data = models.get("data") if isinstance(models, dict) else None
    return data[0] if data and isinstance(data[0], dict) else {}


def _client_of(endpoint_or_client: Any) -> Any:
    """An `AudioClient` (or anything with ``generate``/``generate_many``) from an endpoint or client."""
    if hasattr(endpoint_or_client, "generate"):
        return endpoint_or_client
    if hasattr(endpoint_or_client, "client"):
        return endpoint_or_client.client()
    raise TypeError(f"explore() needs an Endpoint or an AudioClient, not {type(endpoint_or_client).__name__}")


class FlatNames:
    """The widgets' flat names (``explorer.prompt``, see `WIDGET_NAMES`), read from their components."""

    def __getattr__(self, name: str) -> Any:
        # Only called for names not found the usual way: the widgets' flat names.
        if name in WIDGET_NAMES:
            component, attribute = WIDGET_NAMES[name]
            return getattr(getattr(self, component), attribute)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *WIDGET_NAMES})


class Explorer(FlatNames):
    """The app. `widget` is what is displayed; `generate`, `vary`, `start_from`, `sweep`, `compare`
    and `export` do what the buttons do, wait, and return something a notebook shows.

    The components are `offline_banner`, `controls`, `result_view`, `history_tab`, `compare_tab`,
    `sweep_tab` and `export_tab`; their widgets keep their flat names too (``explorer.prompt``, see
    `WIDGET_NAMES`).
    `folder` is where saved clips, sweeps and exports go (default ``explorer-sessions/<time>``
    under the working directory). Every take is also kept as FLAC in `takes_folder` (default: a
    temporary folder, removed by `close()` or when the explorer is collected), and only the last
    few in memory (see `Session`). `concurrency` is the sweep's default number of parallel requests.
    """

    def __init__(
        self,
        endpoint_or_client: Any,
        *,
        folder: str | os.PathLike | None = None,
        takes_folder: str | os.PathLike | None = None,
        concurrency: int = 2,
    ):
        self.client = _client_of(endpoint_or_client)
        self.session = Session(takes_folder)
        self.folder = Path(folder or Path("explorer-sessions") / time.strftime("%Y%m%d-%H%M%S"))
        self.model_facts: dict[str, Any] = {}
        self.verbs = Verbs(self)  # everything that makes takes: one worker slot
        self.offline_banner = OfflineBanner()
        self.controls = Controls(
            on_generate=self.verbs.start_generation, on_cancel=self.cancel, last_seed=self._last_seed
        )
        self.result_view = ResultView()
        self.history_tab = HistoryTab(
            self.session, folder=self.folder, png_of=self.verbs.png, on_load=self.controls.load,
            on_vary=self.verbs.start_variations, on_start_from=self.verbs.start_from_take,
            on_edit=self.verbs.start_edit,
        )  # fmt: skip
        self.compare_tab = CompareTab(self.session)
        self.sweep_tab = SweepTab(
            self.client, self.session, folder=self.folder, base_request=self.controls.request,
            on_takes=self.took, concurrency=concurrency,
        )  # fmt: skip
        self.export_tab = ExportTab(self.session, folder=self.folder)
        pages = (self.result_view, self.history_tab, self.compare_tab, self.sweep_tab, self.export_tab)
        self.tabs = widgets.Tab([page.widget for page in pages])
        for index, title in enumerate(TAB_TITLES):
            self.tabs.set_title(index, title)
        self.widget = widgets.VBox([self.offline_banner.widget, self.controls.widget, self.tabs])
        self.widget.add_class("flexaudio-explorer")
        # FlexServe endpoints need not offer /v1/models: then no facts, and the shared model's limits.
        no_facts = lambda _: setattr(self, "model_facts", {})  # noqa: E731
        self.probe_job = Job(lambda: model_facts(self.client), on_result=self._show_model, on_error=no_facts)
        self.probe_job.start()

    # ----- the verbs, for code and notebooks -----------------------------------------------
    def generate(
        self, prompt: str | None = None, *, timeout: float | None = 600.0, **parameters: Any
    ) -> Take:
        """Make one clip as the Generate button does, wait for it, and return its `Take`.

        `prompt` and `parameters` (``audio_end_in_s``, ``num_inference_steps``, ``guidance_scale``,
        ``negative_prompt``, ``seed``; ``seed=None`` draws one) go into the controls first; the rest
        keep their values. A take shows in a notebook as its player and details.
        Raises `InvalidParameters` for a value the controls do not allow (also shown in the app),
        `RuntimeError` while another generation runs, the client's `FlexAudioError` when the request
        fails, `TimeoutError` after `timeout` seconds (it goes on: Cancel drops it) and
        `concurrent.futures.CancelledError` when Cancel is pressed meanwhile.
        """
        self.verbs.check_idle()
        try:
            self.controls.apply(prompt, **parameters)
            request = self.controls.request()
        except InvalidParameters as exc:
            self.controls.refuse(exc)
            raise
        return self.verbs.generation(request).result(timeout)

    def vary(
        self, take: int | Take, count: int = DEFAULT_VARIATIONS, *, timeout: float | None = 600.0
    ) -> list[Take]:
        """Make `count` variations of a take as Vary does: its request with new seeds; wait; return them.

        `take` is a take or its number (as in History). The takes use seeds base, base + 1, ...
        from a new random base, in one call (`AudioClient.variations`); History shows them side by
        side, each labelled "varied from #n". A take made from another take's audio is varied from
        that audio at its level. Raises `ValueError` when `take` is not a clip of the session,
        `InvalidParameters` for a count other than 1 to 8, and like `generate` otherwise.
        """
        return self.verbs.start_variations(take, count).result(timeout)

    def start_from(
        self,
        take: int | Take,
        init_noise_level: float = DEFAULT_INIT_NOISE_LEVEL,
        *,
        prompt: str | None = None,
        timeout: float | None = 600.0,
        **parameters: Any,
    ) -> Take:
        """Generate from a take's audio as "Start from this take" does (audio-to-audio); wait; return it.

        Denoising starts from the take's clip under `init_noise_level` of noise (more than 0.3 up
        to 100): at 1 the result keeps the take's shape, at 100 little of it is left. The request
        is the take's with a new random seed (the take's own seed would bring back its own noise),
        changed by `prompt` (e.g. the same tune "played on a harp") and `parameters` (wire names,
        e.g. ``seed=1``).
        Compare then shows the take (A) against the result (B) with their similarity. Raises
        `ValueError` when `take` is not a clip of the session, `InvalidParameters` for a level or
        parameter out of range, and like `generate` otherwise.
        """
        job = self.verbs.start_from_take(take, init_noise_level, prompt=prompt, **parameters)
        return job.result(timeout)

    def sweep(
        self,
        parameter: str | None = None,
        values: str | list[float] | None = None,
        *,
        concurrency: int | None = None,
        timeout: float | None = 600.0,
    ) -> SweepResult:
        """Run a sweep as the Run sweep button does (the controls give everything else), wait, return it.

        `parameter` is ``guidance_scale``, ``num_inference_steps`` or ``seed``; `values` 2 to 8 of
        them, as a list or ``"3, 7, 12"``; None keeps what the Sweep tab holds. The result shows as
        the players and the grid. Raises like `generate` (`InvalidParameters` names what is allowed).
        """
        self.show_tab("Sweep")
        return self.sweep_tab.run(parameter, values, concurrency).result(timeout)

    def compare(self, a: int | Take | None = None, b: int | Take | None = None) -> Comparison:
        """Show clips `a` and `b` side by side (numbers as in History; None: the Compare tab's picks).

        Returns the `Comparison`, which a notebook shows as the tab does. Raises `ValueError` when a
        number is not a clip of the session.
        """
        self.show_tab("Compare")
        picks = self.compare_tab.a.value if a is None else a, self.compare_tab.b.value if b is None else b
        return self.compare_tab.show(*picks)

    def export(self, folder: str | os.PathLike | None = None) -> Path:
        """Save the whole session (FLAC files + manifest.jsonl) in `folder`; return the manifest's path.

        `folder` defaults to the Export tab's. Raises `ValueError` when there is no clip yet, and
        `OSError` or `FlexAudioError` when writing fails (each also shown in the tab).
        """
        self.show_tab("Export")
        return self.export_tab.export(folder)

    # ----- the worker slot (the verbs that make takes live in `verbs`) -----------------------
    @property
    def job(self) -> Job | None:
        """The running (or last) generation."""
        return self.verbs.job

    def cancel(self) -> None:
        """Abandon the running generation's result (the endpoint may still finish it)."""
        self.verbs.cancel()

    def wait(self, timeout: float | None = 600.0) -> bool:
        """Wait for the running generation, sweep and endpoint check; False if one is still running."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for job in (self.probe_job, self.verbs.job, self.sweep_tab.job):
            if job is not None and not job.cancelled:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                if not job.wait(left):
                    return False
        return True

    # ----- the controls and the session -----------------------------------------------------
    def request(self) -> GenerationRequest:
        """The request the controls describe (a random seed is drawn when "random" is ticked)."""
        return self.controls.request()

    def use_seed(self, seed: int | None) -> None:
        """Put `seed` in the seed box and turn "random" off (the "Reuse last seed" button)."""
        self.controls.use_seed(seed)

    def show_tab(self, title: str) -> None:
        """Bring a tab to the front by its title (one of `TAB_TITLES`, e.g. ``"Sweep"``)."""
        if title not in TAB_TITLES:
            raise ValueError(f"no tab {title!r}; the tabs are {', '.join(TAB_TITLES)}")
        self.tabs.selected_index = TAB_TITLES.index(title)

    def _last_seed(self) -> int | None:
        takes = self.session.takes
        return takes[-1].seed if takes else None

    def took(self, takes: list[Take], select: int | None = None) -> None:
        """New takes: list them in History and Compare, and say so if one came from an offline model."""
        self.history_tab.refresh(select)
        self.compare_tab.refresh()
        self.controls.reuse_seed.disabled = not len(self.session)
        if any(take.offline for take in takes):
            self.offline_banner.show()

    # ----- the endpoint --------------------------------------------------------------------
    def _show_model(self, facts: dict[str, Any]) -> None:
        self.model_facts = facts
        reported = facts.get("max_audio_seconds")
        if isinstance(reported, int | float) and reported >= MIN_SECONDS:
            self.controls.limit_duration(reported)
        if facts.get("offline"):
            self.offline_banner.show()

    # ----- display and closing -------------------------------------------------------------
    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def close(self) -> None:
        """Abandon running work, close the widgets and remove the takes' temporary folder."""
        for job in (self.verbs.job, self.sweep_tab.job):
            if job is not None:
                job.cancel()
        self.widget.close()
        self.session.close()
