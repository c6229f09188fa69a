"""A synthetic multi-label competition folder (Freesound / AudioSet-style tagging).

:func:`make_multilabel_demo` writes a folder in the layout of the Freesound audio-tagging
competitions, where a clip carries any number of labels::

    OUT/
      train.csv               fname,labels  labels sorted and joined by "," ("Music,Speech",
                                            CSV-quoted); an empty field for a clip with no source
      test.csv                fname
      sample_submission.csv   fname,labels  (every test row, label "Speech")
      test_answers.csv        fname,labels  (the clean truth of the test clips; never read for
                                            training)
      train/0a1b2c3d.wav ...  audio: ~40 % wav, 20 % flac, 20 % ogg, 20 % mp3
      test/9f8e7d6c.flac ...
      .multilabel_demo_complete.json  parameters, file list and the plan of every clip
                                      (sources with onset/offset seconds), written last

The four labels (:data:`MULTILABEL_DEMO_CLASSES`) are sources the project synthesises with
numpy/scipy (:data:`SOURCES`): ``Speech`` (the voice of
:func:`~emo_utils.datasets.synthetic.synthesize_voice`, in a random emotion), ``Music``
(phrases of harmonic notes with plucked or sustained envelopes, sometimes chords), ``Chirp``
(bouts of fast bird-like frequency sweeps) and ``Water`` (band-passed noise with a slowly
fluctuating level and bubbles: short damped sine sweeps).  Each clip lasts 0.5-12 s (40 %
over 5 s) and holds 0-3 sources, each drawn independently with its own rate
(:data:`LABEL_RATES`: Speech 45 %, Music 35 %, Water 30 %, Chirp 12 %; about a fifth of the
clips hold none).  A source sounds over a random part of the clip: the whole clip, a random
stretch, or, in clips over 5 s, only their first or last second; it is mixed at a random
SNR of 3-24 dB over coloured background noise (sometimes with mains hum and room reverb).
Every label has at least :data:`MIN_TRAIN_PER_LABEL` training clips (in the clean and in the
noisy labels) and at least one test clip (two from 10 test clips).  Sample rates follow
:data:`~emo_utils.datasets.synthetic.SAMPLE_RATES`; about 15 % of the clips are stereo.

A clip without a source is background only (room tone) and its label list is empty.  The
pipeline turns an empty list into a label of its own through the config option
``data.empty_label``; run this demo with ``data.empty_label: Silence``.

Two kinds of dirt are planted in the training split only:

- label noise: with probability ``label_noise`` per training clip, one true label is dropped
  or one absent label is added (each half of the time; a clip without labels can only gain
  one, and no label is dropped below the per-label minimum).  ``test_answers.csv`` is always clean.  The marker's plan holds both the clean
  ``labels`` and the written ``csv_labels`` of every clip, and ``noise`` says what changed.
- near-duplicates: a ``duplicates`` share of the training rows are copies of another
  training clip (the same audio re-encoded to another format and/or at 0.5-3 dB lower gain)
  under a new file name, with the same labels as their original, noise included
  (``duplicate_of`` in the plan names the original).

File names are eight random hex digits (``fname`` as in the real competitions), rows are
sorted by file name.  Output is deterministic for a seed: wav, flac and mp3 files are
byte-identical between runs, ogg files decode to identical samples (libsndfile gives each
Ogg stream a random serial number).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import soundfile as sf
from scipy import signal

from ..errors import ConfigError
from ..fileio import atomic_path, write_csv
from .synthetic import (
    AUDIO_FORMATS,
    EMOTION_PROFILES,
    GENERATOR_VERSION,
    SAMPLE_RATES,
    STEREO_SHARE,
    _allocate,
    _background,
    _dry_speech,
    _finish_folder,
    _normalise_formats,
    _prepare_folder,
    _room,
    _shuffled,
    _Voice,
    _write_clips,
)

__all__ = [
    "LABEL_RATES",
    "MIN_TRAIN_PER_LABEL",
    "MULTILABEL_DEFAULT_FORMATS",
    "MULTILABEL_DEMO_CLASSES",
    "MULTILABEL_GENERATOR_VERSION",
    "MULTILABEL_MARKER_NAME",
    "SOURCES",
    "make_multilabel_demo",
    "multilabel_demo_plan",
    "synthesize_scene",
]

#: Bump when the generator's output changes, so existing folders are regenerated.
MULTILABEL_GENERATOR_VERSION = 1

MULTILABEL_MARKER_NAME = ".multilabel_demo_complete.json"
PLAN_NAME = ".multilabel_demo_plan.json"

#: Share of the clips holding each source (drawn independently; at most 3 per clip).
LABEL_RATES: dict[str, float] = {"Chirp": 0.12, "Music": 0.35, "Speech": 0.45, "Water": 0.30}
MULTILABEL_DEMO_CLASSES: tuple[str, ...] = tuple(sorted(LABEL_RATES))
#: Default share of each audio format.
MULTILABEL_DEFAULT_FORMATS: dict[str, float] = {"wav": 0.4, "flac": 0.2, "ogg": 0.2, "mp3": 0.2}
#: Smallest number of (non-duplicate) training clips of every label.
MIN_TRAIN_PER_LABEL = 8
MIN_N_TRAIN = 3 * MIN_TRAIN_PER_LABEL
MIN_N_TEST = 2
MAX_DUPLICATES = 0.25
MAX_SOURCES = 3
SUBMISSION_LABEL = "Speech"

MIN_DURATION, MAX_DURATION = 0.5, 12.0
LONG_FROM = 5.0  # clips longer than this may hold sources only in their first/last second
LONG_SHARE = 0.4
EDGE_SHARE = 0.3  # of the sources in a long clip: only in its first or last second
FULL_SHARE = 0.3  # of the other sources: over the whole clip
MIN_SOURCE_LENGTH = 0.3
SNR_DB = (3.0, 24.0)
BACKGROUND_DB = (-58.0, -38.0)  # RMS of the background, dBFS, before the recording level
REVERB_SHARE = 0.3
RECORDING_DB = 3.0  # sd of the recording level
_FADE_S = 0.01


# --------------------------------------------------------------------------- sources
def _speech_source(duration: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    emotion = sorted(EMOTION_PROFILES)[int(rng.integers(len(EMOTION_PROFILES)))]
    return _dry_speech(_Voice.draw(EMOTION_PROFILES[emotion], rng), duration, sr, rng)


def _note(
    f0: float, n: int, sr: int, amps: np.ndarray, env: np.ndarray, vibrato: tuple[float, float]
) -> np.ndarray:
    """One harmonic note of ``n`` samples: partials up to 0.45 ``sr``, shaped by ``env``."""
    rate, depth = vibrato
    t = np.arange(n) / sr
    freq = f0 * 2 ** (depth / 12 * np.sin(2 * np.pi * rate * t))
    phase = 2 * np.pi * np.cumsum(freq) / sr
    k = np.arange(1, len(amps) + 1)
    keep = k * f0 * 2 ** (depth / 12) < 0.45 * sr
    if not keep.any():
        return np.zeros(n)
    partials = np.sin(k[keep, None] * phase[None, :]) * amps[keep, None]
    return env * partials.sum(axis=0)


def _music_source(duration: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Phrases of a few notes on a pentatonic scale, one instrument, sometimes chords."""
    n = round(duration * sr)
    out = np.zeros(n)
    scale = np.array([0, 2, 4, 7, 9] if rng.random() < 0.5 else [0, 3, 5, 7, 10])
    root = int(rng.integers(45, 64))  # MIDI note of the key
    n_harm = int(rng.integers(3, 10))
    amps = np.arange(1, n_harm + 1, dtype=float) ** -rng.uniform(0.7, 2.0)
    if rng.random() < 0.25:  # clarinet-like: odd partials only
        amps[1::2] *= 0.1
    plucked = rng.random() < 0.5
    decay = rng.uniform(0.15, 0.6)
    vibrato = (rng.uniform(4.0, 6.5), 0.0 if plucked else rng.uniform(0.0, 0.25))
    beat = rng.uniform(0.12, 0.45)
    chord_p = rng.uniform(0.0, 0.5)
    degree = int(rng.integers(0, 10))
    t = rng.uniform(0.0, min(0.1, 0.1 * duration))
    notes = 0
    while t < duration - 0.05 or not notes:
        for _ in range(int(rng.integers(3, 8))):
            if t >= duration - 0.05 and notes:
                break
            notes += 1
            length = beat * float(rng.choice([0.5, 1.0, 1.0, 1.0, 1.5, 2.0]))
            degree = int(np.clip(degree + rng.integers(-2, 3), 0, 14))
            a = min(round(t * sr), n - 1)
            m = max(min(round((t + length * 1.15) * sr), n) - a, 1)
            tt = np.arange(m) / sr
            if plucked:
                env = np.exp(-tt / decay) * np.minimum(tt / 0.005, 1.0)
            else:
                attack = np.minimum(tt / rng.uniform(0.02, 0.08), 1.0)
                env = attack * np.clip((length * 1.15 - tt) / 0.08, 0.0, 1.0)
            env *= rng.uniform(0.6, 1.0)
            steps = [0, 2, 4] if rng.random() < chord_p else [0]
            for step in steps:
                d = degree + step
                midi = root + 12 * (d // 5) + scale[d % 5]
                f0 = 440.0 * 2 ** ((midi - 69) / 12)
                out[a : a + m] += _note(f0, m, sr, amps, env, vibrato)
            t += length
        t += beat * rng.uniform(0.5, 3.0)
    return out


def _chirp_source(duration: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Bouts of short, fast frequency sweeps (a small bird)."""
    n = round(duration * sr)
    out = np.zeros(n)
    f_lo = rng.uniform(1800.0, min(4500.0, 0.25 * sr))
    f_hi = min(f_lo * rng.uniform(1.3, 2.2), 0.45 * sr)
    shape = rng.choice(["up", "down", "updown"])
    length = rng.uniform(0.03, 0.12)
    rate = rng.uniform(5.0, 14.0)  # chirps per second within a bout
    t = rng.uniform(0.0, min(0.15, 0.2 * duration))
    chirps = 0
    while t < duration - 0.03 or not chirps:
        for _ in range(int(rng.integers(2, 9))):
            if t >= duration - 0.03 and chirps:
                break
            chirps += 1
            a = min(round(t * sr), n - 1)
            m = max(min(round(length * rng.uniform(0.8, 1.2) * sr), n - a), 1)
            u = np.arange(m) / m
            sweep = {"up": u, "down": 1.0 - u, "updown": np.sin(np.pi * u)}[str(shape)]
            freq = f_lo + (f_hi - f_lo) * sweep
            phase = 2 * np.pi * np.cumsum(freq) / sr
            y = np.sin(phase)
            if 2 * f_hi < 0.45 * sr:
                y += 0.2 * np.sin(2 * phase)
            out[a : a + m] += rng.uniform(0.5, 1.0) * np.sin(np.pi * u) ** 2 * y
            t += 1.0 / rate * rng.uniform(0.8, 1.25)
        t += rng.uniform(0.15, 0.8)
    return out


def _water_source(duration: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Band-passed noise with a slowly fluctuating level, plus bubbles (rising damped sines)."""
    n = round(duration * sr)
    lo = rng.uniform(200.0, 800.0)
    hi = min(rng.uniform(2000.0, 6000.0), 0.45 * sr)
    sos = signal.butter(2, [lo, hi], btype="bandpass", fs=sr, output="sos")
    noise = signal.sosfilt(sos, rng.standard_normal(n))
    noise /= np.std(noise) + 1e-12
    # Level: low-passed noise at 100 frames per second, log-normal, interpolated.
    frames = int(np.ceil(duration * 100)) + 2
    smooth = signal.lfilter([0.1], [1, -0.9], rng.standard_normal(frames))
    level = np.exp(rng.uniform(0.5, 1.5) * smooth / (np.std(smooth) + 1e-12) - 0.5)
    out = noise * np.interp(np.arange(n) * (100 / sr), np.arange(frames), level)
    strength = rng.uniform(0.5, 2.5)
    for _ in range(int(rng.poisson(rng.uniform(15.0, 60.0) * duration))):
        tau = rng.uniform(0.004, 0.025)
        a = int(rng.integers(0, n))
        m = min(int(5 * tau * sr), n - a)
        if m < 2:
            continue
        tt = np.arange(m) / sr
        f0 = min(rng.uniform(400.0, 2500.0), 0.3 * sr)
        freq = f0 * (1 + rng.uniform(5.0, 30.0) * tt)
        phase = 2 * np.pi * np.cumsum(freq) / sr
        out[a : a + m] += strength * rng.uniform(0.3, 1.5) * np.exp(-tt / tau) * np.sin(phase)
    return out


SourceFn = Callable[[float, int, np.random.Generator], np.ndarray]

#: Label -> function ``(duration_s, sample_rate, rng)`` returning ``round(duration_s *
#: sample_rate)`` mono samples of that source at any level (the mixer normalises it).
SOURCES: dict[str, SourceFn] = {
    "Chirp": _chirp_source,
    "Music": _music_source,
    "Speech": _speech_source,
    "Water": _water_source,
}


# --------------------------------------------------------------------------- mixing
def _fade(m: int, sr: int) -> np.ndarray:
    """Raised-cosine fade-in and fade-out of ``_FADE_S`` (at most a third of ``m``)."""
    env = np.ones(m)
    k = min(int(_FADE_S * sr), m // 3)
    if k:
        ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(k) / k)
        env[:k] = ramp
        env[m - k :] = ramp[::-1]
    return env


def synthesize_scene(
    *,
    sources: Sequence[Mapping[str, Any]],
    duration: float,
    sample_rate: int,
    channels: int = 1,
    background_db: float = -48.0,
    seed: int,
) -> np.ndarray:
    """One clip: sources placed in time and mixed at their SNRs over background noise.

    Parameters
    ----------
    sources : sequence of mapping
        One mapping per source with ``label`` (key of :data:`SOURCES`), ``onset`` and
        ``offset`` (seconds, ``0 <= onset < offset``; clipped to the clip) and ``snr_db``
        (RMS of the source over its stretch relative to the background's RMS).
    duration : float
        Length in seconds (> 0).
    sample_rate : int
        Samples per second (>= 8000).
    channels : {1, 2}
        Mono, or stereo (each source panned and slightly delayed, independent background).
    background_db : float, default -48.0
        RMS of the background noise in dBFS, before the random recording level.
    seed : int
        Seed of every random choice; source ``i`` draws from ``[seed, i + 1]`` alone, so a
        source sounds the same whatever the other sources are.

    Returns
    -------
    numpy.ndarray
        float32, shape ``(round(duration * sample_rate),)`` for mono or ``(n, 2)`` for
        stereo, peak at most 0.95.

    Raises
    ------
    ConfigError
        Unknown label, bad times, non-positive duration, too low a sample rate, or channels
        not 1/2.
    """
    if not duration > 0:
        raise ConfigError("duration", duration, "must be > 0 seconds")
    if sample_rate < 8000:
        raise ConfigError("sample_rate", sample_rate, "must be at least 8000 Hz")
    if channels not in (1, 2):
        raise ConfigError("channels", channels, "must be 1 or 2")
    sr, seed = int(sample_rate), int(seed)
    n = round(duration * sr)
    bg_rms = 10 ** (background_db / 20)
    mix = np.zeros((n, channels))
    for i, src in enumerate(sources):
        label = src.get("label")
        if label not in SOURCES:
            raise ConfigError("label", label, f"unknown source; known: {sorted(SOURCES)}")
        onset, offset = float(src["onset"]), float(src["offset"])
        a, b = max(round(onset * sr), 0), min(round(offset * sr), n)
        if not 0 <= onset < offset or b - a < 2:
            raise ConfigError("sources", dict(src), "need 0 <= onset < offset within the clip")
        rng = np.random.default_rng([seed, i + 1])
        y = SOURCES[label]((b - a) / sr, sr, rng)[: b - a] * _fade(b - a, sr)
        y *= bg_rms * 10 ** (float(src["snr_db"]) / 20) / (np.sqrt(np.mean(y**2)) + 1e-12)
        mix[a:b, 0] += y
        if channels == 2:
            delay = int(rng.integers(0, int(0.002 * sr) + 1))
            gain = 10 ** (rng.uniform(-4.0, 4.0) / 20)
            shifted = np.concatenate([np.zeros(delay), y])[: b - a]
            mix[a:b, 1] += gain * shifted
    rng = np.random.default_rng([seed, 0])
    if len(sources) and rng.random() < REVERB_SHARE:
        for ch in range(channels):
            mix[:, ch] = _room(mix[:, ch], sr, rng)
    for ch in range(channels):
        mix[:, ch] += bg_rms * _background(n, sr, rng)
    mix *= 10 ** (rng.normal(0.0, RECORDING_DB) / 20)
    peak = np.max(np.abs(mix))
    if peak > 0.95:
        mix *= 0.95 / peak
    out = mix.astype(np.float32)
    return out[:, 0] if channels == 1 else out


# --------------------------------------------------------------------------- planning
def _check_int(name: str, value: Any, minimum: int, reason: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(name, value, reason)
    return int(value)


def _check_share(name: str, value: Any, maximum: float) -> float:
    try:
        share = float(value)
    except (TypeError, ValueError):
        share = float("nan")
    if isinstance(value, bool) or not 0.0 <= share <= maximum:
        raise ConfigError(name, value, f"must be a number in [0, {maximum}]")
    return share


def _raise_to_minimum(present: np.ndarray, minimum: int, rng: np.random.Generator) -> None:
    """Give every label (column) of ``present`` at least ``minimum`` rows, in place.

    A label is added to rows holding fewer than :data:`MAX_SOURCES` sources (rows with a
    source first, so background-only clips stay), then, if still short, it replaces a label
    of a full row whose count is above ``minimum``.  Always succeeds when there are at least
    ``2 * minimum`` rows.
    """
    for j in np.argsort(present.sum(axis=0), kind="stable"):
        need = minimum - int(present[:, j].sum())
        if need <= 0:
            continue
        size = present.sum(axis=1)
        lacking = ~present[:, j]
        some = rng.permutation(np.flatnonzero(lacking & (size > 0) & (size < MAX_SOURCES)))
        empty = rng.permutation(np.flatnonzero(lacking & (size == 0)))
        pick = np.concatenate([some, empty])[:need].astype(int)
        present[pick, j] = True
        need -= len(pick)
        for i in rng.permutation(np.flatnonzero(~present[:, j])):
            if need <= 0:
                break
            counts = present.sum(axis=0)
            spare = [k for k in np.flatnonzero(present[i]) if counts[k] > minimum]
            if spare:
                present[i, int(rng.choice(spare))] = False
                present[i, j] = True
                need -= 1


def _placement(duration: float, rng: np.random.Generator) -> tuple[float, float]:
    """Onset and offset (s) of one source: edge second, whole clip or a random stretch."""
    if duration > LONG_FROM and rng.random() < EDGE_SHARE:
        length = rng.uniform(0.4, 0.9)
        if rng.random() < 0.5:
            onset = rng.uniform(0.0, 1.0 - length)
            offset = onset + length
        else:
            offset = duration - rng.uniform(0.0, 1.0 - length)
            onset = offset - length
    elif rng.random() < FULL_SHARE:
        onset, offset = 0.0, duration
    else:
        length = rng.uniform(min(MIN_SOURCE_LENGTH, duration), duration)
        onset = rng.uniform(0.0, duration - length)
        offset = onset + length
    onset = max(round(onset, 3), 0.0)
    return onset, min(max(round(offset, 3), onset + 0.01), duration)


def _hex_names(rng: np.random.Generator, n: int) -> list[str]:
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < n:
        for value in rng.integers(0, 2**32, size=n - len(names)):
            name = f"{int(value):08x}"
            if name not in seen:
                seen.add(name)
                names.append(name)
    return names


def _join(labels: np.ndarray) -> str:
    return ",".join(c for c, on in zip(MULTILABEL_DEMO_CLASSES, labels, strict=True) if on)


def multilabel_demo_plan(
    *,
    n_train: int = 240,
    n_test: int = 80,
    seed: int = 0,
    label_noise: float = 0.1,
    duplicates: float = 0.05,
    formats: Mapping[str, float] | Sequence[str] = MULTILABEL_DEFAULT_FORMATS,
) -> pd.DataFrame:
    """Every clip of the multi-label demo folder, without synthesising any audio.

    Parameters
    ----------
    n_train, n_test : int
        Rows of ``train.csv`` (at least 24; near-duplicates included) and ``test.csv`` (at
        least 2).
    seed : int
        Seed of the whole folder.
    label_noise : float, default 0.1
        Probability that a training clip's written labels lose one true label or gain one
        absent label (0-1).
    duplicates : float, default 0.05
        Share of the training rows that are near-duplicates of another training clip
        (0-0.25).
    formats : mapping of str to float, or sequence of str
        Audio formats (keys of :data:`~emo_utils.datasets.synthetic.AUDIO_FORMATS`) and their
        shares; a sequence means equal shares.

    Returns
    -------
    pandas.DataFrame
        One row per clip, train rows first, each split sorted by file name (the CSV order),
        with columns ``split``, ``fname``, ``labels`` (the clean labels joined by ``","``),
        ``csv_labels`` (as written to ``train.csv``/``test_answers.csv``), ``noise`` (``""``,
        ``"dropped <label>"`` or ``"added <label>"``), ``duplicate_of`` (``""`` or the
        original's ``fname``), ``format``, ``sample_rate``, ``channels``, ``duration`` (s),
        ``background_db``, ``gain_db`` (0 except for near-duplicates), ``clip_seed`` and
        ``sources`` (list of dicts with ``label``, ``onset``, ``offset`` and ``snr_db``; the
        argument of :func:`synthesize_scene`).

    Raises
    ------
    ConfigError
        Too few clips, a share out of range, or an unknown format.
    """
    n_train = _check_int("n_train", n_train, MIN_N_TRAIN, f"need at least {MIN_N_TRAIN} clips")
    n_test = _check_int("n_test", n_test, MIN_N_TEST, f"need at least {MIN_N_TEST} test clips")
    seed = _check_int("seed", seed, 0, "must be an integer >= 0")
    label_noise = _check_share("label_noise", label_noise, 1.0)
    duplicates = _check_share("duplicates", duplicates, MAX_DUPLICATES)
    shares = _normalise_formats(formats)
    rng = np.random.default_rng(seed)

    n_dup = round(duplicates * n_train)
    n_orig = n_train - n_dup
    n = n_orig + n_test  # clips with their own audio
    classes = MULTILABEL_DEMO_CLASSES
    k = len(classes)

    # Labels: independent draws, at most MAX_SOURCES per clip, per-label minimum per split.
    present = rng.random((n, k)) < np.array([LABEL_RATES[c] for c in classes])
    for i in np.flatnonzero(present.sum(axis=1) > MAX_SOURCES):
        on = np.flatnonzero(present[i])
        present[i, rng.choice(on, size=len(on) - MAX_SOURCES, replace=False)] = False
    _raise_to_minimum(present[:n_orig], MIN_TRAIN_PER_LABEL, rng)
    _raise_to_minimum(present[n_orig:], 2 if n_test >= 10 else 1, rng)

    # Label noise (training originals only; duplicates inherit their original's labels).
    written = present.copy()
    noise = [""] * n
    counts = written[:n_orig].sum(axis=0)
    for i in np.flatnonzero(rng.random(n_orig) < label_noise):
        droppable = [j for j in np.flatnonzero(written[i]) if counts[j] > MIN_TRAIN_PER_LABEL]
        absent = np.flatnonzero(~written[i])
        if droppable and (not len(absent) or rng.random() < 0.5):
            j = int(rng.choice(droppable))
            written[i, j] = False
            counts[j] -= 1
            noise[i] = f"dropped {classes[j]}"
        elif len(absent):
            j = int(rng.choice(absent))
            written[i, j] = True
            counts[j] += 1
            noise[i] = f"added {classes[j]}"

    # Formats, sample rates, channels, durations: exact shares over the clips.
    fmts = _shuffled(rng, list(shares), _allocate(n, list(shares.values()), 1))
    rates = _shuffled(rng, list(SAMPLE_RATES), _allocate(n, list(SAMPLE_RATES.values()), 1))
    n_stereo = max(1, round(STEREO_SHARE * n))
    channels = _shuffled(rng, [1, 2], np.array([n - n_stereo, n_stereo]))
    n_long = round(LONG_SHARE * n)
    durations = MIN_DURATION + (LONG_FROM - MIN_DURATION) * rng.beta(1.6, 2.6, size=n)
    long_rows = rng.choice(n, size=n_long, replace=False)
    durations[long_rows] = rng.uniform(LONG_FROM, MAX_DURATION, size=n_long)
    durations = np.round(durations, 3)
    background = np.round(rng.uniform(*BACKGROUND_DB, size=n), 2)
    clip_seeds = rng.integers(0, 2**63 - 1, size=n)

    rows: list[dict[str, Any]] = []
    for i in range(n):
        sources = []
        for j in np.flatnonzero(present[i]):
            onset, offset = _placement(float(durations[i]), rng)
            snr = round(float(rng.uniform(*SNR_DB)), 2)
            sources.append({"label": classes[j], "onset": onset, "offset": offset, "snr_db": snr})
        rows.append(
            {
                "split": "train" if i < n_orig else "test",
                "labels": _join(present[i]),
                "csv_labels": _join(written[i]),
                "noise": noise[i],
                "duplicate_of": "",
                "format": str(fmts[i]),
                "sample_rate": int(rates[i]),
                "channels": int(channels[i]),
                "duration": float(durations[i]),
                "background_db": float(background[i]),
                "gain_db": 0.0,
                "clip_seed": int(clip_seeds[i]),
                "sources": sources,
            }
        )

    # Near-duplicates: the same audio in another format and/or at a lower gain.
    for i in rng.choice(n_orig, size=n_dup, replace=False):
        copy = dict(rows[i], sources=[dict(s) for s in rows[i]["sources"]])
        others = [f for f in shares if f != copy["format"]]
        new_format = bool(others) and rng.random() < 0.7
        if new_format:
            weights = np.array([shares[f] for f in others])
            copy["format"] = str(rng.choice(others, p=weights / weights.sum()))
        if not new_format or rng.random() < 0.5:
            copy["gain_db"] = -round(float(rng.uniform(0.5, 3.0)), 2)
        copy["duplicate_of"] = int(i)  # row index until names are drawn
        rows.insert(n_orig, copy)  # train rows stay ahead of the test rows

    names = _hex_names(rng, len(rows))
    for row, name in zip(rows, names, strict=True):
        row["fname"] = f"{name}.{row['format']}"
    for row in rows:
        if row["duplicate_of"] != "":
            row["duplicate_of"] = rows[row["duplicate_of"]]["fname"]

    plan = pd.DataFrame(rows)
    columns = ["split", "fname", *[c for c in plan.columns if c not in ("split", "fname")]]
    plan = plan[columns]
    plan["order"] = (plan["split"] == "test").astype(int)
    return plan.sort_values(["order", "fname"]).drop(columns="order").reset_index(drop=True)


# --------------------------------------------------------------------------- the folder
def _params(
    n_train: int,
    n_test: int,
    seed: int,
    label_noise: float,
    duplicates: float,
    formats: dict[str, float],
) -> dict[str, Any]:
    return {
        "generator_version": MULTILABEL_GENERATOR_VERSION,
        "voice_generator_version": GENERATOR_VERSION,
        "n_train": int(n_train),
        "n_test": int(n_test),
        "seed": int(seed),
        "label_noise": float(label_noise),
        "duplicates": float(duplicates),
        "formats": formats,
    }


def _write_clip(
    path: str,
    fmt: str,
    sources: list[dict[str, Any]],
    duration: float,
    sample_rate: int,
    channels: int,
    background_db: float,
    gain_db: float,
    clip_seed: int,
) -> None:
    """Synthesise one planned clip and write it atomically (a joblib task)."""
    audio = synthesize_scene(
        sources=sources,
        duration=float(duration),
        sample_rate=int(sample_rate),
        channels=int(channels),
        background_db=float(background_db),
        seed=int(clip_seed),
    )
    if gain_db:
        audio = (audio * np.float32(10 ** (gain_db / 20))).astype(np.float32)
    with atomic_path(path) as tmp:
        sf.write(tmp, audio, int(sample_rate), **AUDIO_FORMATS[fmt])


def make_multilabel_demo(
    out_dir: str | os.PathLike,
    *,
    n_train: int = 240,
    n_test: int = 80,
    seed: int = 0,
    label_noise: float = 0.1,
    duplicates: float = 0.05,
    formats: Mapping[str, float] | Sequence[str] = MULTILABEL_DEFAULT_FORMATS,
    overwrite: bool = False,
    progress: bool = False,
    n_jobs: int = -1,
) -> Path:
    """Write (or reuse) a synthetic multi-label competition folder.

    See the module docstring for the layout, the sources and the planted label noise and
    near-duplicates; run the pipeline on it with ``data.empty_label: Silence``.

    Parameters
    ----------
    out_dir : str or os.PathLike
        Folder to write; created if needed.
    n_train, n_test : int
        Rows of ``train.csv`` (at least 24, near-duplicates included) and ``test.csv`` (at
        least 2).
    seed : int
        Seed; the same parameters always give the same folder.
    label_noise : float, default 0.1
        Probability (0-1) that a training clip's labels in ``train.csv`` lose one true label
        or gain one absent label; ``test_answers.csv`` stays clean.
    duplicates : float, default 0.05
        Share (0-0.25) of the training rows that are near-duplicates of another training clip.
    formats : mapping of str to float, or sequence of str
        Audio formats and their shares; default 40 % wav, 20 % each flac, ogg and mp3.
    overwrite : bool, default False
        Regenerate every file.  Without it, a complete folder made with the same parameters
        is returned untouched, an interrupted one is completed (finished clips are kept), and
        one made with other parameters is replaced.
    progress : bool, default False
        Show a tqdm progress bar (one printed line where no person watches).
    n_jobs : int, default -1
        joblib worker processes (-1: every core); the output does not depend on it.

    Returns
    -------
    pathlib.Path
        ``out_dir``.

    Raises
    ------
    ConfigError
        Invalid ``n_train``, ``n_test``, ``seed``, ``label_noise``, ``duplicates`` or
        ``formats``.
    DataError
        ``out_dir`` holds a ``train.csv`` that this function did not write (a real
        competition folder, or the single-label demo, is never overwritten, even with
        ``overwrite=True``).
    """
    root = Path(out_dir)
    shares = _normalise_formats(formats)
    plan = multilabel_demo_plan(
        n_train=n_train,
        n_test=n_test,
        seed=seed,
        label_noise=label_noise,
        duplicates=duplicates,
        formats=shares,
    )
    params = _params(n_train, n_test, seed, label_noise, duplicates, shares)
    files = [f"{split}/{name}" for split, name in zip(plan["split"], plan["fname"], strict=True)]
    marker, plan_file = root / MULTILABEL_MARKER_NAME, root / PLAN_NAME

    reuse = _prepare_folder(
        root,
        marker=marker,
        plan_file=plan_file,
        params=params,
        files=files,
        overwrite=overwrite,
        maker="make_multilabel_demo",
    )
    if reuse is None:
        return root
    todo = [
        (
            str(root / rel),
            row.format,
            row.sources,
            row.duration,
            row.sample_rate,
            row.channels,
            row.background_db,
            row.gain_db,
            row.clip_seed,
        )
        for row, rel in zip(plan.itertuples(index=False), files, strict=True)
        if not (reuse and (root / rel).is_file())
    ]
    # Longest clips first, so the workers finish together.
    todo.sort(key=lambda task: -task[3] * task[4] * task[5])
    _write_clips(
        _write_clip,
        todo,
        n_jobs=n_jobs,
        progress=progress,
        desc="multi-label demo clips",
        n_files=len(files),
    )

    train = plan[plan["split"] == "train"]
    test = plan[plan["split"] == "test"]
    write_csv(
        root / "train.csv", train[["fname", "csv_labels"]].set_axis(["fname", "labels"], axis=1)
    )
    write_csv(root / "test.csv", test[["fname"]])
    write_csv(
        root / "sample_submission.csv",
        pd.DataFrame({"fname": test["fname"], "labels": SUBMISSION_LABEL}),
    )
    write_csv(root / "test_answers.csv", test[["fname", "labels"]])
    _finish_folder(
        marker,
        plan_file,
        {
            "params": params,
            "files": files,
            "classes": list(MULTILABEL_DEMO_CLASSES),
            "label_rates": LABEL_RATES,
            "clips": plan.to_dict(orient="records"),
        },
    )
    return root
