"""The explorer's offline banner: hidden until the endpoint or a clip says the model is offline."""

from __future__ import annotations

import ipywidgets as widgets

from .render import offline_banner_html


class OfflineBanner:
    """The yellow "noise, not music" banner. `widget` is hidden until `show()`."""

    def __init__(self) -> None:
        self.widget = widgets.HTML(layout=widgets.Layout(display="none"))
        self.widget.add_class("flexaudio-offline-banner")

    def show(self) -> None:
        if self.widget.layout.display == "none":
            self.widget.value = offline_banner_html()
            self.widget.layout.display = None
