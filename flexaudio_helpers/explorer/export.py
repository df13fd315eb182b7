"""The explorer's Export tab: the session's clips as FLAC, and a manifest that ``flexaudio batch`` replays."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import ipywidgets as widgets

from ..batch import MANIFEST_NAME
from ..cli import shell_command
from ..errors import FlexAudioError
from .render import error_html, note_html
from .session import Session


class ExportTab:
    """The Export tab. `widget` is the page; `export` saves the whole `session`."""

    def __init__(self, session: Session, *, folder: Path) -> None:
        self.session = session
        self.folder = widgets.Text(
            value=str(folder), description="Folder", layout=widgets.Layout(width="95%")
        )
        self.button = widgets.Button(description="Export session", icon="download")
        self.button.on_click(lambda _: self._on_button())
        self.message = widgets.HTML(
            f"Saves every clip as FLAC (request and seed inside) and {MANIFEST_NAME}, "
            "which <code>flexaudio batch</code> can replay."
        )
        self.widget = widgets.VBox([self.folder, self.button, self.message])

    def export(self, folder: str | os.PathLike | None = None) -> Path:
        """Save every clip as FLAC, and ``manifest.jsonl``, in `folder` (default: the tab's); return its path.

        Raises `ValueError` when there is no clip yet, and `OSError` or `FlexAudioError` when
        writing fails; the tab shows each.
        """
        if folder is not None:
            self.folder.value = str(folder)
        folder = Path(self.folder.value)
        if not len(self.session):
            self.message.value = note_html("Nothing to export yet: make a clip first.")
            raise ValueError("Nothing to export yet: make a clip first.")
        try:
            manifest = self.session.export(folder)
        except (OSError, FlexAudioError) as exc:
            self.message.value = error_html(exc)
            raise
        replay = folder / "replay"
        self.message.value = note_html(
            f"Exported {len(self.session)} clips and {manifest}.\n"
            f"Replay them from a shell: {shell_command()} batch {manifest} -o {replay}"
        )
        return manifest

    def _on_button(self) -> None:
        with contextlib.suppress(ValueError, OSError, FlexAudioError):
            self.export()  # which shows what went wrong in the tab
