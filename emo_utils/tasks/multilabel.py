"""Multi-label tagging: a set of labels per clip (Freesound, BirdCLEF, AudioSet-style tags).

Targets are multi-hot float vectors; the loss is binary cross-entropy on logits (fastai's
``BCEWithLogitsLossFlat``) or the sigmoid focal loss (``torchvision.ops.sigmoid_focal_loss``),
with optional label smoothing (targets pulled to ``eps/2`` and ``1 - eps/2``); the
activation is the sigmoid of every output.  Folds are stratified on label presence
(``MultilabelStratifiedKFold``, with near-duplicate groups kept whole).  Metrics (per
label, then macro/micro) come from :data:`emo_utils.metrics.MULTILABEL_METRICS`; F1 needs
decision thresholds, which the ensemble stage tunes on OOF (:mod:`emo_utils.thresholds`).

Whole-clip predictions: a label may sound anywhere in a long clip, so the models see every
window of a clip (``audio.max_duration`` seconds are cached) and the window probabilities
are pooled per label, by ``max`` by default (``ensemble.pool``): a label heard in one
window is present in the clip, where the mean would dilute a one-second event in a
twelve-second clip below any threshold.

Pseudo-label rounds: BCE and the focal loss take soft targets as they are; the soft target
of a label is the ensemble's probability moved so that the label's decision threshold
becomes 0.5 (:meth:`MultiLabel.pseudo_targets`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..data.folds import check_multilabel_fold_counts, make_multilabel_folds
from ..data.labels import split_labels
from ..errors import DataError
from ..metrics import MULTILABEL_METRICS, get_multilabel_metric, per_label_report
from ._registry import Task, register_task

if TYPE_CHECKING:
    import torch

    from ..config import TrainConfig

__all__ = ["MultiLabel", "MultiLabelLoss"]

#: Probabilities are clipped to ``[eps, 1 - eps]`` before the logit of pseudo-targets.
_LOGIT_EPS = 1e-7


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _LOGIT_EPS, 1.0 - _LOGIT_EPS)
    return np.log(p) - np.log1p(-p)


def _classes_of(labels: Sequence[str]) -> list[str]:
    return sorted({label for text in labels for label in split_labels(text)})


class MultiLabelLoss:
    """BCE-with-logits or sigmoid focal loss on multi-hot targets, with label smoothing.

    Carries fastai's loss contract: :meth:`activation` (sigmoid) and :meth:`decodes`
    (``>= thresh``), so ``Learner.get_preds(with_decoded=True)`` works.

    Parameters
    ----------
    kind : {"bce", "focal"}
        ``"bce"``: fastai's ``BCEWithLogitsLossFlat``; ``"focal"``:
        ``torchvision.ops.sigmoid_focal_loss`` (``alpha = -1``: no class weighting, the
        focusing term only).
    gamma : float
        Focal loss focusing parameter.
    smoothing : float
        Label smoothing ``eps``: targets become ``t * (1 - eps) + eps / 2``.
    thresh : float
        Decision threshold of :meth:`decodes`.
    """

    def __init__(
        self, kind: str = "bce", *, gamma: float = 2.0, smoothing: float = 0.0, thresh: float = 0.5
    ) -> None:
        from fastai.losses import BCEWithLogitsLossFlat

        if kind not in ("bce", "focal"):
            raise ValueError(f"MultiLabelLoss: kind must be 'bce' or 'focal', got {kind!r}")
        self.kind, self.gamma, self.smoothing, self.thresh = kind, gamma, smoothing, thresh
        self.bce = BCEWithLogitsLossFlat(thresh=thresh)
        self.reduction = "mean"

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean loss over every label of every clip."""
        from torchvision.ops import sigmoid_focal_loss

        t = targets.float()
        if self.smoothing:
            t = t * (1.0 - self.smoothing) + self.smoothing / 2
        if self.kind == "focal":
            return sigmoid_focal_loss(
                logits.float(), t, alpha=-1, gamma=self.gamma, reduction=self.reduction
            )
        return self.bce(logits.float(), t)

    def activation(self, logits: torch.Tensor) -> torch.Tensor:
        """Sigmoid of every output."""
        import torch

        return torch.sigmoid(logits.float())

    def decodes(self, probs: torch.Tensor) -> torch.Tensor:
        """Label present where the probability reaches ``thresh``."""
        return probs >= self.thresh


@register_task
class MultiLabel(Task):
    """A set of labels per clip; see the module docstring."""

    name = "multilabel"
    label_kind = "multi"

    @property
    def metrics(self) -> tuple[str, ...]:  # type: ignore[override]
        """Every metric of :data:`emo_utils.metrics.MULTILABEL_METRICS` (the registry)."""
        return tuple(MULTILABEL_METRICS)

    #: ``single`` first: ``ensemble.method = "best"`` breaks ties towards the earliest method,
    #: so an ensemble must strictly beat the best single model to be chosen.
    ensembles = (
        "single",
        "mode",
        "mean",
        "geometric",
        "rank",
        "power",
        "select",
        "weighted",
        "stacking",
    )
    losses = ("bce", "focal")
    defaults: ClassVar[dict[str, Any]] = {"ensemble.metric": "map", "ensemble.pool": "max"}
    submission_format = "labels"
    whole_clip = True

    def encode(self, labels: Sequence[str], classes: Sequence[str]) -> np.ndarray:
        """Multi-hot float32 ``(n, n_classes)`` of the label strings; unknown label: DataError."""
        index = {c: i for i, c in enumerate(classes)}
        out = np.zeros((len(labels), len(classes)), dtype=np.float32)
        unknown: set[str] = set()
        for row, text in enumerate(labels):
            for label in split_labels(text):
                if label in index:
                    out[row, index[label]] = 1.0
                else:
                    unknown.add(label)
        if unknown:
            raise DataError(f"labels not among the classes {list(classes)}: {sorted(unknown)[:10]}")
        return out

    def make_loss(
        self, *, config: TrainConfig, targets: np.ndarray, n_classes: int, device: Any
    ) -> MultiLabelLoss:
        """:class:`MultiLabelLoss` of ``train.loss``, ``train.focal_gamma``, ``train.label_smoothing``."""
        return MultiLabelLoss(
            config.loss or "bce", gamma=config.focal_gamma, smoothing=config.label_smoothing
        )

    def activation(self, logits: torch.Tensor) -> torch.Tensor:
        """Sigmoid of every output, in float32."""
        import torch

        return torch.sigmoid(logits.float())

    def fastai_metrics(self) -> list[Any]:
        """Each metric as a fastai ``AccumMetric`` on sigmoid outputs (F1 at 0.5)."""
        from fastai.metrics import AccumMetric, ActivationType

        def wrap(name: str) -> Any:
            fn = get_multilabel_metric(name)

            def metric(targets: Any, scores: Any) -> float:
                return float(fn(np.asarray(targets), np.asarray(scores)))

            metric.__name__ = name
            return AccumMetric(
                metric, activation=ActivationType.Sigmoid, flatten=False, invert_arg=True, name=name
            )

        return [wrap(name) for name in self.metrics]

    def decode(self, proba: np.ndarray, thresholds: Any = 0.5) -> np.ndarray:
        """0/1 int ``(n, n_classes)``: label present where ``proba >= thresholds``."""
        return (np.asarray(proba) >= np.asarray(thresholds, dtype=np.float64)).astype(np.int64)

    def score(
        self, name: str, targets: np.ndarray, proba: np.ndarray, *, thresholds: Any = None
    ) -> float:
        """Metric ``name`` of ``proba`` against multi-hot ``targets`` (F1 at ``thresholds``)."""
        fn = get_multilabel_metric(name)
        return float(
            fn(
                np.asarray(targets),
                np.asarray(proba),
                thresholds=0.5 if thresholds is None else thresholds,
            )
        )

    def baseline(
        self, targets: np.ndarray, classes: Sequence[str]
    ) -> tuple[np.ndarray, dict[str, str]]:
        """Every label at its training frequency (``DummyClassifier(strategy="prior")``)."""
        n_outputs = len(classes)
        from sklearn.dummy import DummyClassifier

        y = np.asarray(targets).astype(np.int64).reshape(-1, n_outputs)
        x = np.zeros((len(y), 1))
        dummy = DummyClassifier(strategy="prior").fit(x, y)
        probs = np.column_stack(
            [
                p[:, list(c).index(1)] if 1 in c else np.zeros(len(y))
                for p, c in zip(dummy.predict_proba(x), dummy.classes_, strict=True)
            ]
        )
        return probs, {
            "predicts": "every label at its training frequency",
            "name": "label-prior baseline",
        }

    def per_class(
        self, targets: np.ndarray, proba: np.ndarray, classes: Sequence[str]
    ) -> dict[str, dict[str, float]]:
        """Precision, recall, F1 (at 0.5), AP, support, FP and FN of every label."""
        return per_label_report(np.asarray(targets).astype(np.int64), proba, 0.5, classes)

    def prior(self, targets: np.ndarray, n_classes: int) -> np.ndarray:
        """Share of the clips holding each label."""
        targets = np.asarray(targets, dtype=np.float64).reshape(-1, n_classes)
        return targets.mean(axis=0) if len(targets) else np.zeros(n_classes)

    def split(
        self,
        labels: Sequence[object],
        *,
        n_folds: int,
        seed: int,
        groups: Sequence[object] | None = None,
    ) -> np.ndarray:
        """Folds stratified on label presence; see :func:`emo_utils.data.folds.make_multilabel_folds`."""
        y = self.encode(labels, _classes_of(labels)).astype(np.int64)
        return make_multilabel_folds(y, n_folds=n_folds, seed=seed, groups=groups)

    def check_counts(
        self, labels: Sequence[object], *, n_folds: int, groups: Sequence[object] | None = None
    ) -> None:
        """Every label needs ``n_folds`` positive clips (groups)."""
        classes = _classes_of(labels)
        y = self.encode(labels, classes).astype(np.int64)
        check_multilabel_fold_counts(y, n_folds=n_folds, groups=groups, classes=classes)

    def fallback(self, prior: np.ndarray) -> np.ndarray:
        """The labels most training clips hold (prior >= 0.5), often none: 0/1 ``(n_classes,)``."""
        return (np.asarray(prior) >= 0.5).astype(np.int64)

    def pseudo_targets(
        self, proba: np.ndarray, *, threshold: Any = None, power: float = 1.0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per label ``sigmoid(power * (logit(p) - logit(threshold)))``; kept: a label reaches its threshold.

        ``threshold`` is the decision threshold of every label (a float, or one per label;
        ``None``: 0.5), so a probability at the threshold becomes a target of 0.5 and the
        targets agree with the decisions; ``power`` (``1 / temperature``) sharpens them.
        With ``threshold=0.5`` and ``power=1`` the targets are the probabilities.  A clip is
        kept when at least one of its labels reaches its threshold (a clip the ensemble
        gives no label is one it is unsure about: with ``data.empty_label`` every clip has
        one).

        Examples
        --------
        >>> targets, keep = MultiLabel().pseudo_targets(
        ...     np.array([[0.3, 0.1], [0.1, 0.05]]), threshold=[0.3, 0.5], power=1.0
        ... )
        >>> np.asarray(targets, float).round(3).tolist(), keep.tolist()
        ([[0.5, 0.1], [0.206, 0.05]], [True, False])
        """
        p = np.asarray(proba, dtype=np.float64)
        ok = np.isfinite(p).all(axis=1)
        p = np.where(ok[:, None], p, 0.0)
        t = np.broadcast_to(np.asarray(0.5 if threshold is None else threshold, float), p.shape[1:])
        z = float(power) * (_logit(p) - _logit(t))
        targets = 1.0 / (1.0 + np.exp(-z))
        targets[~ok] = 0.0
        keep = ok & (p >= t).any(axis=1)
        return targets.astype(np.float32), keep

    def target_probabilities(self, targets: np.ndarray, n_outputs: int) -> np.ndarray:
        """The multi-hot targets as they are, float32."""
        return np.asarray(targets, dtype=np.float32).reshape(-1, n_outputs)
