"""Contract tests of the task and model registries, and the one prediction path.

Every registered task and model family runs through the same checks, so a new entry is
tested by adding it to its registry.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from hf_factory import save_tiny_models

from emo_utils.config import Config
from emo_utils.data.competition import Competition
from emo_utils.errors import ConfigError, TrainingError
from emo_utils.features import FeatureStore
from emo_utils.infer.predict import predict_rows, predict_test, view_settings
from emo_utils.models import (
    MODEL_FAMILIES,
    build_model,
    check_architectures,
    load_fold_model,
    resolve_architecture,
)
from emo_utils.runs import RunDir
from emo_utils.tasks import TASKS, get_task
from emo_utils.train import train_cv

CLASSES = ("angry", "happy", "sad")


# ---------------------------------------------------------------------------- tasks
@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_task_activation_equals_its_fastai_loss_activation(name):
    task = TASKS[name]
    labels = [CLASSES[i % 3] for i in range(12)]
    targets = task.encode(labels, CLASSES)
    config = Config().override({"data.task": name})
    loss = task.make_loss(
        config=config.train, targets=targets, n_classes=len(CLASSES), device="cpu"
    )
    logits = torch.randn(12, len(CLASSES), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(task.activation(logits), loss.activation(logits).float())
    proba = task.activation(logits).numpy()
    # fastai applies a loss's decodes to its activation's output (Learner.get_preds).
    decoded = loss.decodes(loss.activation(logits)).numpy()
    np.testing.assert_array_equal(task.decode(proba), decoded)
    assert np.isfinite(float(loss(logits, torch.as_tensor(targets))))


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_task_scores_perfect_predictions_best_and_splits_into_folds(name):
    task = TASKS[name]
    labels = [CLASSES[i % 3] for i in range(12)]
    targets = task.encode(labels, CLASSES)
    perfect = targets if targets.ndim == 2 else np.eye(len(CLASSES))[targets]
    best = 1.0 if task.greater_is_better else 0.0  # accuracy, mAP ...; error rates, costs
    for metric in task.metrics:
        assert task.score(metric, targets, perfect) == pytest.approx(best)
    assert [m.name for m in task.fastai_metrics()] == list(task.metrics)
    folds = task.split(labels, n_folds=3, seed=0)
    assert folds.shape == (12,)
    assert set(folds) == {0, 1, 2}
    assert np.array_equal(folds, task.split(labels, n_folds=3, seed=0))  # the seed fixes them
    fallback = np.asarray(task.fallback(np.array([0.2, 0.5, 0.3])))
    if task.label_kind == "single":  # a class index
        assert 0 <= fallback < len(CLASSES)
    else:  # a 0/1 label vector: the labels at least half the clips hold
        assert fallback.tolist() == [0, 1, 0]
    assert task.output_columns(CLASSES)


def test_unknown_task_is_a_config_error_naming_the_field():
    with pytest.raises(ConfigError, match=r"data\.task.*classification"):
        get_task("regression")


# ---------------------------------------------------------------------------- models
@pytest.mark.parametrize("prefix", sorted(MODEL_FAMILIES))
def test_every_model_family_builds_a_model_giving_one_output_per_class(prefix, tmp_path):
    from emo_utils.models.classical import fit_estimator, predict_estimator

    family = MODEL_FAMILIES[prefix]
    small = {  # one small model per family (hf: a tiny random wav2vec2 in a local folder)
        "timm": lambda: "test_resnet",
        "sed": lambda: "test_resnet",
        "classical": lambda: "logreg",
        "hf": lambda: str(save_tiny_models(tmp_path)["wav2vec2"]),
        "hfemb": lambda: str(save_tiny_models(tmp_path)["wav2vec2"]) + "@1",
    }
    name = small[prefix]()
    assert family.check(name) is None
    assert family.check("no_such_model_xyz") is not None
    channels = {"image": 3, "waveform": 1}.get(family.input, 3)
    model = build_model(f"{prefix}:{name}", 4, pretrained=False, in_chans=channels)
    if family.trainer == "sklearn":  # an estimator, fitted on statistics vectors
        x = np.random.default_rng(0).normal(size=(40, 6))
        fitted = fit_estimator(model, x, np.arange(40) % 4, label_kind="single", seed=0)
        assert predict_estimator(fitted, x[:2], n_outputs=4, label_kind="single").shape == (2, 4)
        return
    x = torch.zeros(2, 3, 32, 48) if family.input == "image" else torch.zeros(2, 16000)
    with torch.no_grad():
        assert model.eval()(x).shape == (2, 4)


def test_plain_timm_names_and_prefixed_names_resolve_to_the_same_model():
    family, name = resolve_architecture("resnet18")
    assert (family.prefix, name) == ("timm", "resnet18")
    assert resolve_architecture("timm:resnet18")[1] == "resnet18"
    check_architectures(["resnet18", "timm:resnet18"])
    with pytest.raises(TrainingError, match=r"train\.architectures.*'resnet1'.*resnet18"):
        check_architectures(["resnet1"])


def test_a_new_family_plugs_in_by_prefix_and_declares_its_normalizations(monkeypatch):
    from torch import nn

    from emo_utils.models import ModelFamily, check_normalization, register_family

    monkeypatch.setitem(MODEL_FAMILIES, "toy", MODEL_FAMILIES["timm"])  # restored afterwards
    register_family(
        ModelFamily(
            prefix="toy",
            input="features",
            build=lambda name, *, n_outputs, **_: nn.Linear(8, n_outputs),
            check=lambda name: None if name == "linear" else f"{name!r} is not a toy model",
            check_weights=lambda name, weights_dir: None,
            normalizations=("none",),
        )
    )
    assert build_model("toy:linear", 5, pretrained=False)(torch.zeros(2, 8)).shape == (2, 5)
    with pytest.raises(TrainingError, match="'mlp' is not a toy model"):
        check_architectures(["toy:mlp"])
    check_normalization(["toy:linear", "resnet18"], "none")
    with pytest.raises(TrainingError, match=r"image_normalization.*'dataset'.*toy:linear"):
        check_normalization(["toy:linear"], "dataset")


def test_inference_imports_no_fastai():
    import subprocess
    import sys

    code = (
        "import sys, emo_utils.infer, emo_utils.models, emo_utils.tasks, emo_utils.runs;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'fastai'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------------------- one prediction path
def _long_clips(n_per_class: int = 4) -> tuple[Competition, FeatureStore]:
    """Clips of 1.0 to 2.5 windows (24 frames), class-dependent bands."""
    rng = np.random.default_rng(0)
    names, labels, images = [], [], []
    for k, label in enumerate(CLASSES):
        for j in range(n_per_class):
            frames = 24 + 12 * (j % 4)
            image = rng.normal(0.0, 1.0, (3, 16, frames)).astype(np.float32)
            image[:, 4 * k : 4 * k + 4, :] += 2.0
            names.append(f"{label}_{j}.wav")
            labels.append(label)
            images.append(image)
    train = pd.DataFrame({"filename": names, "label": labels, "path": names})
    comp = Competition(
        root=None,
        train=train,
        test=pd.DataFrame({"filename": [], "path": []}),
        classes=CLASSES,
        submission_columns=("filename", "emotion"),
    )
    return comp, FeatureStore.from_arrays(names, images, window_frames=24)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("windows", "shifts"), [(False, 0), (True, 0), (False, 2), (True, 1)], ids=str
)
def test_oof_and_test_predictions_of_a_clip_agree_under_every_tta_setting(
    tmp_path, windows, shifts
):
    comp, store = _long_clips()
    config = Config().override(
        {
            "train.architectures": ["test_resnet"],
            "train.pretrained": False,
            "train.n_folds": 2,
            "train.epochs": 1,
            "train.batch_size": 4,
            "ensemble.tta_windows": windows,
            "ensemble.tta_shifts": shifts,
            "audio.max_duration": 15.0,
        }
    )
    result = train_cv(comp, store, run_dir=tmp_path, config=config, progress=False)
    oof = result.oof["test_resnet"].set_index("filename")
    run = RunDir(tmp_path)
    for fold in range(2):
        model = load_fold_model(run, arch="test_resnet", fold=fold, device="cpu")
        rows = np.flatnonzero(oof.loc[store.filenames, "fold"].to_numpy() == fold)
        again = predict_rows(model, store, rows, task="classification", **view_settings(config))
        expected = oof.loc[[store.filenames[i] for i in rows], list(CLASSES)].to_numpy()
        np.testing.assert_allclose(again, expected, atol=1e-6)
    # The test path (every fold, averaged) is the mean of the same per-fold predictions.
    test = predict_test(store, run_dir=run, config=config, device="cpu", progress=False)
    per_fold = [
        predict_rows(
            load_fold_model(run, arch="test_resnet", fold=k, device="cpu"),
            store,
            np.arange(len(store)),
            task="classification",
            **view_settings(config),
        )
        for k in range(2)
    ]
    np.testing.assert_allclose(test["test_resnet"], np.mean(per_fold, axis=0), atol=1e-6)
