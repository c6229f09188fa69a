"""The frozen config: round trips, presets, overrides and clear errors for bad values."""

from __future__ import annotations

import dataclasses
import json

import pytest

from emo_utils.config import Config, TrainConfig, check_run_config, load_run_config
from emo_utils.errors import ConfigError, EmoUtilsError


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
    assert set(data) == {"data", "audio", "features", "train", "ensemble"}
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
        ({"train.monitor": "auc"}, "train.monitor", "one of"),
        ({"train.label_smoothing": 1.0}, "train.label_smoothing", "[0, 1)"),
        ({"train.freq_mask": 1.5}, "train.freq_mask", "[0, 1]"),
        ({"train.batch_size": True}, "train.batch_size", "int"),
        ({"audio.sample_rate": 100}, "audio.sample_rate", "between"),
        ({"audio.duration": -5}, "audio.duration", "> 0"),
        ({"audio.max_duration": 2.0}, "audio.max_duration", ">= audio.duration"),
        ({"audio.crop": "random"}, "audio.crop", "one of"),
        ({"features.n_mels": -64}, "features.n_mels", "positive"),
        ({"features.hop_length": 0}, "features.hop_length", "positive"),
        ({"features.channels": []}, "features.channels", "non-empty"),
        ({"features.fmax": 10.0, "features.fmin": 20.0}, "features.fmax", "> fmin"),
        ({"features.normalization": "zscore"}, "features.normalization", "one of"),
        ({"ensemble.metric": "auc"}, "ensemble.metric", "one of"),
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
        load_run_config(tmp_path)
    check_run_config(tmp_path, Config())  # a new run folder takes any config
    Config().save(tmp_path / "config.json")
    assert load_run_config(tmp_path) == Config()
    check_run_config(tmp_path, Config().override({"train.num_workers": 4}))  # runtime only
    with pytest.raises(ConfigError, match=r"train\.epochs.*new run folder") as info:
        check_run_config(tmp_path, Config().override({"train.epochs": 3, "audio.duration": 4.0}))
    assert "audio.duration" in str(info.value)
