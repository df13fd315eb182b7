"""The explorer's verbs that make takes: Generate, Vary, "Start from this take", and Extend, Loop and
Repaint (past the 47.55 s window, `longer`).

They share one worker slot (`Verbs.job`): one generation at a time, one Cancel, one progress line.
Each verb is a pair: `make()`, run in a worker thread (the request and the plot, nothing touching a
widget), and `finish(job, made)`, run once it is done (add the takes to the session and show them).
`launch` runs such a pair; `from_take` is the pair for a verb that makes one take out of another
(Result shows it, Compare puts the source beside it), so a new verb on a take only builds its
request and its client call.
"""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Callable
from concurrent.futures import CancelledError
from pathlib import Path
from typing import Any

from ..audio import Clip
from ..errors import InvalidParameters
from ..params import RANDOM_SEED_LIMIT, GenerationRequest, check_count
from .render import clip_png, waveform_png
from .session import HELD_TAKES, NOISE_LEVELS, Job, LastUsed, Take, noise_level

# What Extend, Loop and Repaint keep of a take's request: every window is the whole window.
WINDOW_PARAMETERS = ("num_inference_steps", "guidance_scale", "negative_prompt")


class Verbs:
    """What the Generate, Vary and "Start from this take" buttons start, for `explorer`'s components.

    `explorer` is the `Explorer` (read on use: its ``client``, ``session``, ``controls``,
    ``result_view``, ``history_tab``, ``compare_tab``, ``took`` and ``show_tab``). `job` is the
    running (or last) generation; the plots of the newest takes are kept by number.
    """

    def __init__(self, explorer: Any) -> None:
        self.app = explorer
        self.job: Job | None = None
        self.last_seconds: float | None = None  # how long the last generation took
        self.pngs = LastUsed(HELD_TAKES)
        self.windows: tuple[int, int, int, int] | None = None  # an edit's (window, windows, step, steps)

    def start_generation(self) -> Job | None:
        """Start one generation and return at once (the Generate button); None if it cannot start."""
        if self.running:
            return None
        try:
            request = self.app.controls.request()
        except InvalidParameters as exc:
            self.app.controls.refuse(exc)
            return None
        return self.generation(request)

    def generation(self, request: GenerationRequest) -> Job:
        """Start making one clip of `request`; Result shows it."""

        def make() -> tuple[Clip, bytes]:
            clip = self.app.client.generate(request)  # in the worker thread, and the plot too
            return clip, clip_png(clip)

        def finish(job: Job, made: tuple[Clip, bytes]) -> Take:
            clip, png = made
            take = self.app.session.add(clip, "generate", click_to_audio=job.elapsed)
            self.pngs.put(take.number, png)
            self.app.result_view.show(take, png)
            self.done(job, [take], tab="Result")
            return take

        return self.launch(make, finish)

    def start_variations(self, take: int | Take, count: int | None = None) -> Job:
        """Start Vary on `take` and return its job at once (the Vary button; None: the tab's count)."""
        app = self.app
        source = self.source(take)
        count = check_count(app.history_tab.count.value if count is None else count)
        self.check_idle()
        app.history_tab.count.value = count
        request = source.request.with_parameters(seed=secrets.randbelow(RANDOM_SEED_LIMIT))
        level = source.init_noise_level
        lineage = {"parent": source.number, "source": source.source, "init_noise_level": level}

        def make() -> list[tuple[Clip, bytes]]:  # in the worker thread, the plots too
            started_from = {}  # a take made from another's audio is varied from that audio
            if source.source is not None:
                started_from = {"init_audio": app.session.get(source.source).clip, "init_noise_level": level}
            clips = app.client.variations(request, count, **started_from)
            return [(clip, waveform_png(clip)) for clip in clips]

        def finish(job: Job, made: list[tuple[Clip, bytes]]) -> list[Take]:
            takes = [app.session.add(clip, f"varied from #{source.number}", **lineage) for clip, _ in made]
            app.history_tab.show_variations(source, takes, [png for _, png in made])
            self.done(job, takes, tab="History")
            return takes

        return self.launch(make, finish)

    def start_from_take(
        self,
        take: int | Take,
        init_noise_level: float | None = None,
        *,
        prompt: str | None = None,
        **parameters: Any,
    ) -> Job:
        """Start audio-to-audio from `take`; return its job at once ("Start from this take"; None:
        the slider's level)."""
        app = self.app
        source = self.source(take)
        level = noise_level(app.history_tab.level.value if init_noise_level is None else init_noise_level)
        changes = {**source.parameters(), "seed": secrets.randbelow(RANDOM_SEED_LIMIT), **parameters}
        request = GenerationRequest.build(source.prompt if prompt is None else prompt, **changes)
        self.check_idle()
        if level in NOISE_LEVELS:  # the slider's stops
            app.history_tab.level.value = level
        return self.from_take(
            source,
            lambda: app.client.generate(request, init_audio=source.clip, init_noise_level=level),
            f"from #{source.number} at level {level:g}",
            source=source.number,
            init_noise_level=level,
        )

    def start_edit(self, take: int | Take, verb: str, prompt: str | None = None, **arguments: Any) -> Job:
        """Start Extend, Loop or Repaint on `take`; return its job at once (History's buttons).

        `verb` is ``"extend"`` (``to`` seconds), ``"loop"`` (``bars``, ``bpm``: None measures it) or
        ``"repaint"`` (``start``, ``end`` seconds), run by `longer` through the explorer's client;
        `prompt` replaces the take's own. The take's steps, guidance and negative prompt carry over,
        with a new seed. Progress is per window; Cancel stops the work at the next step (through an
        endpoint, the next window), and nothing is kept. Bad values fail the job with the
        `InvalidParameters` that names them.
        """
        from .. import longer

        app = self.app
        source = self.source(take)
        kept = {name: value for name, value in source.parameters().items() if name in WINDOW_PARAMETERS}
        parameters = {**kept, "seed": secrets.randbelow(RANDOM_SEED_LIMIT)}
        self.check_idle()
        jobs: list[Job] = []

        def progress(window: int, windows: int, step: int, steps: int) -> None:
            if jobs and jobs[0].cancelled:
                raise CancelledError("stopped")  # `longer` then writes nothing
            self.windows = (window, windows, step, steps)

        def make_clip() -> Clip:
            edit = {"progress": progress, **arguments, **parameters}
            if verb != "extend":
                return {"loop": longer.loop, "repaint": longer.repaint}[verb](
                    app.client, source.clip, prompt=prompt, **edit
                )
            with tempfile.TemporaryDirectory(dir=app.session.folder) as folder:
                prompts = prompt or source.prompt
                piece = longer.extend(
                    app.client, source.clip, prompts=prompts, out=Path(folder) / "x.flac", **edit
                )
                return Clip.load(piece)

        number, get = source.number, arguments.get
        origin = {
            "extend": f"#{number} extended to {get('to')} s",
            "loop": f"loop of #{number}, {get('bars')} bars",
            "repaint": f"#{number} repainted from {get('start')} to {get('end')} s",
        }.get(verb, verb)
        jobs.append(self.from_take(source, make_clip, origin))
        return jobs[0]

    def from_take(self, parent: Take, make_clip: Callable[[], Clip], origin: str, **lineage: Any) -> Job:
        """Run `make_clip()` in the worker thread; the take it makes (its `origin`, `parent` and
        `lineage`) shows in Result, then in Compare against `parent`. Check `check_idle` first."""

        def make() -> tuple[Clip, bytes]:
            clip = make_clip()
            return clip, clip_png(clip)

        def finish(job: Job, made: tuple[Clip, bytes]) -> Take:
            clip, png = made
            result = self.app.session.add(clip, origin, parent=parent.number, **lineage)
            self.pngs.put(result.number, png)
            self.app.result_view.show(result, png)
            self.done(job, [result], tab="Compare")
            self.app.compare_tab.show(parent, result)  # parent against result, with their similarity
            return result

        return self.launch(make, finish)

    def source(self, take: int | Take) -> Take:
        """The session's take `take` to make more from; `ValueError` if it is none or has no request."""
        found = self.app.session.find(take)
        if found.request is None:
            raise ValueError(f"clip #{found.number} carries no request to make more from")
        return found

    @property
    def running(self) -> bool:
        return self.job is not None and self.job.running

    def check_idle(self) -> None:
        if self.running:
            raise RuntimeError("a generation is already running: wait for it or cancel it first")

    def launch(self, make: Callable[[], Any], finish: Callable[[Job, Any], Any]) -> Job:
        """Run `make()` in a worker thread, then `finish(job, what_it_made)`; one such job at a time."""
        self.windows = None  # an edit's progress sets it
        controls = self.app.controls
        controls.started()
        job = Job(
            make,
            on_result=lambda made: finish(job, made),
            on_error=lambda exc: controls.failed(exc, job.elapsed),
            on_tick=lambda elapsed: self._tick(job, elapsed),
        )
        self.job = job
        return job.start()

    def _tick(self, job: Job, elapsed: float) -> None:
        if job is self.job:
            self.app.controls.tick(elapsed, self.last_seconds, self.windows)

    def done(self, job: Job, takes: list[Take], tab: str) -> None:
        """New takes from `job`: list them, say how long it took, and bring `tab` to the front."""
        self.last_seconds = job.elapsed
        self.app.took(takes, select=takes[-1].number)
        self.app.show_tab(tab)
        self.app.controls.finished(takes, job.elapsed)

    def cancel(self) -> None:
        """Abandon the running generation's result (the endpoint may still finish it)."""
        job = self.job
        if job is None or not job.running:
            return
        job.cancel()
        self.app.controls.cancelled(job.elapsed)

    def png(self, take: Take) -> bytes:
        """`take`'s plot: kept from when it was made, else drawn again."""
        return self.pngs.get(take.number, lambda: clip_png(take.clip))
