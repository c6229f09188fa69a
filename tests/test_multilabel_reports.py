"""Multi-label reports: table values on hand-made arrays, one artist per label, label sets,
label counts and the EDA plots of label sets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from sklearn.metrics import average_precision_score, precision_recall_fscore_support

from emo_utils.config import Config
from emo_utils.errors import ConfigError, DataError
from emo_utils.features import FeatureStore
from emo_utils.reports import save_figure
from emo_utils.reports.eda import plot_channel_grid, plot_class_balance, plot_durations
from emo_utils.reports.labels import clip_labels, label_counts, submission_label_counts
from emo_utils.reports.multilabel import (
    NO_LABEL,
    OTHER_SETS,
    label_set_codes,
    label_set_names,
    per_label_table,
    plot_label_confusion,
    plot_label_cooccurrence,
    plot_per_label_table,
    plot_pr_curves,
    plot_threshold_f1,
)

CLASSES = ["Music", "Speech", "Bell"]
# Six clips; Bell is never present (and once falsely predicted).
Y = np.array(
    [
        [1, 0, 0],
        [1, 1, 0],
        [0, 1, 0],
        [0, 0, 0],
        [1, 0, 0],
        [0, 1, 0],
    ]
)
SCORES = np.array(
    [
        [0.9, 0.2, 0.1],
        [0.4, 0.8, 0.2],
        [0.6, 0.3, 0.7],
        [0.1, 0.1, 0.1],
        [0.7, 0.6, 0.1],
        [0.2, 0.9, 0.1],
    ]
)
# Speech's threshold equals clip 2's score: ">=" makes it a positive prediction.
THRESHOLDS = np.array([0.5, 0.3, 0.5])


def _random_set(n: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random((n, 4)) < [0.5, 0.3, 0.1, 0.05]).astype(int)
    scores = np.clip(0.35 * y + rng.random((n, 4)) * 0.7, 0, 1)
    return y, scores


# ---------------------------------------------------------------------------- table
def test_per_label_table_on_hand_made_arrays():
    table = per_label_table(Y, SCORES, THRESHOLDS, CLASSES)
    assert list(table.index) == CLASSES
    assert list(table.columns) == [
        "precision",
        "recall",
        "f1",
        "ap",
        "support",
        "fp",
        "fn",
        "threshold",
        "note",
    ]
    # Music: predicted clips 0, 2, 4 -> TP 0 and 4, FP 2, FN 1.
    music = table.loc["Music"]
    assert (music["support"], music["fp"], music["fn"]) == (3, 1, 1)
    assert music["precision"] == pytest.approx(2 / 3)
    assert music["recall"] == pytest.approx(2 / 3)
    assert music["f1"] == pytest.approx(2 / 3)
    # Ranking 0.9+, 0.7+, 0.6-, 0.4+: AP = (1 + 1 + 3/4) / 3.
    assert music["ap"] == pytest.approx(11 / 12)
    # Speech: predicted clips 1, 2 (score == threshold), 4, 5 -> 3 TP, 1 FP, 0 FN.
    speech = table.loc["Speech"]
    assert (speech["support"], speech["fp"], speech["fn"]) == (3, 1, 0)
    assert speech["precision"] == pytest.approx(0.75)
    assert speech["recall"] == 1.0
    assert speech["f1"] == pytest.approx(6 / 7)
    assert speech["ap"] == pytest.approx(11 / 12)
    assert table["threshold"].tolist() == THRESHOLDS.tolist()
    # Bell has no positive clip: AP is NaN (and says so), every other cell is a number.
    bell = table.loc["Bell"]
    assert np.isnan(bell["ap"])
    assert "no positive clip" in bell["note"]
    assert (bell["precision"], bell["recall"], bell["f1"], bell["support"], bell["fp"]) == (
        0,
        0,
        0,
        0,
        1,
    )
    assert table.drop(columns=["ap", "note"]).notna().all().all()
    assert table.loc[["Music", "Speech"], "note"].tolist() == ["", ""]
    assert table["support"].dtype == np.int64


def test_per_label_table_matches_sklearn_on_random_data():
    y, scores = _random_set()
    thresholds = np.array([0.5, 0.45, 0.6, 0.55])
    table = per_label_table(y, scores, thresholds, list("abcd"))
    p, r, f, s = precision_recall_fscore_support(
        y, (scores >= thresholds).astype(int), average=None, zero_division=0
    )
    np.testing.assert_allclose(table["precision"], p)
    np.testing.assert_allclose(table["recall"], r)
    np.testing.assert_allclose(table["f1"], f)
    assert table["support"].tolist() == s.tolist()
    ap = [average_precision_score(y[:, j], scores[:, j]) for j in range(4)]
    np.testing.assert_allclose(table["ap"], ap)
    # One threshold for every label.
    same = per_label_table(y, scores, 0.5, list("abcd"))
    assert same["threshold"].tolist() == [0.5] * 4


@pytest.mark.parametrize(
    ("y", "scores", "thresholds", "match"),
    [
        (Y[:, :2], SCORES, THRESHOLDS, r"y_true: expected shape \(n_clips, 3\)"),
        (Y * 2, SCORES, THRESHOLDS, "only 0 and 1"),
        (Y, SCORES[:4], THRESHOLDS, "scores: expected shape"),
        (Y, np.where(SCORES > 0.8, np.nan, SCORES), THRESHOLDS, "NaN"),
        (Y, SCORES, THRESHOLDS[:2], "thresholds: expected 3"),
    ],
)
def test_mismatched_inputs_are_data_errors(y, scores, thresholds, match):
    with pytest.raises(DataError, match=match):
        per_label_table(y, scores, thresholds, CLASSES)
    with pytest.raises(DataError, match=match):
        plot_pr_curves(y, scores, thresholds, CLASSES)


# ---------------------------------------------------------------------------- plots
def _legend(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_pr_curves_one_line_per_label_and_the_tuned_point_marked():
    table = per_label_table(Y, SCORES, THRESHOLDS, CLASSES)
    fig = plot_pr_curves(Y, SCORES, THRESHOLDS, CLASSES, title="m")
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    # Two curves, plus Bell's empty "no curve" legend entry.
    assert len(ax.lines) == 3
    assert len(ax.lines[2].get_xdata()) == 0
    legend = _legend(ax)
    assert legend[0] == "Music (AP 0.917, t=0.50)"
    assert legend[1] == "Speech (AP 0.917, t=0.30)"
    assert "Bell: no curve" in legend[2]
    assert "macro AP 0.917" in ax.get_title()
    # One dot per curve, at the table's (recall, precision).
    points = [c.get_offsets()[0].tolist() for c in ax.collections]
    expected = table.loc[["Music", "Speech"], ["recall", "precision"]].to_numpy()
    np.testing.assert_allclose(points, expected)


def test_threshold_f1_curves_agree_with_the_table_at_the_tuned_threshold():
    y, scores = _random_set()
    classes = list("abcd")
    thresholds = np.array([0.5, 0.45, 0.6, 0.55])
    table = per_label_table(y, scores, thresholds, classes)
    fig = plot_threshold_f1(y, scores, thresholds, classes)
    (ax,) = fig.axes
    assert len(ax.lines) == 4
    assert len(ax.collections) == 4
    for j, (line, dots) in enumerate(zip(ax.lines, ax.collections, strict=True)):
        assert line.get_drawstyle() == "steps-pre"
        x, f1 = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
        # A threshold between two scores acts like the next score up (score >= threshold).
        at = f1[np.searchsorted(x, thresholds[j])]
        assert at == pytest.approx(table["f1"].iloc[j])
        np.testing.assert_allclose(dots.get_offsets()[0], [thresholds[j], table["f1"].iloc[j]])
        assert f"best F1 {f1.max():.3f}" in _legend(ax)[j]
    # Bell (no positives) gets a legend entry but no curve.
    hand = plot_threshold_f1(Y, SCORES, THRESHOLDS, CLASSES)
    assert len(hand.axes[0].collections) == 2
    assert "Bell: no curve" in _legend(hand.axes[0])[2]


def test_cooccurrence_heatmap_writes_the_pair_counts():
    fig = plot_label_cooccurrence(Y, CLASSES)
    ax = fig.axes[0]  # then the colour bar
    assert len(fig.axes) == 2
    shown = np.array([int(t.get_text()) for t in ax.texts]).reshape(3, 3)
    np.testing.assert_array_equal(shown, [[3, 1, 0], [1, 3, 0], [0, 0, 0]])
    assert [t.get_text() for t in ax.get_xticklabels()] == CLASSES
    assert [t.get_text() for t in ax.get_yticklabels()] == CLASSES
    np.testing.assert_array_equal(ax.images[0].get_array(), Y.T @ Y)


def test_label_confusion_bars_hold_tp_fn_and_tn_fp_of_every_label():
    fig = plot_label_confusion(Y, SCORES, THRESHOLDS, CLASSES)
    positives, negatives = fig.axes
    assert len(positives.patches) == len(negatives.patches) == 2 * len(CLASSES)
    widths = [p.get_width() for p in positives.patches]
    assert widths == [2, 3, 0, 1, 0, 0]  # TP of each label, then FN
    widths = [p.get_width() for p in negatives.patches]
    assert widths == [2, 2, 5, 1, 1, 1]  # TN, then FP
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["TP", "FN", "TN", "FP"]
    # First label on top, each label's ticks beside its bars.
    ticks = dict(zip(positives.get_yticks(), positives.get_yticklabels(), strict=True))
    assert [ticks[y].get_text() for y in sorted(ticks, reverse=True)] == CLASSES
    assert positives.patches[0].get_y() > positives.patches[1].get_y()
    # Counts are written on non-empty segments only.
    written = [t.get_text() for t in positives.texts]
    assert sorted(w for w in written if w) == ["1", "2", "3"]


def test_every_figure_renders_to_png(tmp_path):
    figures = {
        "pr": plot_pr_curves(Y, SCORES, THRESHOLDS, CLASSES),
        "f1": plot_threshold_f1(Y, SCORES, THRESHOLDS, CLASSES),
        "cooc": plot_label_cooccurrence(Y, CLASSES),
        "confusion": plot_label_confusion(Y, SCORES, THRESHOLDS, CLASSES),
    }
    for name, fig in figures.items():
        path = save_figure(fig, tmp_path / f"{name}.png")
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_many_labels_get_distinct_colours():
    rng = np.random.default_rng(1)
    y = (rng.random((100, 14)) < 0.3).astype(int)
    fig = plot_pr_curves(y, rng.random((100, 14)), 0.5, [f"l{i}" for i in range(14)])
    colours = {tuple(line.get_color()) for line in fig.axes[0].lines}
    assert len(colours) == 14


# ---------------------------------------------------------------------------- label sets
def test_label_set_names_join_labels_and_name_unlabelled_clips():
    assert label_set_names(Y, CLASSES) == [
        "Music",
        "Music+Speech",
        "Speech",
        NO_LABEL,
        "Music",
        "Speech",
    ]
    assert NO_LABEL == "(none)"


def test_rarest_label_sets_are_grouped_as_other():
    sets = {"A": 5, "A+B": 4, "B": 3, "C": 2, "B+C": 1, "": 1}
    rows = []
    for name, count in sets.items():
        row = [int(c in name.split("+")) for c in "ABC"]
        rows += [row] * count
    y = np.array(rows)
    names = label_set_names(y, list("ABC"), max_sets=3)
    counts = pd.Series(names).value_counts().to_dict()
    assert counts == {"A": 5, "A+B": 4, "B": 3, OTHER_SETS: 4}
    # Ties go to the name that sorts first: "(none)" before "B+C".
    names = label_set_names(y, list("ABC"), max_sets=5)
    assert set(names) == {"A", "A+B", "B", "C", NO_LABEL, OTHER_SETS}
    assert names.count(OTHER_SETS) == 1
    # Few enough sets: nothing is grouped.
    assert OTHER_SETS not in label_set_names(y, list("ABC"), max_sets=6)
    # Ready for plot_embedding_map: integer codes and their names.
    codes, uniques = pd.factorize(pd.Series(names))
    assert len(uniques) == 6
    assert codes.min() == 0


@pytest.mark.parametrize("max_sets", [0, -1, 2.5, True])
def test_max_sets_must_be_a_positive_integer(max_sets):
    with pytest.raises(ConfigError, match="max_sets"):
        label_set_names(Y, CLASSES, max_sets=max_sets)


# ---------------------------------------------------------------------------- table image
def test_per_label_table_image_shows_every_label_and_the_macro_row():
    table = per_label_table(Y, SCORES, THRESHOLDS, CLASSES)
    fig = plot_per_label_table(table, title="m")
    cells = fig.axes[0].tables[0].get_celld()
    text = {key: cell.get_text().get_text() for key, cell in cells.items()}
    rows = [text[(r, -1)] for r in range(1, len(CLASSES) + 2)]
    assert rows == [*CLASSES, "macro"]
    header = [text[(0, c)] for c in range(8)]
    assert header == ["precision", "recall", "f1", "ap", "support", "fp", "fn", "threshold"]
    music = [text[(1, c)] for c in range(8)]
    assert music == ["0.667", "0.667", "0.667", "0.917", "3", "1", "1", "0.50"]
    assert text[(3, 3)] == "-"  # Bell: AP undefined
    macro = [text[(4, c)] for c in range(8)]
    # F1 over every label (as f1_macro), AP over the labels with positives (as map).
    assert macro[2] == f"{table['f1'].mean():.3f}"
    assert macro[3] == f"{table['ap'].dropna().mean():.3f}"
    assert macro[4:] == ["6", "3", "1", "-"]  # FP: Music 1, Speech 1, Bell 1
    with pytest.raises(DataError, match="per_label_table"):
        plot_per_label_table(table.drop(columns=["fp"]))


def test_label_set_codes_index_names_most_frequent_first():
    y = np.array([[1, 1, 0], [0, 1, 0], [0, 1, 0], [0, 0, 0], [1, 0, 1], [1, 0, 1], [0, 1, 0]])
    codes, names = label_set_codes(y, CLASSES, max_sets=2)
    assert names == ["Speech", "Music+Bell", OTHER_SETS]
    assert [names[c] for c in codes] == label_set_names(y, CLASSES, max_sets=2)


# ---------------------------------------------------------------------------- label counts
def test_label_counts_of_label_sets_and_of_single_labels():
    multi = label_counts(["Music;Speech", "Speech", "", "Music;Speech"], label_kind="multi")
    assert multi["clips"].tolist() == [3, 2, 1]
    assert multi.index.tolist() == ["Speech", "Music", NO_LABEL]
    assert multi["share"].tolist() == [0.75, 0.5, 0.25]  # of the clips: may sum past 1
    single = label_counts(["joy", "sad", "joy", "joy;sad"])
    assert single["clips"].to_dict() == {"joy": 2, "sad": 1, "joy;sad": 1}
    assert clip_labels(["a, b", ""], label_kind="multi", separator=",") == [["a", "b"], []]
    with pytest.raises(ConfigError, match="label_kind"):
        clip_labels(["a"], label_kind="pairs")


def test_submission_label_counts_for_every_submission_format():
    multi = Config().override({"data.task": "multilabel"}).data
    lists = pd.DataFrame({"fname": ["a", "b", "c"], "labels": ["Music,Speech", "Speech", ""]})
    counts = submission_label_counts(lists, multi)
    assert counts["test rows"].to_dict() == {"Speech": 2, "Music": 1, NO_LABEL: 1}
    columns = pd.DataFrame({"fname": ["a", "b"], "Music": ["0.2", "0.6"], "Speech": ["1", "0"]})
    expected = submission_label_counts(columns, multi)
    assert expected.index.tolist() == ["Speech", "Music"]
    assert expected["expected test rows"].tolist() == pytest.approx([1.0, 0.8])
    single = pd.DataFrame({"filename": ["a", "b", "c"], "emotion": ["joy", "sad", "joy"]})
    assert submission_label_counts(single, Config().data)["test rows"].to_dict() == {
        "joy": 2,
        "sad": 1,
    }
    with pytest.raises(DataError, match="probabilities"):
        submission_label_counts(columns.assign(Music=["x", "0"]), multi)


# ---------------------------------------------------------------------------- EDA of label sets
def _overview() -> pd.DataFrame:
    labels = ["Music;Speech", "Speech", "Music", "Bell;Music;Speech", "Speech"]
    return pd.DataFrame(
        {
            "split": ["train"] * 5 + ["test"],
            "label": [*labels, ""],
            "duration": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        }
    )


def test_class_balance_of_label_sets_counts_every_label_of_a_clip():
    fig = plot_class_balance(_overview(), label_kind="multi")
    ax = fig.axes[0]
    # Most frequent on top: Speech 4, Music 3, Bell 1 (bars drawn bottom-up).
    assert [t.get_text() for t in ax.get_yticklabels()] == ["Bell", "Music", "Speech"]
    assert [p.get_width() for p in ax.patches] == [1, 3, 4]
    assert [t.get_text() for t in ax.texts] == ["1 (20%)", "3 (60%)", "4 (80%)"]
    assert "5 clips; a clip may hold several labels" in ax.get_title()
    assert "label balance" in ax.get_title()


def test_durations_per_label_hold_every_clip_of_the_label():
    fig = plot_durations(_overview(), label_kind="multi")
    right = fig.axes[1]
    assert [t.get_text() for t in right.get_yticklabels()] == ["Bell", "Music", "Speech"]
    assert right.get_title() == "training durations per label"


def test_channel_grid_of_label_sets_draws_clips_holding_each_label():
    rng = np.random.default_rng(0)
    images = [rng.normal(size=(2, 8, 10)).astype(np.float32) for _ in range(4)]
    store = FeatureStore.from_arrays([f"{i}.wav" for i in range(4)], images, window_frames=10)
    labels = ["Music;Speech", "Speech", "Bell", "Music"]
    fig = plot_channel_grid(store, labels, ["mel", "stft"], per_class=2, label_kind="multi")
    # Bell 1 + Music 2 + Speech 2 examples, 2 channels each.
    assert len(fig.axes) == 5 * 2
    rows = [ax.get_ylabel() for ax in fig.axes[::2]]
    assert [r.split("\n")[0] for r in rows] == ["Bell", "Music", "Music", "Speech", "Speech"]
    assert sorted(r.split("\n")[1] for r in rows[1:3]) == ["0.wav", "3.wav"]
    assert fig._suptitle.get_text() == "feature images per label"
