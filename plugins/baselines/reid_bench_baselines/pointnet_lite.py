"""PointNetLite: a small learned point-cloud baseline (PointNet without the T-nets).

A shared per-point MLP (6 -> 64 -> 128 -> 256, each a 1x1 convolution + BatchNorm + ReLU)
turns every point (xyz, rgb) into a feature; global max and average pooling make the cloud
order-invariant; a fully connected layer with BatchNorm gives the 256-d embedding; a linear
identity classifier on top is trained with cross-entropy on the training labels. Retrieval
uses the L2-normalised BN embedding.

Input handling follows OG-Net's: each cloud is subsampled to ``points`` points (random in
training, evenly spaced at test time, so embeddings are deterministic), xyz are centred on the
cloud's mean, rgb shifted by -0.5; training augmentation flips x at random, scales each axis by
a factor in [scale_min, scale_max] and jitters positions. OG-Net feeds many more points; the
default here is 512 (and 12 epochs) so that a trial on the default synth-market train split
(480 clouds) trains in about 20-25 s of one CPU core: a step with 1024 points costs about three
times as much on the reference 2-core machine, which would take a trial past a minute.
Training runs a fixed number of epochs: there is no model selection, and never on test data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
import torch
from torch import nn

from reid_bench.api import (DataSpec, Fraction, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, Range,
                            SampleSet, require_order, run_setting)
from reid_bench.torchutil import Dropout

from .cloud_training import CloudClassifierModel


@dataclass
class PointNetLiteConfig:
    """Hyper-parameters of PointNetLite.

    ``points``: points per cloud fed to the network (random subset in training, evenly spaced
    at test; 512 keeps CPU trials under a minute, see the module doc). ``widths``: output channels of
    the shared per-point MLP. ``embed_dim``: size of the BN embedding returned by ``embed``.
    ``dropout``: before the identity classifier. ``epochs`` / ``batch_size`` / ``lr`` /
    ``weight_decay``: Adam with a cosine schedule. ``label_smoothing``: of the cross-entropy.
    Augmentation (training only): ``flip`` mirrors x with probability 0.5; each axis is scaled
    by a factor drawn log-uniformly in [``scale_min``, ``scale_max``]; ``jitter`` adds Gaussian
    noise (m) to positions, clipped at 3 sigma; ``colour_jitter`` scales rgb per channel by
    1 + U(-c, c) (camera white balance). ``embed_batch``: clouds per forward pass in ``embed``
    (a run setting).
    """

    points: PositiveInt = 512
    widths: tuple[PositiveInt, ...] = (64, 128, 256)
    embed_dim: PositiveInt = 256
    dropout: Fraction = 0.3
    epochs: NonNegativeInt = 12
    batch_size: PositiveInt = 32
    lr: PositiveFloat = 2e-3
    weight_decay: NonNegativeFloat = 5e-4
    label_smoothing: Fraction = 0.1
    flip: bool = True
    scale_min: PositiveFloat = 0.75
    scale_max: PositiveFloat = 1.33
    jitter: NonNegativeFloat = 0.01
    colour_jitter: Annotated[float, Range(ge=0, lt=1)] = 0.1
    embed_batch: PositiveInt = run_setting(128)

    def __post_init__(self) -> None:
        require_order(self, "scale_min", "scale_max")


class _Net(nn.Module):
    def __init__(self, cfg: PointNetLiteConfig, num_classes: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 6
        for w in cfg.widths:
            layers += [nn.Conv1d(c_in, w, 1, bias=False), nn.BatchNorm1d(w), nn.ReLU(inplace=True)]
            c_in = w
        self.mlp = nn.Sequential(*layers)
        self.fc = nn.Linear(2 * c_in, cfg.embed_dim, bias=False)
        self.bn = nn.BatchNorm1d(cfg.embed_dim)
        self.drop = Dropout(cfg.dropout)
        self.classifier = nn.Linear(cfg.embed_dim, max(1, num_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, 6, P] -> BN embedding [B, embed_dim]."""
        h = self.mlp(x)
        pooled = torch.cat([h.amax(dim=2), h.mean(dim=2)], dim=1)
        return self.bn(self.fc(pooled))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.features(x)
        return z, self.classifier(self.drop(torch.relu(z)))


class PointNetLite(CloudClassifierModel):
    """Shared point MLP + max/avg pooling + BN embedding, trained for identity classification."""

    published_as = None  # no published table has a number for it
    modality = "pointcloud"
    config_class = PointNetLiteConfig
    description = (
        "Small PointNet (per-point MLP 6-64-128-256, max+avg pooling, 256-d BN embedding) trained "
        "with identity cross-entropy on xyz+rgb; 1024 points per cloud"
    )
    citation = (
        "Qi, Su, Mo, Guibas. PointNet: Deep Learning on Point Sets for 3D Classification and "
        "Segmentation. CVPR 2017 (reduced; inputs as in Zheng et al., OG-Net, TNNLS 2022)"
    )

    def __init__(self, config: PointNetLiteConfig, spec: DataSpec) -> None:
        super().__init__(config, spec)
        self.net = _Net(config, max(1, spec.num_classes))

    # -- model API ------------------------------------------------------------------------------
    def build_network(self, num_classes: int) -> nn.Module:
        return _Net(self.config, num_classes)

    def make_optimizer(self, params: Any) -> torch.optim.Optimizer:
        return torch.optim.Adam(params, lr=self.config.lr, weight_decay=self.config.weight_decay)

    def make_schedule(self, optimizer: torch.optim.Optimizer, steps_per_epoch: int) -> Any:
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=self.config.lr,
                                                   total_steps=max(1, self.config.epochs * steps_per_epoch),
                                                   pct_start=0.15)

    def features(self, batch: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.net.features(batch), dim=1)

    def num_parameters(self) -> int:
        net = self.net
        return sum(p.numel() for m in (net.mlp, net.fc, net.bn) for p in m.parameters())

    @classmethod
    def search_space(cls) -> dict[str, Any] | None:
        """Training hyper-parameters only; the network keeps its size."""
        return {
            "lr": {"loguniform": [5e-4, 1e-2]},
            "dropout": {"uniform": [0.0, 0.5]},
            "weight_decay": {"loguniform": [1e-5, 1e-3]},
            "label_smoothing": {"choice": [0.0, 0.1]},
        }
