"""Listen with numbers: what a clip measures, and whether it did what its prompt asked.

Computing only, no drawing (the plots draw what this measures):

- `analyze(clip)` -> `Analysis`: loudness, peak, clipping and silence at the ends (a Clip's
  own `facts`, from `audio.measure`: measured once, loudness by pyloudnorm), tempo and beats
  (librosa's beat tracker), brightness (spectral centroid and roll-off), noisiness (spectral
  flatness), onsets per second and stereo width.
- `prompt_hints(prompt)`: what a prompt asks for that can be measured ("128 bpm", "muffled"...).
- `check(clip)`: each hint beside its measurement, e.g. "asked 128 bpm, measured 127.8 bpm ✓".
- `compare({"name": clip, ...})` -> `AnalysisTable`: several clips' analyses side by side.
- `similarity(a, b)` -> `Similarity` (a float): how alike two clips sound, from their spectrograms.

A clip is a `Clip`, a ``(samples, sample_rate)`` pair with samples (channels, frames), or the
path of an audio file. 47.55 s of 44.1 kHz stereo analyses in about a second or less on a 2-core
machine, about 3x faster than asking librosa for each number (bench/analysis_speed.py). The first
analysis in a process also pays librosa's import, which compiles its beat tracker (seconds).
"""

from __future__ import annotations

import dataclasses
import html
import math
import os
import re
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .audio import Clip, measure
from .errors import AnalysisError
from .protocol import OFFLINE_NOTICE
from .spectra import TOP_DB, audio_arrays, mel_power, mel_spectrogram, power_spectrogram

N_FFT = 2048
N_MELS = 128
HOP = 512  # 11.6 ms frames at 44.1 kHz: the beat tracker's time resolution
SILENT_FRAME_DBFS = -60.0  # frames quieter than this are left out of brightness and noisiness
MIN_TEMPO_SECONDS = 3.0  # a tempo needs a few beats; shorter clips report no beat
TEMPOGRAM_LAGS = 384  # lags of the onset autocorrelation: 4.5 s at 44.1 kHz, librosa's 8 s at 22 kHz
# The normalised autocorrelation of the onset strength at the beat period, from 0 to 1. White
# noise stays under about 0.1; a steady drum pattern is above 0.5.
CLEAR_BEAT = 0.25
TEMPO_TOLERANCE = 0.03  # a measured tempo within 3 % of the asked one counts as followed
# Median spectral centroid below DARK is dull or muffled; above BRIGHT it is bright.
DARK_CENTROID_HZ = 1200.0
BRIGHT_CENTROID_HZ = 2500.0
BRIGHT_WORDS = ("bright", "crisp", "brilliant", "sparkling", "airy", "shimmering")
DARK_WORDS = ("muffled", "dark", "dull", "murky", "mellow")


def _doc(text: str) -> Any:
    """A dataclass field whose one-line meaning is kept in its metadata (shown in the table)."""
    return field(metadata={"doc": text})


@dataclass(frozen=True)
class Analysis:
    """What a clip measures. Every field's one-line meaning is in `Analysis.meaning(name)`.

    Values that cannot be measured are None: loudness of a clip under 0.4 s, tempo when there is
    no clear beat, brightness of a silent clip.
    """

    duration_s: float = _doc("length of the clip in seconds")
    channels: int = _doc("1 = mono, 2 = stereo")
    loudness_lufs: float | None = _doc(
        "integrated loudness (ITU-R BS.1770): streaming services aim near -14, -70 or less is silence"
    )
    peak_dbfs: float = _doc("the loudest sample, in dB below full scale: 0 is the most a file can hold")
    clipped_fraction: float = _doc("share of samples at full scale (flattened peaks, heard as crackle)")
    leading_silence_s: float = _doc("seconds before the sound starts (below -60 dBFS)")
    trailing_silence_s: float = _doc("seconds of silence at the end (below -60 dBFS)")
    tempo_bpm: float | None = _doc("beats per minute, when there is a clear beat (None: no clear beat)")
    beat_confidence: float = _doc(
        f"how regular the beat is, 0 to 1: under {CLEAR_BEAT} is no clear beat (noise stays under about 0.15)"
    )
    beat_times_s: tuple[float, ...] = _doc("when each beat falls, in seconds (empty without a clear beat)")
    centroid_hz: float | None = _doc("the spectrum's centre of mass (median): higher sounds brighter")
    rolloff_hz: float | None = _doc("85 % of the energy lies below this frequency (median): low is muffled")
    flatness: float | None = _doc(
        "0 = pure tones, about 0.5 or more = noise-like (white noise is about 0.56); music is usually < 0.1"
    )
    onsets_per_s: float = _doc("new notes or hits per second: the rhythm's density")
    stereo_width: float = _doc("side / mid energy: 0 = mono, about 1 = two unrelated channels")
    offline: bool = _doc("made by the offline model: noise from random weights, so no number means music")

    @classmethod
    def meaning(cls, name: str) -> str:
        """The one-line meaning of a field, for a learner."""
        return {f.name: f.metadata["doc"] for f in dataclasses.fields(cls)}[name]

    @property
    def has_clear_beat(self) -> bool:
        return self.tempo_bpm is not None

    def rows(self) -> list[tuple[str, str, str]]:
        """(quantity, value with its unit, meaning) for each measurement."""
        return [(label, show(self), self.meaning(name)) for name, label, show in _ROWS]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (infinities, e.g. the peak of silence, become None)."""
        values = dataclasses.asdict(self)
        values["beat_times_s"] = [round(t, 4) for t in self.beat_times_s]
        return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in values.items()}

    def __str__(self) -> str:
        width = max(len(label) for label, _, _ in self.rows())
        lines = [f"{label:<{width}}  {value:>16}  {meaning}" for label, value, meaning in self.rows()]
        if self.offline:
            lines.append(f"({NOISE_NOTE})")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        cells = "".join(
            f"<tr><td>{html.escape(label)}</td><td style='text-align:right'><b>{html.escape(value)}</b></td>"
            f"<td style='text-align:left;color:#555'>{html.escape(meaning)}</td></tr>"
            for label, value, meaning in self.rows()
        )
        note = _noise_caption(self.offline)
        return f"<table class='flexaudio-analysis' style='font-size:90%'>{cells}{note}</table>"


NOISE_NOTE = f"{OFFLINE_NOTICE}: these numbers describe noise"


def _noise_caption(offline: bool) -> str:
    style = "color:firebrick;caption-side:bottom"
    return f"<caption style='{style}'>{html.escape(NOISE_NOTE)}</caption>" if offline else ""


def _number(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _hz(value: float | None) -> str:
    return "silent" if value is None else f"{value:,.0f} Hz"


def _lufs(value: float | None) -> str:
    if value is None:
        return "n/a (< 0.4 s)"
    return "silent" if not math.isfinite(value) else f"{value:.1f} LUFS"


def _tempo(analysis: Analysis) -> str:
    return "no clear beat" if analysis.tempo_bpm is None else f"{analysis.tempo_bpm:.1f} bpm"


_ROWS: list[tuple[str, str, Callable[[Analysis], str]]] = [
    ("duration_s", "duration", lambda a: f"{a.duration_s:.2f} s, {a.channels} ch"),
    ("loudness_lufs", "loudness", lambda a: _lufs(a.loudness_lufs)),
    ("peak_dbfs", "peak", lambda a: f"{a.peak_dbfs:.1f} dBFS" if math.isfinite(a.peak_dbfs) else "silent"),
    ("clipped_fraction", "clipped", lambda a: f"{100 * a.clipped_fraction:.2f} %"),
    ("leading_silence_s", "silence at start", lambda a: f"{a.leading_silence_s:.2f} s"),
    ("trailing_silence_s", "silence at end", lambda a: f"{a.trailing_silence_s:.2f} s"),
    ("tempo_bpm", "tempo", _tempo),
    ("beat_confidence", "beat confidence", lambda a: f"{a.beat_confidence:.2f}"),
    ("beat_times_s", "beats", lambda a: f"{len(a.beat_times_s)} beats"),
    ("centroid_hz", "brightness", lambda a: _hz(a.centroid_hz)),
    ("rolloff_hz", "85 % roll-off", lambda a: _hz(a.rolloff_hz)),
    ("flatness", "noisiness (flatness)", lambda a: _number(a.flatness)),
    ("onsets_per_s", "onsets", lambda a: f"{a.onsets_per_s:.1f} /s"),
    ("stereo_width", "stereo width", lambda a: _number(a.stereo_width, 2)),
]


# ----- measuring ---------------------------------------------------------------------------
def audio_of(clip: Any) -> tuple[np.ndarray, int, Any]:
    """(float32 samples (channels, frames), sample rate, the Clip or None), checked for analysis."""
    if isinstance(clip, str | os.PathLike):
        clip = Clip.load(clip)  # InvalidAudioFile, naming the file, when it is not audio
    try:
        samples, rate, source = audio_arrays(clip)
    except TypeError:
        raise TypeError(
            f"expected a Clip, a (samples, sample_rate) pair or a file path, got {type(clip).__name__}"
        ) from None
    except ValueError as exc:
        raise AnalysisError(str(exc)) from None
    if rate <= 0:
        raise AnalysisError(f"the sample rate must be positive, got {rate}")
    if samples.shape[1] == 0:
        raise AnalysisError("cannot analyse an empty clip: it has no samples")
    finite = np.isfinite(samples)
    if not finite.all():
        bad = samples.size - int(np.count_nonzero(finite))
        raise AnalysisError(
            f"cannot analyse a clip with NaN or infinite samples ({bad} of {samples.size}): "
            "the audio is broken upstream"
        )
    return samples, rate, source


def analyze(clip: Any) -> Analysis:
    """Measure a clip: loudness, tempo and beats, brightness, noisiness, rhythm density, stereo width.

    Results for a `Clip` are remembered while the clip lives, so plots, checks and the explorer's
    history can all ask again for free.
    """
    return _analysis(*audio_of(clip))


def _analysis(samples: np.ndarray, rate: int, source: Any) -> Analysis:
    if source is not None and source in _ANALYSES:
        return _ANALYSES[source]
    import librosa  # imported on use: about 1 s the first time

    facts = source.facts if isinstance(source, Clip) else measure(samples, rate)
    duration = facts.duration

    # One power spectrogram of the mono mix serves every spectral measure and the onset strength.
    power = power_spectrogram(  # (frames, bins)
        samples.mean(axis=0, dtype=np.float32), n_fft=N_FFT, hop_length=HOP
    )
    audible = frame_energy(power) > 10 ** (SILENT_FRAME_DBFS / 10)
    centroid = rolloff = flatness = None
    if audible.any():
        shape = spectral_shape(power, rate)
        centroid, rolloff, flatness = (float(np.median(values[audible])) for values in shape)

    mel = mel_power(power, rate, n_mels=N_MELS)
    onset_envelope = librosa.onset.onset_strength(S=librosa.power_to_db(mel), sr=rate, hop_length=HOP)
    onsets = librosa.onset.onset_detect(onset_envelope=onset_envelope, sr=rate, hop_length=HOP)
    tempo, confidence, beats = _tempo_and_beats(onset_envelope, rate, duration)
    analysis = Analysis(
        duration_s=duration,
        channels=facts.channels,
        loudness_lufs=facts.lufs,
        peak_dbfs=facts.peak_dbfs,
        clipped_fraction=facts.clipped_samples / samples.size,
        leading_silence_s=facts.leading_silence,
        trailing_silence_s=facts.trailing_silence,
        tempo_bpm=tempo,
        beat_confidence=confidence,
        beat_times_s=beats,
        centroid_hz=centroid,
        rolloff_hz=rolloff,
        flatness=flatness,
        onsets_per_s=len(onsets) / duration if audible.any() else 0.0,
        stereo_width=stereo_width(samples),
        offline=bool(getattr(source, "offline", False)),
    )
    if source is not None:
        _ANALYSES[source] = analysis
    return analysis


_ANALYSES: weakref.WeakKeyDictionary[Clip, Analysis] = weakref.WeakKeyDictionary()


def frame_energy(power: np.ndarray) -> np.ndarray:
    """Mean square of each frame's samples (Parseval, undoing the Hann window's 0.375 mean square)."""
    total = 2 * power.sum(axis=1) - power[:, 0] - power[:, -1]
    return total / (N_FFT**2 * 0.375)


def spectral_shape(power: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per frame: spectral centroid and 85 % roll-off (Hz), and flatness, as librosa defines them.

    Centroid and roll-off of the magnitude, flatness of the power with librosa's 1e-10 floor;
    written out because librosa's functions check and reshape their input on each call (3x slower).
    """
    magnitude = np.sqrt(power)
    frequencies = np.fft.rfftfreq(N_FFT, 1.0 / rate).astype(np.float32)
    totals = magnitude.sum(axis=1)
    centroid = (magnitude @ frequencies) / np.maximum(totals, 1e-10)
    below = np.cumsum(magnitude, axis=1) >= 0.85 * totals[:, None]
    rolloff = frequencies[np.argmax(below, axis=1)]
    floored = np.maximum(power, 1e-10)
    flatness = np.exp(np.log(floored).mean(axis=1)) / floored.mean(axis=1)
    return centroid, rolloff, flatness


def _tempo_and_beats(
    onset_envelope: np.ndarray, rate: int, duration: float
) -> tuple[float | None, float, tuple[float, ...]]:
    """(tempo in bpm or None, beat confidence, beat times) from librosa's tempo prior and beat tracker."""
    import librosa

    if duration < MIN_TEMPO_SECONDS or not onset_envelope.any():
        return None, 0.0, ()
    # One autocorrelation of the whole clip, a tempogram of a single column: librosa's own
    # tempogram (one per frame) gives the same tempo for a steady clip, at 20x the cost.
    autocorrelation = onset_autocorrelation(onset_envelope)
    estimate = float(librosa.feature.tempo(tg=autocorrelation[:, None], sr=rate, hop_length=HOP)[0])
    period = 60.0 / estimate * rate / HOP
    confidence = float(autocorrelation[max(1, math.floor(period)) : math.ceil(period) + 1].max())
    if confidence < CLEAR_BEAT:
        return None, confidence, ()
    _, beats = librosa.beat.beat_track(
        onset_envelope=onset_envelope, sr=rate, hop_length=HOP, bpm=estimate, units="time"
    )
    beats = _regular_ends(np.asarray(beats))
    if len(beats) < 2:
        return None, confidence, ()
    return _refined_tempo(beats, estimate), confidence, tuple(float(t) for t in beats)


def onset_autocorrelation(onset_envelope: np.ndarray, lags: int = TEMPOGRAM_LAGS) -> np.ndarray:
    """The normalised autocorrelation of the onset strength at lags 0..lags-1 (1 at lag 0, ≥ 0).

    How strongly the onsets repeat after each lag: a beat is a high peak at its period; noise
    stays near 0 (the mean is removed first, so a busy but irregular clip does not look regular).
    """
    x = np.convolve(onset_envelope - onset_envelope.mean(), [0.25, 0.5, 0.25], mode="same")
    size = 1 << int(2 * len(x) - 1).bit_length()
    spectrum = np.fft.rfft(x, size)
    correlation = np.fft.irfft(spectrum * np.conj(spectrum), size)[:lags]
    if len(correlation) < lags:
        correlation = np.pad(correlation, (0, lags - len(correlation)))
    if correlation[0] <= 0:
        return np.zeros(lags)
    return np.clip(correlation / correlation[0], 0.0, 1.0)


def _regular_ends(beats: np.ndarray) -> np.ndarray:
    """Drop first or last beats whose spacing is more than 20 % off the median (the tracker guesses there)."""
    while len(beats) >= 4:
        intervals = np.diff(beats)
        median = np.median(intervals)
        if abs(intervals[-1] - median) > 0.2 * median:
            beats = beats[:-1]
        elif abs(intervals[0] - median) > 0.2 * median:
            beats = beats[1:]
        else:
            break
    return beats


def _refined_tempo(beats: np.ndarray, estimate: float) -> float:
    """The tempo from a straight line through the beat times (finer than the tracker's frame grid).

    The estimate comes from a whole number of frames between beats (at 44.1 kHz, 128 bpm reads
    as 129.2); the beats together pin the period down. Kept only when it agrees.
    """
    if len(beats) < 4:
        return estimate
    slope = np.polyfit(np.arange(len(beats)), beats, 1)[0]
    refined = 60.0 / slope if slope > 0 else estimate
    return refined if abs(refined - estimate) <= 0.05 * estimate else estimate


def stereo_width(samples: np.ndarray) -> float:
    """Side / mid energy of a stereo clip: 0 for identical channels (and for mono or silence)."""
    samples = np.atleast_2d(samples)
    if samples.shape[0] != 2:
        return 0.0
    left, right = samples
    mid, side = left + right, left - right
    mid, side = float(np.dot(mid, mid)), float(np.dot(side, side))
    if side == 0.0:
        return 0.0
    return side / mid if mid > 0 else math.inf  # inf: the channels cancel out (opposite polarity)


def centroid_curve(clip: Any) -> tuple[np.ndarray, np.ndarray]:
    """(frame times in s, spectral centroid in Hz per frame; NaN where silent), for drawing."""
    samples, rate, _ = audio_of(clip)
    power = power_spectrogram(samples.mean(axis=0, dtype=np.float32), n_fft=N_FFT, hop_length=HOP)
    centroid = spectral_shape(power, rate)[0]
    centroid[frame_energy(power) <= 10 ** (SILENT_FRAME_DBFS / 10)] = np.nan
    return np.arange(centroid.size) * HOP / rate, centroid


def headline(clip: Any) -> str:
    """Tempo, loudness and brightness on one line, for lists: ``128 bpm · -14.2 LUFS · 2,310 Hz``."""
    try:
        analysis = analyze(clip)
    except AnalysisError:
        return "not analysable"
    tempo = "no beat" if analysis.tempo_bpm is None else f"{analysis.tempo_bpm:.0f} bpm"
    return f"{tempo} · {_lufs(analysis.loudness_lufs)} · {_hz(analysis.centroid_hz)}"


# ----- the prompt ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Hint:
    """Something a prompt asks for that can be measured.

    `kind` is "tempo" (with `bpm`) or "brightness" (with `brightness`: "bright" or "dark").
    `avoid` is True when it came from the negative prompt (the model should steer away from it).
    """

    kind: str
    words: str  # as written in the prompt, e.g. "128 bpm" or "muffled"
    bpm: float | None = None
    brightness: str | None = None
    avoid: bool = False

    @property
    def asked(self) -> str:
        return f"not {self.words}" if self.avoid else self.words


TEMPO_PATTERN = re.compile(r"(\d{2,3}(?:\.\d+)?)\s*-?\s*(?:bpm|beats per minute)\b", re.IGNORECASE)
NEGATION = re.compile(r"\b(?:not|no|without|non)[\s-]+$", re.IGNORECASE)


def prompt_hints(prompt: str | None, negative_prompt: str | None = None) -> list[Hint]:
    """The measurable requests in a prompt: a tempo ("128 bpm") and brightness words.

    Words from `negative_prompt` (or after "not", "no", "without") become hints to avoid.
    """
    hints: list[Hint] = []
    for text, avoid in ((prompt or "", False), (negative_prompt or "", True)):
        found: list[tuple[int, Hint]] = []  # (position in the text, hint), to keep the text's order
        for match in TEMPO_PATTERN.finditer(text):
            bpm = float(match.group(1))
            if 20 <= bpm <= 400:
                negated = bool(NEGATION.search(text[: match.start()]))
                found.append((match.start(), Hint("tempo", match.group(0), bpm=bpm, avoid=avoid != negated)))
        for brightness, words in (("bright", BRIGHT_WORDS), ("dark", DARK_WORDS)):
            for match in re.finditer(rf"\b(?:{'|'.join(words)})\b", text, re.IGNORECASE):
                negated = bool(NEGATION.search(text[: match.start()]))
                hint = Hint(
                    "brightness", match.group(0).lower(), brightness=brightness, avoid=avoid != negated
                )
                found.append((match.start(), hint))
        hints += [hint for _, hint in sorted(found, key=lambda item: item[0])]
    return hints


@dataclass(frozen=True)
class HintCheck:
    """One hint beside its measurement: `followed` is True, False, or None when it cannot be told."""

    hint: Hint
    measured: str
    followed: bool | None

    @property
    def mark(self) -> str:
        return {True: "✓", False: "✗", None: "?"}[self.followed]

    def __str__(self) -> str:
        return f"asked {self.hint.asked}, measured {self.measured} {self.mark}"


@dataclass(frozen=True)
class PromptCheck:
    """Each measurable request of a clip's prompt beside what the clip measures."""

    prompt: str | None
    negative_prompt: str | None
    checks: tuple[HintCheck, ...]
    analysis: Analysis

    def lines(self) -> list[str]:
        if self.prompt is None:
            lines = ["no prompt to check: the clip carries no request (saved by another program?)"]
        elif not self.checks:
            lines = ["the prompt asks for nothing measurable here (a tempo in bpm, or bright/dark words)"]
        else:
            lines = [str(check) for check in self.checks]
        if self.analysis.offline:
            lines.append(f"{OFFLINE_NOTICE}: it has no beat and no meaning, so no ✓ or ✗ can be given")
        return lines

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def _repr_html_(self) -> str:
        items = "".join(f"<li>{html.escape(line)}</li>" for line in self.lines())
        return f"<ul class='flexaudio-check' style='margin:0'>{items}</ul>"


def check(clip: Any, analysis: Analysis | None = None) -> PromptCheck:
    """Put each measurable request of the clip's prompt (and negative prompt) beside its measurement."""
    samples, rate, source = audio_of(clip)
    analysis = analysis or _analysis(samples, rate, source)
    request = getattr(source, "request", None)
    prompt = request.inputs if request is not None else None
    negative = request.parameters.negative_prompt if request is not None else None
    checks = tuple(check_hint(hint, analysis) for hint in prompt_hints(prompt, negative))
    if analysis.offline:  # noise from random weights: a ✓ would be luck, a ✗ no surprise
        checks = tuple(HintCheck(c.hint, c.measured, None) for c in checks)
    return PromptCheck(prompt, negative, checks, analysis)


def check_hint(hint: Hint, analysis: Analysis) -> HintCheck:
    """One hint against an analysis."""
    if hint.kind == "tempo":
        if analysis.tempo_bpm is None:
            return HintCheck(hint, f"no clear beat (confidence {analysis.beat_confidence:.2f})", hint.avoid)
        measured = analysis.tempo_bpm
        ratio = measured / hint.bpm
        text = f"{measured:.1f} bpm"
        if abs(ratio - 1) <= TEMPO_TOLERANCE:
            return HintCheck(hint, text, not hint.avoid)
        for multiple, name in ((2.0, "double"), (0.5, "half")):
            if abs(ratio / multiple - 1) <= TEMPO_TOLERANCE:
                return HintCheck(hint, f"{text} ({name} time)", None)
        return HintCheck(hint, text, hint.avoid)
    centroid = analysis.centroid_hz
    if centroid is None:
        return HintCheck(hint, "silence", None)
    if centroid <= DARK_CENTROID_HZ:
        heard = "dark"
    elif centroid >= BRIGHT_CENTROID_HZ:
        heard = "bright"
    else:
        heard = "neither dark nor bright"
    text = f"centroid {centroid:,.0f} Hz ({heard})"
    if hint.avoid:
        return HintCheck(hint, text, heard != hint.brightness)
    return HintCheck(
        hint, text, True if heard == hint.brightness else None if heard.startswith("neither") else False
    )


@dataclass(frozen=True)
class AnalysisTable:
    """Several clips' analyses side by side: one row per measurement, one column per clip."""

    names: tuple[str, ...]
    analyses: tuple[Analysis, ...]

    def rows(self) -> list[tuple[str, list[str], str]]:
        """(quantity, the value for each clip, meaning)."""
        per_clip = [analysis.rows() for analysis in self.analyses]
        return [
            (label, [rows[index][1] for rows in per_clip], meaning)
            for index, (label, _, meaning) in enumerate(per_clip[0])
        ]

    def __str__(self) -> str:
        rows = self.rows()
        width = max(len(label) for label, _, _ in rows)
        columns = [
            max(len(name), *(len(values[i]) for _, values, _ in rows)) for i, name in enumerate(self.names)
        ]
        header = " " * width + "".join(f"  {name:>{w}}" for name, w in zip(self.names, columns, strict=True))
        lines = [header] + [
            f"{label:<{width}}" + "".join(f"  {value:>{w}}" for value, w in zip(values, columns, strict=True))
            for label, values, _ in rows
        ]
        if any(analysis.offline for analysis in self.analyses):
            lines.append(f"({NOISE_NOTE})")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        head = "".join(f"<th style='text-align:right'>{html.escape(name)}</th>" for name in self.names)
        body = "".join(
            f"<tr><td>{html.escape(label)}</td>"
            + "".join(f"<td style='text-align:right'>{html.escape(value)}</td>" for value in values)
            + f"<td style='text-align:left;color:#555'>{html.escape(meaning)}</td></tr>"
            for label, values, meaning in self.rows()
        )
        note = _noise_caption(any(analysis.offline for analysis in self.analyses))
        return (
            f"<table class='flexaudio-comparison' style='font-size:90%'><tr><th></th>{head}<th></th></tr>"
            f"{body}{note}</table>"
        )


def compare(clips: dict[str, Any]) -> AnalysisTable:
    """Analyse several clips, named by the keys of `clips`, into one side-by-side table."""
    if not clips:
        raise ValueError("compare needs at least one clip")
    return AnalysisTable(tuple(clips), tuple(analyze(clip) for clip in clips.values()))


# ----- two clips ----------------------------------------------------------------------------
SIMILARITY_NOTE = (
    f"{OFFLINE_NOTICE}: its random autoencoder does not reconstruct a source, so this number means nothing"
)


class Similarity(float):
    """A `similarity` score: a float from -1 to 1 that also knows whether an offline clip was compared.

    Printed, an offline score says that it means nothing (`SIMILARITY_NOTE`).
    """

    offline: bool

    def __new__(cls, value: float, offline: bool = False) -> Similarity:
        score = super().__new__(cls, value)
        score.offline = offline
        return score

    def __str__(self) -> str:
        return f"{float(self):.2f}" + (f" ({SIMILARITY_NOTE})" if self.offline else "")

    def __repr__(self) -> str:
        return f"Similarity({float(self):.3f}, offline={self.offline})"


def similarity(a: Any, b: Any) -> Similarity:
    """How alike clips `a` and `b` sound: the correlation of their log-mel spectrograms, -1 to 1.

    Each mel band's average over time is set aside first, so what is compared is how the two
    clips change, in time and pitch. 1.0: the same changes at the same moments, i.e. the same
    sound, at any loudness or through another EQ. 0: where one clip has its energy says nothing
    about where the other has it (two unrelated noises, even of one colour). In between, e.g.
    0.4 for a tune against the same tune under noise as loud as it. Audio-to-audio from `a` at a
    low init noise level gives a `b` near 1; a high level gives a lower score.

    The channels are mixed, bins more than 80 dB below a clip's loudest count as that quiet, and
    a longer clip is compared over the shorter one's length. The result is a float; from the
    offline model, its text says that it means nothing (the random autoencoder does not
    reconstruct a source). Raises `AnalysisError` for different sample rates or a silent clip.
    """
    changes, rates, offline = [], [], False
    for clip in (a, b):
        samples, rate, source = audio_of(clip)
        db = mel_spectrogram(samples, rate, n_mels=N_MELS, hop_length=HOP, n_fft=N_FFT).db
        changes.append(np.maximum(db, db.max() - TOP_DB).astype(np.float64))
        rates.append(rate)
        offline = offline or bool(getattr(source, "offline", False))
    if rates[0] != rates[1]:
        raise AnalysisError(f"cannot compare clips at {rates[0]} Hz and {rates[1]} Hz: resample one first")
    frames = min(db.shape[1] for db in changes)
    x, y = ((db[:, :frames] - db[:, :frames].mean(axis=1, keepdims=True)).ravel() for db in changes)
    scale = math.sqrt(float(np.dot(x, x)) * float(np.dot(y, y)))
    if scale == 0.0:
        raise AnalysisError("cannot compare a silent clip: its spectrogram never changes")
    return Similarity(min(1.0, max(-1.0, float(np.dot(x, y)) / scale)), offline)
