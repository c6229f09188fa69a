"""Pair scoring: cosine similarity, enrollment by mean embedding, S-norm, trial lists.

Embeddings are compared by cosine similarity (:func:`cosine_scores`).  An identity enrolled
from several clips is represented by the mean of its clips' L2-normalised embeddings,
normalised again (:func:`enroll`): the direction that is closest on average to all of
them, so every clip counts equally whatever its norm.

Score normalisation (:func:`s_norm`): a trial score ``s(a, b)`` is z-normalised against
the scores of ``a`` and of ``b`` with a cohort (training embeddings of identities outside
the trial) and the two are averaged,
``0.5 * ((s - mu_a) / sd_a + (s - mu_b) / sd_b)``; adaptive S-norm (``top_k``) takes the
statistics over only the ``top_k`` highest cohort scores of each side.

Trials of the out-of-fold evaluation (:func:`sample_trials`): every same-identity pair of
the validation clips and a seeded sample of different-identity pairs, ``ratio`` times as
many (all of them when there are fewer).

Examples
--------
>>> import numpy as np
>>> e = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
>>> cosine_scores(e, [0, 0], [1, 2]).round(4).tolist()
[0.0, 0.7071]
>>> enroll(e[:2], [0, 0]).round(4).tolist()
[[0.7071, 0.7071]]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from ..errors import DataError

__all__ = ["cosine_scores", "enroll", "enroll_sides", "l2_normalize", "s_norm", "sample_trials"]


def l2_normalize(x: ArrayLike) -> np.ndarray:
    """Rows of ``x`` divided by their L2 norm (zero rows stay zero).

    Parameters
    ----------
    x : array-like of shape (n, d)

    Returns
    -------
    numpy.ndarray of float64, shape (n, d)
    """
    x = np.asarray(x, dtype=np.float64)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


def cosine_scores(embeddings: ArrayLike, a: Sequence[int], b: Sequence[int]) -> np.ndarray:
    """Cosine similarity of the embedding rows ``a[i]`` and ``b[i]`` of every trial.

    Parameters
    ----------
    embeddings : array-like of shape (n_clips, d)
    a, b : sequence of int, length n_trials
        Row indices of the two sides of every trial.

    Returns
    -------
    numpy.ndarray of float64, shape (n_trials,)
        In ``[-1, 1]``; computed trial by trial, so memory is linear in the trials.
    """
    e = l2_normalize(embeddings)
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    if a.shape != b.shape:
        raise DataError(f"cosine_scores: {len(a)} left sides but {len(b)} right sides")
    return np.einsum("ij,ij->i", e[a], e[b])


def enroll(embeddings: ArrayLike, owners: Sequence[object]) -> np.ndarray:
    """One embedding per enrolled identity: the normalised mean of its clips' embeddings.

    Parameters
    ----------
    embeddings : array-like of shape (n_clips, d)
        Clip embeddings (normalised here first).
    owners : sequence, length n_clips
        Identity (or enrollment key) of every clip: integers, or anything else (compared
        as strings).

    Returns
    -------
    numpy.ndarray of float64, shape (n_identities, d)
        Row ``k`` belongs to the ``k``-th distinct owner in sorted order
        (``numpy.unique(owners)``), L2-normalised.
    """
    e = l2_normalize(embeddings)
    keys = np.asarray(owners)
    if keys.dtype.kind not in "iu":  # integer keys sort as numbers, any other as strings
        keys = np.asarray(owners, dtype=object).astype(str)
    keys, codes = np.unique(keys, return_inverse=True)
    if len(codes) != len(e):
        raise DataError(f"enroll: {len(codes)} owners for {len(e)} embeddings")
    sums = np.zeros((len(keys), e.shape[1]))
    np.add.at(sums, codes, e)
    return l2_normalize(sums)


def enroll_sides(embeddings: ArrayLike, sides: Sequence[Sequence[int]]) -> np.ndarray:
    """One embedding per trial side: its clip's, or its clips' enrolled mean (:func:`enroll`).

    Parameters
    ----------
    embeddings : array-like of shape (n_clips, d)
    sides : sequence of sequences of int, length n_trials
        The embedding rows of each side (one, or several clips of one identity).

    Returns
    -------
    numpy.ndarray of float64, shape (n_trials, d)
        L2-normalised, in trial order; the cosine of two sides is their dot product.  NaN
        where a side has a NaN embedding.

    Examples
    --------
    >>> e = np.array([[1.0, 0.0], [0.0, 2.0]])
    >>> enroll_sides(e, [(0,), (0, 1)]).round(4).tolist()
    [[1.0, 0.0], [0.7071, 0.7071]]
    """
    e = np.asarray(embeddings, dtype=np.float64)
    rows = np.concatenate([np.asarray(s, dtype=np.int64).reshape(-1) for s in sides])
    owners = np.repeat(np.arange(len(sides)), [len(s) for s in sides])
    if len(np.unique(owners)) != len(sides):
        raise DataError("enroll_sides: a trial side without clips")
    return enroll(e[rows], owners)  # integer owners: rows in trial order


def s_norm(
    scores: ArrayLike,
    left: ArrayLike,
    right: ArrayLike,
    cohort: ArrayLike,
    *,
    top_k: int | None = None,
) -> np.ndarray:
    """Symmetric score normalisation (S-norm, or adaptive S-norm with ``top_k``).

    Parameters
    ----------
    scores : array-like of shape (n_trials,)
        Raw cosine scores of the trials.
    left, right : array-like of shape (n_trials, d)
        The embeddings of the two sides of every trial.
    cohort : array-like of shape (n_cohort, d)
        Embeddings of cohort clips (training identities outside the trials).
    top_k : int, optional
        Adaptive S-norm: the statistics of each side come from its ``top_k`` highest cohort
        scores only.

    Returns
    -------
    numpy.ndarray of float64, shape (n_trials,)
    """
    s = np.asarray(scores, dtype=np.float64)
    c = l2_normalize(cohort)
    if top_k is not None and not 1 <= top_k <= len(c):
        raise DataError(f"s_norm: top_k = {top_k} but the cohort has {len(c)} clips")

    def stats(side: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        cs = l2_normalize(side) @ c.T  # (n_trials, n_cohort)
        if top_k is not None:
            cs = -np.partition(-cs, top_k - 1, axis=1)[:, :top_k]
        return cs.mean(axis=1), np.maximum(cs.std(axis=1), 1e-8)

    mu_a, sd_a = stats(left)
    mu_b, sd_b = stats(right)
    return 0.5 * ((s - mu_a) / sd_a + (s - mu_b) / sd_b)


def sample_trials(
    identities: Sequence[object], *, ratio: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every same-identity pair of the clips and ``ratio`` times as many different ones.

    Parameters
    ----------
    identities : sequence, length n_clips
        Identity of every clip.
    ratio : float
        Different-identity trials per same-identity trial (all of them when fewer exist).
    seed : int
        Seed of the different-identity sample: the same inputs give the same trials.

    Returns
    -------
    a, b : numpy.ndarray of int64, shape (n_trials,)
        Clip indices of the two sides (``a < b``), same-identity trials first.
    label : numpy.ndarray of int64, shape (n_trials,)
        1 for same identity, 0 otherwise.
    """
    ids = np.asarray(identities, dtype=object).astype(str)
    n = len(ids)
    if ratio <= 0:
        raise DataError(f"sample_trials: ratio must be > 0, got {ratio}")
    order = np.argsort(ids, kind="stable")
    _, starts, counts = np.unique(ids[order], return_index=True, return_counts=True)
    same_a, same_b = [], []
    for start, count in zip(starts, counts, strict=True):
        members = np.sort(order[start : start + count])
        i, j = np.triu_indices(count, k=1)
        same_a.append(members[i])
        same_b.append(members[j])
    sa = np.concatenate(same_a) if same_a else np.zeros(0, np.int64)
    sb = np.concatenate(same_b) if same_b else np.zeros(0, np.int64)
    n_diff_total = n * (n - 1) // 2 - len(sa)
    want = min(n_diff_total, max(1, round(ratio * max(len(sa), 1))))
    rng = np.random.default_rng(seed)
    chosen: set[tuple[int, int]] = set()
    da, db = [], []
    while len(da) < want:
        x = rng.integers(0, n, size=2 * (want - len(da)) + 16)
        y = rng.integers(0, n, size=len(x))
        for i, j in zip(np.minimum(x, y), np.maximum(x, y), strict=True):
            if i == j or ids[i] == ids[j] or (int(i), int(j)) in chosen:
                continue
            chosen.add((int(i), int(j)))
            da.append(int(i))
            db.append(int(j))
            if len(da) == want:
                break
    a = np.concatenate([sa, np.asarray(da, np.int64)]).astype(np.int64)
    b = np.concatenate([sb, np.asarray(db, np.int64)]).astype(np.int64)
    label = np.concatenate([np.ones(len(sa), np.int64), np.zeros(len(da), np.int64)])
    return a, b, label
