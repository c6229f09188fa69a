"""Single-label classification: one class per clip (the reference competition's task).

Targets are class indices; the loss is fastai's ``CrossEntropyLossFlat`` (label smoothing,
optional balanced class weights), whose activation is the softmax over classes; a
prediction is the most probable class; folds are stratified by label
(``StratifiedKFold``, or ``StratifiedGroupKFold`` with near-duplicate groups).

Pseudo-label rounds train on class probabilities (soft targets) beside the labelled clips'
one-hot rows: :class:`SoftTargetCrossEntropy` takes either, so the validation rows keep
their class indices.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..data.folds import check_fold_counts, make_folds
from ..errors import DataError
from ..metrics import METRICS, get_metric, per_class_report
from ._registry import Task, register_task

if TYPE_CHECKING:
    import torch

    from ..config import TrainConfig

__all__ = ["Classification", "SoftTargetCrossEntropy"]

#: Smallest probability in the log of :meth:`Classification.pseudo_targets`.
_LOG_FLOOR = 1e-12


class SoftTargetCrossEntropy:
    """Cross-entropy on class indices or on class probabilities, with fastai's loss contract.

    Training rows of a pseudo-label round are probability rows (one-hot for labelled clips,
    soft for pseudo-labelled ones); validation rows are class indices.  A probability row is
    renormalised to sum 1 (a ``"union"`` mixup's element-wise maximum does not).  Label
    smoothing and class weights apply as in :func:`torch.nn.functional.cross_entropy` (with
    probabilities the mean is over rows, not over the rows' weights).  :meth:`activation`
    (softmax) and :meth:`decodes` (argmax) are fastai's contract.

    Parameters
    ----------
    weight : torch.Tensor, optional
        Per-class weights.
    label_smoothing : float
        As ``train.label_smoothing``.

    Attributes
    ----------
    y_int : bool
        False: fastai's ``MixUp`` mixes these targets, not the losses.
    """

    y_int = False

    def __init__(self, weight: Any = None, label_smoothing: float = 0.0) -> None:
        self.weight, self.label_smoothing = weight, float(label_smoothing)
        self.reduction = "mean"

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The loss of ``logits`` ``(B, n_classes)`` against indices ``(B,)`` or ``(B, n_classes)``."""
        import torch
        import torch.nn.functional as F

        logits = logits.as_subclass(torch.Tensor).float()
        targets = targets.as_subclass(torch.Tensor)
        if targets.ndim == logits.ndim:
            targets = targets.float()
            targets = targets / targets.sum(dim=-1, keepdim=True).clamp_min(1e-12)
        else:
            targets = targets.long()
        return F.cross_entropy(
            logits,
            targets,
            weight=self.weight,
            label_smoothing=self.label_smoothing,
            reduction=self.reduction,
        )

    def activation(self, logits: torch.Tensor) -> torch.Tensor:
        """Softmax over the class axis."""
        import torch

        return torch.softmax(logits.float(), dim=-1)

    def decodes(self, probs: torch.Tensor) -> torch.Tensor:
        """The most probable class."""
        return probs.argmax(dim=-1)


@register_task
class Classification(Task):
    """One label per clip; see the module docstring."""

    name = "classification"

    @property
    def metrics(self) -> tuple[str, ...]:  # type: ignore[override]
        """Every metric of :data:`emo_utils.metrics.METRICS` (the registry is the source)."""
        return tuple(METRICS)

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
    losses = ("cross_entropy",)
    defaults: ClassVar[dict[str, Any]] = {"ensemble.metric": "accuracy", "ensemble.pool": "mean"}

    def encode(self, labels: Sequence[str], classes: Sequence[str]) -> np.ndarray:
        """Class index of every label, int64 ``(n,)``; :class:`DataError` on an unknown label."""
        index = {c: i for i, c in enumerate(classes)}
        unknown = sorted({str(v) for v in labels if v not in index})
        if unknown:
            raise DataError(f"labels not among the classes {list(classes)}: {unknown[:10]}")
        return np.array([index[v] for v in labels], dtype=np.int64)

    def make_loss(
        self, *, config: TrainConfig, targets: np.ndarray, n_classes: int, device: Any
    ) -> Any:
        """``CrossEntropyLossFlat`` with ``train.label_smoothing``.

        When ``train.class_weights`` is set, the classes are weighted ("balanced") by the
        fold's training ``targets``.  Probability targets ``(n, n_classes)`` (a pseudo-label
        round) get :class:`SoftTargetCrossEntropy` instead, weighted by each class's share of
        the probability mass.
        """
        import torch
        from fastai.losses import CrossEntropyLossFlat
        from sklearn.utils.class_weight import compute_class_weight

        targets = np.asarray(targets)
        weight = None
        if config.class_weights and targets.ndim == 2:
            mass = targets.sum(axis=0).astype(np.float64)
            w = np.where(mass > 0, len(targets) / (n_classes * np.maximum(mass, 1e-12)), 0.0)
            weight = torch.tensor(w, dtype=torch.float32, device=device)
        elif config.class_weights:
            w = compute_class_weight("balanced", classes=np.arange(n_classes), y=targets)
            weight = torch.tensor(w, dtype=torch.float32, device=device)
        if targets.ndim == 2:
            return SoftTargetCrossEntropy(weight=weight, label_smoothing=config.label_smoothing)
        return CrossEntropyLossFlat(weight=weight, label_smoothing=config.label_smoothing)

    def activation(self, logits: torch.Tensor) -> torch.Tensor:
        """Softmax over the class axis, in float32."""
        import torch

        return torch.softmax(logits.float(), dim=-1)

    def fastai_metrics(self) -> list[Any]:
        """Each metric as fastai's ``skm_to_fastai`` wrapper (argmax of the outputs)."""
        from fastai.metrics import skm_to_fastai

        return [skm_to_fastai(get_metric(name), name=name) for name in self.metrics]

    def decode(self, proba: np.ndarray) -> np.ndarray:
        """The most probable class of every row (first on ties)."""
        return np.asarray(proba).argmax(axis=1)

    def score(
        self, name: str, targets: np.ndarray, proba: np.ndarray, *, thresholds: Any = None
    ) -> float:
        """Metric ``name`` of the decoded classes against the class indices ``targets``."""
        return float(get_metric(name)(np.asarray(targets), self.decode(proba)))

    def baseline(
        self, targets: np.ndarray, classes: Sequence[str]
    ) -> tuple[np.ndarray, dict[str, str]]:
        """Always the most frequent class (``DummyClassifier(strategy="most_frequent")``).

        ``info``: ``predicts`` and ``class`` (the class name), ``strategy``.
        """
        n_outputs = len(classes)
        from sklearn.dummy import DummyClassifier

        targets = np.asarray(targets)
        x = np.zeros((len(targets), 1))
        dummy = DummyClassifier(strategy="most_frequent").fit(x, targets)
        probs = np.zeros((len(targets), n_outputs))
        probs[:, dummy.classes_.astype(int)] = dummy.predict_proba(x)
        name = str(classes[int(dummy.classes_[np.argmax(dummy.class_prior_)])])
        return probs, {"predicts": name, "strategy": "most_frequent", "class": name}

    def per_class(
        self, targets: np.ndarray, proba: np.ndarray, classes: Sequence[str]
    ) -> dict[str, dict[str, float]]:
        """Precision, recall, F1 and support of every class (argmax decisions)."""
        return per_class_report(targets, self.decode(proba), classes)

    def prior(self, targets: np.ndarray, n_classes: int) -> np.ndarray:
        """Class frequencies of the class indices ``targets``."""
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
        """Stratified (group) K-fold; see :func:`emo_utils.data.folds.make_folds`."""
        return make_folds(labels, n_folds=n_folds, seed=seed, groups=groups)

    def check_counts(
        self, labels: Sequence[object], *, n_folds: int, groups: Sequence[object] | None = None
    ) -> None:
        """Every class needs ``n_folds`` clips (groups); see ``check_fold_counts``."""
        check_fold_counts(labels, n_folds=n_folds, groups=groups)

    def fallback(self, prior: np.ndarray) -> int:
        """The most frequent training class."""
        return int(np.argmax(prior))

    def pseudo_targets(
        self, proba: np.ndarray, *, threshold: Any = None, power: float = 1.0
    ) -> tuple[np.ndarray, np.ndarray]:
        """``p ** power`` renormalised per row; a clip is kept when its top ``p`` reaches ``threshold``.

        ``threshold=None`` keeps every clip that has probabilities.  ``power`` is
        ``1 / temperature``: 1 leaves the probabilities as they are, larger values sharpen
        them towards the top class, smaller ones flatten them (computed in log space, so a
        large power cannot underflow a row to zeros).

        Examples
        --------
        >>> targets, keep = Classification().pseudo_targets(
        ...     np.array([[0.6, 0.4], [0.9, 0.1]]), threshold=0.8, power=2.0
        ... )
        >>> np.asarray(targets, float).round(3).tolist(), keep.tolist()
        ([[0.692, 0.308], [0.988, 0.012]], [False, True])
        """
        p = np.asarray(proba, dtype=np.float64)
        ok = np.isfinite(p).all(axis=1)
        logp = float(power) * np.log(np.clip(np.where(ok[:, None], p, 1.0), _LOG_FLOOR, 1.0))
        q = np.exp(logp - logp.max(axis=1, keepdims=True))
        q = q / q.sum(axis=1, keepdims=True)
        q[~ok] = 0.0
        top = np.where(ok, np.where(ok[:, None], p, 0.0).max(axis=1), -np.inf)
        keep = ok & (top >= (0.0 if threshold is None else float(threshold)))
        return q.astype(np.float32), keep

    def target_probabilities(self, targets: np.ndarray, n_outputs: int) -> np.ndarray:
        """One-hot rows of the class indices."""
        out = np.zeros((len(targets), n_outputs), dtype=np.float32)
        out[np.arange(len(targets)), np.asarray(targets, dtype=np.int64)] = 1.0
        return out
