"""Spectra and envelopes computed from samples: what the plots draw and the analysis measures.

Computing only, no drawing. `channels_first` is the one rule for which way round samples are;
`audio_arrays` accepts any clip (`AudioLike`) or a ``(samples, sample_rate)`` pair.

The STFT, Hann window and Slaney mel filters are written out, with librosa's numbers (tests
compare them), because bench/plots_vs_librosa.py shows they pay: `plot_clip` built on librosa's
took 3.5x as long in a fresh process (importing them pulls in scipy.signal and numba) and 1.7x
as long warm (float32 FFTs in cache-sized blocks, each mel band multiplying only its own bins).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol, runtime_checkable

import numpy as np

AMIN = 1e-10  # power floor before the logarithm, as librosa's amin
TOP_DB = 80.0  # a spectrogram's range, as librosa's power_to_db: quieter bins count as this quiet
# Frames per FFT call: 16 frames in and out (~260 KB) stay in a 2-core VM's cache; with 64 the
# FFTs ran up to 3x slower there (bench/plots_vs_librosa.py).
FFT_BLOCK_FRAMES = 16
MAX_CHANNELS = 8  # more rows than this and than columns: (frames, channels), not a clip
ENVELOPE_WIDTH = 1000  # columns of a waveform envelope: a plot lane's pixels (10 in at 100 dpi)


@runtime_checkable
class AudioLike(Protocol):
    """What the plots need from a clip (`audio.Clip` is one); ``request``, ``seed`` and ``offline``
    are used for titles and notices when present."""

    samples: np.ndarray  # (channels, frames)
    sample_rate: int


def channels_first(samples: Any) -> np.ndarray:
    """Samples as float32 (channels, frames): the one orientation rule of `Clip`, plots and analysis.

    A 1-D array is one channel. An array with more rows than columns and more than
    `MAX_CHANNELS` rows is (frames, channels), as soundfile reads it, and is refused.
    """
    samples = np.atleast_2d(np.asarray(samples, dtype=np.float32))
    if samples.ndim != 2 or samples.shape[0] > max(samples.shape[1], MAX_CHANNELS):
        raise ValueError(
            f"samples must be (channels, frames), got shape {samples.shape} "
            "(soundfile gives (frames, channels): transpose it)"
        )
    return samples


def audio_arrays(clip: AudioLike | tuple[np.ndarray, int]) -> tuple[np.ndarray, int, AudioLike | None]:
    """(samples (channels, frames), sample rate, the clip or None) from a clip or a (samples, rate) pair."""
    if isinstance(clip, AudioLike):
        return channels_first(clip.samples), int(clip.sample_rate), clip
    try:
        samples, sample_rate = clip
    except (TypeError, ValueError):
        raise TypeError(
            f"expected a Clip or a (samples, sample_rate) pair, got {type(clip).__name__}"
        ) from None
    return channels_first(samples), int(sample_rate), None


@dataclass(frozen=True)
class WaveformEnvelope:
    """Per pixel column and channel, the lowest and highest sample: what a waveform plot shows."""

    times: np.ndarray  # (columns,) seconds at the centre of each column
    low: np.ndarray  # (channels, columns)
    high: np.ndarray  # (channels, columns)
    duration: float  # seconds of the whole clip


@dataclass(frozen=True)
class MelSpectrogram:
    """A mel power spectrogram in dB (re 1.0 power, like ``librosa.power_to_db(S, ref=1.0)``).

    `db` is (n_mels, frames); `times` are frame centres in seconds (``frame * hop / rate``,
    frames centred as librosa's ``center=True``); `frequencies` are the bands' centre
    frequencies in Hz; `mel_edges` the lowest and highest band edge on the mel scale.
    """

    db: np.ndarray
    times: np.ndarray
    frequencies: np.ndarray
    sample_rate: int
    hop_length: int
    duration: float
    mel_edges: tuple[float, float]


def waveform_envelope(samples: np.ndarray, sample_rate: int, width: int = ENVELOPE_WIDTH) -> WaveformEnvelope:
    """Min/max of the samples (channels, frames) in `width` equal columns (fewer for short clips)."""
    samples = channels_first(samples)
    channels, frames = samples.shape
    if frames == 0:
        empty = np.zeros((channels, 0), np.float32)
        return WaveformEnvelope(np.zeros(0), empty, empty, 0.0)
    block = -(-frames // max(1, width))  # ceil: every column holds `block` frames, the last fewer
    whole = frames // block * block
    columns = samples[:, :whole].reshape(channels, -1, block)
    low, high = columns.min(axis=2), columns.max(axis=2)
    if whole < frames:
        tail = samples[:, whole:]
        low = np.concatenate([low, tail.min(axis=1, keepdims=True)], axis=1)
        high = np.concatenate([high, tail.max(axis=1, keepdims=True)], axis=1)
    starts = np.arange(low.shape[1]) * block
    centres = (starts + np.minimum(starts + block, frames)) / 2
    return WaveformEnvelope(centres / sample_rate, low, high, frames / sample_rate)


def hz_to_mel(hz: Any) -> np.ndarray:
    """Slaney's mel scale (librosa's default, ``htk=False``): linear to 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz / (200.0 / 3)
    logarithmic = 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(hz >= 1000.0, logarithmic, linear)


def mel_to_hz(mel: Any) -> np.ndarray:
    """The inverse of `hz_to_mel`."""
    mel = np.asarray(mel, dtype=np.float64)
    return np.where(mel >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0)), mel * (200.0 / 3))


@lru_cache(maxsize=16)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """The (n_mels, 1 + n_fft // 2) float32 filterbank of ``librosa.filters.mel`` (Slaney, 0 Hz-Nyquist)."""
    edges = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sample_rate / 2), n_mels + 2))
    bins = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    rising = (bins[None, :] - edges[:-2, None]) / np.diff(edges)[:-1, None]
    falling = (edges[2:, None] - bins[None, :]) / np.diff(edges)[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]  # Slaney norm: equal area per band
    weights = weights.astype(np.float32)
    weights.flags.writeable = False  # cached and shared
    return weights


@lru_cache(maxsize=16)
def mel_bands(sample_rate: int, n_fft: int, n_mels: int) -> tuple[tuple[int, int, np.ndarray], ...]:
    """Per band of `mel_filterbank`, its non-zero bins (first, end, weights): 10x faster than dense."""
    bands = []
    for weights in mel_filterbank(sample_rate, n_fft, n_mels):
        nonzero = np.flatnonzero(weights)
        low, high = (int(nonzero[0]), int(nonzero[-1]) + 1) if nonzero.size else (0, 1)
        bands.append((low, high, weights[low:high]))
    return tuple(bands)


@lru_cache(maxsize=4)
def hann(n_fft: int) -> np.ndarray:
    """The periodic Hann window of librosa and scipy (read-only, cached)."""
    window = np.hanning(n_fft + 1)[:-1].astype(np.float32)  # periodic, as scipy's get_window("hann")
    window.flags.writeable = False
    return window


def power_spectrogram(mono: np.ndarray, *, n_fft: int = 2048, hop_length: int = 512) -> np.ndarray:
    """|STFT|² of a mono signal, (frames, 1 + n_fft // 2), framed as ``librosa.stft`` (``center=True,
    pad_mode="constant"``, periodic Hann). Frames are rows (librosa's transpose), so per-frame sums
    run over contiguous memory.
    """
    padded = np.pad(np.asarray(mono, dtype=np.float32), n_fft // 2)
    if padded.size < n_fft:
        padded = np.pad(padded, (0, n_fft - padded.size))
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop_length]
    window = hann(n_fft)
    power = np.empty((len(frames), n_fft // 2 + 1), np.float32)
    for start in range(0, len(frames), FFT_BLOCK_FRAMES):
        block = slice(start, start + FFT_BLOCK_FRAMES)
        spectrum = np.fft.rfft(frames[block] * window, axis=1)  # float32 in, complex64 out
        np.square(spectrum.real, out=power[block])
        power[block] += np.square(spectrum.imag)
    return power


def mel_power(power: np.ndarray, sample_rate: int, *, n_mels: int = 128) -> np.ndarray:
    """(n_mels, frames) mel power from a `power_spectrogram`, with librosa's Slaney mel filters."""
    n_fft = 2 * (power.shape[1] - 1)
    mel = np.empty((n_mels, len(power)), np.float32)
    for band, (low, high, weights) in enumerate(mel_bands(sample_rate, n_fft, n_mels)):
        np.matmul(power[:, low:high], weights, out=mel[band])
    return mel


def mel_spectrogram(
    samples: np.ndarray, sample_rate: int, *, n_mels: int = 128, hop_length: int = 512, n_fft: int = 2048
) -> MelSpectrogram:
    """The mel spectrogram of the channels' mix, as ``librosa.feature.melspectrogram`` then dB."""
    samples = channels_first(samples)
    mono = samples.mean(axis=0, dtype=np.float32) if samples.shape[0] > 1 else samples[0]
    power = power_spectrogram(mono, n_fft=n_fft, hop_length=hop_length)
    db = 10.0 * np.log10(np.maximum(mel_power(power, sample_rate, n_mels=n_mels), AMIN))
    mel_axis = np.linspace(0.0, float(hz_to_mel(sample_rate / 2)), n_mels + 2)
    return MelSpectrogram(
        db=db,
        times=np.arange(db.shape[1]) * hop_length / sample_rate,
        frequencies=mel_to_hz(mel_axis[1:-1]),
        sample_rate=sample_rate,
        hop_length=hop_length,
        duration=samples.shape[1] / sample_rate,
        mel_edges=(float(mel_axis[0]), float(mel_axis[-1])),
    )
