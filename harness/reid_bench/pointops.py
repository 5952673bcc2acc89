"""Point-cloud operations in plain vectorised PyTorch (kNN, FPS, ball query, grouping).

No compiled extension: the same code runs on CPU and CUDA. Pairwise distances are computed in
chunks of queries so that memory stays bounded (batch 36 x 4096 x 4096 float32 would be 2.4 GB;
a 1024-query chunk is a quarter of that and is freed before the next one).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

__all__ = [
    "even_index",
    "square_distance",
    "knn",
    "farthest_point_sample",
    "gather",
    "ball_query",
    "ball_query_multi",
    "edge_features",
]


def even_index(total: int, count: int, repeat: bool = False) -> np.ndarray:
    """``count`` evenly spaced indices into ``total`` points: the deterministic test-time subset
    of OG-Net and the point baselines. With fewer points than ``count``, all of them
    (``repeat=False``) or ``count`` indices that repeat points evenly (``repeat=True``: a
    fixed-size input, as OG-Net's network expects)."""
    if count >= total and not repeat:
        return np.arange(total)
    return np.floor(np.arange(count) * (total / count)).astype(np.int64)


def square_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances [B, M, N] between a [B, M, C] and b [B, N, C].

    Uses |a|^2 + |b|^2 - 2ab (one matmul); clamped at 0 against rounding.
    """
    d = torch.matmul(a, b.transpose(1, 2)).mul_(-2.0)  # in place: one [B, M, N] buffer
    d.add_(a.pow(2).sum(-1, keepdim=True)).add_(b.pow(2).sum(-1).unsqueeze(1))
    return d.clamp_min_(0.0)


@torch.no_grad()  # indices only: no graph kept for the distances
def knn(query: torch.Tensor, ref: torch.Tensor, k: int, chunk: int = 1024, method: str = "auto") -> torch.Tensor:
    """Indices [B, M, k] of the k nearest points of ``ref`` to each query, nearest first.

    A point is its own nearest neighbour when query is ref. ``method``: "brute" computes the
    distances, ``chunk`` queries at a time (memory B * chunk * N); "kdtree" asks scipy's cKDTree
    per cloud; "auto" takes the KD-tree for 3-D points on CPU (xyz neighbourhoods: about 8x
    faster than the distances at 4,096 points) and the distances otherwise (features, CUDA).
    The two agree but for near-ties, which the KD-tree orders by exact distance.
    """
    n = ref.shape[1]
    if k > n:
        raise ValueError(f"knn: k={k} > {n} reference points")
    if method not in ("auto", "brute", "kdtree"):
        raise ValueError(f"knn: method must be auto, brute or kdtree, got {method!r}")
    if method == "kdtree" or (method == "auto" and ref.shape[-1] <= 3 and ref.device.type == "cpu"):
        return _knn_kdtree(query, ref, k)
    m = query.shape[1]
    if m <= chunk:
        return square_distance(query, ref).topk(k, dim=-1, largest=False, sorted=True).indices
    out = []
    for start in range(0, m, chunk):
        d = square_distance(query[:, start : start + chunk], ref)
        out.append(d.topk(k, dim=-1, largest=False, sorted=True).indices)
        del d
    return torch.cat(out, dim=1)


def _knn_kdtree(query: torch.Tensor, ref: torch.Tensor, k: int) -> torch.Tensor:
    from scipy.spatial import cKDTree

    q = query.detach().cpu().numpy()
    r = ref.detach().cpu().numpy()
    workers = max(1, torch.get_num_threads())
    out = np.empty((q.shape[0], q.shape[1], k), dtype=np.int64)
    for b in range(q.shape[0]):
        _, idx = cKDTree(r[b]).query(q[b], k, workers=workers)
        out[b] = idx.reshape(q.shape[1], k)
    return torch.from_numpy(out).to(query.device)


@torch.no_grad()  # indices only: no graph kept for the distances
def farthest_point_sample(
    xyz: torch.Tensor, m: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Indices [B, m] of iterative farthest point sampling.

    Starts at index 0 without a generator (deterministic, as at test time), else at a random
    index per cloud. O(m * N) work in m small vectorised steps; memory is O(B * N).
    """
    b, n, _ = xyz.shape
    if m > n:
        raise ValueError(f"farthest_point_sample: m={m} > {n} points")
    device = xyz.device
    idx = torch.zeros(b, m, dtype=torch.long, device=device)
    dist = torch.full((b, n), float("inf"), dtype=xyz.dtype, device=device)
    if generator is None:
        farthest = torch.zeros(b, dtype=torch.long, device=device)
    else:
        farthest = torch.randint(0, n, (b,), generator=generator, device=generator.device).to(device)
    batch = torch.arange(b, device=device)
    for i in range(m):
        idx[:, i] = farthest
        centre = xyz[batch, farthest].unsqueeze(1)  # [B, 1, 3]
        dist = torch.minimum(dist, (xyz - centre).pow(2).sum(-1))
        farthest = dist.argmax(-1)
    return idx


def gather(points: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """points [B, N, C] indexed by idx [B, ...] -> [B, ..., C]."""
    b, _, c = points.shape
    flat = idx.reshape(b, -1)
    out = torch.gather(points, 1, flat.unsqueeze(-1).expand(-1, -1, c))
    return out.reshape(*idx.shape, c)


@torch.no_grad()  # indices only: no graph kept for the distances
def ball_query(
    query: torch.Tensor, ref: torch.Tensor, radius: float, k: int, chunk: int = 1024
) -> torch.Tensor:
    """PointNet++ ball query: the first k ref points (index order) within ``radius`` of each query.

    Slots beyond the points found repeat the first one found; a query with no point in the ball
    gets its nearest point (the CUDA original would return index 0 there, a silent bug).
    """
    return ball_query_multi(query, ref, [radius], [k], chunk)[0]


@torch.no_grad()  # indices only: no graph kept for the distances
def ball_query_multi(
    query: torch.Tensor, ref: torch.Tensor, radii: Sequence[float], ks: Sequence[int], chunk: int = 1024
) -> list[torch.Tensor]:
    """``ball_query`` for several (radius, k) pairs at once, as multi-scale grouping needs:
    the distances of each chunk of queries are computed once and serve every radius."""
    if len(radii) != len(ks):
        raise ValueError(f"ball_query_multi: {len(radii)} radii but {len(ks)} sizes")
    n = ref.shape[1]
    m = query.shape[1]
    ar = torch.arange(n, device=ref.device)
    out: list[list[torch.Tensor]] = [[] for _ in radii]
    for start in range(0, m, chunk):
        d = square_distance(query[:, start : start + chunk], ref)  # [B, c, N]
        nearest = d.argmin(-1, keepdim=True)
        index_keys = ar.to(d.dtype).expand_as(d)
        for branch, (radius, k) in enumerate(zip(radii, ks)):
            k_eff = min(k, n)
            # index order of points inside the ball: outside points get key n (sorted last); float
            # keys (exact below 2**24 points) because integer topk is not available on every backend
            key = torch.where(d <= radius * radius, index_keys, torch.full_like(d, float(n)))
            first = key.topk(k_eff, dim=-1, largest=False, sorted=True).values.long()  # [B, c, k]
            del key
            head = torch.where(first[..., :1] >= n, nearest, first[..., :1])
            first = torch.where(first >= n, head.expand_as(first), first)
            if k_eff < k:
                first = torch.cat([first, first[..., :1].expand(-1, -1, k - k_eff)], dim=-1)
            out[branch].append(first)
        del d
    return [torch.cat(parts, dim=1) for parts in out]


def edge_features(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """DGCNN EdgeConv input: concat(x_j - x_i, x_i) -> [B, N, k, 2C] for x [B, N, C], idx [B, N, k]."""
    neighbours = gather(x, idx)  # [B, N, k, C]
    centre = x.unsqueeze(2).expand_as(neighbours)
    return torch.cat([neighbours - centre, centre], dim=-1)
