"""Verification: is this the same identity (speaker, baby) as that? (CryCeleb, VoxCeleb).

Targets are identity indices; the network is an embedding network (the model registry's
backbone with ``verification.embedding_dim`` outputs: pooled features -> projection),
whose activation is the L2 normalisation of its outputs; two clips are compared by the
cosine similarity of their embeddings (:mod:`emo_utils.verification.scoring`).  Folds are
identity-disjoint (:func:`emo_utils.data.verification.make_identity_folds`), so
validation always scores identities the model never saw.  Metrics: equal error rate and
the NIST minimum detection cost (:mod:`emo_utils.verification.metrics`), both lower is
better; a validation fold is scored on every same-identity pair of its clips and a seeded
sample of different-identity pairs (:func:`~emo_utils.verification.scoring.sample_trials`).

Losses (:data:`EMBEDDING_LOSSES`, ``train.loss``), all from ``pytorch-metric-learning``:

``triplet``
    ``TripletMarginLoss`` on cosine similarity with online batch-hard mining
    (``BatchHardMiner``: the hardest positive and hardest negative of every anchor);
``triplet_easy_hard``
    the same loss with ``BatchEasyHardMiner`` (easiest positive, semi-hard negative),
    gentler at the start of training;
``arcface``
    ``ArcFaceLoss`` (additive angular margin softmax over the fold's training identities;
    its class weights live in the model as ``loss_head`` so the optimiser trains them and
    checkpoints save them);
``subcenter_arcface``
    ``SubCenterArcFaceLoss``: ArcFace with ``verification.sub_centers`` centres per
    identity (a noisy or multi-condition clip may sit near any of them).

Validation identities are never training identities, so the validation loss is always the
batch-hard triplet loss (it needs no class weights), whatever ``train.loss`` trains with.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..data.verification import check_identity_fold_counts, make_identity_folds
from ..errors import TrainingError
from ..verification.metrics import VERIFICATION_METRICS, get_verification_metric
from ..verification.scoring import cosine_scores, sample_trials
from ._registry import Task, register_task

if TYPE_CHECKING:
    import torch

    from ..config import TrainConfig, VerificationConfig

__all__ = ["EMBEDDING_LOSSES", "EmbeddingLoss", "Verification", "make_embedding_loss"]

#: Different-identity trials per same-identity trial when a task-level score is computed
#: without a config (:meth:`Verification.score`); training uses ``verification.oof_ratio``.
DEFAULT_RATIO = 5.0


class EmbeddingLoss:
    """A metric-learning loss on embeddings, with fastai's loss contract.

    Parameters
    ----------
    loss : torch.nn.Module
        A ``pytorch-metric-learning`` loss, called as ``loss(embeddings, labels, tuples)``.
    miner : object, optional
        A ``pytorch-metric-learning`` miner giving the loss its tuples.
    head : torch.nn.Module, optional
        The part of ``loss`` with trainable parameters (ArcFace's class weights): the
        training puts it in the model (``EmbeddingNet.loss_head``).
    margin : float
        Margin of the batch-hard triplet loss used on validation batches.

    Notes
    -----
    Under ``torch.no_grad()`` (fastai's validation) the loss is the batch-hard triplet
    loss, which needs no class weights of the validation identities.
    """

    y_int = True

    def __init__(
        self, loss: Any, *, miner: Any = None, head: Any = None, margin: float = 0.2
    ) -> None:
        from pytorch_metric_learning.distances import CosineSimilarity
        from pytorch_metric_learning.losses import TripletMarginLoss
        from pytorch_metric_learning.miners import BatchHardMiner

        self.loss, self.miner, self.head = loss, miner, head
        self.valid_loss = TripletMarginLoss(margin=margin, distance=CosineSimilarity())
        self.valid_miner = BatchHardMiner(distance=CosineSimilarity())
        self.reduction = "mean"

    def __call__(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The loss of a batch of embeddings ``(B, d)`` with identity indices ``(B,)``."""
        import torch

        e = embeddings.as_subclass(torch.Tensor).float()
        y = labels.as_subclass(torch.Tensor).long()
        if not torch.is_grad_enabled():
            return self.valid_loss(e, y, self.valid_miner(e, y))
        tuples = self.miner(e, y) if self.miner is not None else None
        return self.loss(e, y, tuples)

    def activation(self, outputs: torch.Tensor) -> torch.Tensor:
        """L2 normalisation of the outputs (the embeddings), in float32."""
        import torch.nn.functional as F

        return F.normalize(outputs.float(), dim=-1)

    def decodes(self, embeddings: torch.Tensor) -> torch.Tensor:
        """The embeddings as they are (a verification has no class decision)."""
        return embeddings


def _triplet(n_classes: int, dim: int, options: VerificationConfig) -> EmbeddingLoss:
    from pytorch_metric_learning.distances import CosineSimilarity
    from pytorch_metric_learning.losses import TripletMarginLoss
    from pytorch_metric_learning.miners import BatchHardMiner

    return EmbeddingLoss(
        TripletMarginLoss(margin=options.triplet_margin, distance=CosineSimilarity()),
        miner=BatchHardMiner(distance=CosineSimilarity()),
        margin=options.triplet_margin,
    )


def _triplet_easy_hard(n_classes: int, dim: int, options: VerificationConfig) -> EmbeddingLoss:
    from pytorch_metric_learning.distances import CosineSimilarity
    from pytorch_metric_learning.losses import TripletMarginLoss
    from pytorch_metric_learning.miners import BatchEasyHardMiner

    miner = BatchEasyHardMiner(
        pos_strategy=BatchEasyHardMiner.EASY,
        neg_strategy=BatchEasyHardMiner.SEMIHARD,
        distance=CosineSimilarity(),
    )
    return EmbeddingLoss(
        TripletMarginLoss(margin=options.triplet_margin, distance=CosineSimilarity()),
        miner=miner,
        margin=options.triplet_margin,
    )


def _arcface(n_classes: int, dim: int, options: VerificationConfig) -> EmbeddingLoss:
    from pytorch_metric_learning.losses import ArcFaceLoss

    loss = ArcFaceLoss(
        num_classes=int(n_classes),
        embedding_size=int(dim),
        margin=options.arcface_margin,
        scale=options.arcface_scale,
    )
    return EmbeddingLoss(loss, head=loss, margin=options.triplet_margin)


def _subcenter_arcface(n_classes: int, dim: int, options: VerificationConfig) -> EmbeddingLoss:
    from pytorch_metric_learning.losses import SubCenterArcFaceLoss

    loss = SubCenterArcFaceLoss(
        num_classes=int(n_classes),
        embedding_size=int(dim),
        margin=options.arcface_margin,
        scale=options.arcface_scale,
        sub_centers=options.sub_centers,
    )
    return EmbeddingLoss(loss, head=loss, margin=options.triplet_margin)


#: ``train.loss`` name -> ``builder(n_classes, embedding_dim, VerificationConfig)``.
EMBEDDING_LOSSES: dict[str, Callable[[int, int, Any], EmbeddingLoss]] = {
    "triplet": _triplet,
    "triplet_easy_hard": _triplet_easy_hard,
    "arcface": _arcface,
    "subcenter_arcface": _subcenter_arcface,
}


def make_embedding_loss(
    name: str, *, n_classes: int, embedding_dim: int, options: VerificationConfig
) -> EmbeddingLoss:
    """The loss ``name`` of :data:`EMBEDDING_LOSSES` for ``n_classes`` training identities."""
    return EMBEDDING_LOSSES[name](n_classes, embedding_dim, options)


def _trial_metric(name: str, ratio: float, seed: int, options: dict[str, float]) -> Any:
    fn = get_verification_metric(name)

    def metric(embeddings: np.ndarray, identities: np.ndarray) -> float:
        a, b, same = sample_trials(np.asarray(identities), ratio=ratio, seed=seed)
        if same.min() == same.max():  # a fold without a same-identity pair
            return float("nan")
        return float(fn(same, cosine_scores(embeddings, a, b), **options))

    return metric


@register_task
class Verification(Task):
    """Same identity or not, from embeddings; see the module docstring."""

    name = "verification"
    label_kind = "single"
    outputs_embeddings = True
    metrics = tuple(VERIFICATION_METRICS)
    ensembles = ("single", "zmean", "weighted")
    losses = tuple(EMBEDDING_LOSSES)
    defaults: ClassVar[dict[str, Any]] = {"ensemble.metric": "eer", "ensemble.pool": "mean"}
    submission_format = "score"
    greater_is_better = False

    def encode(self, labels: Sequence[str], classes: Sequence[str]) -> np.ndarray:
        """Identity index of every clip, int64 ``(n,)``."""
        index = {c: i for i, c in enumerate(classes)}
        return np.array([index[v] for v in labels], dtype=np.int64)

    def make_loss(
        self,
        *,
        config: TrainConfig,
        targets: np.ndarray,
        n_classes: int,
        device: Any,
        embedding_dim: int | None = None,
        options: VerificationConfig | None = None,
    ) -> EmbeddingLoss:
        """The :data:`EMBEDDING_LOSSES` entry of ``train.loss`` (``options``: its settings)."""
        from ..config import VerificationConfig

        options = options or VerificationConfig()
        return make_embedding_loss(
            config.loss or self.losses[0],
            n_classes=n_classes,
            embedding_dim=embedding_dim or options.embedding_dim,
            options=options,
        )

    def activation(self, logits: torch.Tensor) -> torch.Tensor:
        """L2 normalisation of the network's outputs, in float32."""
        import torch.nn.functional as F

        return F.normalize(logits.float(), dim=-1)

    def fastai_metrics(
        self,
        *,
        ratio: float = DEFAULT_RATIO,
        seed: int = 0,
        p_target: float = 0.01,
        c_miss: float = 1.0,
        c_fa: float = 1.0,
    ) -> list[Any]:
        """EER and minDCF of the validation embeddings' trials, as fastai ``AccumMetric``."""
        from fastai.metrics import AccumMetric, ActivationType

        options = {"eer": {}, "min_dcf": {"p_target": p_target, "c_miss": c_miss, "c_fa": c_fa}}
        return [
            AccumMetric(
                _trial_metric(name, ratio, seed, options[name]),
                activation=ActivationType.No,
                flatten=False,
                name=name,
            )
            for name in self.metrics
        ]

    def decode(self, proba: np.ndarray) -> np.ndarray:
        """The embeddings as they are."""
        return np.asarray(proba)

    def score(
        self, name: str, targets: np.ndarray, proba: np.ndarray, *, thresholds: Any = None
    ) -> float:
        """Metric ``name`` of the trials of the clips (every same pair, 5x as many others)."""
        return _trial_metric(name, DEFAULT_RATIO, 0, {})(np.asarray(proba), np.asarray(targets))

    def baseline(
        self, targets: np.ndarray, classes: Sequence[str]
    ) -> tuple[np.ndarray, dict[str, str]]:
        """One embedding for every clip: every trial ties, EER 0.5."""
        return np.ones((len(targets), max(2, len(classes)))), {
            "predicts": "the same embedding for every clip",
            "name": "chance",
        }

    def per_class(
        self, targets: np.ndarray, proba: np.ndarray, classes: Sequence[str]
    ) -> dict[str, dict[str, float]]:
        """No per-class scores: validation identities are never training identities."""
        return {}

    def prior(self, targets: np.ndarray, n_classes: int) -> np.ndarray:
        """Share of the training clips of every identity."""
        counts = np.bincount(np.asarray(targets, dtype=np.int64), minlength=n_classes)
        return counts / max(1, counts.sum())

    def split(
        self,
        labels: Sequence[object],
        *,
        n_folds: int,
        seed: int,
        groups: Sequence[object] | None = None,
    ) -> np.ndarray:
        """Identity-disjoint folds (the identity is the group; ``groups`` is not needed)."""
        return make_identity_folds(labels, n_folds=n_folds, seed=seed)

    def check_counts(
        self, labels: Sequence[object], *, n_folds: int, groups: Sequence[object] | None = None
    ) -> None:
        """Every fold needs an identity with two clips."""
        check_identity_fold_counts(labels, n_folds=n_folds)

    def output_columns(self, classes: Sequence[str]) -> list[str]:
        """Trial files hold one score per trial."""
        return ["score"]

    def fallback(self, prior: np.ndarray) -> float:
        """A cosine score of 0 (no evidence either way); prediction uses the OOF EER threshold."""
        return 0.0

    def pseudo_targets(
        self, proba: np.ndarray, *, threshold: Any = None, power: float = 1.0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Not available: a trial score labels no clip."""
        raise TrainingError("pseudo-label rounds do not apply to data.task = 'verification'")

    def target_probabilities(self, targets: np.ndarray, n_outputs: int) -> np.ndarray:
        """Not available (see :meth:`pseudo_targets`)."""
        raise TrainingError("pseudo-label rounds do not apply to data.task = 'verification'")
