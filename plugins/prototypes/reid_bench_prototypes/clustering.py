"""Pseudo labels for the unsupervised learners: k-reciprocal Jaccard distances, then DBSCAN.

SimMC, SPC-MGR and Hi-MPC cluster their training features every epoch with the Jaccard
distance of k-reciprocal encoding (Zhong et al., CVPR 2017) as their releases compute it
(Kali-Hac/SimMC ``utils/faiss_rerank.py`` lines 30-123, commit c325ad5), then DBSCAN on the
precomputed distances with scikit-learn's labels (the release calls scikit-learn; here scipy's
connected components give the same labels faster, see ``dbscan_labels``). The re-ranking is
written here because no well-kept library ships it. faiss-cpu, which the releases
use for the kNN lists only, was weighed and left out: at N = 2,304 x 256 (one thread) its exact
search took 30 ms against 53 ms here then (now about 31: the Gram matrix 18, the lists 13), for a
66 MB dependency whose order among tied neighbours (repeated windows are common) is unspecified
and differed from the stable order on 4 of 2,304 rows; the tests pin the stable order.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.profiler import record_function

if TYPE_CHECKING:
    from scipy import sparse


#: The profiler range around each clustering call (``make bench`` reads it to keep clustering out
#: of a method's floor); the work a call hands to another thread runs in WORKER_RANGE.
CLUSTERING_RANGE = "reid_bench::clustering"
WORKER_RANGE = CLUSTERING_RANGE + "::worker"


def _reciprocal(initial_rank: np.ndarray, k: int) -> "sparse.csr_matrix":
    """R[i, j] = 1 where i and j are in each other's first k + 1 neighbours (as kNN lists go)."""
    from scipy import sparse

    n = initial_rank.shape[0]
    cols = initial_rank[:, : k + 1]
    rows = np.repeat(np.arange(n), cols.shape[1])
    member = sparse.csr_matrix((np.ones(rows.size, dtype=np.float32), (rows, cols.ravel())), shape=(n, n))
    return member.multiply(member.T).tocsr()


def _stable_first_k(l2: np.ndarray, k: int, finite: bool = False, columns: np.ndarray | None = None) -> np.ndarray:
    """The first k columns of each row's stable argsort, without sorting whole rows.

    Equal to ``np.argsort(l2, axis=1, kind="stable")[:, :k]``: each row's k smallest entries
    ordered by (value, column), so that entries tied across the k-th place (common: resampled
    training sets repeat windows, so distances of exactly 0 recur) are taken in ascending column
    order. The m columns are split into m // w interleaved blocks of w = 16 (column c in block
    c mod (m // w); fewer per block when m < 16 k), whose minima are one vectorised reduction
    (contiguous blocks were 4x slower to reduce); the k-th smallest block minimum bounds the
    row's k-th smallest value from above, so only the blocks whose minimum is at or below it (k
    of them, more on ties) and the columns past the last whole block can hold the row's first k.
    Their entries at or below the bound are the candidates (about
    1.1 k a row) are sorted by one integer key, row | value's bits | column: 13 against 24 ms
    for torch's ``topk`` plus its tie repair at N = 2,304 on one thread. float32 only (the
    distances here); other dtypes, NaN or sizes whose key would not fit in 63 bits take the
    plain sort. ``finite``: the caller knows every entry is finite (else they are checked).

    ``columns``: the row's entries stand for several columns each, ``columns[j]`` being the entry
    of column j (repeated items: equal distances), and the result indexes those columns, as
    ``np.argsort(l2[:, columns], axis=1, kind="stable")[:, :k]`` would. The bound still holds
    (k entries stand for at least k columns); each candidate is expanded into its columns before
    the sort.
    """
    n, m = l2.shape
    width_of_columns = m if columns is None else len(columns)
    col_bits = max(1, (width_of_columns - 1).bit_length())
    if (k >= m or l2.dtype != np.float32 or max(1, n - 1).bit_length() + 32 + col_bits > 63
            or not (finite or np.isfinite(l2).all())):
        return np.argsort(l2 if columns is None else l2[:, columns], axis=1, kind="stable")[:, :k]
    distances = torch.from_numpy(l2)
    width = max(1, min(16, m // k))  # entries per block: 16 measured fastest at m = 2,304
    blocks = m // width  # >= k
    whole = distances[:, : blocks * width].view(n, width, blocks)
    minima = whole.amin(1)
    bound = torch.topk(minima, k, dim=1, largest=False, sorted=False).values.amax(1)
    rows, block = (minima <= bound[:, None]).nonzero(as_tuple=True)
    values = whole.permute(0, 2, 1)[rows, block]  # [chosen blocks, width]
    pick, step = (values <= bound[rows, None]).nonzero(as_tuple=True)
    rows, cols, values = rows[pick], block[pick] + step * blocks, values[pick, step]
    if blocks * width < m:  # the columns past the last whole block, checked one by one
        tail = distances[:, blocks * width:]
        tail_rows, tail_cols = (tail <= bound[:, None]).nonzero(as_tuple=True)
        rows = torch.cat((rows, tail_rows))
        cols = torch.cat((cols, tail_cols + blocks * width))
        values = torch.cat((values, tail[tail_rows, tail_cols]))
    if columns is not None:  # each candidate entry -> the columns it stands for, ascending
        columns_t = torch.from_numpy(np.asarray(columns, dtype=np.int64))
        by_entry = torch.argsort(columns_t, stable=True)
        count = torch.bincount(columns_t, minlength=m)
        sizes = count[cols]
        place = torch.repeat_interleave(torch.cumsum(count, 0)[cols] - sizes - (torch.cumsum(sizes, 0) - sizes), sizes)
        place += torch.arange(len(place))
        rows, cols, values = rows.repeat_interleave(sizes), by_entry[place], values.repeat_interleave(sizes)
    # float32 bits as an order-keeping integer (negative values' magnitude bits flipped); + 0.0
    # turns -0.0 into 0.0, which compare equal and must tie
    bits = (values + 0.0).view(torch.int32).to(torch.int64)
    bits = (bits ^ ((bits >> 31) & 0x7FFFFFFF)) + 2**31
    key = torch.sort((((rows.to(torch.int64) << 32) | bits) << col_bits) | cols).values
    counts = torch.bincount(rows, minlength=n)
    first = (torch.cumsum(counts, 0) - counts)[:, None] + torch.arange(k)
    return (key[first] & ((1 << col_bits) - 1)).numpy()


def jaccard_distance(features: np.ndarray, k1: int = 20, k2: int = 6) -> np.ndarray:
    """[N, N] Jaccard distances of k-reciprocal encodings, as the release computes them.

    As there: the kNN list holds k1 items (the item itself first), so "k1 + 1" neighbours are
    k1; a reciprocal neighbour's own reciprocal set (with k1 / 2) joins when more than 2/3 of
    it is already in; weights are a softmax of minus 2 - 2<x_i, x_j> on the raw (unnormalised)
    features; query expansion averages the k2 nearest encodings; d = 1 - S / (2 - S) with S
    the sum of element-wise minima, clipped at 0. The N x N steps are float32, as the release
    runs them (its kNN search in faiss, lines 37-62; V and the distances, lines 71 and 102),
    and each S[i, j] is summed in the release's order, bit for bit.
    """
    x = np.asarray(features, dtype=np.float32)
    n = len(x)
    upper, starts = _upper_distances(x, k1, k2), _row_starts(n)
    out = np.zeros((n, n), dtype=np.float32)
    for i in range(n):
        out[i, i:] = upper[starts[i]:starts[i + 1]]
    # S[j, i] is S[i, j]'s sum in the same order, so the lower triangle mirrors the upper one
    return out + np.triu(out, 1).T


def _row_starts(n: int) -> np.ndarray:
    """Where each row of the packed upper triangle (row i holds columns i..n-1) begins."""
    i = np.arange(n + 1, dtype=np.int64)
    return i * n - i * (i - 1) // 2


def _upper_distances(x: np.ndarray, k1: int, k2: int) -> np.ndarray:
    """The Jaccard distances on and above the diagonal, packed row by row (``_row_starts``)."""
    n = len(x)
    if n == 0:
        return np.zeros(0, dtype=np.float32)
    return _distances_of_shared(_upper_minima_sums(_encodings(x, min(k1, n), k2))).numpy()


def _distances_of_shared(shared: torch.Tensor) -> torch.Tensor:
    """d = 1 - S / (2 - S), clipped at 0, in float32 (the release's rounding)."""
    out = torch.rsub(shared, 2.0)
    torch.div(shared, out, out=out)
    return torch.sub(1.0, out, out=out).clamp_(min=0.0)


def _least_shared_within(eps: float) -> float | None:
    """The least float32 S >= 0 whose distance (``_distances_of_shared``) is at most eps.

    Each step of d(S) is monotone (rounding keeps order), so d(S) <= eps exactly when S is at
    least this value: the neighbour test then reads S once instead of transforming all N^2 / 2
    entries first (3.8 of about 100 ms a call). The candidates are the 8,193 float32 values
    around the real-number threshold 2 (1 - eps) / (2 - eps); the plain transform decides
    (``None``) should the boundary lie outside them.
    """
    if float(_distances_of_shared(torch.zeros(1))[0]) <= np.float32(eps):  # eps >= 1: every pair
        return 0.0
    guess = np.float32(max(0.0, 2 * (1 - eps) / (2 - eps)))
    candidates = torch.arange(-4096, 4097, dtype=torch.int32).add_(int(guess.view(np.int32))).view(torch.float32)
    within = (_distances_of_shared(candidates) <= eps).numpy()
    if within[0] or not within[-1]:
        return None
    return float(candidates[int(np.argmax(within))])


def _distinct_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(a first index of each group of byte-equal rows, each row's group): rows grouped by one
    random projection, each repeat then checked byte for byte against its group's first row
    (0.7-1.4 ms at 2,304 x 256 on one thread, against about 3 for ``np.unique`` over the rows'
    bytes, which decides should a check fail)."""
    # torch, not numpy's BLAS: its threads would spin beside the clustering's workers
    projection = torch.from_numpy(np.random.default_rng(0).standard_normal(x.shape[1]).astype(x.dtype))
    _, first, inverse = np.unique(torch.mv(torch.from_numpy(x), projection).numpy(), return_index=True,
                                  return_inverse=True)
    inverse = inverse.ravel()
    group_first = first[inverse]
    repeats = np.flatnonzero(group_first != np.arange(len(x)))
    if len(repeats) and not np.array_equal(x[repeats].view(np.uint32), x[group_first[repeats]].view(np.uint32)):
        rows = np.ascontiguousarray(x).view(np.dtype((np.void, x.dtype.itemsize * x.shape[1]))).ravel()
        _, first, inverse = np.unique(rows, return_index=True, return_inverse=True)
    return first, inverse.ravel()


def _gram(x: torch.Tensor) -> torch.Tensor:
    """x x^T; from 256 rows on, the rows are padded with zeros to a multiple of 16 for the
    product: MKL's float32 GEMM is 1.5-1.8x slower when the output's rows are not 64-byte aligned
    (Hi-MPC's 1,441 distinct windows: 17-20 against 11 ms on one thread). Each entry is the same
    dot product either way: bit for bit equal at every size tried from 12 rows on (12-69, 100, 127,
    255, 777, 1,441 and 2,000 rows of 3, 24 and 256 features, 1 and 2 threads, AMD EPYC); below 12
    rows MKL's small-matrix path rounds differently, so small sets, where time does not matter,
    stay as they are."""
    n = x.shape[0]
    aligned = -(-n // 16) * 16
    if n < 256 or aligned == n:
        return torch.mm(x, x.T)
    padded = x.new_zeros((aligned, x.shape[1]))
    padded[:n] = x
    return torch.mm(padded, padded.T)[:n, :n]


def _encodings(x: np.ndarray, k1: int, k2: int) -> "sparse.csr_matrix":
    """The query-expanded k-reciprocal encodings, one sparse row per item (a few dozen entries:
    dense encodings were 7x slower at N = 3,000); columns sorted within each row."""
    from scipy import sparse

    n = len(x)
    # Resampled training sets repeat windows (Hi-MPC's: 1,441 distinct rows of 2,304, SPC-MGR's
    # 1,490 of 2,560): the Gram matrix and the kNN lists are then those of the distinct rows, each
    # repeat taking its row's (the same numbers as the whole matrix's, bit for bit on every input
    # captured from real fits; a call 83 -> 60 ms for Hi-MPC, 87 -> 66 for SPC-MGR on 2 threads).
    # Below 15% repeats the whole matrix (SimMC's 6.5%: no gain measured).
    first, inverse = _distinct_rows(x)
    distinct = len(first) <= 0.85 * n
    inner = _gram(torch.from_numpy(x[first] if distinct else x))  # the trial's torch threads, as every N x N step here
    sq = inner.diagonal().clone()
    # |x_i|^2 + |x_j|^2 - 2<x_i, x_j>: doubling is exact, so one pass gives the same rounding
    l2 = (sq[:, None] + sq[None, :]).sub_(inner, alpha=2.0).clamp_(min=0.0).numpy()
    # |l2| <= 4 max |x|^2 (Cauchy-Schwarz): below that bound no entry can be infinite or NaN
    finite = bool(torch.isfinite(sq).all()) and float(sq.max()) < 1e37
    initial_rank = _stable_first_k(l2, k1, finite, inverse)[inverse] if distinct else _stable_first_k(l2, k1, finite)
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
    gram_rows, gram_cols = (inverse[rows], inverse[cols]) if distinct else (rows, cols)
    logits = inner.numpy()[gram_rows, gram_cols].astype(np.float64) * 2.0
    # A row can be empty: an item with k1 or more exact repeats before it (distance 0, taken by
    # column) is in no kNN list, its own included; its encoding is then zero, as in the release.
    # reduceat over the rows that hold entries (their starts increase strictly).
    row_max = np.zeros(n)
    held = np.diff(expanded.indptr) > 0
    row_max[held] = np.maximum.reduceat(logits, expanded.indptr[:-1][held])
    w = np.exp(logits - row_max[rows])
    v = sparse.csr_matrix(((w / np.bincount(rows, weights=w, minlength=n)[rows]).astype(np.float32), cols,
                           expanded.indptr), shape=(n, n))
    k2 = min(k2, initial_rank.shape[1])  # fewer items than k2: all of them, as the release's slice takes
    if k2 > 1:
        # the mean of the k2 nearest encodings: summed in rank order, then divided, as numpy's mean
        picks = sparse.csr_matrix((np.ones(n * k2, dtype=np.float32), initial_rank[:, :k2].ravel(),
                                   np.arange(0, n * k2 + 1, k2)), shape=(n, n))
        v = (picks @ v).tocsr()
        v.data /= np.float32(k2)
    v.eliminate_zeros()
    v.sort_indices()
    return v


def _upper_minima_sums(v: "sparse.csr_matrix") -> torch.Tensor:
    """S[i, j] = sum over columns c of min(v[i, c], v[j, c]) for j >= i, packed row by row.

    The release (lines 94-101) loops over queries i and, for each nonzero column c of row i in
    ascending order, adds the minima with every row j holding c into row i's float32 sums. Here
    each entry (i, c) of the encodings expands to the rows j >= i of column c; the entries in row
    order, columns ascending, so that one ``index_add_`` adds each S[i, j]'s terms in the release's
    order (bit for bit: tested) and writes row by row, which keeps the writes in cache (4 ms
    against 22 for the column-block order at N = 2,304). Only j >= i: S is symmetric term for term,
    so the lower half would repeat the upper one; packed, the N x N passes after it read half.
    """
    from scipy import sparse

    n = v.shape[0]
    nnz = v.nnz
    size = n * (n + 1) // 2
    wide = size >= 2**31
    # by_column[k]: the entry at column-major place k (rows ascending within a column)
    by_column = sparse.csr_matrix((np.arange(nnz), v.indices, v.indptr), shape=v.shape).tocsc().data
    place = np.empty(nnz, dtype=np.int64)
    place[by_column] = np.arange(nnz)
    column_end = np.cumsum(np.bincount(v.indices, minlength=n))[v.indices]
    length = column_end - place  # the entry itself and the rows below it in its column
    count = int(length.sum())
    small = np.int64 if count >= 2**31 else np.int32
    # each term's column-major place: its entry's own place, then the next ones down the column
    at = np.repeat((place - (np.cumsum(length) - length)).astype(small), length)
    at += np.arange(count, dtype=small)
    at = torch.from_numpy(at)
    row_of = np.repeat(np.arange(n, dtype=np.int64 if wide else np.int32), np.diff(v.indptr))
    column_rows = torch.from_numpy(row_of[by_column])
    column_values = torch.from_numpy(v.data[by_column])
    # (i, j) sits at row_start[i] + j - i
    row_base = (_row_starts(n)[:-1] - np.arange(n)).astype(row_of.dtype)[row_of]
    targets = torch.from_numpy(np.repeat(row_base, length)).add_(column_rows.index_select(0, at))
    minima = torch.from_numpy(np.repeat(v.data, length))
    torch.minimum(minima, column_values.index_select(0, at), out=minima)
    # numpy's zeros: large arrays get huge pages (a 10 MB torch.zeros faulted in 2,600 pages)
    total = torch.from_numpy(np.zeros(size, dtype=np.float32))
    return total.index_add_(0, targets, minima)


def dbscan_labels(distances: np.ndarray, eps: float, min_samples: int) -> np.ndarray:
    """Cluster ids per sample (-1: outlier) from a precomputed distance matrix: scikit-learn's
    DBSCAN, label for label, when the matrix is symmetric (the Jaccard distances are).

    scikit-learn's neighbourhood lists (one array per row) cost 18 ms at N = 2,304, three times
    the rest: here the core points' eps-graph goes to scipy's connected components instead
    (``_labels_of_neighbours``).
    """
    _check_eps(eps)
    _check_finite(distances)
    # scikit-learn's radius query: the point itself included
    near = torch.from_numpy(np.ascontiguousarray(distances)) <= eps
    if not torch.equal(near, near.T):  # its result then depends on visiting order: let it decide
        from sklearn.cluster import DBSCAN

        return DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed").fit_predict(distances)
    rows, cols = (t.numpy() for t in near.nonzero(as_tuple=True))
    return _labels_of_neighbours(len(near), rows, cols, min_samples)


def _check_eps(eps: float) -> None:
    if not eps > 0:
        raise ValueError(f"DBSCAN's eps must be positive, got {eps}")


_NOT_FINITE = "DBSCAN: the distance matrix holds NaN or infinite values (diverged features?)"


def _check_finite(distances: np.ndarray) -> None:
    if not np.isfinite(distances).all():  # scikit-learn refuses them too: diverged features
        raise ValueError(_NOT_FINITE)


def _labels_of_neighbours(n: int, rows: np.ndarray, cols: np.ndarray, min_samples: int) -> np.ndarray:
    """scikit-learn's DBSCAN labels from the symmetric eps-neighbour pairs (each point its own
    neighbour): clusters numbered by their lowest core point, a border point taking the
    lowest-numbered cluster among its core neighbours (the first to reach it in its scan)."""
    from scipy import sparse
    from scipy.sparse.csgraph import connected_components

    core = np.bincount(rows, minlength=n) >= min_samples
    labels = np.full(n, -1, dtype=np.int64)
    if not core.any():
        return labels
    both = core[rows] & core[cols]
    graph = sparse.csr_matrix((np.ones(int(both.sum()), dtype=np.int8), (rows[both], cols[both])), shape=(n, n))
    _, component = connected_components(graph, directed=False)
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
    """``dbscan_labels(jaccard_distance(features, k1, k2), eps, min_samples)`` from the upper
    triangle alone: the distances are symmetric by construction, so the pairs above the diagonal
    are mirrored instead of building and checking the lower half."""
    _check_eps(eps)
    with record_function(CLUSTERING_RANGE):
        return _pseudo_labels(np.asarray(features, dtype=np.float32), eps, min_samples, k1, k2)


def _pseudo_labels(x: np.ndarray, eps: float, min_samples: int, k1: int, k2: int) -> np.ndarray:
    n = len(x)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if not np.isfinite(x).all():  # an infinite feature would otherwise go unnoticed (NaN weights)
        raise ValueError("pseudo labels: the features hold NaN or infinite values (diverged training?)")
    shared = _upper_minima_sums(_encodings(x, min(k1, n), k2))
    # S finite <=> d finite (S <= 1: rows sum to 1); S >= 0, so the sum is finite exactly when
    # every S is (0.4 ms; torch.isfinite(S).all() takes 10)
    if not math.isfinite(float(shared.sum())):
        raise ValueError(_NOT_FINITE)
    least = _least_shared_within(eps)
    # numpy's flatnonzero: 1.4 against 4.9 ms for torch's nonzero over Hi-MPC's 2.7 million S
    near = shared.numpy() >= np.float32(least) if least is not None else (_distances_of_shared(shared) <= eps).numpy()
    packed = np.flatnonzero(near)
    starts = _row_starts(n)
    rows = np.searchsorted(starts, packed, side="right") - 1
    cols = packed - starts[rows] + rows
    off = rows != cols
    return _labels_of_neighbours(n, np.concatenate((rows, cols[off])), np.concatenate((cols, rows[off])), min_samples)


def pseudo_labels_of(feature_sets: list[np.ndarray], eps: float, min_samples: int, k1: int = 20,
                     k2: int = 6) -> list[np.ndarray]:
    """``pseudo_labels`` of each feature set (SimMC's two views, Hi-MPC's three levels), run side
    by side on the trial's threads.

    Much of a call runs on one thread (scipy's sparse products, numpy's gathers, the
    ``index_add_``), so the sets run in one worker each, and the trial's threads are shared out
    among the workers (at least one each): three single-threaded workers on two threads beat
    three two-threaded ones by about 5% (their thread teams stop waiting for each other) and two
    workers by 20%. Every step gives the same result on any number of threads, so each result is
    the one-at-a-time call's (tested).
    """
    _check_eps(eps)
    threads = torch.get_num_threads()
    sets = [np.asarray(f, dtype=np.float32) for f in feature_sets]
    with record_function(CLUSTERING_RANGE):
        if threads < 2 or len(sets) < 2:
            return [_pseudo_labels(x, eps, min_samples, k1, k2) for x in sets]
        share = max(1, threads // len(sets))

        def one(x: np.ndarray) -> np.ndarray:
            torch.set_num_threads(share)  # a new thread would otherwise take torch's default
            with record_function(WORKER_RANGE):
                return _pseudo_labels(x, eps, min_samples, k1, k2)

        with ThreadPoolExecutor(max_workers=len(sets)) as pool:
            return list(pool.map(one, sets))


def prototypes(features: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The mean feature of each cluster 0..max(label) (outliers, -1, ignored).

    Summed in float64 in sample order, as ``np.add.at`` sums, with torch's ``index_add_``
    (equal to it bit for bit, tested; 1 against 21 ms for 2,304 x 256 features)."""
    labels = np.asarray(labels, dtype=np.int64)
    k = int(labels.max()) + 1 if len(labels) and labels.max() >= 0 else 0
    keep = labels >= 0
    sums = torch.zeros((k, features.shape[1]), dtype=torch.float64)
    sums.index_add_(0, torch.from_numpy(labels[keep]), torch.from_numpy(np.asarray(features, dtype=np.float64)[keep]))
    counts = np.bincount(labels[keep], minlength=k)
    return (sums.numpy() / np.maximum(counts, 1)[:, None]).astype(np.float32)
