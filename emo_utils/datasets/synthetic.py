"""A synthetic competition folder for demos and tests.

:func:`make_demo_dataset` writes a folder with the layout and CSV schema of the HackerEarth
"Predict the Emotion" competition (MELD-style utterances, seven emotions)::

    OUT/
      train.csv               filename,emotion
      test.csv                filename
      sample_submission.csv   filename,emotion (every test row, label "neutral")
      test_answers.csv        filename,emotion (the held-out truth; never read for training)
      train/18777.mp3 ...     audio, ~90 % mp3 and ~10 % wav
      test/692.mp3 ...
      .demo_complete.json     parameters and file list, written last

The clips are voice-like sounds made with numpy/scipy only: a Rosenberg glottal pulse train
(pitch contour, jitter, shimmer, creak, breath noise, spectral tilt) through a cascade of
formant resonators that switches vowel at every syllable (words of 1-4 syllables, pauses,
fricative onsets), then optional room reverb, background noise at a random SNR and a random
recording level.  Each emotion shifts the distributions of pitch, pitch range and contour
(:data:`CONTOURS`), speaking rate, pauses, loudness, voice quality and formants
(:data:`EMOTION_PROFILES`); speaker variation (sex, vocal-tract length, habitual pitch) and
per-clip spreads (:data:`SPREADS`) make the classes overlap, so they can be learnt but not
perfectly (a logistic regression on MFCC mean/std reaches about 60 % accuracy against a
majority rate of 45 %).

The mix of files follows the real data: numeric file names, the real class imbalance (with at
least ``min_per_class`` training clips per class so stratified 5-fold CV works), durations of
0.5-20 s (most 1-6 s), sample rates 16/22.05/44.1/48 kHz, about 15 % stereo.  Output is
deterministic for a seed: wav, flac and mp3 files are byte-identical between runs, ogg files
decode to identical samples (libsndfile gives each Ogg stream a random serial number).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import soundfile as sf
from joblib import Parallel, delayed
from scipy import signal
from tqdm.auto import tqdm

from .._console import interactive
from ..errors import ConfigError, DataError
from ..fileio import atomic_path, read_json, write_csv, write_json

__all__ = [
    "AUDIO_FORMATS",
    "CONTOURS",
    "DEFAULT_FORMATS",
    "DEMO_CLASSES",
    "EMOTION_PROFILES",
    "GENERATOR_VERSION",
    "MARKER_NAME",
    "REAL_CLASS_COUNTS",
    "SAMPLE_RATES",
    "SPREADS",
    "EmotionProfile",
    "demo_label_counts",
    "demo_plan",
    "make_demo_dataset",
    "synthesize_voice",
]

#: Bump when the generator's output changes, so existing demo folders are regenerated.
GENERATOR_VERSION = 1

MARKER_NAME = ".demo_complete.json"
PLAN_NAME = ".demo_plan.json"
_CSV_NAMES = ("train.csv", "test.csv", "sample_submission.csv", "test_answers.csv")

#: Label counts of the real competition's ``train.csv`` (5816 clips).
REAL_CLASS_COUNTS: dict[str, int] = {
    "neutral": 2630,
    "joy": 967,
    "surprise": 640,
    "anger": 596,
    "sadness": 344,
    "fear": 328,
    "disgust": 311,
}
DEMO_CLASSES: tuple[str, ...] = tuple(sorted(REAL_CLASS_COUNTS))

#: File format name -> ``soundfile.write`` keyword arguments.
AUDIO_FORMATS: dict[str, dict[str, str]] = {
    "mp3": {"format": "MP3", "subtype": "MPEG_LAYER_III"},
    "wav": {"format": "WAV", "subtype": "PCM_16"},
    "flac": {"format": "FLAC", "subtype": "PCM_16"},
    "ogg": {"format": "OGG", "subtype": "VORBIS"},
}
#: Share of each format in the real data (7529 mp3, 779 wav).
DEFAULT_FORMATS: dict[str, float] = {"mp3": 0.9, "wav": 0.1}
#: Sample rate -> share of the clips.
SAMPLE_RATES: dict[int, float] = {16000: 0.3, 22050: 0.2, 44100: 0.35, 48000: 0.15}
STEREO_SHARE = 0.15
LONG_SHARE = 0.03  # clips of 8-20 s
MIN_DURATION, MAX_DURATION = 0.5, 20.0
_ID_RANGE = 52139  # largest file id in the real CSVs

_FRAME_RATE = 200  # control-signal frames per second (5 ms)

# Formants (Hz) of an adult male vocal tract: F1-F4 per vowel.
_VOWELS = np.array(
    [
        [730, 1090, 2440, 3400],  # a
        [530, 1840, 2480, 3500],  # e
        [270, 2290, 3010, 3700],  # i
        [570, 840, 2410, 3300],  # o
        [300, 870, 2240, 3300],  # u
        [660, 1720, 2410, 3400],  # ae
        [640, 1190, 2390, 3400],  # uh
    ],
    dtype=float,
)
_BANDWIDTHS = np.array([80.0, 100.0, 150.0, 220.0])


# --------------------------------------------------------------------------- emotions
@dataclass(frozen=True)
class EmotionProfile:
    """How one emotion shifts the voice; every value is a per-clip mean (spreads are global).

    Attributes
    ----------
    pitch_st : float
        Pitch offset from the speaker's habitual pitch, in semitones.
    range_st : float
        Size of the pitch contour, in semitones.
    contour : str
        Name in :data:`CONTOURS`.
    rate : float
        Syllables per second.
    pause : float
        Mean pause between words, in seconds.
    level_db : float
        Loudness offset in dB.
    tilt : float
        One-pole low-pass coefficient of the glottal source (higher: darker, softer voice).
    breath : float
        Aspiration noise relative to the voiced source.
    jitter : float
        Relative pitch perturbation per 5 ms frame.
    shimmer : float
        Relative amplitude perturbation per glottal cycle.
    creak : float
        Share of glottal cycles that are weakened (vocal fry).
    formant_shift : float
        Relative shift of all formants (smiling raises them).
    """

    pitch_st: float
    range_st: float
    contour: str
    rate: float
    pause: float
    level_db: float
    tilt: float
    breath: float
    jitter: float
    shimmer: float
    creak: float
    formant_shift: float


# fmt: off
EMOTION_PROFILES: dict[str, EmotionProfile] = {
    #                         pitch range contour     rate pause level tilt breath jitter shimmer creak formants
    "neutral":  EmotionProfile(0.0, 2.0, "declining", 4.2, 0.15, 0.0, 0.75, 0.05, 0.006, 0.04, 0.02, 0.00),
    "anger":    EmotionProfile(2.5, 4.0, "accented",  5.2, 0.10, 6.0, 0.45, 0.04, 0.010, 0.06, 0.02, 0.06),
    "joy":      EmotionProfile(4.0, 5.0, "bouncy",    4.8, 0.12, 3.0, 0.62, 0.06, 0.008, 0.05, 0.01, 0.07),
    "sadness":  EmotionProfile(-2.5, 1.2, "falling",  2.8, 0.35, -6.0, 0.88, 0.30, 0.012, 0.07, 0.06, -0.05),
    "fear":     EmotionProfile(5.0, 3.0, "tremor",    5.6, 0.18, -2.0, 0.72, 0.20, 0.030, 0.10, 0.02, 0.02),
    "surprise": EmotionProfile(4.0, 7.0, "rising",    4.4, 0.15, 3.0, 0.62, 0.10, 0.008, 0.05, 0.01, 0.03),
    "disgust":  EmotionProfile(-2.0, 2.5, "fall_rise", 3.2, 0.25, -1.0, 0.80, 0.12, 0.018, 0.09, 0.45, -0.03),
}
# fmt: on


#: Per-clip spreads around a profile's means (normal sd; log-normal sd for ratios), plus
#: speaker variation and recording conditions.  Together they set how much emotions overlap.
SPREADS: dict[str, float] = {
    "speaker_f0": 0.08,  # habitual pitch, log-normal (~1.4 semitones)
    "speaker_vtl": 0.03,  # vocal-tract length, log-normal
    "pitch_st": 1.0,
    "range": 0.2,
    "rate": 0.1,
    "pause": 0.2,
    "level_db": 1.75,
    "tilt": 0.035,
    "breath": 0.25,
    "voice_quality": 0.2,  # jitter, shimmer, creak
    "formants": 0.01,
    "recording_db": 1.5,
    "snr_db_low": 10.0,
    "snr_db_high": 40.0,
    "reverb_share": 0.3,
}


# A contour maps (utterance position u, word position w, syllable position s, time t in s, rng)
# to a pitch offset in units of the clip's pitch range (semitones = range * contour).
Contour = Callable[..., np.ndarray]


def _declining(
    *, u: np.ndarray, w: np.ndarray, s: np.ndarray, t: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    return 0.3 * (0.5 - u) + 0.15 * np.sin(np.pi * w)


def _falling(
    *, u: np.ndarray, w: np.ndarray, s: np.ndarray, t: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    return 0.6 * (0.5 - u) + 0.4 * (0.5 - w)


def _rising(
    *, u: np.ndarray, w: np.ndarray, s: np.ndarray, t: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    return 0.6 * w**2 + 0.5 * u**2 - 0.3


def _accented(
    *, u: np.ndarray, w: np.ndarray, s: np.ndarray, t: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    return 0.8 * (1.0 - w) ** 2 - 0.3


def _bouncy(
    *, u: np.ndarray, w: np.ndarray, s: np.ndarray, t: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    return 0.5 * np.sin(np.pi * s) + 0.25 * np.sin(2 * np.pi * w)


def _tremor(
    *, u: np.ndarray, w: np.ndarray, s: np.ndarray, t: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    rate = rng.uniform(5.0, 8.0)
    return 0.25 * np.sin(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi)) + 0.2 * u


def _fall_rise(
    *, u: np.ndarray, w: np.ndarray, s: np.ndarray, t: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    return -0.6 * np.sin(np.pi * w) + 0.2


#: Pitch contour name -> function of the position in the utterance, word and syllable.
CONTOURS: dict[str, Contour] = {
    "declining": _declining,
    "falling": _falling,
    "rising": _rising,
    "accented": _accented,
    "bouncy": _bouncy,
    "tremor": _tremor,
    "fall_rise": _fall_rise,
}


# --------------------------------------------------------------------------- planning
def _allocate(n: int, weights: Sequence[float], minimum: int = 0) -> np.ndarray:
    """Split ``n`` items in proportion to ``weights`` (largest remainder), each >= ``minimum``."""
    w = np.asarray(weights, dtype=float)
    counts = np.zeros(len(w), dtype=int)
    fixed = np.zeros(len(w), dtype=bool)
    while True:
        free = n - minimum * fixed.sum()
        share = np.where(fixed, 0.0, w) / w[~fixed].sum() * free
        counts = np.floor(share).astype(int)
        order = np.argsort(-(share - counts), kind="stable")
        counts[order[: free - counts.sum()]] += 1
        low = (~fixed) & (counts < minimum)
        if not low.any():
            break
        fixed |= low
    counts[fixed] = minimum
    return counts


def demo_label_counts(n: int, *, minimum: int = 5) -> dict[str, int]:
    """Number of clips per emotion for a split of ``n`` clips.

    Proportional to the real ``train.csv`` (largest-remainder rounding); classes below
    ``minimum`` are raised to it at the expense of the others.

    Parameters
    ----------
    n : int
        Clips in the split.
    minimum : int, default 5
        Smallest count of any class (5 lets 5-fold stratified CV see every class per fold).

    Returns
    -------
    dict of str to int
        Emotion -> count, most common first (the real order), summing to ``n``.

    Raises
    ------
    ConfigError
        If ``n`` is smaller than ``minimum`` times the number of classes.
    """
    n_classes = len(REAL_CLASS_COUNTS)
    if n < minimum * n_classes or n < 0:
        raise ConfigError(
            "n", n, f"need at least {minimum * n_classes} clips ({minimum} per class x {n_classes})"
        )
    counts = _allocate(n, list(REAL_CLASS_COUNTS.values()), minimum)
    return dict(zip(REAL_CLASS_COUNTS, (int(c) for c in counts), strict=True))


def _normalise_formats(formats: Mapping[str, float] | Sequence[str]) -> dict[str, float]:
    if isinstance(formats, str):
        formats = [formats]
    if not isinstance(formats, Mapping):
        formats = dict.fromkeys(formats, 1.0)
    if not formats:
        raise ConfigError("formats", formats, "give at least one audio format")
    out: dict[str, float] = {}
    for name, weight in formats.items():
        key = str(name).lower().lstrip(".")
        if key not in AUDIO_FORMATS:
            raise ConfigError(
                "formats", name, f"unknown audio format; known: {sorted(AUDIO_FORMATS)}"
            )
        try:
            share = float(weight)
        except (TypeError, ValueError):
            share = float("nan")
        if not share > 0:
            raise ConfigError("formats", dict(formats), f"weight of {name!r} must be a number > 0")
        out[key] = share
    total = sum(out.values())
    return {k: round(v / total, 6) for k, v in out.items()}


def _shuffled(rng: np.random.Generator, values: Sequence[Any], counts: np.ndarray) -> np.ndarray:
    return rng.permutation(np.repeat(np.asarray(values), counts))


def demo_plan(
    *,
    n_train: int = 350,
    n_test: int = 150,
    seed: int = 0,
    formats: Mapping[str, float] | Sequence[str] = DEFAULT_FORMATS,
    min_per_class: int = 5,
) -> pd.DataFrame:
    """Every clip of the demo folder, without synthesising any audio.

    Parameters
    ----------
    n_train, n_test : int
        Clips in ``train.csv`` and ``test.csv``.
    seed : int
        Seed of the whole folder.
    formats : mapping of str to float, or sequence of str
        Audio formats (keys of :data:`AUDIO_FORMATS`) and their shares; a sequence means equal
        shares.  Every listed format gets at least one clip when there are enough clips.
    min_per_class : int, default 5
        Smallest number of training clips of any class.

    Returns
    -------
    pandas.DataFrame
        One row per clip, train rows first, in CSV order, with columns ``split``
        (``"train"``/``"test"``), ``filename``, ``emotion``, ``format``, ``sample_rate``,
        ``channels``, ``duration`` (seconds) and ``clip_seed``.

    Raises
    ------
    ConfigError
        Too few training clips for ``min_per_class``, ``n_test`` < 1, or an unknown format.
    """
    if n_test < 1:
        raise ConfigError("n_test", n_test, "need at least 1 test clip")
    shares = _normalise_formats(formats)
    train_counts = demo_label_counts(n_train, minimum=min_per_class)
    test_counts = demo_label_counts(n_test, minimum=1 if n_test >= len(DEMO_CLASSES) else 0)
    n = n_train + n_test
    rng = np.random.default_rng(seed)

    ids = rng.choice(np.arange(1, max(_ID_RANGE, 2 * n) + 1), size=n, replace=False)
    labels = np.concatenate(
        [
            _shuffled(rng, list(train_counts), np.array(list(train_counts.values()))),
            _shuffled(rng, list(test_counts), np.array(list(test_counts.values()))),
        ]
    )
    fmt_min = 1 if n >= len(shares) else 0
    fmts = _shuffled(rng, list(shares), _allocate(n, list(shares.values()), fmt_min))
    sr_min = 1 if n >= len(SAMPLE_RATES) else 0
    rates = _shuffled(rng, list(SAMPLE_RATES), _allocate(n, list(SAMPLE_RATES.values()), sr_min))
    n_stereo = max(1, round(STEREO_SHARE * n))
    channels = _shuffled(rng, [1, 2], np.array([n - n_stereo, n_stereo]))
    n_long = max(1, round(LONG_SHARE * n)) if n >= 20 else 0
    durations = np.clip(rng.lognormal(np.log(2.8), 0.55, size=n), MIN_DURATION, 8.0)
    long_rows = rng.choice(n, size=n_long, replace=False)
    durations[long_rows] = rng.uniform(8.0, MAX_DURATION, size=n_long)
    clip_seeds = rng.integers(0, 2**63 - 1, size=n)

    return pd.DataFrame(
        {
            "split": ["train"] * n_train + ["test"] * n_test,
            "filename": [f"{i}.{f}" for i, f in zip(ids, fmts, strict=True)],
            "emotion": labels,
            "format": fmts,
            "sample_rate": rates.astype(int),
            "channels": channels.astype(int),
            "duration": np.round(durations, 3),
            "clip_seed": clip_seeds,
        }
    )


# --------------------------------------------------------------------------- synthesis
def _timeline(
    duration: float, *, rate: float, pause: float, rng: np.random.Generator
) -> list[tuple[float, float, int, int, float]]:
    """Syllables ``(start, end, word index, vowel, stress)`` filling ``duration`` seconds."""
    lead = rng.uniform(0.03, min(0.4, 0.15 * duration))
    tail = rng.uniform(0.03, min(0.4, 0.15 * duration))
    end_speech = duration - tail
    syllables = []
    t, word = lead, 0
    while t < end_speech - 0.08 or not syllables:
        for _ in range(rng.integers(1, 5)):
            length = rng.lognormal(np.log(1.0 / rate), 0.25)
            if t + 0.08 > end_speech and syllables:
                break
            stop = min(t + length, end_speech)
            syllables.append(
                (t, stop, word, int(rng.integers(len(_VOWELS))), rng.uniform(0.6, 1.0))
            )
            t = stop
        t += rng.exponential(pause)
        word += 1
    return syllables


def _raised_cosine_env(n: int, attack: int, release: int) -> np.ndarray:
    env = np.ones(n)
    a, r = min(attack, n // 2), min(release, n // 2)
    if a:
        env[:a] = 0.5 - 0.5 * np.cos(np.pi * np.arange(a) / a)
    if r:
        env[n - r :] = 0.5 + 0.5 * np.cos(np.pi * np.arange(1, r + 1) / r)
    return env


def _vowel_filters(formants: np.ndarray, bandwidths: np.ndarray, sr: int) -> np.ndarray:
    """Second-order sections of cascaded 2-pole resonators with unity DC gain (Klatt).

    ``formants`` has shape (n_vowels, n_formants), ``bandwidths`` shape (n_formants,); the
    result has shape (n_vowels, n_formants, 6).
    """
    r = np.exp(-np.pi * bandwidths / sr)
    b1 = 2 * r * np.cos(2 * np.pi * formants / sr)
    b2 = -(r**2) * np.ones_like(formants)
    sos = np.zeros((*formants.shape, 6))
    sos[..., 0] = 1 - b1 - b2
    sos[..., 3] = 1.0
    sos[..., 4] = -b1
    sos[..., 5] = -b2
    return sos


def _upsample(frames: np.ndarray, n: int, sr: int) -> np.ndarray:
    """Linear interpolation of control frames (``_FRAME_RATE`` per second) to ``n`` samples."""
    pos = np.arange(n) * (_FRAME_RATE / sr)
    return np.interp(pos, np.arange(len(frames)), frames)


def _room(y: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Add a short diffuse reverberation tail (exponentially decaying noise)."""
    rt = rng.uniform(0.15, 0.6)
    n = int(rt * sr)
    t = np.arange(n) / sr
    ir = rng.standard_normal(n) * np.exp(-6.9 * t / rt)
    ir *= rng.uniform(0.1, 0.35) / np.sqrt(np.sum(ir**2))
    ir[0] = 1.0
    return signal.fftconvolve(y, ir)[: len(y)]


def _background(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance coloured noise, sometimes with mains hum."""
    colour = rng.uniform(0.0, 0.98)  # 0: white, ~1: brown-ish
    noise = signal.lfilter([1 - colour], [1, -colour], rng.standard_normal(n))
    noise /= np.std(noise) + 1e-12
    if rng.random() < 0.3:
        mains = 2 * np.pi * rng.choice([50.0, 60.0]) * np.arange(n) / sr
        noise += rng.uniform(0.3, 2.0) * (
            np.sin(mains) + np.sin(2 * mains) / 2 + np.sin(3 * mains) / 3
        )
        noise /= np.std(noise) + 1e-12
    return noise


@dataclass(frozen=True)
class _Voice:
    """Per-clip voice parameters drawn from a profile and a random speaker."""

    f0: float
    pitch_range: float
    contour: str
    rate: float
    pause: float
    level_db: float
    tilt: float
    breath: float
    jitter: float
    shimmer: float
    creak: float
    formant_scale: float
    open_quotient: float
    #: Per-formant factors (F1-F4) on top of ``formant_scale``: a speaker's own vowel space.
    formant_offsets: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0)
    #: Factor on the formant bandwidths (a more or less damped, nasal vocal tract).
    bandwidth_scale: float = 1.0

    @classmethod
    def draw(cls, p: EmotionProfile, rng: np.random.Generator) -> _Voice:
        sd = SPREADS
        female = rng.random() < 0.5
        base_f0 = (205.0 if female else 115.0) * np.exp(rng.normal(0, sd["speaker_f0"]))
        vtl = (1.16 if female else 1.0) * np.exp(rng.normal(0, sd["speaker_vtl"]))
        breath = p.breath * np.exp(rng.normal(0, sd["breath"]))
        return cls(
            f0=base_f0 * 2 ** ((p.pitch_st + rng.normal(0, sd["pitch_st"])) / 12),
            pitch_range=p.range_st * np.exp(rng.normal(0, sd["range"])),
            contour=p.contour,
            rate=p.rate * np.exp(rng.normal(0, sd["rate"])),
            pause=p.pause * np.exp(rng.normal(0, sd["pause"])),
            level_db=p.level_db + rng.normal(0, sd["level_db"]),
            tilt=float(np.clip(p.tilt + rng.normal(0, sd["tilt"]), 0.2, 0.95)),
            breath=breath,
            jitter=p.jitter * np.exp(rng.normal(0, sd["voice_quality"])),
            shimmer=p.shimmer * np.exp(rng.normal(0, sd["voice_quality"])),
            creak=float(np.clip(p.creak * np.exp(rng.normal(0, sd["voice_quality"])), 0, 0.8)),
            formant_scale=(1 + p.formant_shift + rng.normal(0, sd["formants"])) * vtl,
            open_quotient=float(np.clip(0.55 + 0.8 * breath + rng.normal(0, 0.05), 0.4, 0.85)),
        )


def _controls(
    v: _Voice, duration: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[float, int]]]:
    """Frame-rate f0, voicing and frication envelopes, and (start time, vowel) per syllable."""
    syllables = _timeline(duration, rate=v.rate, pause=v.pause, rng=rng)
    n_frames = int(np.ceil(duration * _FRAME_RATE)) + 2
    t = np.arange(n_frames) / _FRAME_RATE
    voiced = np.zeros(n_frames)
    frication = np.zeros(n_frames)
    w = np.zeros(n_frames)  # position in the word, 0..1
    s = np.zeros(n_frames)  # position in the syllable, 0..1
    words: dict[int, list[float]] = {}
    for start, stop, word, _, _ in syllables:
        words.setdefault(word, [start, stop])[1] = stop
    for start, stop, word, _, stress in syllables:
        a = int(start * _FRAME_RATE)
        b = max(int(stop * _FRAME_RATE), a + 1)
        cons = min(int(rng.uniform(0.0, 0.3) * (b - a)), 12) if rng.random() < 0.6 else 0
        if cons:
            env = stress * _raised_cosine_env(cons, 2, 2)
            frication[a : a + cons] = np.maximum(frication[a : a + cons], env)
        env = stress * _raised_cosine_env(b - a - cons, 4, 6)
        voiced[a + cons : b] = np.maximum(voiced[a + cons : b], env)
        s[a:b] = np.linspace(0, 1, b - a, endpoint=False)
        ws, we = words[word]
        w[a:b] = (t[a:b] - ws) / max(we - ws, 1e-3)
    u = np.clip(t / duration, 0, 1)
    semis = v.pitch_range * CONTOURS[v.contour](u=u, w=w, s=s, t=t, rng=rng)
    semis += rng.normal(0, v.jitter * 17.3, size=n_frames)  # 17.3 st = 100 % in log2 units
    f0 = v.f0 * 2 ** (semis / 12)
    return f0, voiced, frication, [(start, vowel) for start, _, _, vowel, _ in syllables]


def _speech(v: _Voice, duration: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """The dry utterance at ``sr``: glottal source -> vowel resonators, plus fricatives."""
    n = round(duration * sr)
    f0_frames, voiced, frication, syllables = _controls(v, duration, rng)
    f0 = _upsample(f0_frames, n, sr)
    voice_env = _upsample(voiced, n, sr)
    fric_env = _upsample(frication, n, sr)

    phase = np.cumsum(f0 / sr)
    cycle = phase.astype(np.int64)
    frac = phase - cycle
    # Rosenberg glottal flow; its derivative (the closure spike) excites the vocal tract.
    oq = v.open_quotient
    tp = 0.6 * oq
    flow = np.where(
        frac < tp,
        0.5 - 0.5 * np.cos(np.pi / tp * frac),
        np.where(frac < oq, np.cos(0.5 * np.pi / (oq - tp) * (frac - tp)), 0.0),
    )
    source = np.diff(flow, prepend=0.0) * (sr / f0)
    n_cycles = int(cycle[-1]) + 1
    cycle_amp = 1 + v.shimmer * rng.standard_normal(n_cycles)
    cycle_amp[rng.random(n_cycles) < v.creak] *= rng.uniform(0.05, 0.35)
    source *= cycle_amp[cycle]
    source = signal.lfilter([1 - v.tilt], [1, -v.tilt], source)
    source /= np.std(source) + 1e-12
    aspiration = rng.standard_normal(n) * (0.4 + 0.6 * (frac < oq))
    excitation = voice_env * (source + 3.0 * v.breath * aspiration)

    # One vowel per syllable: the resonator bank switches coefficients at syllable starts
    # (the filter state carries over), where the voicing envelope is near zero.
    formants = np.minimum(
        v.formant_scale * np.asarray(v.formant_offsets) * _VOWELS,
        0.45 * sr - np.arange(4)[::-1] * 50.0,
    )
    bank = _vowel_filters(formants, _BANDWIDTHS * v.bandwidth_scale * (1 + 2.0 * v.breath), sr)
    bounds = [round(start * sr) for start, _ in syllables[1:]]
    speech = np.empty(n)
    zi = np.zeros((bank.shape[1], 2))
    for (_, vowel), a, b in zip(syllables, [0, *bounds], [*bounds, n], strict=True):
        speech[a:b], zi = signal.sosfilt(bank[vowel], excitation[a:b], zi=zi)

    band = np.sort(rng.uniform(2500, 7500, size=2))
    band = np.minimum(band, [0.4 * sr - 500, 0.45 * sr])
    fric = signal.sosfilt(
        signal.butter(2, band, btype="bandpass", fs=sr, output="sos"), rng.standard_normal(n)
    )
    voiced_rms = np.std(speech[voice_env > 0.5]) if np.any(voice_env > 0.5) else np.std(speech)
    fric *= fric_env * (rng.uniform(0.15, 0.9) * voiced_rms / (np.std(fric) + 1e-12))
    speech += fric
    if rng.random() < SPREADS["reverb_share"]:
        speech = _room(speech, sr, rng)
    active = np.maximum(voice_env, fric_env) > 0.3
    rms = np.sqrt(np.mean(speech[active] ** 2)) if active.any() else np.std(speech)
    return speech / (rms + 1e-12)


def _dry_speech(v: _Voice, duration: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """The dry utterance (unit RMS while voiced) as ``round(duration * sr)`` samples at ``sr``.

    Synthesised at ``sr``, or at half of it above 24 kHz and then resampled with
    :func:`scipy.signal.resample_poly`; no background noise, no recording level.
    """
    n = round(duration * sr)
    factor = 2 if sr > 24000 else 1
    speech = _speech(v, duration, sr // factor, rng)
    if factor > 1:
        speech = signal.resample_poly(speech, factor, 1)
    return np.pad(speech[:n], (0, max(0, n - len(speech))))


def synthesize_voice(
    *,
    emotion: str,
    duration: float,
    sample_rate: int,
    channels: int = 1,
    rng: np.random.Generator,
) -> np.ndarray:
    """One synthetic utterance of a random speaker in the given emotion.

    The voice is synthesised at ``sample_rate`` (or half of it above 24 kHz, then resampled
    with :func:`scipy.signal.resample_poly`); background noise covers the full band.

    Parameters
    ----------
    emotion : str
        Key of :data:`EMOTION_PROFILES`.
    duration : float
        Length in seconds (> 0).
    sample_rate : int
        Samples per second (>= 8000).
    channels : {1, 2}
        Mono, or stereo with slightly different channels.
    rng : numpy.random.Generator
        Source of every random choice (speaker, words, noise).

    Returns
    -------
    numpy.ndarray
        float32, shape ``(round(duration * sample_rate),)`` for mono or ``(n, 2)`` for stereo,
        peak at most 0.95.

    Raises
    ------
    ConfigError
        Unknown emotion, non-positive duration, too low a sample rate, or channels not 1/2.
    """
    if emotion not in EMOTION_PROFILES:
        raise ConfigError("emotion", emotion, f"unknown emotion; known: {sorted(EMOTION_PROFILES)}")
    if not duration > 0:
        raise ConfigError("duration", duration, "must be > 0 seconds")
    if sample_rate < 8000:
        raise ConfigError("sample_rate", sample_rate, "must be at least 8000 Hz")
    if channels not in (1, 2):
        raise ConfigError("channels", channels, "must be 1 or 2")
    sr = int(sample_rate)
    n = round(duration * sr)
    voice = _Voice.draw(EMOTION_PROFILES[emotion], rng)
    speech = _dry_speech(voice, duration, sr, rng)
    speech *= 10 ** ((-22.0 + voice.level_db) / 20)
    noise_rms = 10 ** (
        (-22.0 + voice.level_db - rng.uniform(SPREADS["snr_db_low"], SPREADS["snr_db_high"])) / 20
    )

    out = np.empty((n, channels))
    delay = int(rng.integers(0, int(0.002 * sr) + 1))
    for ch in range(channels):
        dry = speech if ch == 0 else np.concatenate([np.zeros(delay), speech[: n - delay]])
        gain = 1.0 if ch == 0 else 10 ** (rng.uniform(-4, 4) / 20)
        out[:, ch] = gain * dry + noise_rms * _background(n, sr, rng)
    out *= 10 ** (rng.normal(0, SPREADS["recording_db"]) / 20)  # recording level
    peak = np.max(np.abs(out))
    if peak > 0.95:
        out *= 0.95 / peak
    out = out.astype(np.float32)
    return out[:, 0] if channels == 1 else out


# --------------------------------------------------------------------------- the folder
def _params(n_train: int, n_test: int, seed: int, formats: dict[str, float]) -> dict[str, Any]:
    return {
        "generator_version": GENERATOR_VERSION,
        "n_train": int(n_train),
        "n_test": int(n_test),
        "seed": int(seed),
        "formats": formats,
    }


def _read_state(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        state = read_json(path)
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


_AUDIO_NAME = re.compile(r"^(train|test)/[^/\\]+$")


def _remove_generated(root: Path, state: Mapping[str, Any]) -> None:
    """Delete the audio files an earlier generation listed (only ``train/*``, ``test/*``)."""
    for rel in state.get("files", []):
        if isinstance(rel, str) and _AUDIO_NAME.match(rel):
            with contextlib.suppress(FileNotFoundError):
                (root / rel).unlink()


def _remove_temp_files(root: Path) -> None:
    """Delete temporary files left by an interrupted :func:`~emo_utils.fileio.atomic_path`."""
    for folder in (root / "train", root / "test"):
        if folder.is_dir():
            for tmp in folder.glob(".tmp-*"):
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()


def _write_clip(
    path: str,
    emotion: str,
    duration: float,
    sample_rate: int,
    channels: int,
    fmt: str,
    clip_seed: int,
) -> None:
    """Synthesise one planned clip and write it atomically (a joblib task)."""
    audio = synthesize_voice(
        emotion=emotion,
        duration=float(duration),
        sample_rate=int(sample_rate),
        channels=int(channels),
        rng=np.random.default_rng(int(clip_seed)),
    )
    with atomic_path(path) as tmp:
        sf.write(tmp, audio, int(sample_rate), **AUDIO_FORMATS[fmt])


def _prepare_folder(
    root: Path,
    *,
    marker: Path,
    plan_file: Path,
    params: dict[str, Any],
    files: Sequence[str],
    overwrite: bool,
    maker: str,
) -> bool | None:
    """The start of the resumable generation every demo generator follows.

    Returns ``None`` when ``root`` already holds a complete folder made with ``params``
    (nothing to do).  Otherwise removes what a generation with other parameters (or any,
    when ``overwrite``) left behind, writes the plan file, and returns whether the finished
    clips of an interrupted generation with the same parameters may be kept.

    Raises
    ------
    DataError
        ``root`` holds a ``train.csv`` that ``maker`` did not write.
    """
    done = _read_state(marker)
    started = _read_state(plan_file)
    if (root / "train.csv").exists() and done is None and started is None:
        raise DataError(
            f"{root}: holds a train.csv that was not written by {maker}; "
            "refusing to overwrite it (choose an empty folder)"
        )
    expected = [root / rel for rel in files] + [root / name for name in _CSV_NAMES]
    if (
        not overwrite
        and done is not None
        and done.get("params") == params
        and all(path.is_file() for path in expected)
    ):
        return None
    # Remove what an earlier generation with other parameters (or any, when overwriting)
    # left behind; keep finished clips of an interrupted run with the same parameters.
    for state in (done, started):
        if state is not None and (overwrite or state.get("params") != params):
            _remove_generated(root, state)
    _remove_temp_files(root)
    with contextlib.suppress(FileNotFoundError):
        marker.unlink()
    write_json(plan_file, {"params": params, "files": list(files)})
    return not overwrite and any(
        state is not None and state.get("params") == params for state in (done, started)
    )


def _write_clips(
    write_clip: Callable[..., None],
    todo: Sequence[tuple[Any, ...]],
    *,
    n_jobs: int,
    progress: bool,
    desc: str,
    n_files: int,
) -> None:
    """``write_clip(*task)`` for every task, in joblib workers, with a bar or one line."""
    workers = 1 if len(todo) < 8 else n_jobs
    jobs = Parallel(n_jobs=workers, return_as="generator_unordered")(
        delayed(write_clip)(*task) for task in todo
    )
    bars = progress and interactive()
    with tqdm(total=len(todo), desc=desc, unit="clip", disable=not bars) as bar:
        for _ in jobs:
            bar.update()
    if progress and not bars:
        print(f"{desc}: {len(todo)} written, {n_files - len(todo)} reused", flush=True)


def _finish_folder(marker: Path, plan_file: Path, state: dict[str, Any]) -> None:
    """Write the completion marker (last but for the plan file's removal)."""
    write_json(marker, state)
    with contextlib.suppress(FileNotFoundError):
        plan_file.unlink()


def make_demo_dataset(
    out_dir: str | os.PathLike,
    *,
    n_train: int = 350,
    n_test: int = 150,
    seed: int = 0,
    formats: Mapping[str, float] | Sequence[str] = DEFAULT_FORMATS,
    overwrite: bool = False,
    progress: bool = False,
    n_jobs: int = -1,
) -> Path:
    """Write (or reuse) a synthetic competition folder.

    Parameters
    ----------
    out_dir : str or os.PathLike
        Folder to write; created if needed.
    n_train, n_test : int
        Clips in ``train.csv`` (at least 35: 5 per class) and ``test.csv`` (at least 1).
    seed : int
        Seed; the same parameters always give the same folder.
    formats : mapping of str to float, or sequence of str
        Audio formats and their shares, e.g. ``{"mp3": 0.6, "wav": 0.2, "flac": 0.1,
        "ogg": 0.1}``; default 90 % mp3, 10 % wav as in the real data.
    overwrite : bool, default False
        Regenerate every file.  Without it, a complete folder made with the same parameters
        is returned untouched, an interrupted one is completed (finished clips are kept), and
        one made with other parameters is replaced.
    progress : bool, default False
        Show a tqdm progress bar.
    n_jobs : int, default -1
        joblib worker processes (-1: every core); the output does not depend on it.

    Returns
    -------
    pathlib.Path
        ``out_dir``.

    Raises
    ------
    ConfigError
        Invalid ``n_train``, ``n_test`` or ``formats``.
    DataError
        ``out_dir`` holds a ``train.csv`` that this function did not write (a real
        competition folder is never overwritten, even with ``overwrite=True``).
    """
    root = Path(out_dir)
    shares = _normalise_formats(formats)
    plan = demo_plan(n_train=n_train, n_test=n_test, seed=seed, formats=shares)
    params = _params(n_train, n_test, seed, shares)
    files = [f"{split}/{name}" for split, name in zip(plan["split"], plan["filename"], strict=True)]
    marker, plan_file = root / MARKER_NAME, root / PLAN_NAME

    reuse = _prepare_folder(
        root,
        marker=marker,
        plan_file=plan_file,
        params=params,
        files=files,
        overwrite=overwrite,
        maker="make_demo_dataset",
    )
    if reuse is None:
        return root
    todo = [
        (
            str(root / rel),
            row.emotion,
            row.duration,
            row.sample_rate,
            row.channels,
            row.format,
            row.clip_seed,
        )
        for row, rel in zip(plan.itertuples(index=False), files, strict=True)
        if not (reuse and (root / rel).is_file())
    ]
    _write_clips(
        _write_clip, todo, n_jobs=n_jobs, progress=progress, desc="demo clips", n_files=len(files)
    )

    train = plan[plan["split"] == "train"]
    test = plan[plan["split"] == "test"]
    write_csv(root / "train.csv", train[["filename", "emotion"]])
    write_csv(root / "test.csv", test[["filename"]])
    write_csv(
        root / "sample_submission.csv",
        pd.DataFrame({"filename": test["filename"], "emotion": "neutral"}),
    )
    write_csv(root / "test_answers.csv", test[["filename", "emotion"]])
    _finish_folder(
        marker,
        plan_file,
        {
            "params": params,
            "files": files,
            "profiles": {k: asdict(v) for k, v in EMOTION_PROFILES.items()},
        },
    )
    return root
