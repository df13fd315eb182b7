"""flexaudio: text-to-audio with Stable Audio Open, from a notebook, on FlexAI or this machine.

Everything a notebook needs is importable from here, and loaded only when first used (as
librosa does), so ``import flexaudio_helpers`` stays quick and never loads torch::

    from flexaudio_helpers import connect, find_or_serve, plot_clip
    client = find_or_serve(connect(), "stable-audio-open").client()
    clip = client.generate("Rain on a tin roof", audio_end_in_s=5.0)
    plot_clip(clip)

Where each idea lives (one concern per module) is listed in the README's "What is inside".
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> the module that defines it ("" for a submodule of the same name).
_PUBLIC = {
    # serving and finding endpoints
    "connect": "deploy",
    "endpoint": "deploy",
    "find_or_serve": "deploy",
    "write_env_file": "deploy",
    "hugging_face_token": "deploy.local",
    "forget_saved_state": "state",
    "LocalDeployment": "deploy",
    "clean_up": "deploy",
    "remember_endpoint": "deploy",
    "choose_model": "deploy.local",
    "saved_hugging_face_token": "deploy.local",
    "make_room": "deploy.local",
    # calling them
    "AudioClient": "client",
    "shell_command": "cli",
    "GenerationRequest": "params",
    "ALLOWED": "params",
    "MODEL_ID": "params",
    # clips: hear, see, measure
    "Clip": "audio",
    "plot_clip": "plots",
    "plot_comparison": "plots",
    "plot_sweep": "plots",
    "plot_waveform": "plots",
    "plot_spectrogram": "plots",
    "analyze": "analysis",
    "check": "analysis",
    "compare": "analysis",
    "similarity": "analysis",
    "explore": "explorer",
    # in this process, on this machine's device
    "load_generator": "serving.pipeline",
    "pick_device": "serving.speed",
    "save_offline_model": "serving.offline_model",
    "generate_here": "inprocess",
    "variations_here": "inprocess",
    "extend": "longer",
    "loop": "longer",
    "repaint": "longer",
    # errors a notebook catches
    "FlexAudioError": "errors",
    "InvalidParameters": "errors",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'flexaudio_helpers' has no attribute {name!r}")
    module = importlib.import_module(f".{_PUBLIC[name] or name}", __name__)
    value = module if not _PUBLIC[name] else getattr(module, name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])


if TYPE_CHECKING:  # for editors and type checkers; at run time the names load on first use
    from .analysis import analyze, check, compare, similarity
    from .audio import Clip
    from .cli import shell_command
    from .client import AudioClient
    from .deploy import (
        LocalDeployment,
        clean_up,
        connect,
        endpoint,
        find_or_serve,
        remember_endpoint,
        write_env_file,
    )
    from .deploy.local import choose_model, hugging_face_token, make_room, saved_hugging_face_token
    from .errors import FlexAudioError, InvalidParameters
    from .explorer import explore
    from .inprocess import generate_here, variations_here
    from .longer import extend, loop, repaint
    from .params import ALLOWED, MODEL_ID, GenerationRequest
    from .plots import plot_clip, plot_comparison, plot_spectrogram, plot_sweep, plot_waveform
    from .serving.offline_model import save_offline_model
    from .serving.pipeline import load_generator
    from .serving.speed import pick_device
    from .state import forget_saved_state
