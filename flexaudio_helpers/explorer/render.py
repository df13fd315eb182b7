"""The explorer's HTML and pictures: error and note boxes, and figures as PNG.

Plain functions returning strings and bytes, so every component (and the results the verbs return
to a notebook) shows messages and plots the same way; and `show_in`, which every view uses to
change what it shows without keeping what it showed before.
"""

from __future__ import annotations

import base64
import html
import io
from typing import Any

from ..audio import Clip
from ..errors import FlexAudioError, InvalidParameters

PLOT_DPI = 90
# The controls' labels for the wire fields, so that errors name what the person sees.
CONTROL_LABELS = {
    "inputs": "Prompt",
    "parameters.negative_prompt": "Negative prompt",
    "parameters.audio_end_in_s": "Duration (s)",
    "parameters.num_inference_steps": "Steps",
    "parameters.guidance_scale": "Guidance",
    "parameters.seed": "Seed",
}


def error_html(exc: BaseException) -> str:
    """A short, readable message for the app (never a traceback)."""
    label = CONTROL_LABELS.get(getattr(exc, "field", None) or "")
    if isinstance(exc, InvalidParameters) and label and exc.allowed:
        blank = exc.value is None or (isinstance(exc.value, str) and not exc.value.strip())
        given = "empty" if blank else repr(exc.value)
        text = f"{given} is not allowed; allowed: {exc.allowed}"
        return box(f"<b>{html.escape(label)}:</b> {html.escape(text)}", "#fdecea", "#b71c1c")
    if isinstance(exc, InvalidParameters):
        kind = "Invalid parameters"
    elif isinstance(exc, FlexAudioError):
        kind = type(exc).__name__
    else:
        kind = f"Unexpected error ({type(exc).__name__})"
    return box(f"<b>{html.escape(kind)}:</b> {html.escape(str(exc))}", "#fdecea", "#b71c1c")


def box(content: str, background: str, colour: str) -> str:
    """`content` (already HTML) in a coloured box."""
    return (
        f'<div style="background:{background};color:{colour};padding:6px 10px;border-radius:4px;'
        f'white-space:pre-wrap">{content}</div>'
    )


def note_html(text: str) -> str:
    """A blue box with plain `text` (escaped here)."""
    return box(html.escape(text), "#e8f4fd", "#0d47a1")


def figure_png(figure: Any, dpi: int = PLOT_DPI) -> bytes:
    """A matplotlib figure as PNG bytes (figures from `plots` are not pyplot's: nothing to close)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def clip_png(clip: Clip) -> bytes:
    """The clip's waveform over its mel spectrogram (`plots.plot_clip`), as PNG bytes."""
    from ..plots import plot_clip  # imported on use: matplotlib loads slowly

    return figure_png(plot_clip(clip))


def waveform_png(clip: Clip) -> bytes:
    """The clip's waveform alone (`plots.plot_waveform`), as PNG bytes: small enough to set side by side."""
    from ..plots import plot_waveform  # imported on use: matplotlib loads slowly

    return figure_png(plot_waveform(clip))


def image_html(png: bytes) -> str:
    """PNG bytes as an inline ``<img>``, for the HTML that the verbs' results show in a notebook."""
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" style="max-width:100%"/>'


def show_in(view: Any, children: Any) -> None:
    """Make `children` what the ipywidgets box `view` shows, and close the widgets it showed.

    ipywidgets keeps every widget until it is closed, players' audio included (about 1 MiB each
    at 47 s): without closing, each Play or Compare would stay in the kernel's memory.
    """
    shown, view.children = view.children, tuple(children)
    while shown:
        widget, *shown = shown
        shown += getattr(widget, "children", ())
        widget.close()
