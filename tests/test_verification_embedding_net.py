"""Embedding heads of the verification task: statistics pooling, input norms, sub-centre ArcFace."""

from __future__ import annotations

import pytest
import torch

from emo_utils.config import Config, VerificationConfig
from emo_utils.errors import ConfigError
from emo_utils.models.embedding_net import (
    EMBEDDING_POOLINGS,
    INPUT_NORMS,
    build_embedding_net,
    check_embedding_architectures,
    embedding_weights,
    load_embedding_net,
)
from emo_utils.tasks.verification import EMBEDDING_LOSSES, make_embedding_loss

ARCH = "test_resnet"


def _net(pooling: str, input_norm: str, dim: int = 16):
    torch.manual_seed(0)
    return build_embedding_net(
        arch=ARCH,
        embedding_dim=dim,
        mean=[0.0, 0.0, 0.0],
        std=[1.0, 1.0, 1.0],
        in_chans=3,
        pooling=pooling,
        input_norm=input_norm,
    ).eval()


@pytest.mark.parametrize("pooling", sorted(EMBEDDING_POOLINGS))
@pytest.mark.parametrize("input_norm", sorted(INPUT_NORMS))
def test_every_head_gives_unit_embeddings_of_the_configured_size(pooling, input_norm):
    net = _net(pooling, input_norm, dim=24)
    for frames in (40, 63):  # any window length
        with torch.no_grad():
            out = net(torch.randn(5, 3, 32, frames))
        assert out.shape == (5, 24)
        assert torch.allclose(out.norm(dim=1), torch.ones(5), atol=1e-5)


def test_stats_pooling_uses_the_spread_over_time_not_only_the_mean():
    net = _net("stats", "none")
    head = net.net.model
    with torch.no_grad():
        features = head.body.forward_features(torch.randn(2, 3, 32, 48))
    assert features.ndim == 4  # the backbone's map, its own pooling removed
    # mean and std over time of every channel in each of two frequency bins
    assert head.proj.in_features == 2 * 2 * features.shape[1]


def test_cmn_makes_embeddings_blind_to_a_fixed_channel_colouring():
    x = torch.randn(3, 3, 32, 50)
    colouring = torch.linspace(-2.0, 2.0, 32).view(1, 1, 32, 1)  # a microphone's response
    with torch.no_grad():
        cmn = _net("stats", "cmn")
        assert torch.allclose(cmn(x), cmn(x + colouring), atol=1e-4)
        plain = _net("stats", "none")
        assert not torch.allclose(plain(x), plain(x + colouring), atol=1e-2)


def test_a_saved_stats_pooling_net_loads_with_the_same_outputs(tmp_path):
    net = _net("stats", "cmn")
    path = tmp_path / "model.pth"
    torch.save(embedding_weights(net.state_dict()), path)
    loaded = load_embedding_net(
        path,
        arch=ARCH,
        embedding_dim=16,
        mean=[0.0, 0.0, 0.0],
        std=[1.0, 1.0, 1.0],
        in_chans=3,
        pooling="stats",
        input_norm="cmn",
    )
    x = torch.randn(2, 3, 32, 40)
    with torch.no_grad():
        assert torch.allclose(loaded(x), net(x), atol=1e-6)


def test_unknown_heads_are_config_errors():
    with pytest.raises(ConfigError, match=r"verification\.pooling"):
        _net("attention", "none")
    with pytest.raises(ConfigError, match=r"verification\.input_norm"):
        _net("stats", "layer")
    with pytest.raises(ConfigError, match=r"verification\.pooling"):
        VerificationConfig(pooling="max")
    with pytest.raises(ConfigError, match=r"verification\.input_norm"):
        VerificationConfig(input_norm="batch")
    with pytest.raises(ConfigError, match=r"verification\.sub_centers"):
        VerificationConfig(sub_centers=0)


def test_subcenter_arcface_trains_its_centres_with_the_model():
    options = VerificationConfig(sub_centers=2)
    loss = make_embedding_loss("subcenter_arcface", n_classes=5, embedding_dim=8, options=options)
    weights = list(loss.head.parameters())
    assert sum(w.numel() for w in weights) == 8 * 5 * 2  # two centres per identity
    embeddings = torch.nn.functional.normalize(torch.randn(10, 8), dim=1).requires_grad_()
    labels = torch.arange(5).repeat(2)
    value = loss(embeddings, labels)
    value.backward()
    assert torch.isfinite(value)
    assert embeddings.grad is not None
    assert weights[0].grad is not None
    with torch.no_grad():  # validation identities are unseen: the batch-hard triplet loss
        assert torch.isfinite(loss(embeddings.detach(), labels))


def test_the_verification_demo_preset_is_valid_and_builds_its_networks():
    config = Config.preset("cpu_demo_verification")
    assert config.data.task == "verification"
    vc, tc = config.verification, config.train
    check_embedding_architectures(tc.architectures)
    assert tc.loss in EMBEDDING_LOSSES
    assert tc.batch_size % vc.clips_per_identity == 0  # whole P x K batches
    frames = 1 + int(config.audio.duration * config.audio.sample_rate) // config.features.hop_length
    window = torch.randn(2, len(config.features.channels), config.features.n_mels, frames)
    for arch in tc.architectures:
        net = build_embedding_net(
            arch=arch,
            embedding_dim=vc.embedding_dim,
            mean=[0.0] * len(config.features.channels),
            std=[1.0] * len(config.features.channels),
            in_chans=len(config.features.channels),
            pooling=vc.pooling,
            input_norm=vc.input_norm,
        ).eval()
        with torch.no_grad():
            assert net(window).shape == (2, vc.embedding_dim)
