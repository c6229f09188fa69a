"""The hf model family: transformers waveform classifiers (wav2vec2, AST) fine-tuned in the
fastai CV loop on a waveform cache built like the images.

No download: every model is a tiny random one built from a transformers config class and
written with ``save_pretrained`` to a temporary folder, which is also the offline (Kaggle
dataset) path: ``hf:/path/to/folder``.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from audio_factory import tone, write_signal
from cli_runner import run_cli, sets, small_demo
from hf_factory import SR, save_tiny_models

from emo_utils import reports
from emo_utils.audio import load_clip, pad_clip
from emo_utils.config import Config
from emo_utils.data.competition import load_competition
from emo_utils.errors import ConfigError, EmoUtilsWarning, TrainingError
from emo_utils.features import build_waveforms, waveform_config
from emo_utils.infer.predict import predict_test
from emo_utils.models import (
    build_inputs,
    build_model,
    check_architectures,
    check_local_weights,
    load_fold_model,
)
from emo_utils.models import embeddings as embeddings_module
from emo_utils.models.hf import (
    KaldiFbank,
    ZeroMeanUnitVariance,
    check_hf_input,
    check_hf_name,
    hf_training_groups,
    layer_groups,
)
from emo_utils.runs import RunDir
from emo_utils.train import check_training_setup, train_cv
from emo_utils.train.augment import TimeShift, batch_augmentations
from emo_utils.train.learner import layer_learning_rates

transformers = pytest.importorskip("transformers")

CONFIG = Config().override(
    {
        "audio.sample_rate": SR,
        "audio.duration": 1.0,
        "audio.max_duration": 1.0,
        "features.n_mels": 32,
        "features.n_fft": 512,
        "features.hop_length": 256,
        "train.n_folds": 2,
        "train.epochs": 1,
        "train.batch_size": 8,
        "train.lr": 1e-3,
        "train.mixup": 0.0,
    }
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    return save_tiny_models(tmp_path_factory.mktemp("hf-models"))


def _write_folder(root: Path, *, n_per_class: int = 6) -> Path:
    """Low tones are 'calm', high tones 'alert'; 0.4-1.0 s, so some are padded."""
    names, labels = [], []
    for label, freq in (("calm", 300.0), ("alert", 3000.0)):
        for j in range(n_per_class):
            name = f"{label}_{j:02d}.wav"
            y = tone(sr=SR, seconds=0.4 + 0.2 * (j % 4), freq=freq * (1 + 0.03 * j), noise=0.05)
            write_signal(root / "train" / name, y, sr=SR)
            names.append(name)
            labels.append(label)
    write_signal(root / "test" / "t0.wav", tone(sr=SR, seconds=1.0, freq=320.0), sr=SR)
    write_signal(root / "test" / "t1.wav", tone(sr=SR, seconds=0.7, freq=2900.0), sr=SR)
    pd.DataFrame({"filename": names, "emotion": labels}).to_csv(root / "train.csv", index=False)
    pd.DataFrame({"filename": ["t0.wav", "t1.wav"]}).to_csv(root / "test.csv", index=False)
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = _write_folder(tmp_path_factory.mktemp("hf-data"))
    return root, load_competition(root, CONFIG.data)


def _inputs(comp, split, config):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmoUtilsWarning)  # short clips are padded
        return build_inputs(comp, split, config=config, n_jobs=1, progress=False)


def _inputs_in(comp, split, config, cache_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmoUtilsWarning)
        return build_inputs(
            comp, split, config=config, cache_dir=cache_dir, n_jobs=1, progress=False
        )


# ---------------------------------------------------------------------------- the waveform store
def test_the_waveform_store_holds_the_clips_and_reuses_its_cache(folder, tmp_path):
    _, comp = folder
    config = CONFIG.override({"audio.waveform_sample_rate": 8000})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmoUtilsWarning)
        store = build_waveforms(comp, "train", config=config, cache_dir=tmp_path, n_jobs=1)
        again = build_waveforms(comp, "train", config=config, cache_dir=tmp_path, n_jobs=1)
    assert store.image_shape == (1, 1, 8001)  # duration * rate samples + the one after
    assert store.sample_rate == 8000
    assert store.frames.dtype == np.float16
    assert store.stats["computed"] == len(comp.train)
    assert again.stats["computed"] == 0
    assert again.stats["reused"] == len(comp.train)
    assert again.directory == store.directory
    assert store.directory.parent.name == waveform_config(config).feature_hash()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmoUtilsWarning)
        clip = load_clip(comp.train["path"][0], config=waveform_config(config).audio)
    window = store.window(0)[0, 0]
    np.testing.assert_allclose(window[:-1], clip, atol=1e-3)  # float16
    assert window[-1] == 0.0
    # The image settings do not key the waveform cache: another image, the same waveforms.
    other = waveform_config(config.override({"features.n_mels": 64}))
    assert other.feature_hash() == waveform_config(config).feature_hash()


def test_repeat_padding_tiles_a_short_clip_instead_of_zeros(folder, tmp_path):
    _, comp = folder
    short = np.array([0.5, -0.25, 0.125], dtype=np.float32)
    np.testing.assert_array_equal(pad_clip(short, size=7, mode="tile"), np.tile(short, 3)[:7])
    np.testing.assert_array_equal(pad_clip(short, size=5), [0.5, -0.25, 0.125, 0.0, 0.0])
    with pytest.raises(ConfigError, match=r"audio\.pad"):
        Config().override({"audio.pad": "mirror"})
    # The first training clip is 0.4 s: its 1 s window is the clip 2.5 times over.
    config = CONFIG.override({"audio.pad": "tile"})
    assert config.feature_hash() != CONFIG.feature_hash()
    assert waveform_config(config).feature_hash() != waveform_config(CONFIG).feature_hash()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmoUtilsWarning)
        store = build_waveforms(comp, "train", config=config, cache_dir=tmp_path, n_jobs=1)
    n = round(0.4 * SR)
    window = store.window(0)[0, 0].astype(np.float64)
    np.testing.assert_allclose(window[n : 2 * n], window[:n], atol=1e-3)
    assert np.abs(window[2 * n : SR]).mean() > 0.1  # no silence at the end


# ---------------------------------------------------------------------------- the models
def _kaldi_filters(num_mel_bins: int) -> np.ndarray:
    """Kaldi's mel filterbank on the 257 bins of a 512-point FFT at 16 kHz, ``(257, mels)``."""
    from transformers.audio_utils import mel_filter_bank

    return mel_filter_bank(
        num_frequency_bins=257,
        num_mel_filters=num_mel_bins,
        min_frequency=20,
        max_frequency=SR // 2,
        sampling_rate=SR,
        norm=None,
        mel_scale="kaldi",
        triangularize_in_mel_space=True,
    )


def _kaldi_fbank_reference(y: np.ndarray, *, num_mel_bins: int, max_length: int) -> np.ndarray:
    """AST's input by transformers' numpy kernels: Kaldi's fbank (torchaudio's), 16 kHz."""
    from transformers.audio_utils import spectrogram, window_function

    mel = _kaldi_filters(num_mel_bins)
    fbank = spectrogram(
        y,
        window_function(400, "hann", periodic=False),
        frame_length=400,
        hop_length=160,
        fft_length=512,
        power=2.0,
        center=False,
        preemphasis=0.97,
        mel_filters=mel,
        log_mel="log",
        mel_floor=1.192092955078125e-07,
        remove_dc_offset=True,
    ).T[:max_length]
    fbank = np.pad(fbank, ((0, max_length - len(fbank)), (0, 0)))
    return (fbank - -4.2677393) / (4.5689974 * 2)


def test_the_torch_preprocessing_equals_the_transformers_feature_extractors():
    rng = np.random.default_rng(0)
    ast = transformers.ASTFeatureExtractor(num_mel_bins=32, max_length=128)
    kaldi = KaldiFbank(ast.to_dict())
    # Without torchaudio, transformers 4.44 computed its numpy fbank on a slightly wrong FFT
    # grid (bins 31.37 Hz apart instead of 31.25); torchaudio (AST's own training code) and
    # later versions use Kaldi's, as KaldiFbank does.
    filters = getattr(ast, "mel_filters", None)
    exact = filters is None or np.allclose(filters, _kaldi_filters(32))
    for n in (12345, 16001, 24000):  # padded to max_length, and cut
        y = (0.3 * rng.standard_normal(n)).astype(np.float32)
        got = kaldi(torch.from_numpy(y)[None])[0].numpy()
        expected = _kaldi_fbank_reference(y, num_mel_bins=32, max_length=128)
        np.testing.assert_allclose(got, expected, atol=1e-4)
        if exact:
            extracted = ast(y, sampling_rate=SR, return_tensors="np")["input_values"][0]
            np.testing.assert_allclose(got, extracted, atol=1e-4)
    w2v = transformers.Wav2Vec2FeatureExtractor()
    y = rng.standard_normal(SR).astype(np.float32)
    expected = w2v(y, sampling_rate=SR, return_tensors="np")["input_values"][0]
    got = ZeroMeanUnitVariance(w2v.to_dict())(torch.from_numpy(y)[None])[0].numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_names_are_local_folders_or_hub_ids(tiny, tmp_path):
    assert check_hf_name(str(tiny["wav2vec2"])) is None
    assert check_hf_name("facebook/wav2vec2-base") is None  # looked up when built
    assert "no such folder" in check_hf_name(str(tmp_path / "absent"))
    assert "hub id" in check_hf_name("no_such_model_xyz")
    (tmp_path / "empty").mkdir()
    assert "config.json" in check_hf_name(str(tmp_path / "empty"))
    with pytest.raises(TrainingError, match=r"train\.architectures.*hf:no_such_model_xyz"):
        check_architectures(["hf:no_such_model_xyz"])


def test_a_hub_id_is_read_from_weights_dir_offline(tiny, tmp_path):
    weights = tmp_path / "weights"
    shutil.copytree(tiny["ast"], weights / "MIT--ast-tiny")  # the org--name layout
    model = build_model("hf:MIT/ast-tiny", 2, pretrained=True, weights_dir=weights, in_chans=1)
    assert model.model.config.model_type == "audio-spectrogram-transformer"
    # Without pretrained weights the architecture still comes from there, not the hub.
    assert build_model("hf:MIT/ast-tiny", 2, pretrained=False, weights_dir=weights, in_chans=1)
    with pytest.raises(TrainingError, match=r"train\.weights_dir: no model folder.*MIT/ast-x"):
        check_local_weights(["hf:MIT/ast-x"], weights)


def test_the_models_take_waveform_windows_and_reload_from_their_weights_alone(tiny):
    x = torch.randn(2, 1, 1, SR + 1)
    for folder in tiny.values():
        model = build_model(f"hf:{folder}", 3, pretrained=True, in_chans=1).eval()
        with torch.no_grad():
            logits = model(x)
            assert logits.shape == (2, 3)
            assert torch.allclose(model(x[:, 0, 0]), logits)  # (B, T) too
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):  # as AMP on a GPU
            assert model.prepare(x[:, 0, 0]).dtype == torch.float32  # preprocessing in fp32
            assert torch.isfinite(model(x)).all()
        family_state = model.state_dict()
        assert "_extra_state" in family_state  # the config travels with the weights
        from emo_utils.models.hf import hf_from_state

        rebuilt = hf_from_state(folder.name, state=family_state, n_outputs=3)
        rebuilt.load_state_dict(family_state)
        with torch.no_grad():
            assert torch.allclose(rebuilt.eval()(x), logits)


def test_a_wrong_sample_rate_or_window_names_the_model_and_the_values(folder, tiny):
    _, comp = folder
    arch = f"hf:{tiny['wav2vec2']}"
    config = CONFIG.override({"train.architectures": [arch], "audio.waveform_sample_rate": 8000})
    with pytest.raises(TrainingError, match=r"tiny-wav2vec2.*takes 16000 Hz.*is 8000 Hz") as info:
        check_training_setup(comp, config)
    assert "audio.waveform_sample_rate: 16000" in str(info.value)
    # A store at another rate than the model's, fed directly: the same message.
    model = build_model(arch, 2, pretrained=False, in_chans=1)
    store = _inputs(comp, "train", config)["waveform"]
    with pytest.raises(TrainingError, match=r"tiny-wav2vec2.*takes 16000 Hz.*is 8000 Hz"):
        check_hf_input(arch, model, store)
    # AST takes max_length = 128 frames (1.29 s): a 2 s window is refused before any work.
    ast = f"hf:{tiny['ast']}"
    long = CONFIG.override(
        {"train.architectures": [ast], "audio.duration": 2.0, "audio.max_duration": 2.0}
    )
    with pytest.raises(
        TrainingError, match=r"tiny-ast.*max_length = 128.*audio\.duration <= 1\.29"
    ):
        check_training_setup(comp, long)
    # An image store fed to a waveform model.
    images = _inputs(comp, "train", CONFIG)["image"]
    with pytest.raises(TrainingError, match="waveform store"):
        check_hf_input(arch, model, images)


def test_layer_decay_groups_the_layers_from_the_bottom_to_the_head(tiny):
    model = build_model(f"hf:{tiny['wav2vec2']}", 2, pretrained=False, in_chans=1)
    groups = layer_groups(model)
    assert len(groups) == 4  # below the 2 layers, layer 0, layer 1, the head
    assert sum(len(g) for g in groups) == len(list(model.parameters()))
    encoder = model.model.wav2vec2.feature_extractor
    assert {id(p) for p in encoder.parameters()} <= {id(p) for p in groups[0]}
    assert {id(p) for p in model.model.classifier.parameters()} <= {id(p) for p in groups[-1]}
    np.testing.assert_allclose(layer_learning_rates(1e-3, 0.5, 4), [1.25e-4, 2.5e-4, 5e-4, 1e-3])
    ast = build_model(f"hf:{tiny['ast']}", 2, pretrained=False, in_chans=1)
    assert len(layer_groups(ast)) == 4


def test_augmentations_that_only_make_sense_for_images_skip_waveforms():
    tc = CONFIG.override({"train.time_shift": 0.1, "train.time_mask": 0.2}).train
    assert [type(t) for t in batch_augmentations(tc, "waveform")] == [TimeShift]
    assert len(batch_augmentations(tc, "image")) == 3


# ---------------------------------------------------------------------------- frozen embeddings
def test_frozen_embeddings_are_extracted_once_per_clip_and_layer_and_reused(
    folder, tiny, tmp_path, monkeypatch
):
    _, comp = folder
    w2v = tiny["wav2vec2"]
    names = [str(w2v), f"{w2v}@1"]  # the last layer (2) and layer 1: one extraction
    config = CONFIG.override({"train.architectures": [f"hfemb:{n}" for n in names]})
    check_architectures(config.train.architectures)
    calls = []
    real = embeddings_module.extract_embeddings

    def interrupted(*args, **kwargs):
        calls.append(len(args[2]))
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed after its first chunk
        return real(*args, **kwargs)

    monkeypatch.setattr(embeddings_module, "CHUNK_SIZE", 4)
    monkeypatch.setattr(embeddings_module, "extract_embeddings", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _inputs_in(comp, "train", config, tmp_path)
    monkeypatch.setattr(embeddings_module, "extract_embeddings", real)
    store = _inputs_in(comp, "train", config, tmp_path)["embeddings"]
    n = len(comp.train)
    assert store.stats[names[0]]["computed"] == n - 4  # the finished chunk was kept
    assert store.stats[names[1]]["computed"] == 0  # every layer came with the first
    again = _inputs_in(comp, "train", config, tmp_path)["embeddings"]
    assert [again.stats[m]["computed"] for m in names] == [0, 0]
    for name in names:
        np.testing.assert_array_equal(again.vectors[name], store.vectors[name])
        assert store.vectors[name].shape == (n, 64)  # mean and std of 32 hidden units
        assert np.isfinite(store.vectors[name]).all()
    folder_of = store.directories[names[0]]
    assert sorted(p.name for p in folder_of.glob("layer-*.npy")) == [
        "layer-00.npy",
        "layer-01.npy",
        "layer-02.npy",
    ]
    assert not (folder_of / "chunks").exists()
    # The cached vectors are the model's pooled hidden states.
    hf_config = CONFIG.override({"train.architectures": [f"hf:{w2v}"]})
    waveforms = _inputs_in(comp, "train", hf_config, tmp_path)["waveform"]
    model = build_model(f"hf:{w2v}", 2, pretrained=True, in_chans=1)
    direct = real(model, waveforms, [0, 5])
    np.testing.assert_allclose(store.vectors[names[1]][[0, 5]], direct[:, 1], atol=1e-5)
    assert store.view(names[1]).matrix([0]).shape == (1, 64)


def test_a_layer_the_model_lacks_is_refused_before_any_work(folder, tiny):
    _, comp = folder
    config = CONFIG.override({"train.architectures": [f"hfemb:{tiny['wav2vec2']}@3"]})
    with pytest.raises(TrainingError, match=r"layer 3 does not exist.*0 to 2"):
        check_training_setup(comp, config)
    with pytest.raises(TrainingError, match="whole number"):
        check_architectures([f"hfemb:{tiny['wav2vec2']}@last"])


# ---------------------------------------------------------------------------- training
@pytest.mark.slow
def test_fine_tuning_keeps_the_feature_encoder_frozen_and_the_folds_load_offline(
    folder, tiny, tmp_path
):
    _, comp = folder
    source = tmp_path / "tiny-wav2vec2"
    shutil.copytree(tiny["wav2vec2"], source)
    arch = f"hf:{source}"
    config = CONFIG.override(
        {"train.architectures": [arch], "train.pretrained": True, "train.layer_decay": 0.7}
    )
    pretrained = build_model(arch, 2, pretrained=True, in_chans=1)
    encoder = dict(pretrained.model.wav2vec2.feature_extractor.named_parameters())
    groups = hf_training_groups(pretrained, config.train)
    trained_ids = {id(p) for g in groups for p in g}
    assert all(not p.requires_grad for p in encoder.values())
    assert not trained_ids & {id(p) for p in encoder.values()}
    assert len(groups) == 4

    train = _inputs(comp, "train", config)
    test = _inputs(comp, "test", config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmoUtilsWarning)  # tiny random models learn little
        result = train_cv(comp, train, run_dir=tmp_path / "run", config=config, progress=False)
        again = train_cv(comp, train, run_dir=tmp_path / "run", config=config, progress=False)
    assert again.trained == []  # every fold finished: skipped
    run = RunDir(tmp_path / "run")
    oof = pd.read_csv(run.oof_file(arch))
    assert sorted(oof["filename"]) == sorted(comp.train["filename"])
    assert np.isfinite(oof[list(result.classes)].to_numpy()).all()
    assert run.read_done(arch, 0)["normalization"]["name"] == "none"

    shutil.rmtree(source)  # the pretrained folder is gone: the folds load from model.pth
    for fold in range(2):
        model = load_fold_model(run.path, arch=arch, fold=fold, device="cpu")
        after = dict(model.model.model.wav2vec2.feature_extractor.named_parameters())
        for name, p in encoder.items():
            torch.testing.assert_close(after[name], p, msg=f"{name} changed")
        head = model.model.model.classifier.weight
        assert not torch.equal(head, pretrained.model.classifier.weight)  # the head trained
    predicted = predict_test(test, run_dir=run, progress=False, write=False)[arch]
    assert predicted.shape == (2, 2)
    np.testing.assert_allclose(predicted.sum(axis=1), 1.0, atol=1e-6)


@pytest.mark.slow
def test_wav2vec2_ast_and_frozen_embeddings_through_the_cli_write_oof_and_every_test_row(
    tiny, tmp_path
):
    archs = [f"hf:{tiny['wav2vec2']}", f"hf:{tiny['ast']}", f"hfemb:{tiny['wav2vec2']}@1"]
    proc = run_cli(
        *small_demo(
            tmp_path,
            "audio.duration=1.0",
            "audio.pad=tile",
            "train.pretrained=true",
            f"train.architectures=[{', '.join(archs)}]",
        )
    )
    run = RunDir(tmp_path / "run")
    train = pd.read_csv(tmp_path / "data" / "train.csv")
    for arch in archs:
        oof = pd.read_csv(run.oof_file(arch))
        assert sorted(oof["filename"]) == sorted(train.iloc[:, 0])
        assert run.fold_done(arch, 1)
        assert f"CV accuracy {arch}" in proc.stdout
    test = pd.read_csv(tmp_path / "data" / "test.csv")
    subs = list((tmp_path / "subs").glob("run__*.csv"))
    sub = pd.read_csv(
        next(p for p in subs if "probabilities" not in p.name and "failures" not in p.name)
    )
    assert sub.iloc[:, 0].tolist() == test.iloc[:, 0].tolist()
    assert sub.iloc[:, 1].notna().all()


def test_embeddings_stores_join_in_row_order_for_a_pseudo_label_round():
    from emo_utils.errors import CacheError
    from emo_utils.features.concat import concat_stores

    def store(names, rows, reasons):
        vectors = {"m@1": np.asarray(rows, np.float32)}
        return embeddings_module.EmbeddingStore(filenames=names, vectors=vectors, reasons=reasons)

    test = store(["t0", "t1"], [[0.0, 1.0], [2.0, 3.0]], ["", "cannot be decoded"])
    unlabelled = store(["u0"], [[4.0, 5.0]], [""])
    joined = concat_stores([test, unlabelled])
    assert joined.filenames == ["t0", "t1", "u0"]
    assert joined.ok.tolist() == [True, False, True]
    np.testing.assert_array_equal(joined.view("m@1").matrix(), [[0, 1], [2, 3], [4, 5]])
    other = embeddings_module.EmbeddingStore(
        filenames=["x"], vectors={"m@2": np.zeros((1, 2), np.float32)}, reasons=[""]
    )
    with pytest.raises(CacheError, match="other models or layers"):
        concat_stores([test, other])


def test_the_families_demo_writes_its_tiny_waveform_model_and_ensembles_three_families(tmp_path):
    # Defaults of `demo --preset cpu_families` run in an empty folder: the tiny random
    # wav2vec2 is written under data/demo/models (train.weights_dir), the run goes to its
    # own folder (not the default demo's runs/demo), and the members table names the family
    # of each of the run's models.
    run_cli(
        "demo",
        "--preset",
        "cpu_families",
        "--n-train",
        "40",
        "--n-test",
        "10",
        "--jobs",
        "1",
        *sets("train.epochs=1", "train.n_folds=2", "features.n_mels=32", "audio.duration=1.0"),
        cwd=tmp_path,
    )
    model_folder = tmp_path / "data" / "demo" / "models" / "emo-utils" / "tiny-wav2vec2"
    assert (model_folder / "config.json").is_file()
    assert (model_folder / "preprocessor_config.json").is_file()
    assert not (tmp_path / "runs" / "demo").exists()
    run = RunDir(tmp_path / "runs" / "demo_cpu_families")
    config = run.read_config()
    assert Path(config.train.weights_dir) == (tmp_path / "data" / "demo" / "models").resolve()
    members = reports.ensemble_members(run.path)
    assert members["model"].tolist() == list(config.train.architectures)
    assert members["family"].tolist() == ["timm", "classical", "classical", "hf"]
    assert members["input"].tolist() == ["image", "features", "features", "waveform"]
    assert members["accuracy"].between(0, 1).all()
    test = pd.read_csv(tmp_path / "data" / "demo" / "test.csv")
    method = run.read_ensemble_report()["submission_method"]
    sub = pd.read_csv(tmp_path / "submissions" / f"demo_cpu_families__{method}.csv")
    assert sub.iloc[:, 0].tolist() == test.iloc[:, 0].tolist()


def test_a_frozen_embeddings_run_classifies_windows_as_its_test_predictions(folder, tiny, tmp_path):
    """``RunClassifier`` (timelines, detect, serving) computes ``hfemb:`` inputs itself."""
    from emo_utils.timeline import RunClassifier

    _, comp = folder
    arch = f"hfemb:{tiny['wav2vec2']}@1"
    config = CONFIG.override({"train.architectures": [arch]})
    train = _inputs(comp, "train", config)
    test = _inputs(comp, "test", config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmoUtilsWarning)
        train_cv(comp, train, run_dir=tmp_path / "run", config=config, progress=False)
    run = RunDir(tmp_path / "run")
    predicted = predict_test(test, run_dir=run, progress=False, write=False)[arch]
    clf = RunClassifier(run.path, device="cpu")
    for k, name in enumerate(comp.test["filename"]):
        np.testing.assert_allclose(
            clf.classify_clip(comp.root / "test" / name), predicted[k], atol=1e-5
        )
    y = load_clip(comp.root / "test" / "t0.wav", config=config.audio)[: clf.window_samples]
    windows = clf.classify_windows(windows=np.stack([y, y[::-1].copy()]))
    assert windows.shape == (2, 2)
    np.testing.assert_allclose(windows[0], predicted[0], atol=1e-5)
