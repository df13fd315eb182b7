"""The explorer's History tab: every clip of the session, to replay, re-plot, save or load back."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from .render import error_html, note_html, show_in
from .session import Session, Take


class HistoryTab:
    """The History tab. `widget` is the page; `refresh` lists the session's takes.

    `png_of(take)` gives a take's plot, `on_load(take)` puts a take into the controls, and saved
    files go to `folder`.
    """

    def __init__(
        self,
        session: Session,
        *,
        folder: Path,
        png_of: Callable[[Take], bytes],
        on_load: Callable[[Take], None],
    ) -> None:
        self.session = session
        self.folder = folder
        self.png_of = png_of
        self.clips = widgets.Select(options=[], rows=6, layout=widgets.Layout(width="95%"))
        self.clips.add_class("flexaudio-history")
        actions = {
            "Play": self.play,
            "Plot": self.plot,
            "Save WAV": lambda take: self.save(take, "wav"),
            "Save FLAC": lambda take: self.save(take, "flac"),
            "Load into controls": on_load,
        }
        self.buttons: dict[str, widgets.Button] = {}
        for label, action in actions.items():
            button = widgets.Button(description=label, disabled=True)
            button.on_click(lambda _, action=action: self._on_button(action))
            self.buttons[label] = button
        self.clips.observe(self._on_selection, names="value")
        self.message = widgets.HTML()
        self.view = widgets.VBox()
        self.widget = widgets.VBox(
            [self.clips, widgets.HBox(list(self.buttons.values())), self.message, self.view]
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

    def note(self, text: str) -> None:
        self.message.value = note_html(text)

    def _on_selection(self, change: dict[str, Any]) -> None:
        for button in self.buttons.values():
            button.disabled = change["new"] is None

    def _on_button(self, action: Callable[[Take], Any]) -> None:
        if self.clips.value is None:
            return
        self.message.value = ""
        try:
            action(self.session.get(self.clips.value))
        except Exception as exc:
            self.message.value = error_html(exc)
