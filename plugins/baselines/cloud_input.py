"""The input pipeline of the learned point-cloud baselines (PointNetLite, PointNet++, DGCNN).

One place for what these models feed their networks, so that their comparison is about the
networks: a subset of ``points`` points per cloud (random in training, evenly spaced at test so
that embeddings are deterministic), xyz centred on the subset's mean, rgb shifted by -0.5, the
[B, 6, P] channel-first layout, and OG-Net's training augmentation. The functions read only the
config fields named in their docstrings, so any config dataclass that has them works.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Callable

import numpy as np
import torch

from reid_bench.api import SampleSet
from reid_bench.pointops import even_index

__all__ = ["normalise", "train_batch", "test_batches", "classification_accuracy"]


def normalise(clouds: torch.Tensor) -> torch.Tensor:
    """[B, P, 6] -> [B, 6, P]: xyz centred on the cloud's mean, rgb - 0.5."""
    xyz = clouds[..., :3] - clouds[..., :3].mean(dim=1, keepdim=True)
    rgb = clouds[..., 3:6] - 0.5
    return torch.cat([xyz, rgb], dim=2).transpose(1, 2).contiguous()


def train_batch(cfg: Any, data: np.ndarray, idx: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """An augmented training batch [B, 6, P] of clouds ``data[idx]`` (``data`` [N, total, 6]).

    Reads ``points``, ``flip`` (x mirrored with probability 0.5), ``scale_min`` / ``scale_max``
    (per-axis factor, log-uniform), ``jitter`` (Gaussian, metres, clipped at 3 sigma) and
    ``colour_jitter`` (per-channel rgb gain 1 + U(-c, c)). All randomness comes from ``gen``.
    """
    b, total = len(idx), data.shape[1]
    p = min(cfg.points, total)
    keys = torch.rand(b, total, generator=gen)  # a random subset per cloud: argsort of uniform keys
    pts_idx = keys.argsort(dim=1)[:, :p].sort(dim=1).values.numpy()
    x = normalise(torch.from_numpy(data[idx.numpy()[:, None], pts_idx]))
    xyz, rgb = x[:, :3], x[:, 3:]
    if cfg.flip:
        sign = torch.where(torch.rand(b, generator=gen) < 0.5, -1.0, 1.0)
        xyz = torch.cat([xyz[:, :1] * sign[:, None, None], xyz[:, 1:]], dim=1)
    if cfg.scale_max > cfg.scale_min:
        lo, hi = np.log(cfg.scale_min), np.log(cfg.scale_max)
        xyz = xyz * torch.exp(lo + (hi - lo) * torch.rand(b, 3, 1, generator=gen))
    if cfg.jitter > 0:
        xyz = xyz + (torch.randn(xyz.shape, generator=gen) * cfg.jitter).clamp(-3 * cfg.jitter, 3 * cfg.jitter)
    if cfg.colour_jitter > 0:
        gain = 1 + (torch.rand(b, 3, 1, generator=gen) * 2 - 1) * cfg.colour_jitter
        rgb = (rgb + 0.5) * gain - 0.5
    return torch.cat([xyz, rgb], dim=1)


def test_batches(cfg: Any, data: np.ndarray, device: str | torch.device = "cpu") -> Iterator[torch.Tensor]:
    """Deterministic batches [b, 6, P] of ``data`` in order: ``points`` evenly spaced points per
    cloud, ``embed_batch`` clouds at a time."""
    idx = even_index(data.shape[1], cfg.points)
    for s in range(0, len(data), cfg.embed_batch):
        chunk = torch.from_numpy(np.ascontiguousarray(data[s : s + cfg.embed_batch][:, idx]))
        yield normalise(chunk).to(device)


@torch.no_grad()
def classification_accuracy(
    logits_of: Callable[[torch.Tensor], torch.Tensor], batches: Iterator[torch.Tensor], split: SampleSet
) -> float:
    """Identity accuracy on the labelled samples of ``split`` (label >= 0), ``logits_of`` applied
    to each batch of ``batches`` (the split's samples, in order). For per-epoch validation."""
    logits = torch.cat([logits_of(x).cpu() for x in batches])
    labels = torch.as_tensor(split.labels)
    keep = labels >= 0
    return float((logits.argmax(1)[keep] == labels[keep]).float().mean())
