"""The explorer's Sweep tab: one parameter over a few values, run with `generate_many`.

The clips come back as a grid of spectrograms on one colour scale, with loudness, brightness and
noisiness charted against the value under it; each clip also joins the session.
"""

from __future__ import annotations

import contextlib
import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from ..errors import FlexAudioError, InvalidParameters
from ..params import SWEEPABLE, GenerationRequest
from .render import error_html, figure_png, image_html, show_in
from .session import Job, Session, Take, sweep_requests

MAX_CONCURRENCY = 4


@dataclass(frozen=True, repr=False)
class SweepResult:
    """What one sweep made: (value, take) pairs, what failed, its time and its picture (PNG)."""

    number: int
    parameter: str
    takes: tuple[tuple[Any, Take], ...]
    problems: tuple[str, ...]
    seconds: float
    png: bytes | None

    @property
    def summary(self) -> str:
        """E.g. ``Sweep 1: 3 of 3 clips in 8.2 s.``"""
        total = len(self.takes) + len(self.problems)
        return f"Sweep {self.number}: {len(self.takes)} of {total} clips in {self.seconds:.1f} s."

    def take(self, value: Any) -> Take:
        """The take this sweep made with `value` (e.g. ``sweep.take(3)`` for guidance 3), for `compare`.

        Raises `ValueError` naming the values it made when `value` is not one of them (or failed).
        """
        for made, take in self.takes:
            if made == value:
                return take
        made = ", ".join(str(made) for made, _ in self.takes) or "none"
        raise ValueError(f"sweep {self.number} made no clip with {self.parameter}={value} (it made: {made})")

    def __repr__(self) -> str:
        return f"<SweepResult {self.summary}>"

    def _repr_html_(self) -> str:
        problems = "".join(error_html(FlexAudioError(problem)) for problem in self.problems)
        players = "".join(
            f"<div>{take.clip.player_html(f'#{take.number} {self.parameter}={value}')}</div>"
            for value, take in self.takes
        )
        picture = image_html(self.png) if self.png else ""
        return (
            f"<div><b>{html.escape(self.summary)}</b></div>{problems}"
            f'<div style="display:flex;flex-wrap:wrap;gap:1em">{players}</div>{picture}'
        )


class SweepTab:
    """The Sweep tab. `widget` is the page; `run` starts a sweep, `cancel` abandons it.

    A sweep sends `base_request()` (the controls' request) once per value through `client`, saves
    the clips in `folder`/sweep-NN, adds them to `session` and hands them to `on_takes`.
    """

    def __init__(
        self,
        client: Any,
        session: Session,
        *,
        folder: Path,
        base_request: Callable[[], GenerationRequest],
        on_takes: Callable[[list[Take]], None],
        concurrency: int = 2,
    ) -> None:
        self.client, self.session, self.folder = client, session, folder
        self.base_request, self.on_takes = base_request, on_takes
        self.job: Job | None = None
        self.runs = 0
        self.parameter = widgets.Dropdown(options=list(SWEEPABLE), value="guidance_scale", description="Vary")
        self.values = widgets.Text(
            value="3, 7, 12", description="Values", placeholder="2 to 8 values, e.g. 3, 7, 12"
        )
        self.concurrency = widgets.IntSlider(
            value=concurrency, min=1, max=MAX_CONCURRENCY, description="Parallel", continuous_update=False
        )
        self.button = widgets.Button(description="Run sweep", icon="th", button_style="primary")
        self.button.on_click(lambda _: self._on_button())
        self.cancel_button = widgets.Button(description="Cancel", icon="stop", disabled=True)
        self.cancel_button.on_click(lambda _: self.cancel())
        self.status = widgets.HTML(
            "Uses the controls above for everything else; each clip also goes into History."
        )
        self.view = widgets.VBox()
        self.widget = widgets.VBox(
            [
                widgets.HBox([self.parameter, self.values, self.concurrency]),
                widgets.HBox([self.button, self.cancel_button]),
                self.status,
                self.view,
            ]
        )

    @property
    def running(self) -> bool:
        return self.job is not None and self.job.running

    def run(
        self,
        parameter: str | None = None,
        values: str | Sequence[float] | None = None,
        concurrency: int | None = None,
    ) -> Job:
        """Start sweeping `parameter` over `values` (``"3, 7, 12"`` or ``[3, 7, 12]``); None: the tab's.

        Raises `InvalidParameters` (also shown in the tab) for a parameter, value or concurrency
        the tab does not allow, and `RuntimeError` while another sweep runs.
        """
        if self.running:
            raise RuntimeError("a sweep is already running: wait for it or cancel it first")
        parameter = self.parameter.value if parameter is None else parameter
        if values is None:
            text = self.values.value
        else:
            text = values if isinstance(values, str) else ", ".join(map(str, values))
        concurrency = self.concurrency.value if concurrency is None else concurrency
        try:
            if (
                isinstance(concurrency, bool)
                or not isinstance(concurrency, int)
                or not 1 <= concurrency <= MAX_CONCURRENCY
            ):
                allowed = f"an integer from 1 to {MAX_CONCURRENCY}"
                raise InvalidParameters(
                    f"concurrency={concurrency!r} is not allowed; allowed: {allowed}",
                    field="concurrency",
                    value=concurrency,
                    allowed=allowed,
                )
            requests = sweep_requests(self.base_request(), parameter, text)
        except InvalidParameters as exc:
            self.status.value = error_html(exc)
            raise
        self.parameter.value, self.values.value, self.concurrency.value = parameter, text, concurrency
        return self._start(parameter, requests, concurrency)

    def cancel(self) -> None:
        """Abandon the running sweep's results (clips already saved stay in its folder)."""
        if self.running:
            self.job.cancel()
            self.status.value = "Sweep cancelled; its results will be discarded."
            self._set_running(False)

    def _on_button(self) -> None:
        if self.running:
            return
        with contextlib.suppress(InvalidParameters):
            self.run()  # which shows what is wrong in the tab

    def _start(self, parameter: str, requests: list[GenerationRequest], concurrency: int) -> Job:
        self.runs += 1
        number = self.runs
        out_dir = self.folder / f"sweep-{number:02d}"
        self._set_running(True)
        show_in(self.view, ())
        self.status.value = f"Sweep {number}: {len(requests)} clips..."
        job = Job(
            lambda: self.client.generate_many(
                requests, concurrency=concurrency, progress=False, out_dir=out_dir
            ),
            on_result=lambda results: self._finished(job, number, parameter, results),
            on_error=self._failed,
            on_tick=lambda elapsed: self._tick(len(requests), out_dir, elapsed),
            tick_seconds=0.5,
        )
        self.job = job
        return job.start()

    def _tick(self, total: int, out_dir: Path, elapsed: float) -> None:
        # generate_many saves each clip as it arrives: the files are the progress.
        done = (
            sum(1 for path in out_dir.glob("*") if path.suffix in (".wav", ".flac"))
            if out_dir.exists()
            else 0
        )
        self.status.value = f"Sweep: {done}/{total} clips after {elapsed:.0f} s..."

    def _finished(self, job: Job, number: int, parameter: str, results: Sequence[Any]) -> SweepResult:
        from ..plots import plot_sweep  # imported on use: matplotlib loads slowly

        takes, problems = [], []
        for result in results:
            value = result.request.parameters.model_dump()[parameter]
            if result.ok:
                takes.append((value, self.session.add(result.clip, f"sweep {number}: {parameter}={value}")))
            else:
                problems.append(f"{parameter}={value}: {result.error}")
        self.on_takes([take for _, take in takes])
        png = None
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
            png = figure_png(figure)
            players = [
                widgets.VBox(
                    [widgets.HTML(f"<b>{parameter}={value}</b>"), widgets.HTML(take.clip._repr_html_())]
                )
                for value, take in takes
            ]
            children = [widgets.HBox(players, layout=widgets.Layout(flex_flow="row wrap"))]
            children.append(widgets.Image(value=png, format="png"))
        result = SweepResult(number, parameter, tuple(takes), tuple(problems), job.elapsed, png)
        self.status.value = html.escape(result.summary) + "".join(
            error_html(FlexAudioError(problem)) for problem in problems
        )
        show_in(self.view, children)
        self._set_running(False)
        return result

    def _failed(self, exc: BaseException) -> None:
        self.status.value = error_html(exc)
        self._set_running(False)

    def _set_running(self, running: bool) -> None:
        self.button.disabled, self.cancel_button.disabled = running, not running
