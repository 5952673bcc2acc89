"""GaitLSTM: a small supervised skeleton baseline.

Per-frame joint coordinates (J*3, standardised with the training split's statistics) go
through a stacked LSTM; the hidden states are averaged over time and projected to the
embedding; a linear identity classifier on top is trained with cross-entropy on the training
labels. The harness's closed-set probe then classifies the frozen (L2-normalised) embeddings.
Training runs a fixed number of epochs: there is no model selection (and never on test data).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
import torch
from torch import nn

from reid_bench.torchutil import cpu_threads, save_weights
from reid_bench.api import (DataSpec, Fraction, Model, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt,
                            Range, SampleSet, TrialContext)


@dataclass
class GaitLSTMConfig:
    """Hyper-parameters of GaitLSTM.

    ``hidden``: LSTM hidden size. ``layers``: stacked LSTM layers. ``embed_dim``: size of the
    embedding returned by ``embed``. ``dropout``: between LSTM layers and before the
    classifier. ``epochs`` / ``lr`` / ``batch_size`` / ``weight_decay``: Adam training.
    ``velocity``: append frame-to-frame differences to the coordinates.
    Augmentation (training only): ``augment_yaw`` rotates each window about the vertical axis
    by a uniform angle in [-augment_yaw, augment_yaw] degrees (views change between sessions);
    ``augment_jitter`` adds Gaussian noise (m) to every joint; ``augment_scale`` scales a window
    by 1 + U(-s, s) (off by default: body size is identity information).
    ``embed_batch``: windows per forward pass in ``embed``. ``save_checkpoint``: write the
    final weights to the trial's checkpoint folder. ``cpu_threads``: torch intra-op threads
    while fitting and embedding on CPU (0 leaves torch's setting; this small LSTM runs
    fastest on 1 thread, and much slower when threads outnumber idle cores).
    """

    hidden: PositiveInt = 128
    layers: PositiveInt = 2
    embed_dim: PositiveInt = 128
    dropout: Fraction = 0.1
    epochs: NonNegativeInt = 40
    lr: PositiveFloat = 2e-3
    batch_size: PositiveInt = 64
    weight_decay: NonNegativeFloat = 1e-4
    velocity: bool = False
    augment_yaw: Annotated[float, Range(ge=0, le=180)] = 90.0
    augment_jitter: NonNegativeFloat = 0.02
    augment_scale: Annotated[float, Range(ge=0, lt=1)] = 0.0
    embed_batch: PositiveInt = 1024
    save_checkpoint: bool = True
    cpu_threads: NonNegativeInt = 1


class _Net(nn.Module):
    def __init__(self, in_dim: int, cfg: GaitLSTMConfig, num_classes: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(
            in_dim,
            cfg.hidden,
            num_layers=cfg.layers,
            batch_first=True,
            dropout=cfg.dropout if cfg.layers > 1 else 0.0,
        )
        self.embed = nn.Linear(cfg.hidden, cfg.embed_dim)
        self.drop = nn.Dropout(cfg.dropout)
        self.classifier = nn.Linear(cfg.embed_dim, max(1, num_classes))
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("std", torch.ones(in_dim))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.lstm((x - self.mean) / self.std)
        return self.embed(h.mean(1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.features(x)
        return z, self.classifier(self.drop(torch.relu(z)))


def _inputs(windows: torch.Tensor, velocity: bool) -> torch.Tensor:
    """[N, f, J, 3] -> [N, f, J*3] (+ velocities [N, f, J*3], zero at the first frame)."""
    n, f = windows.shape[:2]
    x = windows.reshape(n, f, -1)
    if not velocity:
        return x
    v = torch.zeros_like(x)
    v[:, 1:] = x[:, 1:] - x[:, :-1]
    return torch.cat([x, v], dim=2)


def _augment(w: torch.Tensor, cfg: GaitLSTMConfig, gen: torch.Generator) -> torch.Tensor:
    n = w.shape[0]
    if cfg.augment_yaw > 0:
        ang = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(cfg.augment_yaw)
        c, s = torch.cos(ang)[:, None, None], torch.sin(ang)[:, None, None]
        x, y, z = w[..., 0], w[..., 1], w[..., 2]
        w = torch.stack([c * x + s * z, y, -s * x + c * z], dim=-1)
    if cfg.augment_scale > 0:
        w = w * (1 + (torch.rand(n, 1, 1, 1, generator=gen) * 2 - 1) * cfg.augment_scale)
    if cfg.augment_jitter > 0:
        w = w + torch.randn(w.shape, generator=gen) * cfg.augment_jitter
    return w




class GaitLSTM(Model):
    """2-layer LSTM over joint coordinates, trained for identity classification."""

    modality = "skeleton"
    config_class = GaitLSTMConfig
    description = "Supervised LSTM over per-frame joint coordinates; temporal mean -> 128-d embedding"
    citation = "reid-bench baseline (LSTM gait encoder, cf. Haque et al., Recurrent attention models for depth-based person identification, CVPR 2016)"

    def __init__(self, config: GaitLSTMConfig, spec: DataSpec) -> None:
        super().__init__(config, spec)
        if spec.layout is None:
            raise ValueError("GaitLSTM needs a skeleton layout in the data spec")
        self.in_dim = spec.layout.num_joints * 3 * (2 if config.velocity else 1)
        self.net = _Net(self.in_dim, config, spec.num_classes)
        self.device = "cpu"

    def fit(self, train: SampleSet, ctx: TrialContext) -> None:
        with cpu_threads(self.config.cpu_threads, ctx.device):
            self._fit(train, ctx)

    def _fit(self, train: SampleSet, ctx: TrialContext) -> None:
        cfg = self.config
        torch.manual_seed(ctx.seed)
        gen = torch.Generator().manual_seed(ctx.seed)
        self.device = ctx.device
        num_classes = train.num_classes
        self.net = _Net(self.in_dim, cfg, num_classes)  # fresh weights drawn from the seeded RNG

        windows = torch.as_tensor(np.asarray(train.data, dtype=np.float32))
        labels = torch.as_tensor(train.labels, dtype=torch.int64)
        if (labels < 0).any():
            raise ValueError("GaitLSTM.fit: training labels must be class indices >= 0")
        flat = _inputs(windows, cfg.velocity).reshape(-1, self.in_dim)
        self.net.mean.copy_(flat.mean(0))
        self.net.std.copy_(flat.std(0).clamp_min(1e-3))
        net = self.net.to(self.device)
        opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, cfg.epochs))
        n = len(labels)
        for epoch in range(cfg.epochs):
            net.train()
            perm = torch.randperm(n, generator=gen)
            total, correct = 0.0, 0
            for s in range(0, n, cfg.batch_size):
                idx = perm[s : s + cfg.batch_size]
                w = _augment(windows[idx], cfg, gen)
                x = _inputs(w, cfg.velocity).to(self.device)
                y = labels[idx].to(self.device)
                _, logits = net(x)
                loss = nn.functional.cross_entropy(logits, y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
                correct += int((logits.argmax(1) == y).sum())
            sched.step()
            metrics: dict[str, float] = {"loss": total / n, "train_acc": correct / n}
            if ctx.validation is not None and len(ctx.validation):
                metrics["val_acc"] = self._accuracy(ctx.validation)
            ctx.report(epoch=epoch, **metrics)
            ctx.progress((epoch + 1) / max(1, cfg.epochs), f"epoch {epoch + 1}/{cfg.epochs} loss {metrics['loss']:.3f}")
        net.eval()
        if cfg.save_checkpoint:
            save_weights(net, ctx.checkpoint_dir, "gait_lstm.pt")

    @torch.no_grad()
    def _accuracy(self, split: SampleSet) -> float:
        self.net.eval()
        logits = torch.cat([out for _, out in self._batches(split, classify=True)])
        keep = torch.as_tensor(split.labels) >= 0
        if not keep.any():
            return float("nan")
        return float((logits.argmax(1).cpu()[keep] == torch.as_tensor(split.labels)[keep]).float().mean())

    def _batches(self, split: SampleSet, classify: bool = False):
        data = np.asarray(split.data, dtype=np.float32)
        for s in range(0, len(data), self.config.embed_batch):
            x = _inputs(torch.from_numpy(data[s : s + self.config.embed_batch]), self.config.velocity).to(self.device)
            if classify:
                yield self.net(x)
            else:
                yield self.net.features(x), None

    @torch.no_grad()
    def embed(self, samples: SampleSet) -> np.ndarray:
        with cpu_threads(self.config.cpu_threads, self.device):
            return self._embed(samples)

    def _embed(self, samples: SampleSet) -> np.ndarray:
        self.net.eval()
        if len(samples) == 0:
            return np.zeros((0, self.config.embed_dim), dtype=np.float32)
        z = torch.cat([f for f, _ in self._batches(samples)])
        z = nn.functional.normalize(z, dim=1)
        return z.cpu().numpy().astype(np.float32)

    def num_parameters(self) -> int:
        net = self.net
        return sum(p.numel() for m in (net.lstm, net.embed) for p in m.parameters())

    @classmethod
    def search_space(cls) -> dict[str, Any] | None:
        return {
            "lr": {"loguniform": [3e-4, 1e-2]},
            "hidden": {"choice": [64, 128, 256]},
            "dropout": {"uniform": [0.0, 0.3]},
            "weight_decay": {"loguniform": [1e-6, 1e-3]},
            "augment_yaw": {"choice": [0.0, 30.0, 45.0, 60.0]},
        }
