"""The task registry: what a pipeline task bundles, and the name -> task table.

A :class:`Task` says everything the stages need to know about the targets, so that no
stage assumes "one label per clip":

* how targets are read from the competition's label column and encoded (:meth:`encode`);
* the training loss (a fastai loss object, built lazily so inference never imports
  fastai) and the matching plain-torch :meth:`activation` used at inference;
* how probabilities become predictions (:meth:`decode`) and the metrics that score them;
* the fold splitter (:meth:`split`);
* the OOF / prediction file columns (:meth:`output_columns`);
* the ensemble combiners that make sense for it (:attr:`ensembles`);
* the submission row format and the fallback row for clips the models could not score;
* pseudo-label rounds: the soft targets and the kept clips from an ensemble's probabilities
  (:meth:`pseudo_targets`), and the labelled targets as probabilities beside them
  (:meth:`target_probabilities`).

Register a new task with :func:`register_task`; ``data.task`` in the config names it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..errors import ConfigError

if TYPE_CHECKING:
    import torch

    from ..config import TrainConfig

__all__ = ["TASKS", "Task", "get_task", "register_task"]


class Task:
    """Base class of the task-registry entries (see the module docstring).

    Subclasses set :attr:`name`, :attr:`metrics` and :attr:`ensembles` and implement the
    methods.  Instances are stateless; one instance serves every run.
    """

    #: Registry name (``data.task``).
    name: ClassVar[str] = ""
    #: Metric names this task is scored with (the keys of its metric registry,
    #: :data:`emo_utils.metrics.METRICS` or :data:`~emo_utils.metrics.MULTILABEL_METRICS`).
    metrics: ClassVar[tuple[str, ...]] = ()
    #: Ensemble method names that apply (keys of :data:`emo_utils.ensemble.ENSEMBLES`, or
    #: of :data:`~emo_utils.ensemble.MULTILABEL_ENSEMBLES` for multi-label tasks), in the
    #: order ``"best"`` breaks ties in: ``"single"`` (the best single model) first.
    ensembles: ClassVar[tuple[str, ...]] = ()
    #: Submission row format (key of :data:`emo_utils.submission.SUBMISSION_FORMATS`).
    submission_format: ClassVar[str] = "label"
    #: How ``train.csv`` holds the targets: ``"single"`` (one label per clip) or ``"multi"``
    #: (a label list or 0/1 columns); a key of :data:`emo_utils.data.labels.LABEL_READERS`.
    label_kind: ClassVar[str] = "single"
    #: Loss names (``train.loss``); the first is the default.
    losses: ClassVar[tuple[str, ...]] = ()
    #: Defaults of the task-dependent config fields left ``None`` (``ensemble.metric``,
    #: ``ensemble.pool``).
    defaults: ClassVar[dict[str, Any]] = {}
    #: Whether a higher value of :attr:`metrics` is better (False: error rates, costs).
    greater_is_better: ClassVar[bool] = True
    #: Predict every window of a clip (whole-clip predictions), whatever
    #: ``ensemble.tta_windows`` says.
    whole_clip: ClassVar[bool] = False
    #: The models' outputs are the embeddings (an embedding network, ``embed`` returns what
    #: it outputs); False: ``embed`` pools a classifier's backbone features.
    outputs_embeddings: ClassVar[bool] = False

    def encode(self, labels: Sequence[str], classes: Sequence[str]) -> np.ndarray:
        """Targets of the training rows, as the loss expects them."""
        raise NotImplementedError

    def make_loss(self, *, config: TrainConfig, targets: np.ndarray, n_classes: int, device: Any):
        """The fastai loss object (``.activation`` and ``.decodes`` included)."""
        raise NotImplementedError

    def activation(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits -> probabilities, shape ``(B, n_outputs)``; equal to the loss's activation."""
        raise NotImplementedError

    def fastai_metrics(self) -> list[Any]:
        """The fastai metrics of the training log, named as :attr:`metrics` (``train.monitor``)."""
        raise NotImplementedError

    def decode(self, proba: np.ndarray) -> np.ndarray:
        """Probabilities ``(n, n_outputs)`` -> predictions (what the metrics compare)."""
        raise NotImplementedError

    def score(
        self, name: str, targets: np.ndarray, proba: np.ndarray, *, thresholds: Any = None
    ) -> float:
        """Metric ``name`` of the predictions decoded from ``proba`` against ``targets``.

        ``thresholds`` are the decision thresholds of tasks that have them (multi-label:
        a float or one per label; default 0.5); single-label tasks ignore them.
        """
        raise NotImplementedError

    def baseline(
        self, targets: np.ndarray, classes: Sequence[str]
    ) -> tuple[np.ndarray, dict[str, str]]:
        """The probabilities of a model that ignores the audio, and what it is.

        Scored by :meth:`score` into the CV report's baseline row (a model at or below it
        learned nothing).  Returns ``(probabilities (n, len(classes)), info)``; ``info``
        goes into ``cv_report.json``'s ``baseline`` (``predicts``; optionally ``name``,
        the baseline's name in warnings, and other keys).
        """
        raise NotImplementedError

    def per_class(
        self, targets: np.ndarray, proba: np.ndarray, classes: Sequence[str]
    ) -> dict[str, dict[str, float]]:
        """Per-class scores of the CV report: ``{class: {"precision", "recall", "f1", ...}}``."""
        raise NotImplementedError

    def prior(self, targets: np.ndarray, n_classes: int) -> np.ndarray:
        """Share of the training clips holding each class, shape ``(n_classes,)``."""
        raise NotImplementedError

    def split(
        self,
        labels: Sequence[object],
        *,
        n_folds: int,
        seed: int,
        groups: Sequence[object] | None = None,
    ) -> np.ndarray:
        """Fold index of every training row, shape ``(n,)``."""
        raise NotImplementedError

    def check_counts(
        self, labels: Sequence[object], *, n_folds: int, groups: Sequence[object] | None = None
    ) -> None:
        """Fail before any work when the labels cannot fill ``n_folds`` folds."""
        raise NotImplementedError

    def output_columns(self, classes: Sequence[str]) -> list[str]:
        """The probability columns of OOF and prediction files."""
        return list(classes)

    def fallback(self, prior: np.ndarray) -> Any:
        """The prediction written for a test row that has no model output."""
        raise NotImplementedError

    def pseudo_targets(
        self, proba: np.ndarray, *, threshold: Any = None, power: float = 1.0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Soft targets of unlabelled clips from an ensemble's probabilities, and which to keep.

        Parameters
        ----------
        proba : numpy.ndarray, shape (n, n_outputs)
            The ensemble's probabilities (NaN rows: clips without a prediction, never kept).
        threshold : float, array-like or None
            ``train.pseudo_threshold`` (or, multi-label, one decision threshold per output).
        power : float
            ``train.pseudo_power``: sharpening, ``1 / temperature``.

        Returns
        -------
        targets : numpy.ndarray of float32, shape (n, n_outputs)
            What the loss takes for these clips (0 on rows without a prediction).
        keep : numpy.ndarray of bool, shape (n,)
        """
        raise NotImplementedError

    def target_probabilities(self, targets: np.ndarray, n_outputs: int) -> np.ndarray:
        """Encoded targets (:meth:`encode`) as float32 ``(n, n_outputs)`` probabilities.

        How labelled clips stand beside the soft targets of :meth:`pseudo_targets` in one
        training set.
        """
        raise NotImplementedError


#: name -> :class:`Task` instance.  The single source of truth for ``data.task``.
TASKS: dict[str, Task] = {}


def register_task(task_cls: type[Task]) -> type[Task]:
    """Class decorator adding an instance of ``task_cls`` to :data:`TASKS` under its name."""
    if not task_cls.name:
        raise ValueError(f"{task_cls.__name__}: a task needs a name")
    TASKS[task_cls.name] = task_cls()
    return task_cls


def get_task(name: str) -> Task:
    """The registered task called ``name``; :class:`ConfigError` naming ``data.task`` if unknown."""
    try:
        return TASKS[name]
    except KeyError:
        raise ConfigError("data.task", name, f"unknown task; known: {sorted(TASKS)}") from None


Activation = Callable[["torch.Tensor"], "torch.Tensor"]
