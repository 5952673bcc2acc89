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

from reid_bench.torchutil import ClassifierLoop, Dropout
from reid_bench.api import (DataSpec, Fraction, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, Range,
                            SampleSet, TorchModel, TrialContext, run_setting)


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
    ``embed_batch``: windows per forward pass in ``embed`` (a run setting).
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
    embed_batch: PositiveInt = run_setting(1024)


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
        self.drop = Dropout(cfg.dropout)
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




class GaitLSTM(TorchModel):
    """2-layer LSTM over joint coordinates, trained for identity classification."""

    published_as = None  # no published table has a number for it
    modality = "skeleton"
    config_class = GaitLSTMConfig
    description = "Supervised LSTM over per-frame joint coordinates; temporal mean -> 128-d embedding"
    citation = "reid-bench baseline (LSTM gait encoder, cf. Haque et al., Recurrent attention models for depth-based person identification, CVPR 2016)"
    training_attributes = ("loop", "schedule")

    def __init__(self, config: GaitLSTMConfig, spec: DataSpec) -> None:
        super().__init__(config, spec)
        if spec.layout is None:
            raise ValueError("GaitLSTM needs a skeleton layout in the data spec")
        self.in_dim = spec.layout.num_joints * 3 * (2 if config.velocity else 1)
        self.net = _Net(self.in_dim, config, spec.num_classes)

    def start_fit(self, train: SampleSet, ctx: TrialContext) -> None:
        cfg = self.config
        gen = torch.Generator().manual_seed(ctx.seed)
        self.net = _Net(self.in_dim, cfg, train.num_classes)  # fresh weights drawn from the seeded RNG
        windows = torch.as_tensor(np.asarray(train.data, dtype=np.float32))
        flat = _inputs(windows, cfg.velocity).reshape(-1, self.in_dim)
        self.net.mean.copy_(flat.mean(0))
        self.net.std.copy_(flat.std(0).clamp_min(1e-3))
        self.net.to(self.device)
        opt = torch.optim.Adam(self.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, cfg.epochs))
        self.loop = ClassifierLoop(
            self.net, windows, train.labels, batch_size=cfg.batch_size, optimizer=opt, generator=gen,
            batch_inputs=lambda idx: _inputs(_augment(windows[idx], cfg, gen), cfg.velocity),
            logits_of=lambda out: out[1])

    def num_epochs(self) -> int:
        return self.config.epochs

    def train_epoch(self, epoch: int, ctx: TrialContext) -> dict[str, float]:
        metrics = self.loop.epoch(self.device)
        self.schedule.step()  # once an epoch (cosine over the epochs)
        if ctx.validation is not None and len(ctx.validation):
            metrics["val_acc"] = self._accuracy(ctx.validation)
        return metrics

    @torch.no_grad()
    def _accuracy(self, split: SampleSet) -> float:
        self.net.eval()
        logits = torch.cat([self.net(x)[1] for x in self.embed_batches(split)])
        keep = torch.as_tensor(split.labels) >= 0
        if not keep.any():
            return float("nan")
        return float((logits.argmax(1).cpu()[keep] == torch.as_tensor(split.labels)[keep]).float().mean())

    def embed_inputs(self, samples: SampleSet) -> torch.Tensor:
        return _inputs(torch.as_tensor(np.asarray(samples.data, dtype=np.float32)), self.config.velocity)

    def features(self, batch: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.net.features(batch), dim=1)

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
