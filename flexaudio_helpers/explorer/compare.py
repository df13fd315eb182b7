"""The explorer's Compare tab: two clips side by side, their spectrograms on one colour scale, and how
alike they sound as one number (`analysis.similarity`)."""

from __future__ import annotations

import html
from dataclasses import dataclass

import ipywidgets as widgets

from ..analysis import SIMILARITY_NOTE, Similarity, similarity
from ..errors import AnalysisError
from .render import figure_png, image_html, note_html, show_in
from .session import Session, Take


@dataclass(frozen=True, repr=False)
class Comparison:
    """Clips `a` and `b`, their comparison figure (`png`) and `similarity` (None when it cannot be
    measured, e.g. a silent clip); in a notebook, shown as the tab shows them."""

    a: Take
    b: Take
    png: bytes
    similarity: Similarity | None = None

    def similarity_html(self) -> str:
        """E.g. "Similarity of A and B: 0.87 (1 = the same sound, 0 = unrelated)", with the offline note."""
        if self.similarity is None:
            return "<div class='flexaudio-similarity'>Similarity of A and B: n/a (a silent clip)</div>"
        scale = "1 = the same sound, 0 = unrelated: how alike their log-mel spectrograms change"
        offline = self.similarity.offline
        note = f"<br><span style='color:firebrick'>{html.escape(SIMILARITY_NOTE)}</span>" if offline else ""
        return (
            f"<div class='flexaudio-similarity'><b>Similarity of A and B: {self.similarity:.2f}</b> "
            f"({scale}){note}</div>"
        )

    def __repr__(self) -> str:
        return f"<Comparison A: clip #{self.a.number}, B: clip #{self.b.number}>"

    def _repr_html_(self) -> str:
        columns = "".join(
            f'<div style="flex:1">{take.clip.player_html(f"{side}: clip #{take.number}")}'
            f"{take.details_html()}</div>"
            for side, take in (("A", self.a), ("B", self.b))
        )
        players = f'<div style="display:flex;gap:1em">{columns}</div>'
        return players + self.similarity_html() + image_html(self.png)


class CompareTab:
    """The Compare tab. `widget` is the page; `show(a, b)` compares two takes of `session`."""

    def __init__(self, session: Session) -> None:
        self.session = session
        half = widgets.Layout(width="45%")
        self.a = widgets.Dropdown(options=[], description="A", layout=half)
        self.b = widgets.Dropdown(options=[], description="B", layout=half)
        self.button = widgets.Button(description="Compare A/B", icon="columns")
        self.button.on_click(lambda _: self._on_button())
        self.message = widgets.HTML()
        self.view = widgets.VBox()
        self.view.add_class("flexaudio-compare")
        # The view shows what A and B say: another pick clears an older comparison.
        for dropdown in (self.a, self.b):
            dropdown.observe(lambda _: show_in(self.view, ()), names="value")
        self.widget = widgets.VBox([widgets.HBox([self.a, self.b]), self.button, self.message, self.view])

    def refresh(self) -> None:
        """Offer every take; pick the newest two (any two can be picked)."""
        options = [(take.label(), take.number) for take in self.session.takes]
        self.a.options = self.b.options = options
        if options:
            self.a.value = options[-2 if len(options) > 1 else -1][1]
            self.b.value = options[-1][1]

    def show(self, a: int | Take, b: int | Take) -> Comparison:
        """Show takes `a` and `b` (numbers, as in History, or takes) side by side; return the comparison.

        Raises `ValueError` (also shown in the tab) when either is not a clip of the session.
        """
        from ..plots import plot_comparison  # imported on use: matplotlib loads slowly

        try:
            takes = [self.session.find(a, "A: "), self.session.find(b, "B: ")]
        except ValueError as exc:
            self.message.value = note_html(str(exc))
            raise
        self.a.value, self.b.value = takes[0].number, takes[1].number
        self.message.value = ""
        figure = plot_comparison(
            [take.clip for take in takes],
            titles=[
                f"{side}: #{t.number} {t.short_parameters()}" for side, t in zip("AB", takes, strict=True)
            ],
            columns=2,  # A beside B, under their players
        )
        try:
            score = similarity(takes[0].clip, takes[1].clip)
        except AnalysisError:  # a silent clip: no spectrogram to correlate
            score = None
        comparison = Comparison(*takes, png=figure_png(figure), similarity=score)
        columns = [
            widgets.VBox(
                [
                    widgets.HTML(f"<b>{side}: clip #{take.number}</b>"),
                    widgets.HTML(take.clip._repr_html_()),
                    widgets.HTML(take.details_html()),
                ],
                layout=widgets.Layout(width="50%"),
            )
            for side, take in zip("AB", takes, strict=True)
        ]
        show_in(
            self.view,
            [
                widgets.HBox(columns),
                widgets.HTML(comparison.similarity_html()),
                widgets.Image(value=comparison.png, format="png"),
            ],
        )
        return comparison

    def _on_button(self) -> None:
        if self.a.value is None or self.b.value is None:
            self.message.value = note_html("Make at least one clip first.")
            return
        self.show(self.a.value, self.b.value)
