"""The frozen config: round trips, presets, overrides and clear errors for bad values."""

from __future__ import annotations

import dataclasses
import json

import pytest

from emo_utils.config import (
    PRESETS,
    Config,
    EnsembleConfig,
    FeatureConfig,
    TrainConfig,
)
from emo_utils.errors import ConfigError, EmoUtilsError
from emo_utils.runs import RunDir


@pytest.mark.parametrize("suffix", [".json", ".yaml", ".yml"])
@pytest.mark.parametrize("preset", ["default", "cpu_demo"])
def test_round_trip_through_file(tmp_path, suffix, preset):
    cfg = (
        Config.preset(preset).override({"train.epochs": 3, "ensemble.weights": [1.0, 2.0]})
        if preset == "cpu_demo"
        else Config()
    )
    path = tmp_path / f"config{suffix}"
    cfg.save(path)
    assert Config.from_file(path) == cfg
    assert list(tmp_path.iterdir()) == [path], "no temporary file may be left behind"


def test_json_file_is_plain_nested_sections(tmp_path):
    Config().save(tmp_path / "c.json")
    data = json.loads((tmp_path / "c.json").read_text())
    assert set(data) == {
        "data",
        "audio",
        "features",
        "statistics",
        "train",
        "ensemble",
        "verification",
        "timeline",
    }
    assert data["features"]["channels"] == ["mel", "chroma", "stft"]
    assert data["data"]["label_column"] == "emotion"


def test_config_is_frozen():
    cfg = Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.train.epochs = 3  # type: ignore[misc]


def test_override_parses_command_line_strings():
    cfg = Config().override(
        {
            "train.epochs": "3",
            "train.architectures": "[resnet18, efficientnet_b0]",
            "train.pretrained": "false",
        }
    )
    assert cfg.train.epochs == 3
    assert cfg.train.architectures == ("resnet18", "efficientnet_b0")
    assert cfg.train.pretrained is False
    assert Config().override({"train.architectures": "resnest50d"}).train.architectures == (
        "resnest50d",
    )


def test_exponents_without_a_dot_are_floats_on_the_command_line_and_in_yaml(tmp_path):
    # YAML 1.1 (PyYAML) would read "1e-3" as a string and the config would refuse it.
    assert Config().override({"train.lr": "1e-3"}).train.lr == pytest.approx(1e-3)
    assert Config().override({"train.weight_decay": "5E-4"}).train.weight_decay == 5e-4
    path = tmp_path / "my.yaml"
    path.write_text("train:\n  lr: 1e-3\n  epochs: 3\n  architectures: [resnet18]\n")
    cfg = Config.from_file(path)
    assert cfg.train.lr == pytest.approx(1e-3)
    assert cfg.train.epochs == 3
    assert Config().override({"train.architectures": "[1e3net]"}).train.architectures == ("1e3net",)


def test_int_given_for_float_field_is_accepted():
    assert Config.from_dict({"train": {"lr": 1}}).train.lr == 1.0


@pytest.mark.parametrize(
    ("overrides", "field", "fragment"),
    [
        ({"train.n_folds": 1}, "train.n_folds", ">= 2"),
        ({"train.epochs": 0}, "train.epochs", ">= 1"),
        ({"train.lr": -1e-3}, "train.lr", "> 0"),
        ({"train.lr": float("nan")}, "train.lr", "finite"),
        ({"train.architectures": []}, "train.architectures", "non-empty"),
        ({"train.architectures": ["resnet18", "resnet18"]}, "train.architectures", "repeat"),
        ({"train.label_smoothing": 1.0}, "train.label_smoothing", "[0, 1)"),
        ({"train.freq_mask": 1.5}, "train.freq_mask", "[0, 1]"),
        ({"train.batch_size": True}, "train.batch_size", "int"),
        ({"audio.sample_rate": 100}, "audio.sample_rate", "between"),
        ({"audio.duration": -5}, "audio.duration", "> 0"),
        ({"audio.max_duration": 2.0}, "audio.max_duration", ">= audio.duration"),
        ({"features.n_mels": -64}, "features.n_mels", "positive"),
        ({"features.hop_length": 0}, "features.hop_length", "positive"),
        ({"features.channels": []}, "features.channels", "non-empty"),
        ({"features.fmax": 10.0, "features.fmin": 20.0}, "features.fmax", "> fmin"),
        ({"ensemble.weights": [1.0, 2.0]}, "ensemble.weights", "one weight per architecture"),
        ({"ensemble.weights": [0.0]}, "ensemble.weights", "not all zero"),
        ({"ensemble.tta_windows": True}, "ensemble.tta_windows", "max_duration"),
        ({"data.label_column": "filename"}, "data.label_column", "differ"),
        ({"data.train_csv": " "}, "data.train_csv", "non-empty"),
    ],
)
def test_bad_values_name_the_field(overrides, field, fragment):
    with pytest.raises(ConfigError) as info:
        Config().override(overrides)
    assert info.value.field == field
    assert field in str(info.value)
    assert fragment in str(info.value)
    assert isinstance(info.value, EmoUtilsError)


def test_integers_refuse_bools_even_when_built_directly():
    for build, field in [
        (lambda: TrainConfig(seed=True), "train.seed"),
        (lambda: FeatureConfig(win_length=True), "features.win_length"),
        (lambda: EnsembleConfig(tta_shifts=True), "ensemble.tta_shifts"),
    ]:
        with pytest.raises(ConfigError) as info:
            build()
        assert info.value.field == field


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_validates(preset):
    cfg = Config.preset(preset)
    assert Config.from_dict(cfg.to_dict()) == cfg
    assert cfg.train.monitor == cfg.ensemble.metric


def test_monitor_defaults_to_the_ensemble_metric(tmp_path):
    assert TrainConfig().monitor is None  # "the ensemble metric", resolved by Config
    cfg = Config()
    assert cfg.train.monitor == cfg.ensemble.metric
    assert cfg == Config.from_dict(cfg.to_dict())
    cfg.save(tmp_path / "config.json")
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["train"]["monitor"] == cfg.ensemble.metric  # stored resolved
    f1 = Config.from_dict({"ensemble": {"metric": "f1_macro"}})
    assert f1.train.monitor == "f1_macro"
    assert Config.from_dict({"train": {"monitor": None}}) == cfg
    # The monitor follows a metric override unless it was set to something else.
    assert cfg.override({"ensemble.metric": "f1_weighted"}).train.monitor == "f1_weighted"
    loss = cfg.override({"train.monitor": "valid_loss"})
    assert loss.override({"ensemble.metric": "f1_weighted"}).train.monitor == "valid_loss"
    both = cfg.override({"ensemble.metric": "f1_weighted", "train.monitor": "accuracy"})
    assert both.train.monitor == "accuracy"


def test_config_json_written_before_the_monitor_default_still_loads(tmp_path):
    """A config.json from before ``monitor: None`` holds ``"f1_macro"`` and no ``data.task``."""
    old = Config().to_dict()
    old["train"]["monitor"] = "f1_macro"
    del old["data"]["task"]
    (tmp_path / "config.json").write_text(json.dumps(old))
    cfg = RunDir(tmp_path).read_config()
    assert cfg.train.monitor == "f1_macro"
    assert cfg.ensemble.metric == "accuracy"
    assert cfg.data.task == "classification"
    assert Config.from_dict(cfg.to_dict()) == cfg
    RunDir(tmp_path).check_config(cfg)


def test_unknown_names_are_errors():
    with pytest.raises(ConfigError, match="unknown field"):
        Config().override({"train.epoch": 3})
    with pytest.raises(ConfigError, match=r"section\.field"):
        Config().override({"epochs": 3})
    with pytest.raises(ConfigError, match="unknown section"):
        Config.from_dict({"training": {}})
    with pytest.raises(ConfigError, match="unknown preset"):
        Config.preset("gpu_huge")


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        Config.from_file(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ConfigError, match="cannot be parsed"):
        Config.from_file(broken)
    wrong_type = tmp_path / "wrong.yaml"
    wrong_type.write_text("train:\n  epochs: three\n")
    with pytest.raises(ConfigError, match=r"train\.epochs"):
        Config.from_file(wrong_type)


def test_feature_hash_tracks_only_image_settings():
    base = Config()
    assert base.feature_hash() == Config().feature_hash()
    assert base.override({"train.epochs": 1}).feature_hash() == base.feature_hash()
    assert base.override({"features.n_mels": 64}).feature_hash() != base.feature_hash()
    assert base.override({"audio.sample_rate": 16000}).feature_hash() != base.feature_hash()
    assert base.override({"audio.crop": "center"}).feature_hash() != base.feature_hash()
    # The training crop only picks a cached window: the same images serve both settings.
    assert base.override({"audio.train_crop": "random"}).feature_hash() == base.feature_hash()


def test_section_validates_on_its_own():
    with pytest.raises(ConfigError, match=r"train\.n_folds"):
        TrainConfig(n_folds=0)


def test_run_folder_config_checks(tmp_path):
    with pytest.raises(ConfigError, match="train the run first"):
        RunDir(tmp_path).read_config()
    RunDir(tmp_path).check_config(Config())  # a new run folder takes any config
    Config().save(tmp_path / "config.json")
    assert RunDir(tmp_path).read_config() == Config()
    RunDir(tmp_path).check_config(Config().override({"train.num_workers": 4}))  # runtime only
    with pytest.raises(ConfigError, match=r"train\.epochs.*new run folder") as info:
        RunDir(tmp_path).check_config(Config().override({"train.epochs": 3, "audio.duration": 4.0}))
    assert "audio.duration" in str(info.value)
