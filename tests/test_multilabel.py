"""Multi-label tagging as a task of the pipeline: labels, config, loss, sampling, mixup,
whole-clip pooling and the submission formats."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from audio_factory import write_signal

from emo_utils.config import Config
from emo_utils.data.competition import load_competition
from emo_utils.errors import ConfigError, DataError, EmoUtilsWarning, SubmissionError
from emo_utils.tasks import get_task

TASK = get_task("multilabel")
ML = Config().override({"data.task": "multilabel"})


def _folder(tmp_path, train_rows, *, header=("fname", "labels"), sample=None, test=("t1.wav",)):
    root = tmp_path / "comp"
    (root / "train").mkdir(parents=True)
    (root / "test").mkdir(parents=True)
    pd.DataFrame(train_rows, columns=list(header)).to_csv(root / "train.csv", index=False)
    pd.DataFrame({"fname": list(test)}).to_csv(root / "test.csv", index=False)
    if sample is not None:
        pd.DataFrame(columns=list(sample)).to_csv(root / "sample_submission.csv", index=False)
    return root


def _data(**overrides):
    base = {
        "data.task": "multilabel",
        "data.filename_column": "fname",
        "data.label_column": "labels",
    }
    return Config().override({**base, **overrides}).data


# ---------------------------------------------------------------------------- labels
def test_label_lists_are_split_cleaned_and_sorted(tmp_path):
    rows = [["a.wav", "Dog, Bark"], ["b.wav", "bark"], ["c.wav", "Music"], ["d.wav", "Bark,Bark"]]
    root = _folder(tmp_path, rows)
    with pytest.warns(EmoUtilsWarning, match="differing only in case"):
        comp = load_competition(root, _data())
    assert comp.classes == ("Bark", "Dog", "Music")
    assert comp.train["label"].tolist() == ["Bark;Dog", "Bark", "Music", "Bark"]
    y = TASK.encode(comp.train["label"].tolist(), comp.classes)
    assert y.tolist() == [[1, 1, 0], [1, 0, 0], [0, 0, 1], [1, 0, 0]]


def test_space_separated_labels(tmp_path):
    root = _folder(tmp_path, [["a.wav", "Speech Music"], ["b.wav", "Water"]])
    comp = load_competition(root, _data(**{"data.label_separator": " "}))
    assert comp.train["label"].tolist() == ["Music;Speech", "Water"]


def test_zero_one_columns_from_the_sample_submission(tmp_path):
    rows = [["a.wav", 1, 0, 1], ["b.wav", 0, 1, 0], ["c.wav", 1, 1, 0]]
    root = _folder(
        tmp_path,
        rows,
        header=("fname", "Speech", "Music", "Water"),
        sample=("fname", "Speech", "Music", "Water"),
    )
    comp = load_competition(root, _data())
    assert comp.classes == ("Music", "Speech", "Water")
    assert comp.train["label"].tolist() == ["Speech;Water", "Music", "Music;Speech"]
    assert comp.submission_columns == ("fname", "Speech", "Music", "Water")


def test_zero_one_columns_named_in_the_config_and_bad_cells(tmp_path):
    rows = [["a.wav", "1", "0"], ["b.wav", "0", "yes"]]
    root = _folder(tmp_path, rows, header=("fname", "A", "B"))
    with pytest.raises(DataError, match=r"0 or 1.*line 3 column 'B': 'yes'"):
        load_competition(root, _data(**{"data.label_columns": ["A", "B"]}))


def test_empty_label_list_is_an_error_unless_configured(tmp_path):
    rows = [["a.wav", "Music"], ["b.wav", ""], ["c.wav", "Speech"]]
    root = _folder(tmp_path, rows)
    with pytest.raises(
        DataError, match=r"1 row\(s\) have no label, on line\(s\) \[3\].*empty_label"
    ):
        load_competition(root, _data())
    comp = load_competition(root, _data(**{"data.empty_label": "Silence"}))
    assert comp.train["label"].tolist() == ["Music", "Silence", "Speech"]
    assert "Silence" in comp.classes


def test_sample_submission_with_other_label_columns_is_refused_before_work(tmp_path):
    root = _folder(tmp_path, [["a.wav", "A"], ["b.wav", "B"]], sample=("fname", "A", "C"))
    with pytest.raises(DataError, match="one column per label"):
        load_competition(root, _data())


# ---------------------------------------------------------------------------- config
def test_task_dependent_defaults_resolve_and_follow_the_task():
    assert (ML.ensemble.metric, ML.ensemble.pool, ML.train.loss, ML.train.monitor) == (
        "map",
        "max",
        "bce",
        "map",
    )
    back = ML.override({"data.task": "classification"})
    assert (back.ensemble.metric, back.ensemble.pool, back.train.loss) == (
        "accuracy",
        "mean",
        "cross_entropy",
    )
    kept = Config().override({"ensemble.metric": "lwlrap", "data.task": "multilabel"})
    assert kept.ensemble.metric == kept.train.monitor == "lwlrap"


@pytest.mark.parametrize(
    ("key", "value"),
    [("ensemble.metric", "accuracy"), ("train.loss", "cross_entropy"), ("ensemble.method", "foo")],
)
def test_names_outside_the_task_are_refused(key, value):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        ML.override({key: value})


def test_saved_config_round_trips_with_resolved_names(tmp_path):
    ML.save(tmp_path / "c.json")
    again = Config.from_file(tmp_path / "c.json")
    assert again == ML


# ---------------------------------------------------------------------------- loss
def _logits_targets():
    g = torch.Generator().manual_seed(0)
    return torch.randn(6, 4, generator=g), (torch.rand(6, 4, generator=g) > 0.5).float()


def test_bce_loss_is_fastai_bce_and_carries_the_sigmoid():
    from fastai.losses import BCEWithLogitsLossFlat

    from emo_utils.tasks.multilabel import MultiLabelLoss

    x, t = _logits_targets()
    loss = TASK.make_loss(config=ML.train, targets=t.numpy(), n_classes=4, device="cpu")
    assert isinstance(loss, MultiLabelLoss)
    assert float(loss(x, t)) == pytest.approx(float(BCEWithLogitsLossFlat()(x, t)))
    assert torch.allclose(loss.activation(x), torch.sigmoid(x))
    assert torch.equal(loss.decodes(torch.sigmoid(x)), torch.sigmoid(x) >= 0.5)
    assert torch.allclose(TASK.activation(x), loss.activation(x))


def test_label_smoothing_and_focal_loss():
    from torchvision.ops import sigmoid_focal_loss

    x, t = _logits_targets()
    smooth = TASK.make_loss(
        config=ML.override({"train.label_smoothing": 0.2}).train,
        targets=None,
        n_classes=4,
        device="cpu",
    )
    expected = torch.nn.functional.binary_cross_entropy_with_logits(x, t * 0.8 + 0.1)
    assert float(smooth(x, t)) == pytest.approx(float(expected))
    focal = TASK.make_loss(
        config=ML.override({"train.loss": "focal", "train.focal_gamma": 1.5}).train,
        targets=None,
        n_classes=4,
        device="cpu",
    )
    assert float(focal(x, t)) == pytest.approx(
        float(sigmoid_focal_loss(x, t, alpha=-1, gamma=1.5, reduction="mean"))
    )
    assert float(focal(x, t)) < float(smooth(x, t))  # focusing shrinks easy examples


# ---------------------------------------------------------------------------- mixup, sampling
def test_union_mixup_targets_are_the_union_of_both_clips():
    from fastai.data.core import DataLoaders
    from fastai.learner import Learner
    from fastai.torch_core import TensorImage, TensorMultiCategory

    from emo_utils.train.callbacks import UnionMixUp

    x = TensorImage(torch.randn(8, 1, 4, 4))
    y = TensorMultiCategory(torch.eye(4)[[0, 1, 2, 3, 0, 1, 2, 3]])
    dl = DataLoaders.from_dsets(list(zip(x, y, strict=False)), list(zip(x, y, strict=False)), bs=8)
    learn = Learner(
        dl,
        torch.nn.Linear(16, 4),
        loss_func=TASK.make_loss(config=ML.train, targets=None, n_classes=4, device="cpu"),
    )
    cb = UnionMixUp(0.4)
    learn.add_cb(cb)
    learn.xb, learn.yb = (x,), (y,)
    torch.manual_seed(0)
    cb.before_train()
    cb.before_batch()
    mixed = learn.yb[0]
    audible = (1 - cb.lam) >= cb.min_weight
    assert audible.any()  # this seed draws both cases
    assert (~audible).any()
    union = torch.maximum(cb.yb1[0], y)
    assert torch.equal(mixed[audible], union[audible])
    assert torch.equal(mixed[~audible], y[~audible])  # a barely audible clip adds no label


def test_balanced_weights_draw_every_label_about_equally():
    from emo_utils.train.data import balanced_weights

    rng = np.random.default_rng(0)
    y = np.zeros((400, 3), int)
    y[:300, 0] = 1
    y[300:380, 1] = 1
    y[380:, 2] = 1
    y[rng.choice(300, 20, replace=False), 1] = 1
    w = balanced_weights(y)
    draws = rng.choice(len(y), 20000, p=w)
    share = y[draws].mean(0)
    assert share.max() / share.min() < 1.6  # raw shares: 0.75 / 0.05 = 15
    assert np.isclose(w.sum(), 1.0)


# ---------------------------------------------------------------------------- pooling
class _BandDetector(torch.nn.Module):
    """Logit: how much brighter mel rows ``lo:hi`` are than the rest, anywhere in the window."""

    def __init__(self, lo, hi, offset):
        super().__init__()
        self.lo, self.hi, self.offset = lo, hi, offset

    def forward(self, x):
        band = x[:, 0, self.lo : self.hi].mean(1)  # (B, T)
        rest = x[:, 0].mean(1)
        return (8 * (band - rest).amax(-1) - self.offset)[:, None]


def test_whole_clip_max_pooling_finds_a_label_in_the_last_second_of_a_12s_clip(tmp_path):
    from emo_utils.features import build_cache
    from emo_utils.infer.predict import predict_rows, view_settings

    sr = 16000
    rng = np.random.default_rng(0)
    y = 0.01 * rng.standard_normal(12 * sr)
    t = np.arange(sr) / sr
    y[11 * sr :] += 0.5 * np.sin(2 * np.pi * 3000 * t)  # the label sounds only in 11-12 s
    root = tmp_path / "c"
    write_signal(root / "test" / "long.wav", y, sr=sr)
    write_signal(root / "train" / "a.wav", y[:sr], sr=sr)
    write_signal(root / "train" / "b.wav", y[:sr], sr=sr)
    pd.DataFrame({"fname": ["a.wav", "b.wav"], "labels": ["A", "B"]}).to_csv(
        root / "train.csv", index=False
    )
    pd.DataFrame({"fname": ["long.wav"]}).to_csv(root / "test.csv", index=False)
    # 5 s windows over the 12 s cached (the demo preset sees its clips in one 12 s window).
    config = Config.preset("cpu_demo_multilabel").override({"audio.duration": 5.0})
    comp = load_competition(root, config.data)
    store = build_cache(comp, "test", config=config, n_jobs=1, progress=False)
    assert store.lengths[0] > 2 * store.window_frames  # the whole 12 s are cached
    import librosa

    mel = librosa.mel_frequencies(config.features.n_mels + 2, fmax=sr / 2)[1:-1]
    rows = np.flatnonzero((mel > 2500) & (mel < 3500))
    model = _BandDetector(int(rows[0]), int(rows[-1]) + 1, offset=0.0)
    stats = []
    for window in store.windows(0):
        with torch.no_grad():
            stats.append(float(model(torch.from_numpy(window[None]).float())))
    model.offset = (max(stats) + min(stats)) / 2  # fires on the tone windows only
    settings = view_settings(config)
    assert settings["tta_windows"]
    assert settings["pool"] == "max"
    pooled = predict_rows(model, store, [0], task=TASK, **settings, device="cpu")
    first = predict_rows(model, store, [0], task=TASK, crop="start", device="cpu")
    mean = predict_rows(model, store, [0], task=TASK, tta_windows=True, pool="mean", device="cpu")
    assert pooled[0, 0] > 0.5 > first[0, 0]
    assert pooled[0, 0] > mean[0, 0]


# ---------------------------------------------------------------------------- submission
def _comp(tmp_path, sample):
    root = _folder(
        tmp_path,
        [["a.wav", "A,B"], ["b.wav", "C"], ["c.wav", "A"]],
        sample=sample,
        test=("t1.wav", "t2.wav", "t1.wav"),
    )
    return root, load_competition(root, _data())


@pytest.mark.parametrize("sample", [("fname", "labels"), ("fname", "C", "A", "B")])
def test_submission_formats_rows_order_and_fallback(tmp_path, sample):
    from emo_utils.submission import write_label_sets_submission

    _root, comp = _comp(tmp_path, sample)
    proba = np.array([[0.9, 0.8, 0.1], [np.nan] * 3, [0.2, 0.1, 0.7]])
    decisions = (np.nan_to_num(proba) >= 0.5).astype(int)
    files = write_label_sets_submission(
        comp,
        decisions,
        out_dir=tmp_path / "subs",
        run_name="r",
        method="mean",
        probabilities=proba,
        failures={1: "decode error"},
        data_config=_data(),
        fallback=np.array([1, 0, 0]),
        prior=np.array([0.66, 0.33, 0.33]),
    )
    sub = pd.read_csv(files.submission, dtype=str, keep_default_na=False)
    assert list(sub.columns) == list(sample)
    assert sub["fname"].tolist() == ["t1.wav", "t2.wav", "t1.wav"]
    if len(sample) == 2:
        assert sub["labels"].tolist() == ["A,B", "A", "C"]
    else:
        assert sub["A"].astype(float).tolist() == [0.9, 0.66, 0.2]
    failures = pd.read_csv(files.failures, dtype=str, keep_default_na=False)
    assert failures[["row", "fname", "fallback"]].values.tolist() == [["1", "t2.wav", "A"]]
    probs = pd.read_csv(files.probabilities)
    assert list(probs.columns) == ["fname", "A", "B", "C"]
    assert np.isfinite(probs.iloc[:, 1:]).all().all()


def test_submission_refuses_a_missing_probability_row(tmp_path):
    from emo_utils.submission import write_label_sets_submission

    _, comp = _comp(tmp_path, ("fname", "labels"))
    proba = np.array([[0.9, 0.8, 0.1], [np.nan] * 3, [0.2, 0.1, 0.7]])
    with pytest.raises(SubmissionError, match=r"rows \[1\]"):
        write_label_sets_submission(
            comp,
            np.zeros((3, 3)),
            out_dir=tmp_path / "s",
            run_name="r",
            method="m",
            probabilities=proba,
        )
    assert not (tmp_path / "s").exists()
