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

from reid_bench.api import SampleSet, TorchModel, TrialContext
from reid_bench.pointops import even_index
from reid_bench.torchutil import ClassifierLoop

__all__ = ["normalise", "train_batch", "test_batches", "classification_accuracy", "CloudClassifierModel"]


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


class CloudClassifierModel(TorchModel):
    """A learned point-cloud baseline: a network returning ``(embedding, logits)`` trained for
    identity classification on augmented point subsets (``ClassifierLoop``, whole batches only).

    Subclasses build the network (``build_network``), its optimiser and its per-batch schedule;
    ``balanced`` draws each epoch's samples with replacement, weighted 1 / class size. Reads
    ``epochs``, ``batch_size``, ``label_smoothing`` and the fields of :func:`train_batch`;
    reports loss, training accuracy, learning rate and, when ``ctx.validation`` has labels, its
    accuracy each epoch."""

    training_attributes = ("loop",)

    def build_network(self, num_classes: int) -> nn.Module:
        raise NotImplementedError

    def make_optimizer(self, params: Any) -> torch.optim.Optimizer:
        raise NotImplementedError

    def make_schedule(self, optimizer: torch.optim.Optimizer, steps_per_epoch: int) -> Any:
        raise NotImplementedError

    def balanced_sampling(self) -> bool:
        return False

    def start_fit(self, train: SampleSet, ctx: TrialContext) -> None:
        cfg = self.config
        gen = torch.Generator().manual_seed(ctx.seed)
        data = np.ascontiguousarray(np.asarray(train.data, dtype=np.float32)[..., :6])
        if len(train.labels) == 0:
            raise ValueError(f"{type(self).__name__}.fit: empty training split")
        self.net = self.build_network(train.num_classes).to(self.device)  # fresh weights from the seeded RNG
        opt = self.make_optimizer(self.net.parameters())
        steps_per_epoch = max(1, len(train.labels) // min(cfg.batch_size, len(train.labels)))
        self.loop = ClassifierLoop(
            self.net, data, train.labels, batch_size=cfg.batch_size, optimizer=opt, generator=gen,
            scheduler=self.make_schedule(opt, steps_per_epoch), drop_last=True, balanced=self.balanced_sampling(),
            label_smoothing=cfg.label_smoothing, batch_inputs=lambda idx: train_batch(cfg, data, idx, gen),
            logits_of=lambda out: out[1])
        validation = ctx.validation
        if validation is not None and not (len(validation) and (validation.labels >= 0).any()):
            validation = None
        self.validation = validation

    def num_epochs(self) -> int:
        return self.config.epochs

    def train_epoch(self, epoch: int, ctx: TrialContext) -> dict[str, float]:
        metrics = self.loop.epoch(self.device)
        if self.validation is not None:
            self.net.eval()
            val_data = np.asarray(self.validation.data, dtype=np.float32)[..., :6]
            metrics["val_acc"] = classification_accuracy(
                lambda x: self.net(x)[1], test_batches(self.config, val_data, self.device), self.validation)
        return metrics

    def embed_batches(self, samples: SampleSet):
        return test_batches(self.config, np.asarray(samples.data, dtype=np.float32)[..., :6], self.device)
