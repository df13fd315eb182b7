"""The explorer's verbs that make takes: Generate, Vary and "Start from this take".

They share one worker slot (`Verbs.job`): one generation at a time, one Cancel, one progress line.
Each verb is a pair: `make()`, run in a worker thread (the request and the plot, nothing touching a
widget), and `finish(job, made)`, run once it is done (add the takes to the session and show them).
`launch` runs such a pair; `from_take` is the pair for a verb that makes one take out of another
(Result shows it, Compare puts the source beside it), so a new verb on a take only builds its
request and its client call.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from ..audio import Clip
from ..errors import InvalidParameters
from ..params import RANDOM_SEED_LIMIT, GenerationRequest, check_count
from .render import clip_png, waveform_png
from .session import HELD_TAKES, NOISE_LEVELS, Job, LastUsed, Take, noise_level


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
            self.app.controls.tick(elapsed, self.last_seconds)

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
