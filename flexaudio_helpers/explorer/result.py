"""The explorer's Result tab: the newest clip's player, its waveform over its spectrogram, and its details."""

from __future__ import annotations

import ipywidgets as widgets

from .session import Take


class ResultView:
    """The Result tab. `widget` is the page; `show` puts a take in it."""

    def __init__(self) -> None:
        self.player = widgets.HTML()
        self.player.add_class("flexaudio-player")
        self.plot = widgets.Image(format="png", layout=widgets.Layout(max_width="900px"))
        self.plot.add_class("flexaudio-spectrogram")
        self.details = widgets.HTML()
        self.widget = widgets.VBox([self.player, self.plot, self.details])

    def show(self, take: Take, png: bytes) -> None:
        """Show `take`: its player, its plot (`png`) and its parameters, seed and timings."""
        self.player.value = take.clip._repr_html_()
        self.plot.value = png
        self.details.value = take.details_html()
