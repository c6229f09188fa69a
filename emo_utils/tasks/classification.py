"""Single-label classification: one class per clip (the reference competition's task).

Targets are class indices; the loss is fastai's ``CrossEntropyLossFlat`` (label smoothing,
optional balanced class weights), whose activation is the softmax over classes; a
prediction is the most probable class; folds are stratified by label
(``StratifiedKFold``, or ``StratifiedGroupKFold`` with near-duplicate groups).
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

__all__ = ["Classification"]


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
        fold's training ``targets``.
        """
        import torch
        from fastai.losses import CrossEntropyLossFlat
        from sklearn.utils.class_weight import compute_class_weight

        weight = None
        if config.class_weights:
            w = compute_class_weight(
                "balanced", classes=np.arange(n_classes), y=np.asarray(targets)
            )
            weight = torch.tensor(w, dtype=torch.float32, device=device)
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
