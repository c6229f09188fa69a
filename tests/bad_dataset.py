"""A competition folder full of bad input, with what the pipeline must make of each file.

:func:`make_bad_competition` writes ``train.csv``, ``test.csv``, the real competition's
``sample_submission.csv`` (five rows of *training* names: only its columns may be used) and
the audio, mixing good clips with every case of :data:`CASES`.  It returns a
:class:`BadCompetition` that says, per CSV row, whether the file must load cleanly
(``"ok"``), load with a warning (``"warn"``) or fail (``"fail"``), and a regular expression
the reason or warning must match, so tests assert against data rather than hard-coded lists.

Cases (see :data:`CASES`):

* broken: empty file, text saved as ``.wav``, header-only WAV, ID3-only mp3, mp3 cut to
  200 bytes, NaN and inf float WAVs, a CSV row whose file does not exist;
* damaged but usable: WAV and mp3 cut short (the part that decodes is kept);
* unusual but valid: silence, DC, one sample, 100 samples, 8-bit, 24-bit, float64 and
  6-channel WAV, 8 kHz and 96 kHz, a 10-minute file whose samples after the first 30 s are
  NaN (it loads only if just its start is decoded), names with spaces, non-ASCII names, and
  names written in one Unicode normal form in the CSV and stored in the other on disk;
* CSV quirks: file names and labels with stray whitespace, a label differing only in case,
  a training file listed twice with the same label, a test file listed twice, and a
  shuffled (unsorted) ``test.csv``.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from audio_factory import (
    write_constant,
    write_empty,
    write_header_only_wav,
    write_id3_only_mp3,
    write_long_wav,
    write_nan_wav,
    write_silence,
    write_text_as_audio,
    write_tone,
    write_truncated_mp3,
    write_truncated_wav,
)

__all__ = [
    "CASES",
    "CLASSES",
    "REAL_SAMPLE_SUBMISSION",
    "BadCompetition",
    "Case",
    "Row",
    "make_bad_competition",
]

#: Classes of the folder; each has its own tone frequency so a tiny CNN can tell them apart.
CLASSES = ("angry", "happy", "sad")
_FREQ = {"angry": 300.0, "happy": 1200.0, "sad": 3000.0}
#: Native rate of the good clips.
SR = 16000

#: The real competition's ``sample_submission.csv`` (HackerEarth "Predict the Emotion"):
#: five rows naming *training* files.  Only its header may be used by the pipeline.
REAL_SAMPLE_SUBMISSION = (
    "filename,emotion\n"
    "18777.mp3,neutral\n"
    "24041.mp3,neutral\n"
    "1621.mp3,joy\n"
    "28883.mp3,neutral\n"
    "14918.mp3,neutral\n"
)

_NOT_AUDIO = "filename,emotion\nnot,audio\n"


@dataclass(frozen=True)
class Case:
    """One kind of file.

    Attributes
    ----------
    name : str
        Case id (used in the file names).
    ext : str
        File extension.
    write : callable or None
        ``write(path)``; ``None`` writes nothing (a CSV row without a file).
    outcome : {"ok", "warn", "fail"}
        What loading it must give.
    reason : str
        Regular expression the failure reason or warning text must match (``""`` for ok).
    """

    name: str
    ext: str
    write: Callable[[Path], object] | None
    outcome: str
    reason: str = ""


def _tone(**kw: object) -> Callable[[Path], object]:
    return lambda p: write_tone(p, **kw)


#: Every bad or unusual file kind, by case id.
CASES: dict[str, Case] = {
    c.name: c
    for c in (
        # broken: the file cannot give an image
        Case("empty", ".wav", write_empty, "fail", r"empty file \(0 bytes\)"),
        Case(
            "text_as_wav",
            ".wav",
            lambda p: write_text_as_audio(p, _NOT_AUDIO * 20),
            "fail",
            r"text file, not audio",
        ),
        Case("header_only_wav", ".wav", write_header_only_wav, "fail", r"no audio samples"),
        Case("id3_only_mp3", ".mp3", write_id3_only_mp3, "fail", r"only an ID3 tag"),
        Case(
            "mp3_cut_to_200_bytes",
            ".mp3",
            lambda p: write_truncated_mp3(p, keep_bytes=200),
            "fail",
            r"no decodable|truncated or damaged",
        ),
        Case("nan_wav", ".wav", write_nan_wav, "fail", r"NaN/inf sample"),
        Case(
            "inf_wav",
            ".wav",
            lambda p: write_nan_wav(p, bad=(np.inf, -np.inf), at=0.5),
            "fail",
            r"NaN/inf sample",
        ),
        Case("missing_file", ".wav", None, "fail", r"file not found"),
        # damaged but usable: the part that decodes is kept, with a warning
        Case(
            "truncated_wav",
            ".wav",
            lambda p: write_truncated_wav(p, sr=SR, seconds=2.0, keep_fraction=0.4),
            "warn",
            r"shorter than its header claims",
        ),
        Case(
            "truncated_mp3",
            ".mp3",
            lambda p: write_truncated_mp3(p, sr=SR, seconds=2.0, keep_fraction=0.5),
            "warn",
            r"shorter than its header claims|decoding stopped",
        ),
        Case(
            "one_sample",
            ".wav",
            lambda p: write_constant(p, sr=SR, seconds=1 / SR, value=0.5),
            "warn",
            r"clip is only 0\.000 s long",
        ),
        Case(
            "hundred_samples",
            ".wav",
            lambda p: write_tone(p, sr=SR, seconds=100 / SR),
            "warn",
            r"clip is only 0\.006 s long",
        ),
        # unusual but valid
        Case("silence", ".wav", lambda p: write_silence(p, sr=SR, seconds=1.5), "ok"),
        Case("dc", ".wav", lambda p: write_constant(p, sr=SR, seconds=1.5, value=0.5), "ok"),
        Case("pcm_u8", ".wav", _tone(sr=SR, seconds=1.5, freq=1200.0, subtype="PCM_U8"), "ok"),
        Case("pcm_24", ".wav", _tone(sr=SR, seconds=1.5, freq=1200.0, subtype="PCM_24"), "ok"),
        Case("float64", ".wav", _tone(sr=SR, seconds=1.5, freq=300.0, subtype="DOUBLE"), "ok"),
        Case("six_channel", ".wav", _tone(sr=SR, seconds=1.5, freq=3000.0, channels=6), "ok"),
        Case("rate_8k", ".wav", _tone(sr=8000, seconds=2.5, freq=1200.0), "ok"),
        Case("rate_96k", ".wav", _tone(sr=96000, seconds=2.5, freq=1200.0), "ok"),
        Case(
            "ten_minutes",
            ".wav",
            lambda p: write_long_wav(p, sr=8000, seconds=600.0, finite_seconds=30.0, freq=1200.0),
            "ok",
        ),
    )
}

#: Training cases: every broken kind (the run must list them all at once) plus a few
#: unusual-but-valid ones that must train fine.
TRAIN_CASES = (
    "empty",
    "text_as_wav",
    "header_only_wav",
    "id3_only_mp3",
    "mp3_cut_to_200_bytes",
    "nan_wav",
    "missing_file",
    "truncated_wav",
    "pcm_u8",
    "pcm_24",
    "float64",
    "six_channel",
    "rate_8k",
    "rate_96k",
)
#: Labels of the training cases (the cases above are tones of these classes' frequencies).
_CASE_LABEL = {
    "pcm_u8": "happy",
    "pcm_24": "happy",
    "float64": "angry",
    "six_channel": "sad",
    "rate_8k": "happy",
    "rate_96k": "happy",
    "truncated_wav": "sad",
}


@dataclass(frozen=True)
class Row:
    """One CSV row and what loading its file must give.

    Attributes
    ----------
    csv_name : str
        The file name exactly as written in the CSV (stray whitespace, Unicode form).
    name : str
        The name the pipeline uses and the submission shows (``csv_name`` stripped).
    case : str
        Case id, or ``"good"`` for an ordinary clip.
    outcome : {"ok", "warn", "fail"}
    reason : str
        Regular expression for the failure reason or warning.
    label : str or None
        Clean training label (``None`` for test rows).
    """

    csv_name: str
    name: str
    case: str
    outcome: str
    reason: str = ""
    label: str | None = None


@dataclass
class BadCompetition:
    """The folder written by :func:`make_bad_competition` and the expected outcomes.

    Attributes
    ----------
    root : pathlib.Path
    train : list of Row
        One per distinct training file, in ``train.csv`` order (the duplicated row once).
    test : list of Row
        One per ``test.csv`` row, in its (unsorted) order, duplicates included.
    duplicated_train : str
        The training name listed twice.
    case_label : tuple of str
        ``(minority spelling, merged spelling)`` of the case-only label difference.
    """

    root: Path
    train: list[Row] = field(default_factory=list)
    test: list[Row] = field(default_factory=list)
    duplicated_train: str = ""
    case_label: tuple[str, str] = ("Happy", "happy")

    def train_failures(self) -> dict[str, str]:
        """Training name -> reason regex of every training file that must fail."""
        return {r.name: r.reason for r in self.train if r.outcome == "fail"}

    def test_failures(self) -> dict[int, tuple[str, str]]:
        """Test row -> ``(name, reason regex)`` of every row that must fall back."""
        return {i: (r.name, r.reason) for i, r in enumerate(self.test) if r.outcome == "fail"}

    def test_names(self) -> list[str]:
        """The submission's file names: ``test.csv``'s, stripped, in its order."""
        return [r.name for r in self.test]


def _write_case(folder: Path, stem: str, case: Case) -> str:
    name = f"{stem}{case.ext}"
    if case.write is not None:
        case.write(folder / name)
    return name


def make_bad_competition(
    root: str | Path, *, n_good_train: int = 6, n_good_test: int = 6, seed: int = 0
) -> BadCompetition:
    """Write the bad competition folder under ``root`` and describe what each row must give.

    Parameters
    ----------
    root : str or pathlib.Path
        Folder to create.
    n_good_train : int
        Good training clips per class (besides the unusual ones).
    n_good_test : int
        Good test clips.
    seed : int
        Seed of the clip lengths, noise and the test-row shuffle.

    Returns
    -------
    BadCompetition
    """
    rng = np.random.default_rng(seed)
    root = Path(root)
    train_dir, test_dir = root / "train", root / "test"
    out = BadCompetition(root=root)
    train_rows: list[tuple[str, str]] = []  # (csv name, csv label) as written

    def good(folder: Path, name: str, label: str) -> None:
        write_tone(
            folder / name,
            sr=SR,
            seconds=float(rng.uniform(0.8, 3.0)),
            freq=_FREQ[label] * float(rng.uniform(0.95, 1.05)),
            noise=0.05,
            seed=int(rng.integers(1 << 30)),
        )

    # --- training rows
    for label in CLASSES:
        for j in range(n_good_train):
            name = f"{label}_{j:02d}.wav"
            good(train_dir, name, label)
            # Stray whitespace around some labels; one case-only difference ("Happy").
            written = {0: f" {label}", 1: f"{label}  "}.get(j, label)
            if label == "happy" and j == 2:
                written = out.case_label[0]
            train_rows.append((name, written))
            out.train.append(Row(name, name, "good", "ok", label=label))
    for case_id in TRAIN_CASES:
        case = CASES[case_id]
        name = _write_case(train_dir, f"train_{case_id}", case)
        label = _CASE_LABEL.get(case_id, CLASSES[len(out.train) % len(CLASSES)])
        train_rows.append((name, label))
        out.train.append(Row(name, name, case_id, case.outcome, case.reason, label))
    # Names with spaces and non-ASCII characters, stray whitespace around a name, and both
    # Unicode normal forms (the CSV in one, the disk in the other).
    specials = [
        ("clip with spaces.wav", "clip with spaces.wav", "spaces"),
        ("  padded name.wav ", "padded name.wav", "stray_whitespace"),
        ("情绪 01.wav", "情绪 01.wav", "non_ascii"),
        (
            unicodedata.normalize("NFC", "café triste.wav"),
            unicodedata.normalize("NFD", "café triste.wav"),
            "nfc_in_csv_nfd_on_disk",
        ),
        (
            unicodedata.normalize("NFD", "über joy.wav"),
            unicodedata.normalize("NFC", "über joy.wav"),
            "nfd_in_csv_nfc_on_disk",
        ),
    ]
    for k, (csv_name, disk_name, case_id) in enumerate(specials):
        label = CLASSES[k % len(CLASSES)]
        good(train_dir, disk_name, label)
        train_rows.append((csv_name, label))
        out.train.append(Row(csv_name, csv_name.strip(), case_id, "ok", label=label))
    # A training file listed twice with the same label.
    out.duplicated_train = "sad_03.wav"
    train_rows.append((out.duplicated_train, "sad"))

    # --- test rows
    test_rows: list[Row] = []
    for j in range(n_good_test):
        name = f"t{j:02d}.wav"
        good(test_dir, name, CLASSES[j % len(CLASSES)])
        test_rows.append(Row(name, name, "good", "ok"))
    for case_id, case in CASES.items():
        name = _write_case(test_dir, f"test_{case_id}", case)
        test_rows.append(Row(name, name, case_id, case.outcome, case.reason))
    for k, (csv_name, disk_name, case_id) in enumerate(specials):
        test_name = "t_" + csv_name.strip()
        test_csv = csv_name.replace(csv_name.strip(), test_name)
        good(test_dir, "t_" + disk_name.strip(), CLASSES[k % len(CLASSES)])
        test_rows.append(Row(test_csv, test_name, case_id, "ok"))
    order = rng.permutation(len(test_rows))
    out.test = [test_rows[i] for i in order]
    # A test file listed twice (both rows must reach the submission), one of them broken.
    out.test.insert(3, out.test[0])
    broken = next(r for r in out.test if r.case == "empty")
    out.test.insert(10, broken)

    root.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(train_rows, columns=["filename", "emotion"]).to_csv(
        root / "train.csv", index=False
    )
    pd.DataFrame({"filename": [r.csv_name for r in out.test]}).to_csv(
        root / "test.csv", index=False
    )
    (root / "sample_submission.csv").write_text(REAL_SAMPLE_SUBMISSION, encoding="utf-8")
    return out
