"""The classical family of the model registry: scikit-learn models on clip statistics.

``"classical:<name>"`` trains the estimator :data:`CLASSICAL_MODELS` ``[name]`` on the
per-clip summary statistics of :mod:`emo_utils.features.statistics` (the family's input is
``"features"``), on the same folds as the CNNs, writing the same OOF and prediction files,
so it joins the same ensembles.  Multi-label tasks wrap the estimator in
:class:`~sklearn.multiclass.OneVsRestClassifier` (one binary model per label).

=====================  ====================================================================
``logreg``             standardised features, L2 logistic regression (the classic baseline)
``svm``                standardised features, RBF support-vector machine with Platt scaling
``hgb``                histogram gradient boosting (scikit-learn's LightGBM-like trees)
``extratrees``         extremely randomised trees
``lightgbm``           LightGBM, when the ``lightgbm`` package is installed
``catboost``           CatBoost, when the ``catboost`` package is installed
=====================  ====================================================================

A fitted fold is saved with :mod:`joblib` as ``model.joblib`` (atomically) beside its
``oof.csv`` and ``done.json``.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.ensemble import ExtraTreesClassifier, HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from ..errors import CheckpointError, TrainingError
from ..fileio import atomic_path
from ._registry import ModelFamily, register_family

__all__ = [
    "CLASSICAL_MODELS",
    "MODEL_FILE",
    "build_classical_model",
    "check_classical_name",
    "fit_estimator",
    "load_estimator",
    "predict_estimator",
    "save_estimator",
]

#: File of a fitted fold inside its fold folder.
MODEL_FILE = "model.joblib"


def _lightgbm() -> BaseEstimator:
    from lightgbm import LGBMClassifier

    return LGBMClassifier(n_estimators=300, learning_rate=0.05, num_leaves=15, verbose=-1)


def _catboost() -> BaseEstimator:
    from catboost import CatBoostClassifier

    return CatBoostClassifier(iterations=500, learning_rate=0.05, depth=6, verbose=0)


#: Model name -> factory of the unfitted estimator.  The single source of the names.
CLASSICAL_MODELS: dict[str, Callable[[], BaseEstimator]] = {
    "logreg": lambda: make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=5000)),
    "svm": lambda: make_pipeline(StandardScaler(), SVC(C=1.0, probability=True)),
    "hgb": lambda: HistGradientBoostingClassifier(
        learning_rate=0.05, max_iter=200, l2_regularization=1.0
    ),
    "extratrees": lambda: ExtraTreesClassifier(n_estimators=500, max_features="sqrt"),
    "lightgbm": _lightgbm,
    "catboost": _catboost,
}
#: Models that need a package of their own.
_PACKAGES = {"lightgbm": "lightgbm", "catboost": "catboost"}


def check_classical_name(name: str) -> str | None:
    """``None`` when ``classical:<name>`` can be built here, else the problem."""
    if name not in CLASSICAL_MODELS:
        close = difflib.get_close_matches(name, CLASSICAL_MODELS, n=2)
        hint = f"; did you mean {close}?" if close else ""
        return (
            f"'classical:{name}' is not a classical model{hint} (known: {list(CLASSICAL_MODELS)})"
        )
    package = _PACKAGES.get(name)
    if package and importlib.util.find_spec(package) is None:
        return f"'classical:{name}' needs the {package} package (pip install {package})"
    return None


def build_classical_model(name: str, **_: Any) -> BaseEstimator:
    """The unfitted estimator of ``name`` (the registry's ``build``; image options ignored).

    Raises
    ------
    TrainingError
        Unknown name or missing package.
    """
    problem = check_classical_name(name)
    if problem:
        raise TrainingError(problem)
    return CLASSICAL_MODELS[name]()


def _seeded(estimator: BaseEstimator, seed: int) -> BaseEstimator:
    """``estimator`` with every ``random_state`` parameter (nested ones too) set to ``seed``."""
    params = {k: seed for k in estimator.get_params(deep=True) if k.endswith("random_state")}
    return estimator.set_params(**params)


def fit_estimator(
    estimator: BaseEstimator, x: np.ndarray, y: np.ndarray, *, label_kind: str, seed: int
) -> BaseEstimator:
    """Fit a clone of ``estimator`` on ``x`` and the task's targets ``y``.

    Parameters
    ----------
    estimator : sklearn estimator
        Unfitted.
    x : numpy.ndarray, shape (n_samples, n_features)
    y : numpy.ndarray
        Class indices ``(n_samples,)`` (``label_kind="single"``) or a 0/1 indicator matrix
        ``(n_samples, n_labels)`` (``"multi"``: one binary model per label).
    label_kind : {"single", "multi"}
    seed : int
        Every ``random_state`` of the estimator.

    Returns
    -------
    sklearn estimator
        Fitted.
    """
    model = _seeded(clone(estimator), seed)
    if label_kind == "multi":
        model = OneVsRestClassifier(model)
    return model.fit(np.asarray(x, dtype=np.float64), np.asarray(y))


def predict_estimator(
    model: BaseEstimator, x: np.ndarray, *, n_outputs: int, label_kind: str
) -> np.ndarray:
    """Probabilities ``(n_samples, n_outputs)`` of a model fitted by :func:`fit_estimator`.

    Single-label: classes absent from the model's training rows get probability 0.
    """
    x = np.asarray(x, dtype=np.float64)
    proba = np.asarray(model.predict_proba(x), dtype=np.float64)
    if label_kind == "multi":
        return proba
    out = np.zeros((len(x), n_outputs))
    out[:, np.asarray(model.classes_, dtype=np.int64)] = proba
    return out


def save_estimator(model: BaseEstimator, path: str | os.PathLike) -> None:
    """Write a fitted model atomically with :func:`joblib.dump`."""
    with atomic_path(path) as tmp:
        joblib.dump(model, tmp)


def load_estimator(path: str | os.PathLike) -> BaseEstimator:
    """A model written by :func:`save_estimator`.

    Raises
    ------
    CheckpointError
        Missing or unreadable file, naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no fitted model here; train the fold first")
    try:
        return joblib.load(path)
    except (OSError, EOFError, ValueError, TypeError, AttributeError, ImportError) as exc:
        raise CheckpointError(
            f"{path}: cannot be loaded ({type(exc).__name__}: {exc}); delete its done.json "
            "to fit the fold again"
        ) from exc


register_family(
    ModelFamily(
        prefix="classical",
        input="features",
        trainer="sklearn",
        build=build_classical_model,
        check=check_classical_name,
        check_weights=lambda name, weights_dir: None,
    )
)
