"""``features.engine = "ray"``: the cache built through Ray Data, byte for byte the local one."""

from __future__ import annotations

import warnings

import pytest
from audio_factory import write_competition, write_text_as_audio, write_tone

from emo_utils.config import Config, FeatureConfig
from emo_utils.data.competition import load_competition
from emo_utils.errors import ConfigError, EmoUtilsWarning
from emo_utils.features.build import build_cache

ray = pytest.importorskip("ray")

CONFIG = Config.preset("cpu_demo").override(
    {
        "audio.duration": 1.0,
        "audio.max_duration": 1.0,
        "features.n_mels": 32,
        "features.n_fft": 512,
        "features.hop_length": 256,
    }
)


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray instance of two CPUs for this module, shut down after it."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield
    finally:
        ray.shutdown()


def _competition(root):
    train = {}
    for k in range(6):
        write_tone(root / "train" / f"c{k}.wav", seconds=0.4 + 0.3 * k, freq=250.0 + 120 * k)
        train[f"c{k}.wav"] = "ab"[k % 2]
    write_text_as_audio(root / "train" / "bad.mp3")  # a reason instead of an image
    train["bad.mp3"] = "a"
    write_tone(root / "test" / "t.wav", seconds=1.0, freq=440.0)
    write_competition(root, train=train, test=["t.wav"])
    return load_competition(root, CONFIG.data)


def _build(comp, config, cache_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmoUtilsWarning)
        return build_cache(
            comp,
            "train",
            config=config,
            cache_dir=cache_dir,
            n_jobs=1,
            progress=False,
            chunk_size=3,
        )


@pytest.mark.parametrize("backend", ["librosa", "torch"])
def test_ray_cache_is_byte_identical_to_the_local_one(local_ray, tmp_path, backend):
    comp = _competition(tmp_path / "data")
    local_config = CONFIG.override({"features.backend": backend, "features.device": "cpu"})
    ray_config = local_config.override({"features.engine": "ray"})
    # The engine is not in the key: both caches live in the same folder name.
    assert ray_config.feature_hash() == local_config.feature_hash()
    local = _build(comp, local_config, tmp_path / "local")
    remote = _build(comp, ray_config, tmp_path / "ray")
    assert remote.stats["computed"] == len(comp.train)
    assert not local.ok.all()  # the broken clip is in both
    files = sorted(p.name for p in local.directory.iterdir() if p.is_file())
    assert "frames.npy" in files
    assert "manifest.json" in files
    assert files == sorted(p.name for p in remote.directory.iterdir() if p.is_file())
    for name in files:
        assert (remote.directory / name).read_bytes() == (local.directory / name).read_bytes()
    # A second build finds the finished cache and computes nothing.
    assert _build(comp, ray_config, tmp_path / "ray").stats["computed"] == 0


def test_engine_is_validated():
    with pytest.raises(ConfigError, match=r"features\.engine"):
        CONFIG.override({"features.engine": "spark"})
    with pytest.raises(ConfigError, match=r"features\.ray_address"):
        FeatureConfig(ray_address=" auto")


def test_preprocess_engine_options_set_the_config(tmp_path, monkeypatch):
    # `preprocess --engine ray --ray-address auto` is features.engine / features.ray_address.
    from emo_utils import pipeline
    from emo_utils.cli import main

    seen = {}

    def fake_preprocess(data, *, config, **kwargs):
        seen["features"] = config.features
        raise ConfigError("stop", "", "config seen")

    monkeypatch.setattr(pipeline, "preprocess", fake_preprocess)
    args = ["preprocess", "--data", str(tmp_path), "--engine", "ray", "--ray-address", "auto"]
    assert main(args) == 2
    assert seen["features"].engine == "ray"
    assert seen["features"].ray_address == "auto"
    assert main(["preprocess", "--data", str(tmp_path), "--engine", "spark"]) == 2
