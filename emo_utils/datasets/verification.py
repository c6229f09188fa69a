"""A synthetic speaker-verification competition (CryCeleb / VoxCeleb style).

:func:`make_verification_demo` writes::

    OUT/
      train.csv               filename,speaker,session     (session: "a" or "b", metadata)
      test.csv                id,file_a,file_b             (the trials to score)
      sample_submission.csv   id,score
      test_answers.csv        id,same                      (the truth; never read by the pipeline)
      train/*.wav, test/*.wav
      .demo_complete.json     parameters and file list, written last

Every identity has a timbre of its own, drawn once: habitual pitch and pitch range,
speaking rate and pauses, vocal-tract length (all formants scaled together), its own vowel
space (every formant F1-F4 shifted by its own factor, sd 8 %: real speakers differ in
more than vocal-tract length), formant bandwidths (a more or less damped tract), spectral
tilt, breathiness, jitter, shimmer and creak (the voice model of
:mod:`emo_utils.datasets.synthetic`).  Its clips vary in content (words, vowels, intonation
contour), in a small day-to-day drift of pitch and rate, and in the recording: room reverb,
background noise at 5-30 dB SNR, a microphone colouring filter and the recording level.
Training identities and test identities are disjoint; the test trials are every
same-identity pair of the test clips and as many different-identity pairs.  The output is
deterministic for a seed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import soundfile as sf
from scipy import signal

from ..errors import ConfigError
from ..fileio import atomic_path, write_csv
from .synthetic import (
    CONTOURS,
    MARKER_NAME,
    PLAN_NAME,
    _background,
    _dry_speech,
    _finish_folder,
    _prepare_folder,
    _Voice,
    _write_clips,
)

__all__ = ["VERIFICATION_GENERATOR_VERSION", "make_verification_demo", "verification_demo_plan"]

#: Bump when the generator's output changes, so existing demo folders are regenerated.
VERIFICATION_GENERATOR_VERSION = 3
_SAMPLE_RATE = 16000


def _identity(rng: np.random.Generator) -> dict[str, Any]:
    """The timbre of one identity (the parameters every one of its clips shares)."""
    female = bool(rng.random() < 0.5)
    return {
        "f0": float((200.0 if female else 115.0) * np.exp(rng.normal(0, 0.18))),
        "pitch_range": float(rng.uniform(1.5, 7.0)),
        "rate": float(rng.uniform(2.8, 6.5)),
        "pause": float(rng.uniform(0.05, 0.35)),
        "tilt": float(rng.uniform(0.35, 0.92)),
        "breath": float(np.exp(rng.uniform(np.log(0.01), np.log(0.2)))),
        "jitter": float(rng.uniform(0.002, 0.02)),
        "shimmer": float(rng.uniform(0.02, 0.25)),
        "creak": float(rng.uniform(0.0, 0.3)),
        "formant_scale": float((1.16 if female else 1.0) * np.exp(rng.normal(0, 0.07))),
        "formant_offsets": [float(x) for x in np.exp(rng.normal(0, 0.08, size=4))],
        "bandwidth_scale": float(np.exp(rng.normal(0, 0.3))),
    }


def _clip_voice(timbre: dict[str, Any], rng: np.random.Generator) -> _Voice:
    """The identity's voice on one day: small drift of pitch, rate and formants."""
    return _Voice(
        f0=timbre["f0"] * 2 ** (rng.normal(0, 0.6) / 12),
        pitch_range=timbre["pitch_range"] * np.exp(rng.normal(0, 0.15)),
        contour=str(rng.choice(sorted(CONTOURS))),
        rate=timbre["rate"] * np.exp(rng.normal(0, 0.07)),
        pause=timbre["pause"] * np.exp(rng.normal(0, 0.2)),
        level_db=0.0,
        tilt=float(np.clip(timbre["tilt"] + rng.normal(0, 0.02), 0.2, 0.95)),
        breath=timbre["breath"],
        jitter=timbre["jitter"],
        shimmer=timbre["shimmer"],
        creak=timbre["creak"],
        formant_scale=timbre["formant_scale"] * np.exp(rng.normal(0, 0.01)),
        open_quotient=float(np.clip(0.55 + 0.8 * timbre["breath"], 0.4, 0.85)),
        formant_offsets=tuple(timbre["formant_offsets"]),
        bandwidth_scale=timbre["bandwidth_scale"],
    )


def synthesize_identity_clip(
    *, timbre: dict[str, Any], duration: float, rng: np.random.Generator
) -> np.ndarray:
    """One recording of the identity with ``timbre`` (a dict of :func:`_identity`).

    Parameters
    ----------
    timbre : dict
        The identity's voice parameters.
    duration : float
        Seconds (> 0).
    rng : numpy.random.Generator
        Source of the content and recording choices.

    Returns
    -------
    numpy.ndarray of float32, shape (round(duration * 16000),)
        Mono audio at 16 kHz, peak at most 0.95.
    """
    sr = _SAMPLE_RATE
    speech = _dry_speech(_clip_voice(timbre, rng), duration, sr, rng)
    n = len(speech)
    # Microphone / channel colouring: a random low-shelf-ish tilt and band limit.
    low = rng.uniform(60, 300)
    high = rng.uniform(3400, 7600)
    sos = signal.butter(2, [low, high], btype="bandpass", fs=sr, output="sos")
    speech = signal.sosfilt(sos, speech)
    speech /= np.sqrt(np.mean(speech**2)) + 1e-12
    snr_db = rng.uniform(5.0, 30.0)
    out = 10 ** (-22.0 / 20) * (speech + 10 ** (-snr_db / 20) * _background(n, sr, rng))
    out *= 10 ** (rng.normal(0, 4.0) / 20)
    peak = np.max(np.abs(out))
    if peak > 0.95:
        out *= 0.95 / peak
    return out.astype(np.float32)


def _names(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` distinct random hex file names, in the order drawn (no set order involved)."""
    names: dict[str, None] = {}
    while len(names) < n:
        names[f"{int(rng.integers(16**7, 16**8)):08x}.wav"] = None
    return list(names)


def verification_demo_plan(
    *,
    n_train_identities: int = 64,
    n_test_identities: int = 24,
    clips_per_identity: int = 6,
    test_clips_per_identity: int = 4,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame, list[dict[str, Any]]]:
    """Every clip and trial of the demo folder, without any audio.

    Returns
    -------
    clips : pandas.DataFrame
        ``split, filename, speaker, session, duration, clip_seed`` per clip.
    trials : pandas.DataFrame
        ``id, file_a, file_b, same`` per test trial, in submission order.
    timbres : list of dict
        The timbre of every identity (index = identity number).
    """
    for name, value, minimum in (
        ("n_train_identities", n_train_identities, 4),
        ("n_test_identities", n_test_identities, 2),
        ("clips_per_identity", clips_per_identity, 2),
        ("test_clips_per_identity", test_clips_per_identity, 2),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise ConfigError(name, value, f"must be an integer >= {minimum}")
    rng = np.random.default_rng(seed)
    n_ids = n_train_identities + n_test_identities
    timbres = [_identity(rng) for _ in range(n_ids)]
    speakers = [f"spk{i:03d}" for i in range(n_ids)]
    rows = []
    for i in range(n_ids):
        train = i < n_train_identities
        k = clips_per_identity if train else test_clips_per_identity
        for j in range(k):
            rows.append(
                {
                    "split": "train" if train else "test",
                    "speaker": speakers[i],
                    "identity": i,
                    "session": "a" if j < (k + 1) // 2 else "b",
                    "duration": round(float(rng.uniform(1.5, 3.5)), 3),
                    "clip_seed": int(rng.integers(2**31)),
                }
            )
    clips = pd.DataFrame(rows)
    clips["filename"] = _names(rng, len(clips))
    test = clips[clips["split"] == "test"].reset_index(drop=True)
    same = [
        (a, b)
        for _, g in test.groupby("identity", sort=True)
        for ai, a in enumerate(g["filename"])
        for b in list(g["filename"])[ai + 1 :]
    ]
    owner = dict(zip(test["filename"], test["identity"], strict=True))
    names = test["filename"].tolist()
    different: set[tuple[str, str]] = set()
    while len(different) < len(same):
        a, b = rng.choice(names, size=2, replace=False)
        if owner[a] != owner[b] and (b, a) not in different:
            different.add((str(a), str(b)))
    pairs = [(a, b, 1) for a, b in same] + [(a, b, 0) for a, b in sorted(different)]
    order = rng.permutation(len(pairs))
    trials = pd.DataFrame([pairs[i] for i in order], columns=["file_a", "file_b", "same"]).astype(
        {"same": np.int64}
    )
    trials.insert(0, "id", [f"t{i:05d}" for i in range(len(trials))])
    return (
        clips[["split", "filename", "speaker", "session", "duration", "clip_seed", "identity"]],
        trials,
        timbres,
    )


def _write_clip(path: str, timbre: dict[str, Any], duration: float, clip_seed: int) -> None:
    """Synthesise one planned clip and write it atomically as 16-bit wav (a joblib task)."""
    audio = synthesize_identity_clip(
        timbre=timbre, duration=float(duration), rng=np.random.default_rng(int(clip_seed))
    )
    with atomic_path(path) as tmp:
        sf.write(tmp, audio, _SAMPLE_RATE, format="WAV", subtype="PCM_16")


def make_verification_demo(
    out_dir: str | os.PathLike,
    *,
    n_train_identities: int = 64,
    n_test_identities: int = 24,
    clips_per_identity: int = 6,
    test_clips_per_identity: int = 4,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = False,
    n_jobs: int = -1,
    n_train: int | None = None,
    n_test: int | None = None,
) -> Path:
    """Write (or reuse) the synthetic verification competition folder (module docstring).

    Parameters
    ----------
    out_dir : str or os.PathLike
        Folder to write; created if needed.
    n_train_identities, n_test_identities : int
        Identities of the training clips and of the test trials (disjoint).
    clips_per_identity, test_clips_per_identity : int
        Clips of every training and every test identity.
    seed : int
        Seed; the same parameters always give the same folder.
    overwrite : bool, default False
        Regenerate every file; otherwise a complete folder made with the same parameters
        is returned untouched and an interrupted one is completed.
    progress : bool, default False
        Show a progress bar (or one line where no one watches).
    n_jobs : int, default -1
        joblib worker processes; the output does not depend on it.
    n_train, n_test : int, optional
        The options every demo generator takes (``demo --n-train/--n-test``): here the
        numbers of training and test *identities*, overriding the two above.

    Returns
    -------
    pathlib.Path
        ``out_dir``.
    """
    root = Path(out_dir)
    n_train_identities = n_train if n_train is not None else n_train_identities
    n_test_identities = n_test if n_test is not None else n_test_identities
    clips, trials, timbres = verification_demo_plan(
        n_train_identities=n_train_identities,
        n_test_identities=n_test_identities,
        clips_per_identity=clips_per_identity,
        test_clips_per_identity=test_clips_per_identity,
        seed=seed,
    )
    params = {
        "generator": "verification",
        "generator_version": VERIFICATION_GENERATOR_VERSION,
        "n_train_identities": n_train_identities,
        "n_test_identities": n_test_identities,
        "clips_per_identity": clips_per_identity,
        "test_clips_per_identity": test_clips_per_identity,
        "seed": int(seed),
    }
    files = [f"{s}/{f}" for s, f in zip(clips["split"], clips["filename"], strict=True)]
    marker, plan_file = root / MARKER_NAME, root / PLAN_NAME
    reuse = _prepare_folder(
        root,
        marker=marker,
        plan_file=plan_file,
        params=params,
        files=files,
        overwrite=overwrite,
        maker="make_verification_demo",
    )
    if reuse is None:
        return root
    todo = [
        (str(root / rel), timbres[row.identity], row.duration, row.clip_seed)
        for row, rel in zip(clips.itertuples(index=False), files, strict=True)
        if not (reuse and (root / rel).is_file())
    ]
    _write_clips(
        _write_clip,
        todo,
        n_jobs=n_jobs,
        progress=progress,
        desc="verification demo clips",
        n_files=len(files),
    )
    train = clips[clips["split"] == "train"]
    write_csv(root / "train.csv", train[["filename", "speaker", "session"]])
    write_csv(root / "test.csv", trials[["id", "file_a", "file_b"]])
    write_csv(root / "sample_submission.csv", pd.DataFrame({"id": trials["id"], "score": 0.0}))
    write_csv(root / "test_answers.csv", trials[["id", "same"]])
    _finish_folder(marker, plan_file, {"params": params, "files": files, "timbres": timbres})
    return root
