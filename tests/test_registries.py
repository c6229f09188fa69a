"""Registry contracts: every entry of every registry, and the config's names are the registries'.

Each registry (name -> function or factory) is tested by running *every* entry through the
contract its consumers rely on, never against a literal list of names: a new entry is tested
the moment it is registered, and the config accepts it without being edited.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from sklearn.base import is_classifier

from emo_utils.audio import CROP_POLICIES, PAD_MODES
from emo_utils.config import Config, FeatureConfig, registry_names
from emo_utils.ensemble import ENSEMBLES, STACKING_MODELS
from emo_utils.errors import ConfigError
from emo_utils.features import CHANNELS, NORMALIZATIONS, FeatureStore, Spectrum
from emo_utils.metrics import METRICS
from emo_utils.models import IMAGE_NORMALIZATIONS
from emo_utils.reports import LABEL_KINDS, REPORT_KINDS
from emo_utils.tasks import TASKS

# ---------------------------------------------------------------------------- contracts


@pytest.mark.parametrize("name", sorted(METRICS))
def test_metric_scores_perfect_predictions_best(name):
    rng = np.random.default_rng(0)
    y = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 2])
    perfect = METRICS[name](y, y.copy())
    assert isinstance(perfect, float)
    assert np.isfinite(perfect)
    for _ in range(5):
        other = METRICS[name](y, rng.integers(0, 3, size=len(y)))
        assert isinstance(other, float)
        assert perfect >= other
    assert perfect > METRICS[name](y, (y + 1) % 3), "all-wrong must score below perfect"


@pytest.mark.parametrize("name", sorted(CROP_POLICIES))
@pytest.mark.parametrize(("total", "size"), [(100, 100), (1000, 100), (101, 100), (50, 100)])
def test_crop_policy_returns_a_start_inside_the_clip(name, total, size):
    for seed in range(5):
        start = CROP_POLICIES[name](total=total, size=size, rng=np.random.default_rng(seed))
        assert isinstance(start, int)
        assert 0 <= start <= max(0, total - size)


@pytest.mark.parametrize("name", sorted(PAD_MODES))
@pytest.mark.parametrize("n", [1, 3, 10])
def test_pad_mode_fills_a_short_clip_to_the_size_keeping_its_start(name, n):
    y = np.arange(1, n + 1, dtype=np.float32)
    out = PAD_MODES[name](y, size=10)
    assert out.shape == (10,)
    np.testing.assert_array_equal(out[:n], y)
    assert np.all(np.isfinite(out))


@pytest.mark.parametrize("name", sorted(NORMALIZATIONS))
@pytest.mark.parametrize("kind", ["random", "constant"])
def test_normalization_maps_to_finite_floats_of_the_same_shape(name, kind):
    rng = np.random.default_rng(0)
    x = rng.normal(-30.0, 20.0, size=(16, 40)) if kind == "random" else np.full((16, 40), -100.0)
    out = NORMALIZATIONS[name](x, fixed_range=(-100.0, 60.0))
    assert out.shape == x.shape
    assert np.issubdtype(out.dtype, np.floating)
    assert np.all(np.isfinite(out))


@pytest.mark.parametrize("name", sorted(STACKING_MODELS))
def test_stacking_model_is_a_classifier_that_fits(name):
    rng = np.random.default_rng(0)
    x = rng.random((30, 6))
    y = np.repeat([0, 1, 2], 10)
    x[np.arange(30), y] += 1.0  # learnable
    model = STACKING_MODELS[name](0)
    assert is_classifier(model)
    pred = model.fit(x, y).predict(x)
    assert pred.shape == (30,)
    assert set(pred) <= {0, 1, 2}


def _probas(n_models: int = 3, n_samples: int = 24, n_classes: int = 3) -> tuple:
    rng = np.random.default_rng(0)
    y = np.arange(n_samples) % n_classes
    logits = rng.normal(size=(n_models, n_samples, n_classes))
    logits[:, np.arange(n_samples), y] += 2.0
    p = np.exp(logits)
    return p / p.sum(axis=2, keepdims=True), y, (np.arange(n_samples) // n_classes) % 3


@pytest.mark.parametrize("name", sorted(ENSEMBLES))
@pytest.mark.parametrize("weights", [None, [1.0, 2.0, 1.0]])
def test_ensemble_combines_probabilities_into_labels(name, weights):
    probas, y, folds = _probas()
    ensemble = ENSEMBLES[name](weights=weights).fit(probas, y)
    for labels in (ensemble.predict(probas), ensemble.oof_predict(probas, y, folds)):
        assert labels.shape == (probas.shape[1],)
        assert np.issubdtype(labels.dtype, np.integer)
        assert set(labels.tolist()) <= set(range(probas.shape[2]))
    proba = ensemble.predict_proba(probas)
    assert proba.shape == probas.shape[1:]
    assert np.all(np.isfinite(proba))


@pytest.mark.parametrize("name", sorted(IMAGE_NORMALIZATIONS))
def test_image_normalization_gives_finite_per_channel_statistics(name):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    images = [rng.random((3, 8, 10)).astype(np.float32) for _ in range(4)]
    store = FeatureStore.from_arrays([f"{i}.wav" for i in range(4)], images, window_frames=10)
    mean, std = IMAGE_NORMALIZATIONS[name](store=store, rows=[0, 1, 2], model=torch.nn.Identity())
    for stat in (np.asarray(mean), np.asarray(std)):
        assert stat.shape == (3,)
        assert np.all(np.isfinite(stat))
    assert np.all(np.asarray(std) > 0)


@pytest.mark.parametrize("name", sorted(CHANNELS))
def test_channel_computes_finite_rows_for_every_frame(name):
    config = FeatureConfig(n_fft=512, hop_length=128, n_mels=32)
    t = np.arange(8000) / 8000
    y = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    spectrum = Spectrum(y, sample_rate=8000, config=config)
    spec = CHANNELS[name]
    rows = spec.compute(spectrum=spectrum)
    assert rows.ndim == 2
    assert rows.shape[1] == spectrum.n_frames
    assert np.all(np.isfinite(rows))
    lo, hi = spec.fixed_range(config=config)
    assert np.all(np.isfinite([lo, hi]))
    assert lo < hi


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_task_label_kind_has_a_run_report_and_label_counts(name):
    kind = TASKS[name].label_kind
    assert kind in REPORT_KINDS, f"reports.run.REPORT_KINDS has no entry for {kind!r}"
    assert kind in LABEL_KINDS, f"reports.labels.LABEL_KINDS has no entry for {kind!r}"


@pytest.mark.parametrize("name", sorted(LABEL_KINDS))
def test_label_kind_splits_a_label_string_into_labels(name):
    kind = LABEL_KINDS[name]
    labels = kind.split("Music", ";")
    assert labels == ["Music"]
    assert all(isinstance(label, str) for label in kind.split("Music;Speech", ";"))
    assert kind.noun


# ---------------------------------------------------------------------------- config names

#: Config field -> (registry, names it accepts besides the registry's, names it refuses).
FIELDS = {
    "audio.crop": (CROP_POLICIES, (), ("random",)),  # "random" needs an RNG: training only
    "audio.train_crop": (CROP_POLICIES, (), ()),
    "audio.pad": (PAD_MODES, (), ()),
    "features.normalization": (NORMALIZATIONS, (), ()),
    "train.monitor": (METRICS, ("valid_loss",), ()),
    "train.image_normalization": (IMAGE_NORMALIZATIONS, (), ()),
    "ensemble.metric": (METRICS, (), ()),
    "ensemble.method": (ENSEMBLES, ("best",), ()),
    "ensemble.stacking_model": (STACKING_MODELS, (), ()),
    "data.task": (TASKS, (), ()),
}


def _accepted(field: str) -> list[str]:
    registry, extra, refused = FIELDS[field]
    return sorted({*registry, *extra} - set(refused))


@pytest.mark.parametrize("field", sorted(FIELDS))
def test_config_accepts_exactly_the_registry_names(field):
    section, name = field.split(".")
    for value in _accepted(field):
        assert getattr(getattr(Config().override({field: value}), section), name) == value
    for value in ["no-such-name", *FIELDS[field][2]]:
        # e.g. issue #18: ensemble.method=foo is refused when the Config is built.
        with pytest.raises(ConfigError) as info:
            Config().override({field: value})
        assert info.value.field == field
        assert f"must be one of {_accepted(field)}" in str(info.value)


def test_registry_names_are_the_registries_keys():
    assert registry_names("crop") == tuple(sorted(CROP_POLICIES))
    assert registry_names("normalization") == tuple(sorted(NORMALIZATIONS))
    assert registry_names("metric") == tuple(sorted(METRICS))
    assert registry_names("image_normalization") == tuple(sorted(IMAGE_NORMALIZATIONS))
    assert registry_names("stacking_model") == tuple(sorted(STACKING_MODELS))
    assert registry_names("ensemble") == tuple(sorted(ENSEMBLES))
    assert registry_names("task") == tuple(sorted(TASKS))
    assert registry_names("pad") == tuple(sorted(PAD_MODES))
    with pytest.raises(ValueError, match="unknown registry kind"):
        registry_names("colour")


def test_a_new_registry_entry_is_accepted_without_editing_the_config(monkeypatch):
    monkeypatch.setitem(METRICS, "always_one", lambda y_true, y_pred: 1.0)
    cfg = Config().override({"ensemble.metric": "always_one"})
    assert cfg.ensemble.metric == cfg.train.monitor == "always_one"
    monkeypatch.delitem(METRICS, "always_one")
    with pytest.raises(ConfigError, match=r"ensemble\.metric"):
        Config().override({"ensemble.metric": "always_one"})


def test_importing_the_config_imports_no_registry():
    code = (
        "import sys, emo_utils.config\n"
        "loaded = [m for m in ('emo_utils.audio', 'emo_utils.features', 'emo_utils.metrics',"
        " 'emo_utils.models', 'emo_utils.ensemble', 'emo_utils.tasks') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
