"""Pseudo labels for the unsupervised learners: k-reciprocal Jaccard distances, then DBSCAN.

SimMC, SPC-MGR and Hi-MPC cluster their training features every epoch with the Jaccard
distance of k-reciprocal encoding (Zhong et al., CVPR 2017) as their releases compute it
(Kali-Hac/SimMC ``utils/faiss_rerank.py`` lines 30-123, commit c325ad5), then DBSCAN on the
precomputed distances with scikit-learn's labels (the release calls scikit-learn; here scipy's
connected components give the same labels faster, see ``dbscan_labels``). The re-ranking is
written here because no well-kept library ships it. faiss-cpu, which the releases
use for the kNN lists only, was weighed and left out: at N = 2,304 x 256 (one thread) its exact
search took 30 ms against 53 ms here, a sixth of a clustering call, for a 66 MB dependency whose
order among tied neighbours (repeated windows are common) is unspecified and differed from the
stable order on 4 of 2,304 rows; the tests pin the stable order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

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

    The k + 1 smallest values of a row (a partial sort) settle its first k items unless the k-th
    and the (k + 1)-th are equal; those k are ordered by (value, column) as a stable sort orders
    them. Rows with a tie across the k-th place (common: resampled training sets repeat windows,
    so distances of exactly 0 recur) take every entry up to the k-th value and order those. The
    result equals ``np.argsort(l2, axis=1, kind="stable")[:, :k]``.
    """
    n, m = l2.shape
    if k >= m or not np.isfinite(l2).all():
        return np.argsort(l2, axis=1, kind="stable")[:, :k]
    values, cols = torch.topk(torch.from_numpy(l2), k + 1, dim=1, largest=False, sorted=True)
    values, cols = values.numpy(), cols.numpy()
    order = np.lexsort((cols[:, :k], values[:, :k]), axis=1)
    first = np.take_along_axis(cols[:, :k], order, axis=1)
    tied = np.flatnonzero(values[:, k - 1] == values[:, k])
    if len(tied):
        rows = l2[tied]
        r, c = np.nonzero(rows <= values[tied, k - 1 : k])
        by_value = np.lexsort((c, rows[r, c], r))
        starts = np.concatenate(([0], np.cumsum(np.bincount(r, minlength=len(tied)))[:-1]))
        first[tied] = c[by_value][starts[:, None] + np.arange(k)]
    return first


def jaccard_distance(features: np.ndarray, k1: int = 20, k2: int = 6) -> np.ndarray:
    """[N, N] Jaccard distances of k-reciprocal encodings, as the release computes them.

    As there: the kNN list holds k1 items (the item itself first), so "k1 + 1" neighbours are
    k1; a reciprocal neighbour's own reciprocal set (with k1 / 2) joins when more than 2/3 of
    it is already in; weights are a softmax of minus 2 - 2<x_i, x_j> on the raw (unnormalised)
    features; query expansion averages the k2 nearest encodings; d = 1 - S / (2 - S) with S
    the sum of element-wise minima, clipped at 0. The N x N steps are float32, as the release
    runs them (its kNN search in faiss, lines 37-62; V and the distances, lines 71 and 102).
    """
    x = np.asarray(features, dtype=np.float32)
    n = len(x)
    if n == 0:
        return np.zeros((0, 0), dtype=np.float32)
    shared = _minima_sums(_encodings(x, min(k1, n), k2))
    # d = 1 - S / (2 - S), clipped at 0, in place: the N x N steps are memory-bound
    out = shared.neg().add_(2.0)
    torch.div(shared, out, out=out)
    return out.neg_().add_(1.0).clamp_(min=0.0).numpy()


def _encodings(x: np.ndarray, k1: int, k2: int) -> "sparse.csc_matrix":
    """The query-expanded k-reciprocal encodings, one sparse row per item (a few dozen entries:
    dense encodings were 7x slower at N = 3,000); columns sorted."""
    from scipy import sparse

    n = len(x)
    xt = torch.from_numpy(x)
    inner2 = torch.mm(xt, xt.T)  # the trial's torch threads, as every N x N step here
    sq = inner2.diagonal().clone()
    inner2.mul_(2.0)  # exact; the squared distances and the softmax logits read it
    l2 = (sq[:, None] + sq[None, :]).sub_(inner2).clamp_(min=0.0).numpy()
    inner2 = inner2.numpy()
    initial_rank = _stable_first_k(l2, k1)
    del l2
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
    logits = inner2[rows, cols].astype(np.float64)
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
    v = v.tocsc()
    v.sort_indices()
    return v


def _minima_sums(v: "sparse.csc_matrix") -> torch.Tensor:
    """S[i, j] = sum over columns of min(v[i, c], v[j, c]), float32 [N, N].

    Only the rows where a column is nonzero meet there, so each column adds the element-wise
    minima of its own entries to an s x s block. Columns of equal length are taken together
    (about a hundred lengths at N = 2,304) and every block is added in one ``index_add_``:
    a third faster than one fancy-indexed update per column. The blocks are built with torch
    (the trial's threads) and int32 positions (N^2 < 2^31 here): 38 ms against numpy's 55 at
    N = 2,304, the same sums in the same order.
    """
    n = v.shape[0]
    lengths = np.diff(v.indptr)
    wide = n * n >= 2**31
    rows = torch.from_numpy(v.indices.astype(np.int64 if wide else np.int32))
    values = torch.from_numpy(v.data)
    starts = v.indptr[:-1]
    targets, minima = [], []
    for s in np.unique(lengths[lengths > 0]):
        at = torch.from_numpy(starts[lengths == s][:, None] + np.arange(s))
        r, vals = rows[at], values[at]
        targets.append((r[:, :, None] * n + r[:, None, :]).view(-1))
        minima.append(torch.minimum(vals[:, :, None], vals[:, None, :]).view(-1))
    total = torch.zeros(n * n, dtype=torch.float32)
    if targets:
        total.index_add_(0, torch.cat(targets), torch.cat(minima))
    return total.view(n, n)


def dbscan_labels(distances: np.ndarray, eps: float, min_samples: int) -> np.ndarray:
    """Cluster ids per sample (-1: outlier) from a precomputed distance matrix: scikit-learn's
    DBSCAN, label for label, when the matrix is symmetric (the Jaccard distances are).

    scikit-learn's neighbourhood lists (one array per row) cost 18 ms at N = 2,304, three times
    the rest: here the core points' eps-graph goes to scipy's connected components instead. Its
    labels follow scikit-learn's order: clusters numbered by their lowest core point, a border
    point taking the lowest-numbered cluster among its core neighbours (the first to reach it).
    """
    from scipy import sparse
    from scipy.sparse.csgraph import connected_components

    if not eps > 0:
        raise ValueError(f"DBSCAN's eps must be positive, got {eps}")
    d = torch.from_numpy(np.ascontiguousarray(distances))
    if not bool(torch.isfinite(d).all()):  # scikit-learn refuses them too: diverged features
        raise ValueError("DBSCAN: the distance matrix holds NaN or infinite values (diverged features?)")
    near = d <= eps  # the neighbourhood scikit-learn's radius query returns, the point itself included
    if not torch.equal(near, near.T):  # its result then depends on visiting order: let it decide
        from sklearn.cluster import DBSCAN

        return DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed").fit_predict(distances)
    n = len(d)
    rows, cols = (t.numpy() for t in near.nonzero(as_tuple=True))
    core = np.bincount(rows, minlength=n) >= min_samples
    both = core[rows] & core[cols]
    graph = sparse.csr_matrix((np.ones(int(both.sum()), dtype=np.int8), (rows[both], cols[both])), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    labels = np.full(n, -1, dtype=np.int64)
    if not core.any():
        return labels
    # number the components that hold core points by their lowest core point
    first = np.full(component.max() + 1, n)
    np.minimum.at(first, component[core], np.flatnonzero(core))
    numbered = np.full(len(first), -1)
    held = np.flatnonzero(first < n)
    numbered[held[np.argsort(first[held])]] = np.arange(len(held))
    labels[core] = numbered[component[core]]
    # border points: the lowest cluster number among their core neighbours
    border = ~core[rows] & core[cols]
    best = np.full(n, np.iinfo(np.int64).max)
    np.minimum.at(best, rows[border], labels[cols[border]])
    reached = best < np.iinfo(np.int64).max
    labels[reached] = best[reached]
    return labels


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
