"""The explorer's History tab: every clip of the session, to replay, re-plot, save or load back, and
to make more from: Vary (new seeds, shown side by side), "Start from this take" (audio-to-audio), and
past the 47.55 s window: Extend, Loop and Repaint (`longer`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from ..params import DEFAULT_INIT_NOISE_LEVEL, MAX_VARIATIONS
from .render import error_html, note_html, show_in
from .session import DEFAULT_VARIATIONS, NOISE_LEVELS, Session, Take


class HistoryTab:
    """The History tab. `widget` is the page; `refresh` lists the session's takes.

    `png_of(take)` gives a take's plot, `on_load(take)` puts a take into the controls, and saved
    files go to `folder`. `on_vary(take)` and `on_start_from(take)` start Vary and "Start from this
    take", which read `count` and `level` here; `show_variations` shows what Vary made.
    `on_edit(take, verb, prompt=..., **arguments)` starts Extend (``to``), Loop (``bars``, ``bpm``)
    or Repaint (``start``, ``end``) with the values of the widgets beside their buttons.
    """

    def __init__(
        self,
        session: Session,
        *,
        folder: Path,
        png_of: Callable[[Take], bytes],
        on_load: Callable[[Take], None],
        on_vary: Callable[[Take], object],
        on_start_from: Callable[[Take], object],
        on_edit: Callable[..., object],
    ) -> None:
        self.session = session
        self.folder = folder
        self.png_of = png_of
        self.on_load = on_load
        self.clips = widgets.Select(options=[], rows=6, layout=widgets.Layout(width="95%"))
        self.clips.add_class("flexaudio-history")
        actions = {
            "Play": self.play,
            "Plot": self.plot,
            "Save WAV": lambda take: self.save(take, "wav"),
            "Save FLAC": lambda take: self.save(take, "flac"),
            "Load into controls": self.load,
            "Vary": on_vary,
            "Start from this take": on_start_from,
            "Extend": lambda take: on_edit(take, "extend", prompt=self.new_prompt(), to=self.extend_to.value),
            "Loop": lambda take: on_edit(
                take, "loop", prompt=self.new_prompt(), bars=self.bars.value, bpm=self.bpm.value or None
            ),
            "Repaint": lambda take: on_edit(
                take,
                "repaint",
                prompt=self.new_prompt(),
                start=self.section.value[0],
                end=self.section.value[1],
            ),
        }
        self.buttons: dict[str, widgets.Button] = {}
        for label, action in actions.items():
            button = widgets.Button(description=label, disabled=True, layout=widgets.Layout(width="auto"))
            button.on_click(lambda _, action=action: self._on_button(action))
            self.buttons[label] = button
        self.clips.observe(self._on_selection, names="value")
        style = {"description_width": "7em"}
        self.count = widgets.IntSlider(
            value=DEFAULT_VARIATIONS, min=1, max=MAX_VARIATIONS, description="Variations", style=style,
            tooltip="takes of the same request with new seeds, made in one call",
        )  # fmt: skip
        # A few stops on a log scale: what matters is the level's order of magnitude.
        self.count.add_class("flexaudio-variations")
        self.level = widgets.SelectionSlider(
            options=[(f"{level:g}", level) for level in NOISE_LEVELS], value=DEFAULT_INIT_NOISE_LEVEL,
            description="Noise level", style=style,
            tooltip="where denoising starts from the take's audio: low keeps it, high buries it",
        )  # fmt: skip
        self.level.add_class("flexaudio-noise-level")
        # Past the window (`longer`): the piece's length, the loop's bars and tempo, the section again.
        fit, narrow = {"description_width": "initial"}, widgets.Layout(width="11em")
        self.extend_to = widgets.BoundedFloatText(
            value=90.0, min=1.0, max=600.0, step=10.0, description="to (s)", style=fit,
            layout=narrow, tooltip="the piece's length; each new window keeps the last 10 s",
        )  # fmt: skip
        self.extend_to.add_class("flexaudio-extend-to")
        self.bars = widgets.BoundedIntText(
            value=2, min=1, max=64, description="bars", style=fit, layout=narrow
        )
        self.bars.add_class("flexaudio-bars")
        self.bpm = widgets.BoundedFloatText(
            value=0.0, min=0.0, max=300.0, description="bpm (0: measure)", style=fit,
            layout=widgets.Layout(width="14em"), tooltip="the loop's tempo; 0 measures it (analyze)",
        )  # fmt: skip
        self.bpm.add_class("flexaudio-bpm")
        self.section = widgets.FloatRangeSlider(
            value=(0.0, 1.0),
            min=0.0,
            max=1.0,
            step=0.1,
            description="section (s)",
            style=style,
            layout=widgets.Layout(width="40%"),
        )
        self.section.add_class("flexaudio-section")
        self.prompt = widgets.Text(
            placeholder="new prompt (empty: the take's own)", description="prompt", style=fit,
            layout=widgets.Layout(width="45%"),
        )  # fmt: skip
        self.message = widgets.HTML()
        self.view = widgets.VBox()
        self.view.add_class("flexaudio-history-view")
        *keep, vary, start_from, extend, loop, repaint = self.buttons.values()
        self.widget = widgets.VBox(
            [
                self.clips,
                widgets.HBox(keep),
                widgets.HBox([vary, self.count, start_from, self.level]),
                widgets.HBox([extend, self.extend_to, loop, self.bars, self.bpm]),
                widgets.HBox([repaint, self.section, self.prompt]),
                self.message,
                self.view,
            ]
        )

    def refresh(self, select: int | None = None) -> None:
        """List every take (tempo, loudness and brightness included); select take `select`."""
        self.clips.options = [(take.label(), take.number) for take in self.session.takes]
        if select is not None:
            self.clips.value = select

    def play(self, take: Take) -> None:
        """Show the take's player and details under the list."""
        show_in(self.view, [widgets.HTML(take.clip._repr_html_()), widgets.HTML(take.details_html())])

    def plot(self, take: Take) -> None:
        """Show the take's waveform and spectrogram under the list."""
        show_in(self.view, [widgets.Image(value=self.png_of(take), format="png")])

    def save(self, take: Take, fmt: str) -> Path:
        """Save the take as WAV or FLAC in the explorer's folder (request and seed inside)."""
        path = self.session.save(take, self.folder, fmt)
        self.note(f"Saved clip #{take.number} as {path}")
        return path

    def load(self, take: Take) -> None:
        """Put the take's request, its seed included, into the controls (`on_load`); say so."""
        self.on_load(take)
        self.note(f"Clip #{take.number}'s parameters are in the controls.")

    def show_variations(self, source: Take, takes: list[Take], pngs: list[bytes]) -> None:
        """Show `takes`, varied from `source`, side by side: each one's player over its waveform."""
        columns = [
            widgets.VBox(
                [
                    widgets.HTML(f"<b>#{take.number} · seed {take.seed}</b>"),
                    widgets.HTML(take.clip._repr_html_()),
                    widgets.Image(value=png, format="png", layout=widgets.Layout(width="100%")),
                ],
                layout=widgets.Layout(width="24%", min_width="300px"),
            )
            for take, png in zip(takes, pngs, strict=True)
        ]
        self.note(f"{len(takes)} variations of clip #{source.number}: the same request, new seeds.")
        row = widgets.HBox(columns, layout=widgets.Layout(flex_flow="row wrap", width="100%"))
        show_in(self.view, [row])

    def new_prompt(self) -> str | None:
        """The prompt box's text for Extend, Loop and Repaint; None (the take's own) when empty."""
        return self.prompt.value.strip() or None

    def note(self, text: str) -> None:
        self.message.value = note_html(text)

    def _on_selection(self, change: dict[str, Any]) -> None:
        for button in self.buttons.values():
            button.disabled = change["new"] is None
        if change["new"] is not None:  # Repaint's range spans the selected take, its middle fifth picked
            duration = self.session.get(change["new"]).duration
            self.section.max = max(duration, self.section.min + self.section.step)
            self.section.value = (round(duration * 0.4, 1), round(duration * 0.6, 1))

    def _on_button(self, action: Callable[[Take], Any]) -> None:
        if self.clips.value is None:
            return
        self.message.value = ""
        try:
            action(self.session.get(self.clips.value))
        except Exception as exc:
            self.message.value = error_html(exc)
