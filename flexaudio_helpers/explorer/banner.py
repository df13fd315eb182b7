"""The explorer's offline banner: hidden until the endpoint or a clip says the model is offline."""

from __future__ import annotations

import html

import ipywidgets as widgets

from ..protocol import OFFLINE_NOTICE
from .render import box

TEXT = (
    f"<b>{html.escape(OFFLINE_NOTICE.capitalize())}.</b> This endpoint runs the real Stable Audio pipeline "
    "with random weights: the controls, timings and plots are real; for real audio, deploy on FlexAI or "
    "use a GPU machine with the Hugging Face weights."
)


class OfflineBanner:
    """The yellow "noise, not music" banner. `widget` is hidden until `show()`."""

    def __init__(self) -> None:
        self.widget = widgets.HTML(layout=widgets.Layout(display="none"))
        self.widget.add_class("flexaudio-offline-banner")

    def show(self) -> None:
        if self.widget.layout.display == "none":
            self.widget.value = box(TEXT, "#fff3cd", "#664d03")
            self.widget.layout.display = None
