"""PointNet++ (Qi et al. 2017) with single- and multi-scale grouping, as OG-Net's Table II runs it.

Sizes follow OG-Net's released ``pointnet2_model.py`` (layumi/person-reid-3d): rgb are the point
features and relative xyz are concatenated in every grouping (``use_xyz``); three set-abstraction
levels (512 centroids, 128 centroids, group-all) and a head ``1024 -> FC 512 -> BN -> LeakyReLU
-> FC 512 -> BN`` whose 512-d BN output is the embedding (dropout, then the identity classifier).
That head gives the paper's parameter counts: SSG 1,594,880 (1.59M) and MSG 1,865,664 (1.87M)
without the classifier. OG-Net's own max+avg head would give 1.86M for SSG, so it is not used.

Sampling, grouping and kNN come from the harness (``reid_bench.pointops``): farthest point
sampling from index 0 (as the CUDA op), ball query padded with the first point found.

Deviation behind a switch: the released ``build_shared_mlp`` puts an activation only after the
*last* layer of each shared MLP (conv-BN, conv-BN, conv-BN-ReLU); PointNet++ has a ReLU after
every layer. ``mid_activation=True`` (default) is PointNet++; ``False`` reproduces the release.

This module also holds ``PointBaseline``, the training/embedding code shared with ``dgcnn``:
inputs as OG-Net (``points`` per cloud, random in training and evenly spaced at test, xyz centred,
rgb - 0.5, x flip, per-axis scale, clipped jitter; the shared ``cloud_training`` module), Adam with
amsgrad, linear warm-up then cosine decay, identity cross-entropy, optional class-balanced
sampling, and OG-Net's test-time augmentation (features of xyz and 1.1 xyz summed, then L2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Annotated

import numpy as np
import torch
from torch import nn

from reid_bench import pointops
from reid_bench.api import (DataSpec, Fraction, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, Range,
                            SampleSet, require_order, run_setting)
from reid_bench.torchutil import Dropout
from .cloud_training import CloudClassifierModel

__all__ = ["PointBaselineConfig", "PointBaseline", "PointNet2SSGConfig", "PointNet2MSGConfig", "PointNet2SSG", "PointNet2MSG"]


# ============================================================================ shared training code


@dataclass
class PointBaselineConfig:
    """Input handling and training shared by the point-cloud baselines (OG-Net's recipe).

    ``points``: points per cloud (OG-Net: 4096). ``embed_dim``: size of the BN embedding.
    ``dropout``: before the classifier (OG-Net's runs: 0.7). ``epochs``, ``batch_size``, ``lr``,
    ``weight_decay``, ``amsgrad``: Adam; ``warmup_epochs`` of linear warm-up from 0.1 lr, then
    cosine decay to 0.01 lr. ``label_smoothing`` of the identity cross-entropy (OG-Net: none).
    ``balanced``: class-balanced sampling with replacement. Augmentation (training only): ``flip``
    of x, per-axis scale in [``scale_min``, ``scale_max``] (log-uniform, cloud_training's;
    OG-Net draws uniformly), Gaussian ``jitter`` clipped at 3 sigma (OG-Net clips at 1 sigma),
    ``colour_jitter`` (OG-Net: none). ``test_scales``: the embedding sums the features of the
    clouds with xyz scaled by each factor (OG-Net: 1.0 and 1.1). ``embed_batch``: clouds per
    forward pass in ``embed`` (a run setting).
    """

    points: PositiveInt = 4096
    embed_dim: PositiveInt = 512
    dropout: Fraction = 0.7
    epochs: NonNegativeInt = 150
    warmup_epochs: NonNegativeInt = 10
    batch_size: PositiveInt = 36
    lr: PositiveFloat = 8e-4
    weight_decay: NonNegativeFloat = 5e-4
    amsgrad: bool = True
    label_smoothing: Fraction = 0.0
    balanced: bool = False
    flip: bool = True
    scale_min: PositiveFloat = 0.75
    scale_max: PositiveFloat = 1.33
    jitter: NonNegativeFloat = 0.01
    colour_jitter: Annotated[float, Range(ge=0, lt=1)] = 0.0
    test_scales: tuple[PositiveFloat, ...] = (1.0, 1.1)
    embed_batch: PositiveInt = run_setting(32)

    def __post_init__(self) -> None:
        require_order(self, "scale_min", "scale_max")


def init_weights(module: nn.Module, point_mlp: bool = False) -> None:
    """OG-Net's init: Kaiming normal (fan_in for the shared point MLPs, which are convolutions
    there; fan_out for fully connected layers), zero bias, BN weight ~ N(1, 0.01)."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in" if point_mlp else "fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(m.weight, 1.0, 0.01)
            nn.init.zeros_(m.bias)


def init_classifier(linear: nn.Linear) -> None:
    nn.init.normal_(linear.weight, 0.0, 0.001)
    nn.init.zeros_(linear.bias)


class PointBaseline(CloudClassifierModel):
    """Fit/embed shared by PointNet++ and DGCNN; subclasses build ``self.net`` in ``_build``.

    The network takes [B, 6, P] (normalised xyz + rgb, PointNetLite's layout) and returns
    ``(embedding, logits)``; ``net.features(x)`` returns the embedding only; ``net.classifier``
    is the identity classifier (excluded from ``num_parameters``).
    """

    modality = "pointcloud"
    config_class = PointBaselineConfig

    def __init__(self, config, spec: DataSpec) -> None:
        super().__init__(config, spec)
        self.net = self._build(max(1, spec.num_classes))

    def _build(self, num_classes: int) -> nn.Module:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def example_spec(cls) -> DataSpec:
        return DataSpec("pointcloud", num_classes=751, num_points=4096)

    @classmethod
    def search_space(cls):
        """Training hyper-parameters only: the architecture stays at the paper's size."""
        return {
            "lr": {"loguniform": [2e-4, 5e-3]},
            "dropout": {"uniform": [0.3, 0.8]},
            "weight_decay": {"loguniform": [1e-5, 1e-3]},
            "label_smoothing": {"choice": [0.0, 0.1]},
        }

    def build_network(self, num_classes: int) -> nn.Module:
        return self._build(num_classes)

    def balanced_sampling(self) -> bool:
        return self.config.balanced

    def make_optimizer(self, params: Any) -> torch.optim.Optimizer:
        cfg = self.config
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, amsgrad=cfg.amsgrad)

    def make_schedule(self, optimizer: torch.optim.Optimizer, steps_per_epoch: int) -> Any:
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: self._lr_factor(s, steps_per_epoch))

    def _lr_factor(self, step: int, steps_per_epoch: int) -> float:
        cfg = self.config
        warm = cfg.warmup_epochs * steps_per_epoch
        total = max(1, cfg.epochs * steps_per_epoch)
        if step < warm:
            return 0.1 + 0.9 * step / warm
        t = (step - warm) / max(1, total - warm)
        return 0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The embeddings of the clouds with xyz scaled by each test scale, summed, L2-normalised."""
        z = 0.0
        for s in self.config.test_scales or (1.0,):
            z = z + self.net.features(torch.cat([x[:, :3] * s, x[:, 3:]], dim=1))
        return nn.functional.normalize(z, dim=1)

    def num_parameters(self) -> int:
        skip = {id(p) for p in self.net.classifier.parameters()}
        return sum(p.numel() for p in self.net.parameters() if id(p) not in skip)


# ============================================================================ PointNet++


@dataclass
class PointNet2SSGConfig(PointBaselineConfig):
    """PointNet++ as OG-Net runs it. Per set-abstraction level with centroids (the last level
    groups all points): ``npoints`` centroids by farthest point sampling, per grouping branch a
    ball ``radii`` (m) holding ``nsamples`` points and a shared MLP ``mlps`` (output widths;
    the input is the previous level's features plus 3 relative xyz when ``use_xyz``);
    ``global_mlp``: the group-all level's widths. ``head_dim``: hidden FC width of the head.
    ``mid_activation``: ReLU after every shared-MLP layer (PointNet++) or only after the last
    (OG-Net's modified ops library). Parameter count does not depend on npoints/radii/nsamples,
    so the CPU overrides change only cost. ``xyz_features``: feed xyz as point features too
    (not in OG-Net; changes the count).
    """

    npoints: tuple[PositiveInt, ...] = (512, 128)
    radii: tuple[tuple[PositiveFloat, ...], ...] = ((0.2,), (0.4,))
    nsamples: tuple[tuple[PositiveInt, ...], ...] = ((64,), (64,))
    mlps: tuple[tuple[tuple[PositiveInt, ...], ...], ...] = (((64, 64, 128),), ((128, 128, 256),))
    global_mlp: tuple[PositiveInt, ...] = (256, 512, 1024)
    head_dim: PositiveInt = 512
    use_xyz: bool = True
    xyz_features: bool = False
    mid_activation: bool = True


@dataclass
class PointNet2MSGConfig(PointNet2SSGConfig):
    """Multi-scale grouping: three balls per level, branch outputs concatenated."""

    npoints: tuple[PositiveInt, ...] = (512, 128)
    radii: tuple[tuple[PositiveFloat, ...], ...] = ((0.1, 0.2, 0.4), (0.2, 0.4, 0.8))
    nsamples: tuple[tuple[PositiveInt, ...], ...] = ((16, 32, 128), (32, 64, 128))
    mlps: tuple[tuple[tuple[PositiveInt, ...], ...], ...] = (
        ((32, 32, 64), (64, 64, 128), (64, 96, 128)),
        ((64, 64, 128), (128, 128, 256), (128, 128, 256)),
    )


class _SharedMLP(nn.Module):
    """Per-point (or per-neighbour) MLP on channels-last tensors: Linear without bias + BN
    (+ ReLU). One GEMM per layer; the same parameters as OG-Net's 1x1 Conv2d + BatchNorm2d."""

    def __init__(self, c_in: int, widths: tuple[int, ...], mid_activation: bool) -> None:
        super().__init__()
        self.linears = nn.ModuleList()
        self.bns = nn.ModuleList()
        self.acts: list[bool] = []
        for i, w in enumerate(widths):
            self.linears.append(nn.Linear(c_in, w, bias=False))
            self.bns.append(nn.BatchNorm1d(w))
            self.acts.append(mid_activation or i == len(widths) - 1)
            c_in = w
        self.out_channels = c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape[:-1]
        h = x.reshape(-1, x.shape[-1])
        for lin, bn, act in zip(self.linears, self.bns, self.acts):
            h = bn(lin(h))
            if act:
                h = torch.relu(h)
        return h.reshape(*shape, h.shape[-1])


class _SetAbstraction(nn.Module):
    """FPS centroids, ball-query groups per radius, shared MLP, max over each group; branches
    concatenated. ``npoint=None``: one group of all points (absolute xyz, as the original)."""

    def __init__(self, c_in, npoint, radii, nsamples, mlps, use_xyz, mid_activation) -> None:
        super().__init__()
        self.npoint, self.radii, self.nsamples, self.use_xyz = npoint, tuple(radii), tuple(nsamples), use_xyz
        extra = 3 if use_xyz else 0
        self.branches = nn.ModuleList(_SharedMLP(c_in + extra, tuple(m), mid_activation) for m in mlps)
        self.out_channels = sum(b.out_channels for b in self.branches)

    def forward(self, xyz: torch.Tensor, feats: torch.Tensor | None):
        """xyz [B, N, 3], feats [B, N, C] -> new_xyz [B, M, 3], new_feats [B, M, C']."""
        if self.npoint is None:
            parts = [xyz] if self.use_xyz else []
            grouped = torch.cat(parts + ([feats] if feats is not None else []), dim=-1)
            out = [b(grouped).amax(dim=1, keepdim=True) for b in self.branches]
            return xyz.new_zeros(xyz.shape[0], 1, 3), torch.cat(out, dim=-1)
        m = min(self.npoint, xyz.shape[1])
        centres = pointops.farthest_point_sample(xyz, m)
        new_xyz = pointops.gather(xyz, centres)  # [B, M, 3]
        out = []
        groups = pointops.ball_query_multi(new_xyz, xyz, self.radii, self.nsamples)  # [B, M, k] each
        for idx, branch in zip(groups, self.branches):
            parts = []
            if self.use_xyz:
                parts.append(pointops.gather(xyz, idx) - new_xyz.unsqueeze(2))
            if feats is not None:
                parts.append(pointops.gather(feats, idx))
            out.append(branch(torch.cat(parts, dim=-1)).amax(dim=2))
        return new_xyz, torch.cat(out, dim=-1)


class _PointNet2Net(nn.Module):
    def __init__(self, cfg: PointNet2SSGConfig, num_classes: int) -> None:
        super().__init__()
        levels = len(cfg.npoints)
        if not (len(cfg.radii) == len(cfg.nsamples) == len(cfg.mlps) == levels):
            raise ValueError("PointNet++: npoints, radii, nsamples and mlps need one entry per level")
        self.xyz_features = cfg.xyz_features
        c = 6 if cfg.xyz_features else 3
        self.levels = nn.ModuleList()
        for npoint, radii, nsamples, mlps in zip(cfg.npoints, cfg.radii, cfg.nsamples, cfg.mlps):
            if not (len(radii) == len(nsamples) == len(mlps)):
                raise ValueError("PointNet++: each level needs as many radii, nsamples and mlps")
            sa = _SetAbstraction(c, npoint, radii, nsamples, mlps, cfg.use_xyz, cfg.mid_activation)
            self.levels.append(sa)
            c = sa.out_channels
        self.levels.append(_SetAbstraction(c, None, (None,), (None,), (cfg.global_mlp,), cfg.use_xyz, cfg.mid_activation))
        c = self.levels[-1].out_channels
        init_weights(self.levels, point_mlp=True)
        self.head = nn.Sequential(
            nn.Linear(c, cfg.head_dim),
            nn.BatchNorm1d(cfg.head_dim),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(cfg.head_dim, cfg.embed_dim),
            nn.BatchNorm1d(cfg.embed_dim),
        )
        init_weights(self.head)
        self.drop = Dropout(cfg.dropout)
        self.classifier = nn.Linear(cfg.embed_dim, num_classes)
        init_classifier(self.classifier)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, 6, P] -> 512-d BN embedding."""
        pts = x.transpose(1, 2)
        xyz = pts[..., :3].contiguous()
        feats = (pts if self.xyz_features else pts[..., 3:]).contiguous()
        for sa in self.levels:
            xyz, feats = sa(xyz, feats)
        return self.head(feats.squeeze(1))

    def forward(self, x: torch.Tensor):
        z = self.features(x)
        return z, self.classifier(self.drop(z))


# CPU budget on the synthetic protocols (one trial in about 2-3 minutes on one loaded core):
# 256 points, 64/16 centroids, fewer neighbours per ball, 10 epochs at a higher learning rate.
# Only the cost changes: radii and widths, hence the parameter counts, stay the paper's.
_SYNTH_SSG = {"points": 256, "npoints": (64, 16), "nsamples": ((32,), (16,)), "epochs": 10,
              "warmup_epochs": 1, "batch_size": 32, "lr": 2e-3}
_SYNTH_MSG = {"points": 256, "npoints": (64, 16), "nsamples": ((8, 16, 16), (8, 16, 16)), "epochs": 10,
              "warmup_epochs": 1, "batch_size": 32, "lr": 2e-3}


class PointNet2SSG(PointBaseline):
    """PointNet++ single-scale grouping at OG-Net's Table II size (1.59M parameters)."""

    published_as = None  # no published table has a number for it
    config_class = PointNet2SSGConfig
    budget_overrides = {"synth-market": dict(_SYNTH_SSG), "synth-market-to-duke": dict(_SYNTH_SSG)}
    description = "PointNet++ SSG (3 set-abstraction levels, rgb features + relative xyz), OG-Net's head; 512-d BN embedding"
    citation = (
        "Qi, Yi, Su, Guibas. PointNet++: Deep Hierarchical Feature Learning on Point Sets in a Metric "
        "Space. NeurIPS 2017 (as configured by Zheng et al., OG-Net, IEEE TNNLS 2022)"
    )

    def _build(self, num_classes: int) -> nn.Module:
        return _PointNet2Net(self.config, num_classes)


class PointNet2MSG(PointNet2SSG):
    """PointNet++ multi-scale grouping at OG-Net's Table II size (1.87M parameters)."""

    published_as = None  # no published table has a number for it
    config_class = PointNet2MSGConfig
    budget_overrides = {"synth-market": dict(_SYNTH_MSG), "synth-market-to-duke": dict(_SYNTH_MSG)}
    description = "PointNet++ MSG (3 radii per level, rgb features + relative xyz), OG-Net's head; 512-d BN embedding"
