"""Near-duplicate detection on generated demo clips with planted copies."""

from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from emo_utils.config import Config
from emo_utils.data.competition import load_competition
from emo_utils.data.duplicates import (
    DEFAULT_THRESHOLD,
    calibrate_threshold,
    describe_groups,
    duplicate_groups_for,
    find_duplicates,
)
from emo_utils.data.folds import make_folds
from emo_utils.datasets.synthetic import make_demo_dataset


def _native(path: Path) -> tuple[np.ndarray, int]:
    y, sr = sf.read(path, dtype="float32", always_2d=True)
    return y.mean(axis=1), sr


# Each planter writes a copy of (y, sr) and returns (copy path, expected offset in seconds of
# the original's start inside the copy, or None when the offset is not checked).
def _shifted(y, sr, out):
    pad = np.zeros(int(0.37 * sr), np.float32)
    sf.write(out.with_suffix(".wav"), np.concatenate([pad, y]), sr)
    return out.with_suffix(".wav"), 0.37


def _cut(y, sr, out):
    sf.write(out.with_suffix(".flac"), y[int(0.45 * sr) :], sr)
    return out.with_suffix(".flac"), -0.45


def _gain(y, sr, out):
    sf.write(out.with_suffix(".wav"), 0.2 * y, sr)  # -14 dB
    return out.with_suffix(".wav"), 0.0


def _reencoded(y, sr, out):
    sf.write(out.with_suffix(".mp3"), y, sr)
    return out.with_suffix(".mp3"), 0.0


def _resampled_8k(y, sr, out):
    sf.write(out.with_suffix(".wav"), librosa.resample(y, orig_sr=sr, target_sr=8000), 8000)
    return out.with_suffix(".wav"), 0.0


def _resampled_48k_ogg(y, sr, out):
    sf.write(out.with_suffix(".ogg"), librosa.resample(y, orig_sr=sr, target_sr=48000), 48000)
    return out.with_suffix(".ogg"), 0.0


def _everything(y, sr, out):
    z = librosa.resample(
        np.concatenate([np.zeros(int(0.2 * sr), np.float32), 3.0 * y]), orig_sr=sr, target_sr=22050
    )
    sf.write(out.with_suffix(".mp3"), np.clip(z, -1, 1), 22050)
    return out.with_suffix(".mp3"), 0.2


PLANTERS = [_shifted, _cut, _gain, _reencoded, _resampled_8k, _resampled_48k_ogg, _everything]


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """A demo competition whose train split also holds planted copies of some clips."""
    root = make_demo_dataset(tmp_path_factory.mktemp("dup") / "demo", n_train=35, n_test=1, seed=3)
    train = pd.read_csv(root / "train.csv", dtype=str)
    durations = [sf.info(root / "train" / f).duration for f in train["filename"]]
    # Copy clips long enough for a shift to leave most of them (>= 1.5 s).
    sources = [f for f, d in zip(train["filename"], durations, strict=True) if d >= 1.5]
    assert len(sources) >= len(PLANTERS)
    rows, pairs = [], []
    for k, (name, plant) in enumerate(zip(sources, PLANTERS, strict=False)):
        y, sr = _native(root / "train" / name)
        copy, offset = plant(y, sr, root / "train" / f"copy{k}")
        label = train.loc[train["filename"] == name, "emotion"].item()
        rows.append({"filename": copy.name, "emotion": label})
        pairs.append((name, copy.name, offset, plant.__name__))
    pd.concat([train, pd.DataFrame(rows)]).to_csv(root / "train.csv", index=False)
    return root, pairs


@pytest.fixture(scope="module")
def report(planted):
    root, _ = planted
    comp = load_competition(root)
    return find_duplicates(comp.train["path"].tolist(), n_jobs=1, progress=False), comp


def test_every_planted_copy_is_found_and_nothing_else(planted, report):
    _, pairs = planted
    rep, comp = report
    name = {p: Path(p).name for p in comp.train["path"]}
    found = {
        frozenset((name[a], name[b]))
        for a, b in zip(rep.pairs["file_a"], rep.pairs["file_b"], strict=True)
    }
    expected = {frozenset((src, copy)) for src, copy, _, _ in pairs}
    assert expected - found == set(), "planted copies not found"
    assert found - expected == set(), "distinct clips reported as duplicates"
    assert (rep.pairs["distance"] <= rep.threshold).all()


def test_groups_merge_only_copies_with_their_originals(planted, report):
    _, pairs = planted
    rep, comp = report
    group = dict(zip(comp.train["filename"], rep.groups, strict=True))
    for src, copy, _, how in pairs:
        assert group[src] == group[copy], how
    originals = [f for f in comp.train["filename"] if not f.startswith("copy")]
    # Distinct demo clips (several per emotion, similar in style) all keep their own group.
    assert len({group[f] for f in originals}) == len(originals)
    assert rep.n_merged == len(pairs)
    assert rep.n_duplicate_groups == len(pairs)
    table = rep.group_table()
    assert table["group_size"].max() == 2


def test_pairs_report_the_time_shift(planted, report):
    _, pairs = planted
    rep, _ = report
    by_copy = {
        Path(b).name: row
        for b, row in zip(rep.pairs["file_b"], rep.pairs.itertuples(), strict=True)
    }
    for _, copy, offset, how in pairs:
        row = by_copy[copy]
        assert row.offset_seconds == pytest.approx(offset, abs=0.03), how
        assert row.matched_chunks >= 1


def test_a_stricter_threshold_misses_reencoded_copies(planted):
    root, pairs = planted
    src, copy = next((s, c) for s, c, _, how in pairs if how == "_reencoded")
    paths = [root / "train" / src, root / "train" / copy]
    assert len(find_duplicates(paths, n_jobs=1, progress=False).pairs) == 1
    strict = find_duplicates(paths, threshold=0.005, n_jobs=1, progress=False)
    assert len(strict.pairs) == 0
    assert strict.groups.tolist() == [0, 1]


def test_unreadable_files_are_reported_and_stay_alone(planted, tmp_path):
    root, pairs = planted
    src, copy = pairs[0][:2]
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    rep = find_duplicates(
        [root / "train" / src, empty, root / "train" / copy], n_jobs=1, progress=False
    )
    assert [p for p, _ in rep.failures] == [str(empty)]
    assert rep.groups[0] == rep.groups[2] != rep.groups[1]


def test_default_threshold_lies_between_copies_and_distinct_clips(planted):
    root, _ = planted
    originals = sorted(p for p in (root / "train").iterdir() if not p.name.startswith("copy"))
    cal = calibrate_threshold(originals, n_clips=8, seed=0)
    assert cal.positive_q99 < cal.threshold < cal.negative_q01
    assert cal.positive_q99 < DEFAULT_THRESHOLD < cal.negative_q01
    assert set(cal.positive["transform"]) == {"shift", "gain", "mp3", "resample", "combined"}


def test_grouped_folds_put_every_group_in_one_fold(planted, tmp_path):
    root, pairs = planted
    comp = load_competition(root)
    config = Config().override({"train.use_groups": True, "train.n_folds": 5})
    groups = duplicate_groups_for(comp, config, cache_dir=tmp_path, progress=False, n_jobs=1)
    assert len(groups) == len(comp.train)
    assert describe_groups(groups) == {
        "n_clips": len(comp.train),
        "n_groups": len(comp.train) - len(pairs),
        "n_duplicate_groups": len(pairs),
        "n_merged": len(pairs),
    }

    folds = make_folds(comp.train["label"].tolist(), n_folds=5, seed=0, groups=groups)
    per_group = pd.DataFrame({"group": groups, "fold": folds}).groupby("group")["fold"].nunique()
    assert (per_group == 1).all()
    for src, copy, _, _ in pairs:
        where = dict(zip(comp.train["filename"], folds, strict=True))
        assert where[src] == where[copy]

    # The groups are cached: a second call reads the files instead of recomputing them.
    files = sorted((tmp_path / "duplicates").glob("*"))
    assert {f.name.split("-")[0] for f in files} == {"groups", "pairs", "report"}
    stamps = [f.stat().st_mtime_ns for f in files]
    again = duplicate_groups_for(comp, config, cache_dir=tmp_path, progress=False, n_jobs=1)
    assert again.tolist() == groups.tolist()
    assert [f.stat().st_mtime_ns for f in files] == stamps
    pairs_csv = pd.read_csv(next(f for f in files if f.name.startswith("pairs")))
    assert {"file_a", "file_b", "distance"} <= set(pairs_csv.columns)
    assert len(pairs_csv) == len(pairs)


def test_pca_filtered_search_finds_exactly_what_the_full_search_finds(planted, report):
    rep, comp = report
    full = find_duplicates(comp.train["path"].tolist(), search_dims=None, n_jobs=1, progress=False)
    pd.testing.assert_frame_equal(full.pairs, rep.pairs, rtol=1e-3)
    assert full.groups.tolist() == rep.groups.tolist()
