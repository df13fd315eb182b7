"""The explorer's controls: prompt, sliders, seed, the Generate and Cancel buttons and the status line.

`Controls` turns what they hold into a valid `GenerationRequest`, sets them from code or from a
take, and shows a generation's progress. Their bounds come from `params`, so they cannot make an
invalid request.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets

from ..errors import InvalidParameters
from ..params import ALLOWED, MAX_AUDIO_SECONDS, MAX_GUIDANCE, MAX_STEPS, RANDOM_SEED_LIMIT, GenerationRequest
from .render import error_html, note_html
from .session import Take

MIN_SECONDS = 0.5
# Stable Audio Open's own limit is 47.55 s; the slider stops at a round 47.5.
MAX_SLIDER_SECONDS = min(47.5, MAX_AUDIO_SECONDS)
# The browser holds widget numbers as JavaScript doubles: integers above 2**53 - 1 lose digits.
MAX_WIDGET_SEED = 2**53 - 1
DEFAULTS = {"audio_end_in_s": 10.0, "num_inference_steps": 100, "guidance_scale": 7.0}
# The parameters the controls hold (by their wire names), for `Controls.apply`.
SETTABLE = ("audio_end_in_s", "num_inference_steps", "guidance_scale", "negative_prompt", "seed")


class Controls:
    """The controls. `widget` is the panel; `on_generate`, `on_cancel` and `last_seed` connect its buttons."""

    def __init__(
        self,
        *,
        on_generate: Callable[[], Any],
        on_cancel: Callable[[], Any],
        last_seed: Callable[[], int | None],
    ) -> None:
        self.max_seconds = MAX_SLIDER_SECONDS
        slider = {"continuous_update": False, "style": {"description_width": "9em"}}
        wide = {**slider, "layout": widgets.Layout(width="95%")}
        self.prompt = widgets.Textarea(
            value="Relaxing piano music with soft ambient sounds, calm and peaceful",
            description="Prompt",
            placeholder="What should it sound like?",
            rows=2,
            **wide,
        )
        self.negative_prompt = widgets.Textarea(
            description="Negative prompt", placeholder="e.g. distorted, low quality", rows=1, **wide
        )
        self.duration = widgets.FloatSlider(
            value=DEFAULTS["audio_end_in_s"], min=MIN_SECONDS, max=self.max_seconds, step=0.5,
            description="Duration (s)", tooltip=ALLOWED["audio_end_in_s"], **wide,
        )  # fmt: skip
        self.steps = widgets.IntSlider(
            value=DEFAULTS["num_inference_steps"], min=1, max=MAX_STEPS,
            description="Steps", tooltip=ALLOWED["num_inference_steps"], **wide,
        )  # fmt: skip
        self.guidance = widgets.FloatSlider(
            value=DEFAULTS["guidance_scale"], min=0.0, max=MAX_GUIDANCE, step=0.5,
            description="Guidance", tooltip=ALLOWED["guidance_scale"], **wide,
        )  # fmt: skip
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

        self.random_seed.observe(lambda change: setattr(self.seed, "disabled", change["new"]), names="value")
        self.reuse_seed.on_click(lambda _: self.use_seed(last_seed()))
        self.generate_button.on_click(lambda _: on_generate())
        self.cancel_button.on_click(lambda _: on_cancel())
        self.widget = widgets.VBox(
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

    # ----- what the controls hold ----------------------------------------------------------
    def request(self) -> GenerationRequest:
        """The request the controls describe (a random seed is drawn when "random" is ticked)."""
        seed = secrets.randbelow(RANDOM_SEED_LIMIT) if self.random_seed.value else self.seed.value
        return GenerationRequest.build(
            self.prompt.value,
            audio_end_in_s=float(self.duration.value),
            num_inference_steps=int(self.steps.value),
            guidance_scale=float(self.guidance.value),
            negative_prompt=self.negative_prompt.value.strip() or None,
            seed=int(seed),
        )

    def apply(self, prompt: str | None = None, **parameters: Any) -> None:
        """Set the controls from code, as a person would: `prompt` and wire-named `parameters`.

        Those left out keep their value; ``seed=None`` ticks "random". Everything is checked before
        anything is set: `InvalidParameters` names the field and what the control allows (the
        sliders would silently clamp a value out of their range).
        """
        unknown = sorted(set(parameters) - set(SETTABLE))
        if unknown:
            raise InvalidParameters(
                f"the explorer has no control for {', '.join(map(repr, unknown))}; "
                f"allowed names: {', '.join(SETTABLE)}",
                field=f"parameters.{unknown[0]}",
                value=parameters[unknown[0]],
                allowed=", ".join(SETTABLE),
            )
        checked = {name: value for name, value in parameters.items() if value is not None}
        limits = {
            "audio_end_in_s": (self.duration, f"seconds, from {MIN_SECONDS} to {self.max_seconds:g}"),
            "seed": (self.seed, f"an integer from 0 to {MAX_WIDGET_SEED} (2**53 - 1, exact in a browser)"),
        }
        for name, (control, allowed) in limits.items():  # narrower than the shared model's ranges
            value = checked.get(name)
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if number and not control.min <= value <= control.max:
                raise InvalidParameters(
                    f"parameters.{name}={value!r} is not allowed; allowed: {allowed}",
                    field=f"parameters.{name}",
                    value=value,
                    allowed=allowed,
                )
        if prompt is not None or checked:  # then the shared model: types, and every other range
            GenerationRequest.build(prompt if prompt is not None else self.prompt.value, **checked)
        if prompt is not None:
            self.prompt.value = prompt
        if "negative_prompt" in parameters:
            self.negative_prompt.value = parameters["negative_prompt"] or ""
        for name, control in (
            ("audio_end_in_s", self.duration),
            ("num_inference_steps", self.steps),
            ("guidance_scale", self.guidance),
        ):
            if name in checked:
                control.value = checked[name]
        if "seed" in parameters:
            if parameters["seed"] is None:
                self.random_seed.value = True
            else:
                self.use_seed(parameters["seed"])

    def use_seed(self, seed: int | None) -> None:
        """Put `seed` in the seed box and turn "random" off (the "Reuse last seed" button)."""
        if seed is None:
            return
        if seed > MAX_WIDGET_SEED:
            self.message.value = note_html(
                f"seed {seed} is above 2**53 - 1, which a browser cannot hold exactly"
            )
            return
        self.random_seed.value = False
        self.seed.value = int(seed)

    def load(self, take: Take) -> None:
        """Set every control from a take's request (its seed included)."""
        values = {**DEFAULTS, **take.parameters()}
        self.prompt.value = take.prompt or ""
        self.negative_prompt.value = values.get("negative_prompt") or ""
        self.duration.value = min(float(values["audio_end_in_s"]), self.max_seconds)
        self.steps.value = int(values["num_inference_steps"])
        self.guidance.value = float(values["guidance_scale"])
        self.use_seed(take.seed)

    def limit_duration(self, seconds: float) -> None:
        """Lower the duration slider's maximum to what the endpoint reports (never above 47.5 s)."""
        self.max_seconds = min(MAX_SLIDER_SECONDS, float(seconds))
        self.duration.max = self.max_seconds  # ipywidgets clamps the value too

    # ----- a generation's progress ---------------------------------------------------------
    def refuse(self, exc: BaseException) -> None:
        """Show why a request cannot be sent (nothing starts)."""
        self.message.value = error_html(exc)

    def started(self) -> None:
        self.message.value = ""
        self._set_running(True)
        self.status.value = "Generating..."
        self.progress.value = 0.0

    def tick(
        self, elapsed: float, expected: float | None, windows: tuple[int, int, int, int] | None = None
    ) -> None:
        """Elapsed time, and a progress bar: per window for Extend, Loop and Repaint (`windows` is
        (window, windows, step, steps)), else measured against the last generation's time."""
        if windows:
            window, count, step, steps = windows
            self.progress.value = min(1.0, (window + step / steps) / count)
            self.status.value = f"Window {window + 1} of {count}, step {step} of {steps}... {elapsed:.1f} s"
        elif expected:
            self.progress.value = min(0.95, elapsed / expected)
            self.status.value = f"Generating... {elapsed:.1f} s (the last one took {expected:.1f} s)"
        else:
            self.progress.value = (elapsed % 10) / 10  # no estimate yet: a moving bar
            self.status.value = f"Generating... {elapsed:.1f} s"

    def finished(self, takes: list[Take], elapsed: float) -> None:
        """E.g. ``Clip #3 in 2.1 s (seed 42).`` or ``Clips #4 to #7 in 6.0 s (seeds 10 to 13).``"""
        self.progress.value = 1.0
        first, last = takes[0], takes[-1]
        if first is last:
            self.status.value = f"Clip #{first.number} in {elapsed:.1f} s (seed {first.seed})."
        else:
            self.status.value = (
                f"Clips #{first.number} to #{last.number} in {elapsed:.1f} s "
                f"(seeds {first.seed} to {last.seed})."
            )
        self._set_running(False)

    def failed(self, exc: BaseException, elapsed: float) -> None:
        self.message.value = error_html(exc)
        self.status.value = f"Failed after {elapsed:.1f} s."
        self.progress.value = 0.0
        self._set_running(False)

    def cancelled(self, elapsed: float) -> None:
        self.status.value = f"Cancelled after {elapsed:.1f} s; its result will be discarded."
        self.progress.value = 0.0
        self._set_running(False)

    def _set_running(self, running: bool) -> None:
        self.generate_button.disabled = running
        self.cancel_button.disabled = not running
