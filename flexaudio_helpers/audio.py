"""Audio clips: samples plus the request that made them, saved, loaded, measured and shown.

A `Clip` is what `AudioClient.generate()` returns. It saves itself as WAV or FLAC with the
request and seed in the file's metadata (so any saved clip can be regenerated), and shows
itself in Jupyter as a small MP3 player (MP3 plays in Chrome, Firefox and Safari; Ogg Vorbis
not in Safari) with one line of facts, about 11x lighter than `IPython.display.Audio`'s 16-bit
WAV; 10 s encode in about 0.13 s (bench/embed_size.py).
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import lameenc
import numpy as np
import soundfile as sf

from .errors import (
    FlexAudioError,
    InvalidAudioFile,
    InvalidAudioResponse,
    InvalidParameters,
    ResponseTooLarge,
    SilentAudioWarning,
)
from .files import atomic_writer
from .params import MAX_AUDIO_SECONDS, MAX_SEED, GenerationRequest, shorten
from .protocol import OFFLINE_NOTICE, load_json, sniff_format
from .spectra import channels_first

SAVE_FORMATS = {".wav": "WAV", ".flac": "FLAC"}
METADATA_KEY = "flexaudio"
# libsndfile drops the whole WAV INFO chunk when one string passes ~2045 bytes.
WAV_METADATA_LIMIT = 2000
CLIPPING_LEVEL = 0.999  # 16-bit full scale is 32767/32768 = 0.99997
SILENCE_DBFS = -60.0
# The inline player's MP3: constant 128 kbit/s (10 s of stereo is 214 KB of HTML, under the 250 KB
# goal), encoded by LAME through lameenc in its fast mode (quality 7 of 0 = best to 9 = fastest):
# 5x faster than libsndfile's MP3, which leaves LAME's quality at its slower default
# (bench/embed_size.py and bench/RESULTS.md).
MP3_KBPS = 128
MP3_QUALITY = 7
# Ogg Vorbis quality, for clips MP3 cannot hold: 0 = best, 1 = smallest.
EMBED_COMPRESSION = 0.5
# The most metadata text `Clip.load` reads or inflates: twice the longest request `save` writes
# (two 2,000-character prompts of non-ASCII, 12 bytes each as JSON escapes: 48 KB).
MAX_METADATA_BYTES = 96_000
MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
# What `Clip.load` decodes at most: 10 minutes of 48 kHz stereo (230 MB as float32), far above the
# model's 47.55 s, so a file that would decode to gigabytes is refused before it is read.
MAX_LOAD_SAMPLES = 2 * 48_000 * 600


def warn_if_silent(samples: np.ndarray, what: str) -> None:
    """Warn (`SilentAudioWarning`) when no sample of `samples` reaches `SILENCE_DBFS`: the model
    made silence, not a sound. Every generation is checked: in the pipeline, and by the client."""
    if samples.size and float(np.abs(samples).max()) < 10 ** (SILENCE_DBFS / 20):
        message = f"{what} is silent (peak below {SILENCE_DBFS:g} dBFS): try another seed or prompt"
        warnings.warn(message, SilentAudioWarning, stacklevel=3)


def _check_size(frames: int, channels: int, rate: int, limit: int, what: str, error: type) -> None:
    """Refuse audio whose decoded size (channels x frames) passes `limit`, before decoding it."""
    if frames * channels > limit:
        raise error(
            f"{what} would decode to {frames} frames x {channels} channels at {rate} Hz "
            f"({frames / max(rate, 1):.0f} s, {frames * channels * 4 / 2**20:.0f} MiB as float32), over the "
            f"limit of {limit} samples (the model makes at most {MAX_AUDIO_SECONDS:.2f} s of stereo)"
        )


def _not_audio_message(data: bytes) -> str:
    if not data:
        return "the endpoint answered with an empty body instead of audio"
    preview = data[:200].decode("utf-8", "replace").strip()
    kind = "JSON" if preview.startswith(("{", "[")) else "HTML" if preview.startswith("<") else "data"
    return f"the endpoint answered with {kind} instead of audio ({len(data)} bytes): {preview!r}"


def _ogg_is_complete(data: bytes) -> bool:
    """True when the Ogg pages run exactly to the end and the last one closes the stream."""
    position, flags = 0, 0
    while position < len(data):
        if data[position : position + 4] != b"OggS" or len(data) < position + 27:
            return False
        segments = data[position + 26]
        table = data[position + 27 : position + 27 + segments]
        if len(table) < segments:
            return False
        flags = data[position + 5]
        position += 27 + segments + sum(table)
    return position == len(data) and bool(flags & 0x04)  # 0x04: end-of-stream page


def _check_complete(data: bytes, fmt: str) -> None:
    """Raise when the body is shorter than its own headers say (a cut-off download)."""
    if fmt == "OGG" and not _ogg_is_complete(data):
        # An Ogg file declares no length up front; libsndfile would return the part that came.
        raise InvalidAudioResponse(
            f"the OGG audio is truncated: its pages stop before the end of the stream ({len(data)} bytes)"
        )
    if fmt != "WAV":  # sniff_format saw "RIFF....WAVE": 12 bytes at least
        return
    declared = int.from_bytes(data[4:8], "little") + 8
    # Streaming writers put 0 or 0xFFFFFFFF when they do not know the size yet.
    if 8 < declared < 0xFFFFFFFF and len(data) < declared:
        raise InvalidAudioResponse(
            f"the audio is truncated: the WAV header announces {declared} bytes but {len(data)} arrived"
        )


def decode_audio(data: bytes, max_samples: int | None = None) -> tuple[np.ndarray, int]:
    """Decode audio bytes to (float32 samples, channels first; sample rate), checking them first.

    With `max_samples`, audio whose header announces more samples (all channels) is refused with
    `ResponseTooLarge` before any is decoded.
    """
    fmt = sniff_format(data)
    if fmt is None:
        raise InvalidAudioResponse(_not_audio_message(data))
    _check_complete(data, fmt)
    try:
        with sf.SoundFile(io.BytesIO(data)) as stream:
            expected = stream.frames
            if max_samples is not None:
                what = f"the {fmt} answer ({len(data)} bytes)"
                _check_size(expected, stream.channels, stream.samplerate, max_samples, what, ResponseTooLarge)
            samples = stream.read(dtype="float32", always_2d=True)
            rate = stream.samplerate
    except (RuntimeError, TypeError) as exc:  # LibsndfileError is a RuntimeError
        raise InvalidAudioResponse(
            f"the {fmt} audio could not be decoded ({len(data)} bytes): {exc}"
        ) from None
    if len(samples) == 0:
        raise InvalidAudioResponse(f"the {fmt} audio holds no samples ({len(data)} bytes): truncated?")
    if len(samples) < expected:
        raise InvalidAudioResponse(
            f"the {fmt} audio is truncated: {len(samples)} of {expected} frames could be read"
        )
    return np.ascontiguousarray(samples.T), rate


@dataclass(frozen=True)
class AudioFacts:
    """Quality facts about a clip. Levels in dBFS (0 = full scale); LUFS per ITU-R BS.1770."""

    duration: float
    sample_rate: int
    channels: int
    peak: float
    peak_dbfs: float
    rms_dbfs: float
    lufs: float | None  # None under one 0.4 s gating block, or over BS.1770's 5 channels
    clipped_samples: int
    leading_silence: float
    trailing_silence: float

    @property
    def clipping(self) -> bool:
        return self.clipped_samples > 0

    def summary(self) -> str:
        """One line: duration, rate, peak, loudness, and clipping/silence when present."""
        loudness = f"{self.lufs:.1f} LUFS" if self.lufs is not None and np.isfinite(self.lufs) else "n/a LUFS"
        parts = [
            f"{self.duration:.2f} s",
            f"{self.sample_rate / 1000:g} kHz {'stereo' if self.channels == 2 else f'{self.channels} ch'}",
            f"peak {self.peak_dbfs:.1f} dBFS",
            loudness,
        ]
        if self.clipping:
            parts.append(f"clipping: {self.clipped_samples} samples")
        if self.leading_silence >= 0.05 or self.trailing_silence >= 0.05:
            parts.append(f"silence {self.leading_silence:.2f} s / {self.trailing_silence:.2f} s")
        return " · ".join(parts)


def _dbfs(value: float) -> float:
    return float(20 * np.log10(value)) if value > 0 else float("-inf")


def measure(samples: np.ndarray, sample_rate: int) -> AudioFacts:
    """Peak, RMS, integrated loudness (pyloudnorm), clipping and leading/trailing silence."""
    samples = np.atleast_2d(samples)
    magnitudes = np.abs(samples)
    magnitude = magnitudes.max(axis=0) if samples.size else np.zeros(0)  # per frame, over channels
    peak = float(magnitude.max()) if magnitude.size else 0.0
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if samples.size else 0.0
    audible = np.flatnonzero(magnitude > 10 ** (SILENCE_DBFS / 20))
    frames = samples.shape[1]
    leading = (audible[0] if audible.size else frames) / sample_rate
    trailing = (frames - 1 - audible[-1] if audible.size else frames) / sample_rate
    return AudioFacts(
        duration=frames / sample_rate,
        sample_rate=sample_rate,
        channels=samples.shape[0],
        peak=peak,
        peak_dbfs=_dbfs(peak),
        rms_dbfs=_dbfs(rms),
        lufs=_integrated_loudness(samples, sample_rate),
        clipped_samples=int(np.count_nonzero(magnitudes >= CLIPPING_LEVEL)),
        leading_silence=float(leading),
        trailing_silence=float(trailing),
    )


def _integrated_loudness(samples: np.ndarray, sample_rate: int) -> float | None:
    import pyloudnorm  # imported here: it pulls in scipy.signal, which notebooks rarely need

    if samples.shape[1] < int(0.4 * sample_rate) or len(samples) > 5:  # BS.1770 weighs 5 channels
        return None
    return float(pyloudnorm.Meter(sample_rate).integrated_loudness(samples.T.astype(np.float64)))


def _metadata_text(metadata: dict[str, Any], *, limit: int | None) -> str:
    text = json.dumps(metadata, separators=(",", ":"), sort_keys=True)
    if limit is None or len(text) <= limit:
        return text
    packed = "zlib:" + base64.b64encode(zlib.compress(text.encode(), 9)).decode()
    if len(packed) <= limit:
        return packed
    raise FlexAudioError(
        f"the request is too long for WAV metadata ({len(text)} characters, limit {limit}); "
        "save as .flac instead, which has no such limit"
    )


def _inflate(text: str, path: str | os.PathLike) -> str:
    """The JSON that `_metadata_text` packed, inflated to at most `MAX_METADATA_BYTES`."""
    try:
        inflater = zlib.decompressobj()
        inflated = inflater.decompress(base64.b64decode(text), MAX_METADATA_BYTES)
    except (ValueError, zlib.error):
        return ""  # not ours
    if inflater.unconsumed_tail:  # a few KB can inflate to gigabytes: stop at the cap
        raise InvalidAudioFile(
            f"{os.fspath(path)!r}: its metadata inflates past {MAX_METADATA_BYTES} bytes, "
            "more than any request flexaudio saves"
        )
    return inflated.decode("utf-8", "replace")


def _parse_metadata(text: str | None, path: str | os.PathLike) -> dict[str, Any] | None:
    if text and text.startswith("zlib:"):
        text = _inflate(text[5:], path)
    if not text:
        return None
    try:
        data = load_json(text)
    except ValueError:
        return None  # a comment some other program wrote
    if isinstance(data, list):  # JSON, but not what save writes: reported by Clip.load
        return data
    return data.get(METADATA_KEY) if isinstance(data, dict) else None


def _saved_facts(saved: Any, path: str | os.PathLike) -> tuple[GenerationRequest | None, int | None, bool]:
    """(request, seed, offline) from a file's flexaudio metadata; wrong shapes are warned about."""

    def ignored(why: str) -> tuple[None, None, bool]:
        warnings.warn(f"{os.fspath(path)}: ignoring its flexaudio metadata: {why}", UserWarning, stacklevel=3)
        return None, None, False

    if not isinstance(saved, dict):
        return ignored(f"expected a JSON object, got {type(saved).__name__}")
    body, seed, offline = saved.get("request"), saved.get("seed"), saved.get("offline", False)
    if seed is not None and (type(seed) is not int or not 0 <= seed <= MAX_SEED):
        return ignored(f"the seed {seed!r:.40} is not an integer from 0 to {MAX_SEED}")
    if not isinstance(offline, bool):
        return ignored(f"'offline' is {offline!r:.40}, not true or false")
    try:
        request = GenerationRequest.from_body(body) if body else None
    except InvalidParameters as exc:
        return ignored(f"the saved request is not valid: {exc}")
    return request, seed, offline


@dataclass(frozen=True, eq=False, repr=False)
class Clip:
    """Generated audio: float32 samples (channels, frames), their rate, and how they were made.

    `request` is the validated request, `seed` the seed actually used (from the endpoint's
    ``X-Seed`` header), `timings` wall-clock seconds (``request``, and ``generation`` and
    ``queue`` when the endpoint reports them) and `offline` is True for the offline model's noise.
    `lineage` says how a piece made of several windows was made (`longer`: its source, each
    window's prompt and seed, the section), saved with the clip.
    """

    samples: np.ndarray
    sample_rate: int
    request: GenerationRequest | None = None
    seed: int | None = None
    timings: dict[str, float] = field(default_factory=dict)
    offline: bool = False
    lineage: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "samples", channels_first(self.samples))

    @classmethod
    def from_bytes(
        cls,
        data: bytes,
        *,
        request: GenerationRequest | None = None,
        seed: int | None = None,
        timings: dict[str, float] | None = None,
        offline: bool = False,
        max_samples: int | None = None,
    ) -> Clip:
        """Decode WAV/FLAC/OGG/MP3 bytes with `decode_audio` (`InvalidAudioResponse` if not audio)."""
        samples, rate = decode_audio(data, max_samples)
        if seed is None and request is not None:
            seed = request.parameters.seed
        return cls(samples, rate, request, seed, dict(timings or {}), offline)

    # ----- facts ---------------------------------------------------------------------------
    @property
    def channels(self) -> int:
        return self.samples.shape[0]

    @property
    def frames(self) -> int:
        return self.samples.shape[1]

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.frames / self.sample_rate

    @property
    def prompt(self) -> str | None:
        return self.request.inputs if self.request else None

    @cached_property
    def facts(self) -> AudioFacts:
        """Peak, loudness, clipping and silence (computed once)."""
        return measure(self.samples, self.sample_rate)

    def reproducible_request(self) -> GenerationRequest | None:
        """The request with the seed actually used filled in: sending it again gives this clip."""
        if self.request is None:
            return None
        if self.seed is None or self.request.parameters.seed == self.seed:
            return self.request
        return self.request.with_parameters(seed=self.seed)

    # ----- files ---------------------------------------------------------------------------
    def save(self, path: str | os.PathLike, *, subtype: str = "PCM_16") -> Path:
        """Write WAV or FLAC (by extension) atomically, with the request and seed as metadata."""
        path = Path(path)
        with self.writer(path, subtype=subtype) as stream:
            # The model's output is not bounded; clip rather than wrap around in PCM.
            stream.write(np.clip(self.samples, -1.0, 1.0).T)
        return path

    @contextmanager
    def writer(self, path: str | os.PathLike, *, subtype: str = "PCM_16") -> Iterator[sf.SoundFile]:
        """An open WAV or FLAC stream (by extension) carrying this clip's metadata (not its
        samples): write samples (frames, channels) to it piece by piece; the file appears, whole,
        when the block ends, and not at all on an exception."""
        path = Path(path)
        fmt = SAVE_FORMATS.get(path.suffix.lower())
        if fmt is None:
            raise FlexAudioError(f"cannot save {path.name!r}: use a .wav or .flac file name")
        request = self.request.to_body() if self.request else None
        metadata = {METADATA_KEY: {"request": request, "seed": self.seed, "offline": self.offline}}
        if self.lineage is not None:
            metadata[METADATA_KEY]["lineage"] = self.lineage
        comment = _metadata_text(metadata, limit=WAV_METADATA_LIMIT if fmt == "WAV" else None)
        path.parent.mkdir(parents=True, exist_ok=True)
        with (
            atomic_writer(path) as target,
            sf.SoundFile(target, "w", self.sample_rate, self.channels, subtype=subtype, format=fmt) as stream,
        ):
            stream.comment = comment
            stream.software = "flexaudio"
            # libsndfile refuses a title with NUL (or other control characters); the prompt
            # itself is kept exactly in the JSON comment, where they are escaped.
            title = "".join(c for c in (self.prompt or "")[:200] if c.isprintable())
            if title.strip():
                stream.title = title
            yield stream

    @classmethod
    def load(
        cls, path: str | os.PathLike, *, max_samples: int = MAX_LOAD_SAMPLES, data: bytes | None = None
    ) -> Clip:
        """Read a clip saved by `save` (request and seed restored) or any audio file (no request).

        A file that would decode to over `max_samples` samples is refused before decoding; metadata
        of the wrong shape is ignored with a warning. `data` is the file's bytes when they were
        already read (then `path` only names it in messages).
        """
        what = f"{os.fspath(path)!r}"
        try:
            # Opened here so that a missing file is a FileNotFoundError, not libsndfile's "System error".
            with (
                io.BytesIO(data) if data is not None else open(path, "rb") as file,
                sf.SoundFile(file) as stream,
            ):
                _check_size(
                    stream.frames, stream.channels, stream.samplerate, max_samples, what, InvalidAudioFile
                )
                samples = stream.read(dtype="float32", always_2d=True)
                rate = stream.samplerate
                comment = stream.comment
        except sf.LibsndfileError as exc:
            raise InvalidAudioFile(f"cannot read {what} as audio: {exc.error_string}") from None
        saved = _parse_metadata(comment, path)
        request, seed, offline = _saved_facts(saved, path) if saved is not None else (None, None, False)
        lineage = saved.get("lineage") if isinstance(saved, dict) else None
        lineage = lineage if isinstance(lineage, dict) else None
        return cls(np.ascontiguousarray(samples.T), rate, request, seed, {}, offline, lineage)

    # ----- display -------------------------------------------------------------------------
    def encode(self, fmt: str = "MP3", *, compression: float = EMBED_COMPRESSION) -> bytes:
        """The clip as compressed bytes: MP3 at `MP3_KBPS` (1 or 2 channels at 8-48 kHz), or "OGG"
        (Vorbis at `compression`: 0 = best, 1 = smallest)."""
        samples = np.clip(self.samples, -1.0, 1.0)
        if fmt == "MP3":
            encoder = lameenc.Encoder()
            encoder.set_channels(self.channels)
            encoder.set_in_sample_rate(self.sample_rate)
            encoder.set_out_sample_rate(self.sample_rate)  # else LAME may resample, to suit the bitrate
            encoder.set_bit_rate(MP3_KBPS)
            encoder.set_quality(MP3_QUALITY)
            pcm = np.round(samples.T * 32767).astype("<i2").tobytes()  # interleaved 16-bit
            return bytes(encoder.encode(pcm) + encoder.flush())
        buffer = io.BytesIO()
        sf.write(
            buffer, samples.T, self.sample_rate, format=fmt, subtype="VORBIS", compression_level=compression
        )
        return buffer.getvalue()

    def summary(self) -> str:
        """The facts line shown under the player."""
        line = self.facts.summary()
        if self.seed is not None:
            line += f" · seed {self.seed}"
        if self.offline:
            line += f" · {OFFLINE_NOTICE}"
        return line

    def _repr_html_(self) -> str:
        return self.player_html()

    def player_html(self, label: str | None = None) -> str:
        """The inline player with its facts line, under a bold `label` when given (e.g. "guidance 4")."""
        # Plain <audio>/<source> markup with a data: URI, like IPython.display.Audio, so it
        # survives JupyterLab's sanitizer and static HTML exports (nbconvert, GitHub).
        # MP3 plays in every browser but holds only 1-2 channels at 8-48 kHz; Vorbis takes the rest.
        fmt, mime = (
            ("MP3", "audio/mpeg")
            if self.channels <= 2 and self.sample_rate in MP3_RATES
            else ("OGG", "audio/ogg")
        )
        data = base64.b64encode(self.encode(fmt)).decode("ascii")
        title = html.escape(self.prompt or "clip")
        facts = html.escape(self.summary())
        heading = f"<div><b>{html.escape(label)}</b></div>" if label else ""
        return (
            f'<div class="flexaudio-clip" title="{title}">{heading}'
            f'<audio controls preload="metadata"><source src="data:{mime};base64,{data}" '
            f'type="{mime}"/>Your browser cannot play {fmt}.</audio>'
            f'<div style="font-size:85%;font-family:monospace">{facts}</div></div>'
        )

    def __repr__(self) -> str:
        prompt = self.prompt if self.prompt is None else shorten(self.prompt, 50)
        offline = ", offline=True" if self.offline else ""
        return (
            f"Clip({self.duration:.2f} s, {self.sample_rate} Hz, {self.channels} ch, "
            f"prompt={prompt!r}, seed={self.seed}{offline})"
        )
