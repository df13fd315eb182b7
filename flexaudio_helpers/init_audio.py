"""Audio-to-audio sources: what may be one, and how one travels in a request body.

A source is a `Clip`, an audio file path, or a ``(samples, sample_rate)`` pair (`source_arrays`
checks it). In this process it goes to `AudioGenerator.generate` as it is. To our local endpoint
it travels as ``parameters.init_audio``, this project's extension of the FlexServe body (FlexAI's
FlexServe and vLLM-Omni do not document audio-to-audio): `encode` (the client) writes it as
16-bit FLAC in base64, at most `params.MAX_INIT_AUDIO_BYTES`; `decode` (the endpoint) reads it
back within the same bounds. Both refuse with `InvalidParameters` naming the field and the limit.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
from pathlib import Path
from typing import IO, Any

import numpy as np
import soundfile as sf

from .audio import Clip, decode_audio
from .errors import FlexAudioError, InvalidParameters
from .params import ALLOWED, CHANNELS, MAX_AUDIO_SECONDS, MAX_INIT_AUDIO_BYTES
from .spectra import audio_arrays

# What a decoded source may hold (all channels): the longest source at 96 kHz stereo. A FLAC of
# silence compresses far below the byte limit, so the decoded size has its own bound.
MAX_SOURCE_SAMPLES = int(CHANNELS * 96_000 * MAX_AUDIO_SECONDS) + 1


def source_arrays(
    source: Any, *, max_seconds: float = MAX_AUDIO_SECONDS, field: str = "source"
) -> tuple[np.ndarray, int]:
    """(float32 samples (channels, frames), sample rate) of a source, checked.

    `source` is a `Clip`, an audio file path, or a ``(samples, sample_rate)`` pair with samples
    (channels, frames). Raises `InvalidParameters` naming `field` for a file that cannot be
    decoded, other than 1 or 2 channels, no frames, NaN or infinite samples, or over `max_seconds`.
    """
    if isinstance(source, str | os.PathLike):
        check_header(source, max_seconds=max_seconds, field=field)
        try:
            source = Clip.load(source)
        except (RuntimeError, OSError, FlexAudioError) as exc:  # soundfile raises RuntimeErrors
            raise _invalid(
                field, f"cannot decode {Path(source).name!r} as audio ({exc})", "a WAV/FLAC/OGG file"
            ) from None
    try:
        samples, rate, _ = audio_arrays(source)
    except (TypeError, ValueError) as exc:
        raise _invalid(field, str(exc), "a Clip, a file path or a (samples, sample_rate) pair") from None
    if rate <= 0 or samples.ndim != 2 or samples.shape[0] not in (1, 2) or samples.shape[1] == 0:
        raise _invalid(
            field,
            f"{samples.shape[0]} channels, {samples.shape[-1]} frames at {rate} Hz",
            "1 or 2 channels, at least 1 frame, a positive sample rate",
        )
    if not np.isfinite(samples).all():
        raise _invalid(field, "it has NaN or infinite samples", "finite samples")
    _check_length(samples.shape[1] / rate, max_seconds, field)
    return np.asarray(samples, dtype=np.float32), rate


def check_header(file: str | os.PathLike | IO[bytes], *, max_seconds: float, field: str) -> None:
    """Refuse (`InvalidParameters` naming `field`) a source whose header declares over `max_seconds`,
    before any sample is decoded: a few KB of FLAC can declare minutes (95 s at 48 kHz in 22 KB).

    A file soundfile cannot open passes: decoding it then says why in its own words.
    """
    try:
        info = sf.info(file)
    except (RuntimeError, OSError):  # soundfile raises RuntimeErrors
        return
    _check_length(info.frames / max(info.samplerate, 1), max_seconds, field)


def encode(source: Any, *, max_seconds: float = MAX_AUDIO_SECONDS) -> str:
    """`source` as the base64 text of a 16-bit FLAC file, for ``parameters.init_audio``.

    Samples past full scale are clipped (16 bits hold -1 to 1). Raises `InvalidParameters`
    (field ``init_audio``) as `source_arrays` does, or when the file passes `MAX_INIT_AUDIO_BYTES`.
    """
    samples, rate = source_arrays(source, max_seconds=max_seconds, field="init_audio")
    buffer = io.BytesIO()
    try:
        sf.write(buffer, np.clip(samples, -1.0, 1.0).T, rate, format="FLAC", subtype="PCM_16")
    except (RuntimeError, ValueError) as exc:  # e.g. a sample rate FLAC cannot store
        raise _invalid("init_audio", f"cannot be written as FLAC ({exc})", ALLOWED["init_audio"]) from None
    if buffer.tell() > MAX_INIT_AUDIO_BYTES:
        raise _invalid(
            "init_audio",
            f"{buffer.tell()} bytes as 16-bit FLAC is too large",
            f"at most {MAX_INIT_AUDIO_BYTES} bytes: a shorter source, or a lower sample rate",
        )
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def decode(text: str, *, max_seconds: float = MAX_AUDIO_SECONDS) -> tuple[np.ndarray, int]:
    """The source in ``parameters.init_audio`` (already length-checked by `params`), as
    `source_arrays` returns it; `InvalidParameters` naming ``parameters.init_audio`` otherwise.

    The file's header is read before its samples: one that declares over `max_seconds`
    (`check_header`) or would decode to over `MAX_SOURCE_SAMPLES` is refused without decoding it.
    """
    field = "parameters.init_audio"
    try:
        data = base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise _invalid(field, f"not a readable WAV or FLAC file ({exc})", ALLOWED["init_audio"]) from None
    check_header(io.BytesIO(data), max_seconds=max_seconds, field=field)
    try:
        samples, rate = decode_audio(data, max_samples=MAX_SOURCE_SAMPLES)
    except (binascii.Error, ValueError, FlexAudioError) as exc:
        raise _invalid(field, f"not a readable WAV or FLAC file ({exc})", ALLOWED["init_audio"]) from None
    return source_arrays((samples, rate), max_seconds=max_seconds, field=field)


def _check_length(seconds: float, max_seconds: float, field: str) -> None:
    if seconds > max_seconds:
        raise _invalid(
            field, f"{seconds:.2f} s is too long", f"at most {max_seconds:.2f} s (the model's window)"
        )


def _invalid(field: str, problem: str, allowed: str) -> InvalidParameters:
    return InvalidParameters(f"{field}: {problem}; allowed: {allowed}", field=field, allowed=allowed)
