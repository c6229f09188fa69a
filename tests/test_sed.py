"""The frame-level attention head (``sed:<timm name>``): clip logits, frames, timelines."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from audio_factory import write_signal
from timeline_world import CONFIG, RATE, sequence_signal, tone_run, tone_signal

from emo_utils.config import Config
from emo_utils.errors import TrainingError
from emo_utils.models import NormalizedModel, build_model, check_architectures
from emo_utils.models.sed import SedModel, frame_bounds, frame_logits, frame_probabilities
from emo_utils.runs import RunDir
from emo_utils.submission import probabilities_path
from emo_utils.tasks import get_task
from emo_utils.timeline import RunClassifier, file_timeline
from emo_utils.timeline.buffer import stream_audio
from emo_utils.timeline.classifier import FrameProbabilities
from emo_utils.timeline.timelines import frame_rows, write_timeline

#: The tone world trained with the head: 1 s windows at 16 kHz, hop 64 -> 251 image
#: columns -> 8 frames of about 0.125 s from test_resnet's 32x reduction.
SED_CONFIG = CONFIG.override(
    {
        "train.architectures": ["sed:test_resnet", "classical:logreg"],
        "features.hop_length": 64,
    }
)


def _images(n: int, *, width: int = 64, seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """Noise images whose class (0/1) is a bright band in the low or the high mel rows."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 0.3, size=(n, 3, 32, width)).astype(np.float32)
    y = np.arange(n) % 2
    for i, label in enumerate(y):
        rows = slice(2, 8) if label == 0 else slice(22, 28)
        x[i, :, rows] += 2.0
    return torch.from_numpy(x), y


# ---------------------------------------------------------------------------- the head
def test_head_gives_clip_logits_and_frame_logits_at_the_backbone_resolution():
    model = build_model("sed:test_resnet", 4, pretrained=False).eval()
    assert isinstance(model, SedModel)
    x = torch.randn(2, 3, 32, 251)
    with torch.no_grad():
        clip = model(x)
        frames = frame_logits(model, x)
    assert clip.shape == (2, 4)
    assert frames.shape == (2, 8, 4)  # 251 columns / 32 -> 8 frames
    # The clip logits are an attention-weighted mean of the frame logits.
    assert torch.all(clip >= frames.min(dim=1).values - 1e-5)
    assert torch.all(clip <= frames.max(dim=1).values + 1e-5)
    single = frame_probabilities(model, x, activation=get_task("classification").activation)
    torch.testing.assert_close(single.sum(dim=-1), torch.ones(2, 8))
    multi = frame_probabilities(model, x, activation=get_task("multilabel").activation)
    torch.testing.assert_close(multi, torch.sigmoid(frames))


def test_frame_logits_of_a_loaded_model_include_its_normalisation():
    body = build_model("sed:test_resnet", 3, pretrained=False).eval()
    wrapped = NormalizedModel(body, [1.0, 2.0, 3.0], [2.0, 2.0, 4.0]).eval()
    x = torch.randn(1, 3, 32, 128)
    with torch.no_grad():
        want = body.frame_logits((x - wrapped.mean) / wrapped.std)
        torch.testing.assert_close(frame_logits(wrapped, x), want)
        torch.testing.assert_close(wrapped(x), body((x - wrapped.mean) / wrapped.std))
    with pytest.raises(TrainingError, match="no frame-level head"):
        frame_logits(build_model("test_resnet", 3, pretrained=False), x)


def test_sed_names_are_checked_like_timm_names():
    check_architectures(["sed:test_resnet", "test_resnet"])
    with pytest.raises(TrainingError, match=r"train\.architectures.*sed: 'test_resnett'"):
        check_architectures(["sed:test_resnett"])


def test_frame_bounds_follow_the_image_time_axis():
    starts, ends = frame_bounds(8, n_columns=251, hop_length=64, sample_rate=RATE)
    assert starts[0] == 0.0
    np.testing.assert_allclose(ends[:-1], starts[1:])
    np.testing.assert_allclose(np.diff(starts[1:]), 251 / 8 * 64 / RATE)
    # The last column of a 1 s centred STFT ends half a hop after the audio.
    assert ends[-1] == pytest.approx(1.0 + 0.5 * 64 / RATE)


@pytest.mark.parametrize(
    ("task_name", "overrides"),
    [("classification", {}), ("multilabel", {"data.task": "multilabel", "train.loss": "bce"})],
)
def test_clip_output_trains_with_the_tasks_loss(task_name, overrides):
    torch.manual_seed(0)
    task = get_task(task_name)
    x, y = _images(16)
    targets = y if task.label_kind == "single" else task.encode([str(v) for v in y], ["0", "1"])
    loss_fn = task.make_loss(
        config=Config().override(overrides).train,
        targets=targets,
        n_classes=2,
        device=torch.device("cpu"),
    )
    target_t = torch.as_tensor(targets)
    model = build_model("sed:test_resnet", 2, pretrained=False)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def eval_loss() -> float:
        model.eval()
        with torch.no_grad():
            return float(loss_fn(model(x), target_t))

    before = eval_loss()
    for _ in range(30):
        model.train()
        opt.zero_grad()
        loss_fn(model(x), target_t).backward()
        opt.step()
    after = eval_loss()
    assert after < 0.5 * before, (before, after)
    model.eval()
    with torch.no_grad():
        predicted = task.activation(model(x)).argmax(dim=1).numpy()
    assert (predicted == y).all()


# ---------------------------------------------------------------------------- a trained run
@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return tone_run(tmp_path_factory.getbasetemp(), config=SED_CONFIG, name="sed_world")


@pytest.fixture(scope="module")
def classifier(world):
    return RunClassifier(world.run_dir)


def test_a_run_with_the_head_is_predicted_and_ensembled_like_any_other(world, classifier):
    run = RunDir(world.run_dir)
    assert run.read_config().train.architectures == ("sed:test_resnet", "classical:logreg")
    assert run.oof_file("sed:test_resnet").is_file()
    assert classifier.frame_level
    submitted = pd.read_csv(probabilities_path(world.result.submission))
    for _, row in submitted.iterrows():
        got = classifier.classify_clip(world.data / "test" / row["filename"])
        want = row[list(classifier.columns)].to_numpy(dtype=np.float64)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def test_frames_localise_a_class_that_sounds_only_in_the_second_half(classifier):
    window = np.concatenate(
        [tone_signal("quiet", seconds=0.5, seed=1), tone_signal("high", seconds=0.5, seed=2)]
    )
    frames = classifier.classify_frames(windows=window[None])
    assert frames.probabilities.shape == (1, 8, len(classifier.columns))
    assert frames.starts[0] == 0.0
    assert frames.ends[-1] >= 1.0
    high = frames.probabilities[0, :, classifier.columns.index("high")]
    first, second = frames.ends <= 0.5, frames.starts >= 0.5
    assert high[second].mean() - high[first].mean() > 0.2
    predicted = [classifier.columns[i] for i in frames.probabilities[0].argmax(axis=1)]
    assert predicted[:2] == ["quiet", "quiet"]
    assert predicted[-2:] == ["high", "high"]


def test_file_timeline_gives_frame_rows_that_tile_the_file(classifier, tmp_path):
    path = tmp_path / "long.wav"
    write_signal(path, sequence_signal([("quiet", 1.5), ("high", 1.5)], seed=3), sr=RATE)
    timeline = file_timeline(classifier, path, spectrogram=False)
    windows = file_timeline(classifier, path, spectrogram=False, frames=False)
    assert timeline.frames
    assert not windows.frames
    table = timeline.table
    assert list(table.columns) == ["file", "start", "end", *classifier.columns]
    assert len(windows.table) == 5  # 1 s windows every 0.5 s over 3 s
    assert len(table) > 3 * len(windows.table)
    assert table["start"].iloc[0] == 0.0
    np.testing.assert_allclose(table["end"].iloc[:-1], table["start"].iloc[1:])
    assert table["end"].iloc[-1] == pytest.approx(3.0)
    assert (table["end"] - table["start"]).max() < 0.3
    predicted = np.asarray(classifier.columns)[timeline.probabilities.argmax(axis=1)]
    centres = ((table["start"] + table["end"]) / 2).to_numpy()
    change = centres[np.flatnonzero(predicted == "high")[0]]
    assert abs(change - 1.5) <= 0.25  # within one frame-and-a-bit, finer than the 0.5 s hop
    assert (predicted[centres > 1.8] == "high").all()
    written = write_timeline(timeline, tmp_path / "out", stem="long", plot=True)
    assert pd.read_csv(written[0]).shape == table.shape
    assert written[1].stat().st_size > 0


def test_window_rows_of_a_sed_run_equal_its_window_classification(classifier, tmp_path):
    path = tmp_path / "short.wav"
    y = sequence_signal([("low", 1.0), ("mid", 1.0)], seed=5)
    write_signal(path, y, sr=RATE)
    y = np.concatenate(list(stream_audio(path, sample_rate=RATE)))  # as the file decodes
    windows = file_timeline(classifier, path, spectrogram=False, frames=False).table
    assert windows["start"].tolist() == [0.0, 0.5, 1.0]
    direct = classifier.classify_windows(
        windows=np.stack([y[round(s * RATE) : round(s * RATE) + RATE] for s in windows["start"]])
    )
    np.testing.assert_allclose(windows[classifier.columns].to_numpy(), direct, atol=1e-9)


def test_frame_rows_take_each_frame_from_the_window_where_it_is_most_central():
    # Two 1 s windows 0.5 s apart over 1.5 s, four 0.25 s frames each; window k's frames
    # hold probability k + frame index / 10 so every row says where it came from.
    probs = np.array([[[k + j / 10] for j in range(4)] for k in range(2)])
    frames = FrameProbabilities(
        starts=np.arange(4) * 0.25, ends=np.arange(1, 5) * 0.25, probabilities=probs
    )
    starts, ends, values = frame_rows(
        starts=np.array([0.0, 0.5]), ends=np.array([1.0, 1.5]), frames=frames, duration=1.5
    )
    # Window 0 stands for [0, 0.75), window 1 for [0.75, 1.5].
    np.testing.assert_allclose(starts, [0.0, 0.25, 0.5, 0.75, 1.0, 1.25])
    np.testing.assert_allclose(ends, [0.25, 0.5, 0.75, 1.0, 1.25, 1.5])
    np.testing.assert_allclose(values[:, 0], [0.0, 0.1, 0.2, 1.1, 1.2, 1.3])
    # Audio shorter than a window: frames centred past its end are dropped, the last kept
    # one stretched to the end (0.6 s; the frame [0.5, 0.75) is centred past it).
    starts, ends, values = frame_rows(
        starts=np.array([0.0]),
        ends=np.array([0.6]),
        frames=FrameProbabilities(frames.starts, frames.ends, probs[:1]),
        duration=0.6,
    )
    np.testing.assert_allclose(starts, [0.0, 0.25])
    np.testing.assert_allclose(ends, [0.25, 0.6])
    np.testing.assert_allclose(values[:, 0], [0.0, 0.1])
