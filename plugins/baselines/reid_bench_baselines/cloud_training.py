"""Input pipeline and training loop shared by the learned point-cloud baselines
(PointNetLite, PointNet++, DGCNN), so that their comparison is about the networks.

Input: a subset of ``points`` points per cloud (random in training, evenly spaced at test so
that embeddings are deterministic), xyz centred on the subset's mean, rgb shifted by -0.5, the
[B, 6, P] channel-first layout, and OG-Net's training augmentation. Training: identity
cross-entropy over a fixed number of epochs, the last incomplete batch dropped (BatchNorm
dislikes batches of one); there is no model selection. The functions read only the config
fields named in their docstrings, so any config dataclass that has them works.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from reid_bench.api import SampleSet, TrialContext
from reid_bench.pointops import even_index

__all__ = ["normalise", "train_batch", "test_batches", "classification_accuracy", "fit_identity_classifier"]


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


def fit_identity_classifier(
    build: Callable[[int], nn.Module],
    train: SampleSet,
    ctx: TrialContext,
    cfg: Any,
    *,
    name: str,
    optimizer: Callable[[Any], torch.optim.Optimizer],
    schedule: Callable[[torch.optim.Optimizer, int], Any],
    balanced: bool = False,
) -> nn.Module:
    """Train a fresh ``build(num_classes)`` network (returning ``(embedding, logits)``) on ``train``.

    Seeds torch and the batch generator from ``ctx.seed`` before the network is built, so
    weights, batch order, subsets and augmentation all follow the seed. ``optimizer(params)``
    and ``schedule(optimizer, steps_per_epoch)`` (stepped once per batch) come from the model;
    ``balanced`` draws each epoch's samples with replacement, weighted 1 / class size. Reads
    ``epochs``, ``batch_size``, ``label_smoothing`` and the fields of :func:`train_batch`;
    reports loss, training accuracy, learning rate and, when ``ctx.validation`` has labels,
    its accuracy each epoch. Returns the network in eval mode on ``ctx.device``.
    """
    torch.manual_seed(ctx.seed)
    gen = torch.Generator().manual_seed(ctx.seed)
    device = ctx.device
    data = np.ascontiguousarray(np.asarray(train.data, dtype=np.float32)[..., :6])
    labels = torch.as_tensor(train.labels, dtype=torch.int64)
    if len(labels) == 0:
        raise ValueError(f"{name}.fit: empty training split")
    if (labels < 0).any():
        raise ValueError(f"{name}.fit: training labels must be class indices >= 0")
    net = build(train.num_classes).to(device)  # fresh weights from the seeded RNG
    opt = optimizer(net.parameters())
    n = len(labels)
    bs = min(cfg.batch_size, n)
    steps_per_epoch = max(1, n // bs)
    sched = schedule(opt, steps_per_epoch)
    weights = 1.0 / torch.bincount(labels).double()[labels] if balanced else None
    validation = ctx.validation
    if validation is not None and not (len(validation) and (validation.labels >= 0).any()):
        validation = None
    val_data = np.asarray(validation.data, dtype=np.float32)[..., :6] if validation is not None else None
    for epoch in range(cfg.epochs):
        net.train()
        if weights is not None:
            order = torch.multinomial(weights, n, replacement=True, generator=gen)
        else:
            order = torch.randperm(n, generator=gen)
        total, correct, seen = 0.0, 0, 0
        for s in range(0, steps_per_epoch * bs, bs):
            idx = order[s : s + bs]
            x = train_batch(cfg, data, idx, gen).to(device)
            y = labels[idx].to(device)
            _, logits = net(x)
            loss = nn.functional.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(idx)
        metrics = {"loss": total / seen, "train_acc": correct / seen, "lr": opt.param_groups[0]["lr"]}
        if validation is not None:
            net.eval()
            metrics["val_acc"] = classification_accuracy(
                lambda x: net(x)[1], test_batches(cfg, val_data, device), validation
            )
        ctx.report(epoch=epoch, **metrics)
        ctx.progress((epoch + 1) / max(1, cfg.epochs), f"epoch {epoch + 1}/{cfg.epochs} loss {metrics['loss']:.3f}")
    return net.eval()
