"""Pseudo labels for the unsupervised learners: k-reciprocal Jaccard distances, then DBSCAN.

SimMC, SPC-MGR and Hi-MPC cluster their training features every epoch with the Jaccard
distance of k-reciprocal encoding (Zhong et al., CVPR 2017) as their releases compute it
(Kali-Hac/SimMC ``utils/faiss_rerank.py`` lines 30-123, commit c325ad5), then scikit-learn's
DBSCAN on the precomputed distances. DBSCAN is scikit-learn's (the release calls it too); the
re-ranking is written here, vectorised with numpy, because no well-kept library ships it
(faiss only supplies the brute-force kNN, which numpy does at these sizes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from scipy import sparse


def _reciprocal(initial_rank: np.ndarray, k: int) -> "sparse.csr_matrix":
    """R[i, j] = 1 where i and j are in each other's first k + 1 neighbours (as kNN lists go)."""
    from scipy import sparse

    n = initial_rank.shape[0]
    cols = initial_rank[:, : k + 1]
    rows = np.repeat(np.arange(n), cols.shape[1])
    member = sparse.csr_matrix((np.ones(rows.size, dtype=np.float32), (rows, cols.ravel())), shape=(n, n))
    return member.multiply(member.T).tocsr()


def _stable_first_k(l2: np.ndarray, k: int) -> np.ndarray:
    """The first k columns of each row's stable argsort, without sorting whole rows.

    Every entry <= the row's k-th smallest value (found by a partition) is a candidate; the
    candidates, ties at the boundary included, are ordered by (value, column) as a stable sort
    orders them, so the result equals ``np.argsort(l2, axis=1, kind="stable")[:, :k]``.
    """
    n, m = l2.shape
    if k >= m or not np.isfinite(l2).all():
        return np.argsort(l2, axis=1, kind="stable")[:, :k]
    kth = np.partition(l2, k - 1, axis=1)[:, k - 1 : k]
    rows, cols = np.nonzero(l2 <= kth)
    order = np.lexsort((cols, l2[rows, cols], rows))
    starts = np.concatenate(([0], np.cumsum(np.bincount(rows, minlength=n))[:-1]))
    return cols[order][starts[:, None] + np.arange(k)]


def jaccard_distance(features: np.ndarray, k1: int = 20, k2: int = 6) -> np.ndarray:
    """[N, N] Jaccard distances of k-reciprocal encodings, as the release computes them.

    As there: the kNN list holds k1 items (the item itself first), so "k1 + 1" neighbours are
    k1; a reciprocal neighbour's own reciprocal set (with k1 / 2) joins when more than 2/3 of
    it is already in; weights are a softmax of minus 2 - 2<x_i, x_j> on the raw (unnormalised)
    features; query expansion averages the k2 nearest encodings; d = 1 - S / (2 - S) with S
    the sum of element-wise minima, clipped at 0.

    The encodings are sparse (a few dozen items per row), so they stay sparse here: only the
    kNN lists, the distance matrix and the result are N x N (7x faster than dense encodings at
    N = 3,000).
    """
    from scipy import sparse

    x = np.asarray(features, dtype=np.float64)
    n = len(x)
    if n == 0:
        return np.zeros((0, 0))
    k1 = min(k1, n)
    inner = x @ x.T
    sq = np.diag(inner)
    l2 = np.maximum(sq[:, None] + sq[None, :] - 2 * inner, 0.0)
    initial_rank = _stable_first_k(l2, k1)
    recip = _reciprocal(initial_rank, k1)
    half = _reciprocal(initial_rank, int(round(k1 / 2)))
    # overlap[i, c] = |R(i) & R_half(c)| at the reciprocal pairs; c's set joins i's when the
    # overlap exceeds 2/3 |R_half(c)|
    overlap = (recip @ half.T).multiply(recip).tocoo()
    size = np.asarray(half.sum(axis=1)).ravel()
    keep = overlap.data > (2 / 3) * size[overlap.col]
    joins = sparse.csr_matrix((np.ones(int(keep.sum()), dtype=np.float32), (overlap.row[keep], overlap.col[keep])),
                              shape=(n, n))
    expanded = (recip + joins @ half).tocsr()
    expanded.sum_duplicates()
    expanded.sort_indices()
    rows = np.repeat(np.arange(n), np.diff(expanded.indptr))
    cols = expanded.indices
    # softmax of 2<x_i, x_j> over each row's expanded set (the release's exp(-(2 - 2<x_i, x_j>)))
    logits = 2.0 * inner[rows, cols]
    row_max = np.full(n, -np.inf)
    np.maximum.at(row_max, rows, logits)
    w = np.exp(logits - row_max[rows])
    v = sparse.csr_matrix(((w / np.bincount(rows, weights=w, minlength=n)[rows]).astype(np.float32), cols,
                           expanded.indptr), shape=(n, n))
    if k2 > 1:
        # the mean of the k2 nearest encodings: summed in rank order, then divided, as numpy's mean
        picks = sparse.csr_matrix((np.ones(n * k2, dtype=np.float32), initial_rank[:, :k2].ravel(),
                                   np.arange(0, n * k2 + 1, k2)), shape=(n, n))
        v = (picks @ v).tocsr()
        v.data /= np.float32(k2)
    v.eliminate_zeros()
    # sum of element-wise minima between every pair of encodings, one column at a time: only the
    # rows where a column is nonzero meet there
    v = v.tocsc()
    v.sort_indices()
    total = np.zeros((n, n), dtype=np.float32)
    for c in range(n):
        lo, hi = v.indptr[c], v.indptr[c + 1]
        if lo == hi:
            continue
        r = v.indices[lo:hi]
        vals = v.data[lo:hi]
        total[np.ix_(r, r)] += np.minimum.outer(vals, vals)
    return np.maximum(1.0 - total / (2.0 - total), 0.0)


def dbscan_labels(distances: np.ndarray, eps: float, min_samples: int) -> np.ndarray:
    """Cluster ids per sample (-1: outlier) from a precomputed distance matrix."""
    from sklearn.cluster import DBSCAN

    return DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed").fit_predict(distances)


def pseudo_labels(features: np.ndarray, eps: float, min_samples: int, k1: int = 20, k2: int = 6) -> np.ndarray:
    return dbscan_labels(jaccard_distance(features, k1, k2), eps, min_samples)


def prototypes(features: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The mean feature of each cluster 0..max(label) (outliers, -1, ignored)."""
    k = int(labels.max()) + 1 if len(labels) and labels.max() >= 0 else 0
    out = np.zeros((k, features.shape[1]), dtype=np.float64)
    keep = labels >= 0
    np.add.at(out, labels[keep], features[keep])
    counts = np.bincount(labels[keep], minlength=k)
    return (out / np.maximum(counts, 1)[:, None]).astype(np.float32)
