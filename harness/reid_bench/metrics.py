"""Evaluation metrics for person re-identification.

Two protocols are covered:

* open-set retrieval (query vs. gallery, Market-1501 rules): CMC, mAP and mINP
  via :func:`evaluate_retrieval` (and OG-Net's trapezoid AP, ``map_trapz``);
* closed-set identification (a probe classifier on frozen features): CMC over
  identities, nAUC, micro ROC AUC and sequence-level accuracy via
  :func:`closed_set_metrics`, from the class scores of a probe classifier
  (trained in :mod:`reid_bench.probe`: metrics measure, they do not train).

Only numpy and torch are used so that the harness has no compiled extension.
"""

from __future__ import annotations

import contextlib
import math
from concurrent.futures import ThreadPoolExecutor
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

__all__ = [
    "RetrievalResult",
    "evaluate_retrieval",
    "cmc_auc",
    "roc_auc_micro",
    "ClosedSetResult",
    "closed_set_metrics",
]


# ---------------------------------------------------------------------------
# open-set retrieval
# ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class RetrievalResult:
    """Outcome of :func:`evaluate_retrieval`.

    ``eq`` is disabled because comparing numpy arrays element-wise has no
    single truth value.
    """

    cmc: np.ndarray
    mAP: float
    mINP: float
    num_valid_queries: int
    num_queries: int
    #: OG-Net's AP (evaluate_gpu.py lines 50-57 of layumi/person-reid-3d): at each true match the
    #: mean of the precision there and just before it, averaged over *all* queries (one without a
    #: true match counts as 0, as the release divides by the query count): the published OG-Net mAPs.
    map_trapz: float = float("nan")
    #: Per valid query, in query order: the 1-based rank of its first true match, and its AP
    #: (what a paired bootstrap over queries resamples).
    query_first_rank: np.ndarray | None = None
    query_ap: np.ndarray | None = None

    def rank(self, k: int) -> float:
        """Rank-k accuracy (1-based, so ``rank(1)`` is Rank-1)."""
        if not 1 <= k <= len(self.cmc):
            raise ValueError(f"rank k must be in 1..{len(self.cmc)}, got {k}")
        return float(self.cmc[k - 1])

    def as_dict(self) -> dict[str, float | int]:
        out: dict[str, float | int] = {}
        for k in (1, 5, 10):
            if k <= len(self.cmc):
                out[f"rank{k}"] = self.rank(k)
        out["mAP"] = self.mAP
        out["mINP"] = self.mINP
        out["map_trapz"] = self.map_trapz
        out["num_valid_queries"] = self.num_valid_queries
        return out


def _as_1d_int(x: Any, name: str, device: torch.device) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    if t.dim() != 1:
        raise ValueError(f"{name} must be 1-D, got shape {tuple(t.shape)}")
    if t.is_floating_point() or t.is_complex():
        if not torch.equal(t, t.round()):
            raise ValueError(f"{name} must hold integer ids")
    return t.detach().to(device=device, dtype=torch.int64)


def _float_rows(t: torch.Tensor) -> torch.Tensor:
    """Bring a block of distances to a sortable float dtype without changing order.

    Half types are widened to float32 and integers to float64, both exact.
    """
    if t.dtype in (torch.float32, torch.float64):
        return t
    if t.dtype in (torch.float16, torch.bfloat16):
        return t.float()
    return t.double()


class _Rows:
    """Row access to a numpy or torch distance matrix, one block at a time.

    Keeping the matrix where it is (host numpy, or a tensor on any device) and
    moving only blocks bounds memory by the block size.
    """

    def __init__(self, distmat: Any, device: torch.device):
        self.device = device
        if isinstance(distmat, torch.Tensor):
            self.np = None
            self.t = distmat.detach()
        else:
            arr = np.asarray(distmat)
            if arr.dtype.kind not in "fiub":
                raise ValueError(f"distmat must be numeric, got dtype {arr.dtype}")
            if arr.dtype.kind == "b":
                arr = arr.astype(np.float64)
            if not arr.dtype.isnative:
                arr = arr.astype(arr.dtype.newbyteorder("="))
            self.np = arr
            self.t = None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.np.shape if self.np is not None else self.t.shape)

    def _from_np(self, block: np.ndarray) -> torch.Tensor:
        with warnings.catch_warnings():
            # read-only arrays trigger a warning; the block is never written to
            warnings.simplefilter("ignore", UserWarning)
            return torch.from_numpy(np.ascontiguousarray(block))

    def slice(self, start: int, stop: int) -> torch.Tensor:
        if self.np is not None:
            t = self._from_np(self.np[start:stop])
        else:
            t = self.t[start:stop]
        return _float_rows(t.to(self.device))


def evaluate_retrieval(
    distmat,
    q_pids,
    g_pids,
    q_camids,
    g_camids,
    max_rank: int = 50,
    filter_same_camera: bool = True,
    chunk_size: int = 256,
    device: str | torch.device | None = None,
) -> RetrievalResult:
    """CMC / mAP / mINP with torchreid's Market-1501 rules, vectorised in torch.

    Per query the gallery is ranked by ascending distance. With
    ``filter_same_camera`` the gallery items sharing both pid and camid with the
    query are dropped ("junk"); queries left without a true match are skipped
    and only counted in ``num_queries``. Over the valid queries:

    * CMC(k) = fraction whose first true match is at rank <= k (rows shorter
      than ``max_rank`` are padded with 1, their final value);
    * AP = mean over the true matches of precision at that match's rank;
    * INP = (number of true matches) / (rank of the last true match)
      (Ye et al., "Deep Learning for Person Re-identification", AGW code).

    Ties: ranking uses a *stable* order, i.e. equal distances keep gallery
    index order. torchreid's ``np.argsort`` leaves tie order unspecified, so
    the two only differ when equal distances straddle a true match.

    Speed: only the gallery items ranked at or before a query's hardest true
    match can influence its CMC/AP/INP. Per query those candidates' *values*
    are copied out and sorted, and each same-pid item is placed by binary
    search, the rare exact ties corrected by index; no argsort of the gallery
    is needed and the matrix is read twice. Memory is O(chunk_size x G) per
    worker on ``device`` (default: the distmat tensor's device, or CPU).
    ``chunk_size`` changes memory use, not results (up to rounding). On CPU,
    torch runs single-threaded during the call (restored afterwards) and the
    blocks of queries are spread over ``torch.get_num_threads()`` threads.
    """
    rows, (qp, gp, qc, gc), max_rank, device = _checked_inputs(
        distmat, (q_pids, g_pids, q_camids, g_camids), max_rank, chunk_size, device
    )
    num_q = rows.shape[0]
    threads = torch.get_num_threads()
    with _serial_torch(device):
        first_rank, ap, inp, valid, ap_trapz = _rank_queries(
            rows, qp, gp, qc, gc, filter_same_camera, chunk_size, device, threads
        )
    num_valid = int(valid.sum())
    fr = first_rank[valid].clamp(max=max_rank + 1)
    hist = torch.bincount(fr, minlength=max_rank + 2)[1 : max_rank + 1]
    cmc = (torch.cumsum(hist, 0).double() / num_valid).cpu().numpy()
    cmc.setflags(write=False)
    return RetrievalResult(
        cmc=cmc,
        mAP=float(ap[valid].sum().item() / num_valid),
        mINP=float(inp[valid].sum().item() / num_valid),
        num_valid_queries=num_valid,
        num_queries=num_q,
        map_trapz=float(ap_trapz.sum().item() / num_q),
        query_first_rank=first_rank[valid].cpu().numpy(),
        query_ap=ap[valid].double().cpu().numpy(),
    )


def _checked_inputs(distmat, ids, max_rank: int, chunk_size: int, device):
    """The distance rows and the four id vectors on ``device``, shapes checked; ``max_rank``
    capped at the gallery size (with a warning)."""
    if device is None:
        device = distmat.device if isinstance(distmat, torch.Tensor) else torch.device("cpu")
    device = torch.device(device)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if max_rank < 1:
        raise ValueError(f"max_rank must be >= 1, got {max_rank}")

    rows = _Rows(distmat, device)
    shape = rows.shape
    if len(shape) != 2:
        raise ValueError(f"distmat must be 2-D [num_query, num_gallery], got shape {shape}")
    num_q, num_g = shape
    if num_q == 0 or num_g == 0:
        raise ValueError(f"empty input: distmat has shape {shape}")
    names = ("q_pids", "g_pids", "q_camids", "g_camids")
    tensors = tuple(_as_1d_int(values, name, device) for values, name in zip(ids, names))
    for i in (0, 2, 1, 3):  # the query's ids first, as the rows come first
        name, t = names[i], tensors[i]
        n, axis = (num_q, "rows") if name.startswith("q_") else (num_g, "columns")
        if t.numel() != n:
            raise ValueError(
                f"shape mismatch: distmat has {n} {axis} but {name} has {t.numel()} entries"
            )
    if max_rank > num_g:
        warnings.warn(
            f"max_rank={max_rank} exceeds the gallery size; using max_rank={num_g}",
            stacklevel=3,
        )
        max_rank = num_g
    return rows, tensors, max_rank, device


def _rank_queries(rows, qp, gp, qc, gc, filter_same_camera, chunk_size, device, threads):
    """Per query: 1-based kept rank of the first true match, AP, INP, validity, trapezoid AP.

    Blocks of ``chunk_size`` queries are independent; on CPU they are spread
    over ``threads`` Python threads (numpy and torch release the GIL in the
    steps that matter).
    """
    num_q, num_g = rows.shape
    # Gallery indices of every pid, contiguous after a stable sort by pid, so
    # each query's same-pid items (true matches + junk) are one slice.
    g_order = torch.sort(gp, stable=True).indices
    gp_sorted = gp[g_order]
    grp_lo = torch.searchsorted(gp_sorted, qp, right=False)
    grp_cnt = torch.searchsorted(gp_sorted, qp, right=True) - grp_lo
    cols = torch.arange(num_g, device=device)

    first_rank = torch.zeros(num_q, dtype=torch.int64, device=device)
    n_good = torch.zeros(num_q, dtype=torch.int64, device=device)
    ap = torch.zeros(num_q, dtype=torch.float64, device=device)
    ap_trapz = torch.zeros(num_q, dtype=torch.float64, device=device)
    inp = torch.zeros(num_q, dtype=torch.float64, device=device)

    def rank_block(s: int) -> None:
        e = min(s + chunk_size, num_q)
        d = rows.slice(s, e)
        if _has_nan(d):
            raise ValueError("distmat contains NaN")
        qi = torch.arange(s, e, device=device)
        # [b, M] gallery indices sharing the query's pid, and which are true matches / junk
        cnt = grp_cnt[qi]
        ar = torch.arange(max(int(cnt.max()), 1), device=device)
        in_grp = ar[None, :] < cnt[:, None]
        gi = g_order[(grp_lo[qi, None] + ar[None, :]).clamp_(max=num_g - 1)]
        junk = in_grp & (gc[gi] == qc[qi, None]) if filter_same_camera else torch.zeros_like(in_grp)
        good = in_grp & ~junk
        t = d.gather(1, gi)
        # Items ranked after a query's hardest true match cannot change its
        # CMC, AP or INP: only the candidates with distance <= t_max count.
        t_max = t.masked_fill(~good, -math.inf).max(1).values
        placed = (good | junk) & (t <= t_max[:, None])
        p = _stable_positions(d, t, t_max, gi, placed, cols, chunk_size)
        (first_rank[s:e], n_good[s:e], ap[s:e], ap_trapz[s:e],
         inp[s:e]) = _block_scores(p.masked_fill(~placed, num_g), good & placed, junk & placed, good.sum(1))

    starts = range(0, num_q, chunk_size)
    workers = min(threads, len(starts)) if device.type == "cpu" else 1
    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(rank_block, starts))
    else:
        for s in starts:
            rank_block(s)

    valid = n_good > 0
    if not bool(valid.any()):
        raise ValueError(
            "no query has a true match in the gallery (after removing same-pid, "
            "same-camera items); cannot compute CMC/mAP"
        )
    return first_rank, ap, inp, valid, ap_trapz


def _stable_positions(d, t, t_max, gi, placed, cols, chunk_size):
    """0-based position of each placed candidate in its row's stable order:
    #{d_i < d_j} + #{i < j: d_i == d_j}, ties fixed by gallery index."""
    b = d.shape[0]
    lt, le = _count_below(d, t, t_max)
    tied = placed & (le - lt > 1)
    n_tied = int(tied.sum())
    if n_tied > 4 * b:
        # heavy ties: a stable argsort of the rows is cheaper than fixing
        # every tie one row-scan at a time
        order = torch.sort(d, dim=1, stable=True).indices
        inv = torch.empty_like(order).scatter_(1, order, cols.expand(b, -1))
        return inv.gather(1, gi)
    p = lt
    if n_tied:
        tr, tj = torch.nonzero(tied, as_tuple=True)
        for u in range(0, n_tied, chunk_size):
            pr, pj = tr[u : u + chunk_size], tj[u : u + chunk_size]
            before = (d[pr] == t[pr, pj, None]) & (cols[None, :] < gi[pr, pj, None])
            p[pr, pj] += before.sum(1)
    return p


def _block_scores(p, good, junk, ng):
    """First-match rank, true-match count, AP, trapezoid AP and INP of a block of queries from
    the positions ``p`` of their placed true matches (``good``) and junk items (the rest sit at
    the gallery size); ``ng``: each query's number of true matches."""
    # walk the same-pid items in rank order; everything else is a
    # non-match ranked somewhere in between
    p, o = torch.sort(p, dim=1)
    g_s = good.gather(1, o)
    j_s = junk.gather(1, o)
    kept_rank = p + 1 - (torch.cumsum(j_s, 1) - j_s.long())  # 1-based, junk removed
    hits = torch.cumsum(g_s, 1)
    prec = torch.where(g_s, hits.double() / kept_rank.double(), 0.0)
    per_good = 1.0 / ng.clamp(min=1).double()  # queries without a true match stay at 0
    ap = prec.sum(1) * per_good
    # OG-Net's evaluate_gpu.py: the mean of the precision at this hit and just before it
    before = torch.where(kept_rank > 1, (hits - 1).double() / (kept_rank - 1).clamp(min=1).double(), 1.0)
    ap_trapz = torch.where(g_s, (prec + before) / 2, 0.0).sum(1) * per_good
    first = kept_rank.masked_fill(~g_s, torch.iinfo(torch.int64).max).min(1).values
    inp = ng.double() / kept_rank.masked_fill(~g_s, 0).max(1).values.clamp(min=1).double()
    return first, ng, ap, ap_trapz, inp


@contextlib.contextmanager
def _serial_torch(device: torch.device):
    """Run torch's CPU ops on one thread for the duration.

    The CPU path issues many small ops; with several OpenMP threads each one
    pays a barrier, which costs milliseconds when the machine is busy. The
    query blocks are spread over Python threads instead.
    """
    n = torch.get_num_threads()
    if device.type != "cpu" or n == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def _has_nan(d: torch.Tensor) -> bool:
    """NaN always survives a sum, so the full scan only runs on suspicion."""
    if d.device.type == "cpu":
        a = d.numpy()
        with np.errstate(all="ignore"):  # inf + -inf is NaN too; the scan sorts it out
            return bool(np.isnan(a.sum()) and np.isnan(a).any())
    return bool(torch.isnan(d.sum()) and torch.isnan(d).any())


def _count_below(
    d: torch.Tensor, t: torch.Tensor, t_max: torch.Tensor, compact: bool | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row of d [B, G] and each t [B, M] <= that row's t_max: #{d < t} and #{d <= t}.

    On CPU only the candidates (values <= the row's t_max, on average 14 % of
    a Market gallery) are copied out, for the whole block at once (per-row
    calls hold the GIL too long for the worker threads to scale), and each
    row's segment is sorted in place by numpy's SIMD value sort: no argsort,
    no padding. Elsewhere (``compact=False``) whole rows are sorted, which
    GPUs do fast.
    """
    if compact is None:
        compact = d.device.type == "cpu"
    if not compact:
        sv = torch.sort(d, dim=1).values
        tc = t.contiguous()
        return torch.searchsorted(sv, tc, right=False), torch.searchsorted(sv, tc, right=True)
    dn, tn, thr = d.numpy(), t.numpy(), t_max.numpy()
    b, g = dn.shape
    idx = np.flatnonzero(dn <= thr[:, None])
    cand = dn.reshape(-1).take(idx)
    bounds = np.searchsorted(idx, np.arange(b + 1) * g)  # row i's candidates: cand[bounds[i]:bounds[i + 1]]
    lt = np.empty(tn.shape, dtype=np.int64)
    le = np.empty(tn.shape, dtype=np.int64)
    for i in range(b):
        row = cand[bounds[i] : bounds[i + 1]]
        row.sort()
        lt[i] = row.searchsorted(tn[i], side="left")
        le[i] = row.searchsorted(tn[i], side="right")
    return torch.from_numpy(lt), torch.from_numpy(le)


# ---------------------------------------------------------------------------
# closed-set identification
# ---------------------------------------------------------------------------


def cmc_auc(cmc) -> float:
    """Normalised area under the CMC curve (nAUC, as in SM-SGE).

    nAUC = (1 / R) * sum_{r=1..R} CMC(r): each rank contributes a unit-width
    step, so dividing the area by R keeps the value in [0, 1].
    """
    c = np.asarray(cmc, dtype=np.float64)
    if c.ndim != 1 or c.size == 0:
        raise ValueError(f"cmc must be a non-empty 1-D array, got shape {c.shape}")
    return float(c.mean())


def _check_scores_labels(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores.detach().cpu() if isinstance(scores, torch.Tensor) else scores)
    y = np.asarray(labels.detach().cpu() if isinstance(labels, torch.Tensor) else labels)
    if s.ndim != 2 or s.shape[0] == 0 or s.shape[1] == 0:
        raise ValueError(f"scores must be a non-empty 2-D array [N, C], got shape {s.shape}")
    s = s.astype(np.float64, copy=False)
    if np.isnan(s).any():
        raise ValueError("scores contain NaN")
    if y.ndim != 1 or y.shape[0] != s.shape[0]:
        raise ValueError(
            f"shape mismatch: scores has {s.shape[0]} rows but labels has shape {y.shape}"
        )
    if y.dtype.kind not in "iu":
        if y.dtype.kind == "f" and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        else:
            raise ValueError(f"labels must be integer class indices, got dtype {y.dtype}")
    y = y.astype(np.int64, copy=False)
    n_cls = s.shape[1]
    if y.min() < 0 or y.max() >= n_cls:
        raise ValueError(f"labels must lie in 0..{n_cls - 1}, got range {y.min()}..{y.max()}")
    return s, y


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of a 1-D array, ties sharing the mean of their ranks."""
    order = np.argsort(x, kind="stable")
    xs = x[order]
    n = xs.size
    # boundaries of runs of equal values
    new_run = np.empty(n, dtype=bool)
    new_run[0] = True
    np.not_equal(xs[1:], xs[:-1], out=new_run[1:])
    starts = np.flatnonzero(new_run)
    ends = np.append(starts[1:], n)  # exclusive
    run_rank = (starts + 1 + ends) / 2.0  # mean of start+1 .. end
    run_id = np.cumsum(new_run) - 1
    ranks = np.empty(n, dtype=np.float64)
    ranks[order] = run_rank[run_id]
    return ranks


def roc_auc_micro(scores, labels) -> float:
    """Micro-averaged one-vs-rest ROC AUC (sklearn ``average='micro'`` on one-hot targets).

    All N*C (score, is-true-class) pairs are pooled and the AUC comes from the
    Mann-Whitney rank sum: AUC = (R_pos - P(P+1)/2) / (P * Neg), with tied
    scores given their average rank, i.e. a tie counts as half a win.
    SM-SGE's released code reports this value under the name nAUC.
    """
    s, y = _check_scores_labels(scores, labels)
    n, n_cls = s.shape
    if n_cls < 2:
        raise ValueError("roc_auc_micro needs at least 2 classes (no negatives otherwise)")
    flat = s.ravel()
    pos = np.zeros_like(flat, dtype=bool)
    pos[np.arange(n) * n_cls + y] = True
    ranks = _average_ranks(flat)
    n_pos = float(n)
    n_neg = float(n * (n_cls - 1))
    r_pos = ranks[pos].sum()
    return float((r_pos - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


@dataclass(frozen=True, eq=False)
class ClosedSetResult:
    """Outcome of :func:`closed_set_metrics`.

    ``sequence_accuracy`` and ``num_sequences`` are None when no sequence ids
    were given.
    """

    cmc: np.ndarray
    rank1: float
    rank5: float
    rank10: float
    nAUC: float
    roc_auc_micro: float
    sequence_accuracy: float | None
    num_windows: int
    num_sequences: int | None
    ranks: tuple[int, ...] = field(default=(1, 5, 10))
    #: Per window: the 1-based rank of its true class (what a paired bootstrap resamples).
    window_rank: np.ndarray | None = None

    def rank(self, k: int) -> float:
        """Rank-k identification rate; k beyond the class count saturates at 1.0."""
        if k < 1:
            raise ValueError(f"rank k must be >= 1, got {k}")
        return float(self.cmc[min(k, len(self.cmc)) - 1])

    def as_dict(self) -> dict[str, float | int | None]:
        out: dict[str, float | int | None] = {f"rank{k}": self.rank(k) for k in self.ranks}
        out["nAUC"] = self.nAUC
        out["roc_auc_micro"] = self.roc_auc_micro
        out["sequence_accuracy"] = self.sequence_accuracy
        return out


def _true_class_rank(s: np.ndarray, y: np.ndarray) -> np.ndarray:
    """1-based rank of the true class in each row.

    rank = 1 + #classes with a strictly higher score + #tied classes with a
    lower index: deterministic, and consistent with ``argmax`` (which returns
    the first maximum) for the top-1 decision.
    """
    true = s[np.arange(s.shape[0]), y][:, None]
    idx = np.arange(s.shape[1])[None, :]
    ahead = (s > true) | ((s == true) & (idx < y[:, None]))
    return 1 + ahead.sum(1)


def closed_set_metrics(scores, labels, sequence_ids=None, ranks=(1, 5, 10)) -> ClosedSetResult:
    """Closed-set identification metrics from per-window class scores.

    Higher score = more likely (probabilities or logits both work, only the
    order matters, except for sequence voting). For sequence accuracy the
    window score rows of a sequence are averaged as given (no softmax is
    applied) and the top-1 class of the mean is compared with the sequence's
    label, which must be the same for all of its windows.
    """
    s, y = _check_scores_labels(scores, labels)
    n, n_cls = s.shape
    if n_cls < 2:
        raise ValueError("closed_set_metrics needs at least 2 classes")
    ranks = tuple(int(k) for k in ranks)
    if any(k < 1 for k in ranks):
        raise ValueError(f"ranks must be >= 1, got {ranks}")

    r = _true_class_rank(s, y)
    hist = np.bincount(r, minlength=n_cls + 1)[1:]
    cmc = np.cumsum(hist).astype(np.float64) / n
    cmc.setflags(write=False)

    seq_acc: float | None = None
    n_seq: int | None = None
    if sequence_ids is not None:
        sid = np.asarray(
            sequence_ids.detach().cpu() if isinstance(sequence_ids, torch.Tensor) else sequence_ids
        )
        if sid.ndim != 1 or sid.shape[0] != n:
            raise ValueError(
                f"shape mismatch: scores has {n} rows but sequence_ids has shape {sid.shape}"
            )
        uniq, inv = np.unique(sid, return_inverse=True)
        inv = inv.ravel()
        n_seq = len(uniq)
        lab_min = np.full(n_seq, np.iinfo(np.int64).max)
        lab_max = np.full(n_seq, np.iinfo(np.int64).min)
        np.minimum.at(lab_min, inv, y)
        np.maximum.at(lab_max, inv, y)
        bad = np.flatnonzero(lab_min != lab_max)
        if bad.size:
            raise ValueError(
                f"sequence {uniq[bad[0]]!r} has windows with different labels "
                f"({lab_min[bad[0]]} and {lab_max[bad[0]]})"
            )
        order = np.argsort(inv, kind="stable")
        starts = np.searchsorted(inv[order], np.arange(n_seq))
        sums = np.add.reduceat(s[order], starts, axis=0)
        means = sums / np.bincount(inv, minlength=n_seq)[:, None]
        seq_acc = float(np.mean(means.argmax(1) == lab_min))

    return ClosedSetResult(
        cmc=cmc,
        rank1=float(cmc[min(1, n_cls) - 1]),
        rank5=float(cmc[min(5, n_cls) - 1]),
        rank10=float(cmc[min(10, n_cls) - 1]),
        nAUC=cmc_auc(cmc),
        roc_auc_micro=roc_auc_micro(s, y),
        sequence_accuracy=seq_acc,
        num_windows=n,
        num_sequences=n_seq,
        ranks=ranks,
        window_rank=r,
    )
