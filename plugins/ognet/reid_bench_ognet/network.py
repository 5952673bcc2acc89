"""The OG-Net network: omni-scale modules (dynamic-graph EdgeConv + multi-scale grouping) and head.

Follows layumi/person-reid-3d ``ModelE_dense`` as launched by its README (``--use_dense
--efficient --cluster xyzrgb --gem --norm_layer bn2 --init 768``), re-written on
:mod:`reid_bench.pointops` (no DGL, no compiled extension). Where the paper and the code differ,
:class:`NetConfig` has a switch and the default is the released code's, because the published
numbers (and parameter counts) come from it:

* ``aggregation``: ``"gated"`` (code, GeM-like ``sigmoid(p) * max + (1 - sigmoid(p)) * mean``
  over the k neighbours, one learned p per EdgeConv, p = 0 at start) | ``"max"`` (DGCNN) |
  ``"sum"`` (the paper's equation).
* ``grouping``: ``"ball"`` (code: PointNet++ ball query, radii 0.1/0.2/0.4 in the units of the
  centred cloud) | ``"knn"`` (the paper's k-nearest neighbours, radius-free).

Both layouts keep the parameter counts (the gate adds one scalar per EdgeConv).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from reid_bench import pointops
from reid_bench.api import Fraction, PositiveFloat, PositiveInt
from reid_bench.torchutil import Dropout


@dataclass
class NetConfig:
    widths: tuple[PositiveInt, ...] = (64, 128, 256, 512)
    k: PositiveInt = 20
    convs_per_module: PositiveInt = 1
    shortcut: bool = False
    init_points: PositiveInt = 768
    stride: PositiveInt = 2
    group_sizes: tuple[PositiveInt, ...] = (8, 16, 32)
    radii: tuple[PositiveFloat, ...] = (0.1, 0.2, 0.4)
    grouping: Literal["ball", "knn"] = "ball"
    aggregation: Literal["gated", "max", "sum"] = "gated"
    non_local: bool = True
    use_se: bool = True
    embed_dim: PositiveInt = 512
    dropout: Fraction = 0.7
    knn_chunk: PositiveInt = 1024
    factorised: bool = True


class Timers:
    """Accumulated wall-clock seconds per stage (for the benchmark); inactive unless enabled."""

    def __init__(self) -> None:
        self.enabled = False
        self.sync = False
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        if not self.enabled:
            yield
            return
        if self.sync and torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        try:
            yield
        finally:
            if self.sync and torch.cuda.is_available():
                torch.cuda.synchronize()
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0


TIMERS = Timers()


def _bn_last(bn: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """BatchNorm over the last (channel) axis of [..., C]: BN2d of the original on [B, C, N, k]."""
    shape = x.shape
    return bn(x.reshape(-1, shape[-1])).reshape(shape)


class EdgeConv(nn.Module):
    """Linear(2C -> C', bias) on (x_j - x_i, x_i), BN, neighbour aggregation, LeakyReLU(0.2)."""

    def __init__(self, c_in: int, c_out: int, aggregation: str) -> None:
        super().__init__()
        if aggregation not in ("gated", "max", "sum"):
            raise ValueError(f"aggregation must be gated|max|sum, got {aggregation!r}")
        self.linear = nn.Linear(2 * c_in, c_out)
        self.bn = nn.BatchNorm1d(c_out)
        self.aggregation = aggregation
        if aggregation == "gated":
            self.gate = nn.Parameter(torch.zeros(1))

    def forward(self, h: torch.Tensor, idx: torch.Tensor, factorised: bool = True) -> torch.Tensor:
        if factorised:
            # W [x_j - x_i, x_i] + b = Wa x_j + (Wb - Wa) x_i + b: the linear runs once per point
            # instead of once per edge (2k times fewer multiply-adds), then the result is gathered.
            c = h.shape[-1]
            wa, wb = self.linear.weight[:, :c], self.linear.weight[:, c:]
            with TIMERS("dense"):
                y = h @ wa.t()
                z = torch.addmm(self.linear.bias, h.reshape(-1, c), (wb - wa).t()).view(*h.shape[:-1], -1)
            with TIMERS("grouping"):
                e = pointops.gather(y, idx) + z.unsqueeze(2)
            with TIMERS("dense"):
                e = _bn_last(self.bn, e)
        else:
            with TIMERS("grouping"):
                e = pointops.edge_features(h, idx)  # [B, N, k, 2C]
            with TIMERS("dense"):
                e = _bn_last(self.bn, self.linear(e))
        with TIMERS("dense"):
            if self.aggregation == "gated":
                w = torch.sigmoid(self.gate)
                out = e.max(dim=2).values * w + e.mean(dim=2) * (1 - w)
            elif self.aggregation == "max":
                out = e.max(dim=2).values
            else:
                out = e.sum(dim=2)
            return F.leaky_relu(out, 0.2)


class SE(nn.Module):
    """Squeeze-excitation gate of the released PointNet++ ops: C -> max(1, C/24) -> C, swish."""

    def __init__(self, c: int) -> None:
        super().__init__()
        s = max(1, int(c / 24.0))
        self.reduce = nn.Linear(c, s)
        self.expand = nn.Linear(s, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # per point and neighbour, as the 1x1 convolutions of the original (no pooling)
        return torch.sigmoid(self.expand(F.silu(self.reduce(x)))) * x


class GroupBranch(nn.Module):
    """Linear(C+3 -> C/2) + BN + SE + Linear(C/2 -> C) + BN + ReLU, max over the group.

    As in the released ``build_shared_mlp``: no activation between the two linears (only the
    last layer gets one), the SE gate sits after the first BN.
    """

    def __init__(self, c: int, use_se: bool) -> None:
        super().__init__()
        mid = c // 2
        self.fc1 = nn.Linear(c + 3, mid, bias=False)
        self.bn1 = nn.BatchNorm1d(mid)
        self.se = SE(mid) if use_se else nn.Identity()
        self.fc2 = nn.Linear(mid, c, bias=False)
        self.bn2 = nn.BatchNorm1d(c)

    def project(self, xyz: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """Per-point part of the first linear: W [xyz_j - c, h_j] = (Wx xyz_j + Wh h_j) - Wx c."""
        return xyz @ self.fc1.weight[:, :3].t() + h @ self.fc1.weight[:, 3:].t()

    def forward(self, projected: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
        """projected: gathered per-point projections [B, M, g, C/2]; centre: [B, M, 3]."""
        x = projected - (centre @ self.fc1.weight[:, :3].t()).unsqueeze(2)
        x = self.se(_bn_last(self.bn1, x))
        x = F.relu(_bn_last(self.bn2, self.fc2(x)))
        return x.max(dim=2).values

    def forward_grouped(self, grouped: torch.Tensor) -> torch.Tensor:
        """Reference path on explicit [xyz_j - c, h_j] groups (tests check both agree)."""
        x = self.se(_bn_last(self.bn1, self.fc1(grouped)))
        x = F.relu(_bn_last(self.bn2, self.fc2(x)))
        return x.max(dim=2).values


class MultiScaleGrouping(nn.Module):
    """FPS to ``npoint`` centres, three grouping branches (8/16/32 neighbours) added together."""

    def __init__(self, c: int, npoint: int, cfg: NetConfig) -> None:
        super().__init__()
        self.npoint = npoint
        self.sizes = tuple(cfg.group_sizes)
        self.radii = tuple(cfg.radii)
        self.grouping = cfg.grouping
        if self.grouping not in ("ball", "knn"):
            raise ValueError(f"grouping must be ball|knn, got {self.grouping!r}")
        self.branches = nn.ModuleList(GroupBranch(c, cfg.use_se) for _ in self.sizes)
        self.chunk = cfg.knn_chunk
        self.factorised = cfg.factorised

    def forward(self, xyz: torch.Tensor, h: torch.Tensor):
        npoint = min(self.npoint, xyz.shape[1])
        with TIMERS("fps"):
            centre_idx = pointops.farthest_point_sample(xyz, npoint)
        new_xyz = pointops.gather(xyz, centre_idx)
        out = None
        if self.grouping == "knn":
            with TIMERS("knn"):
                big = pointops.knn(new_xyz, xyz, min(max(self.sizes), xyz.shape[1]), self.chunk)
            groups = [big[..., :size] for size in self.sizes]
        else:
            with TIMERS("grouping"):  # one distance computation for every radius
                groups = pointops.ball_query_multi(new_xyz, xyz, self.radii, self.sizes, self.chunk)
        for i, branch in enumerate(self.branches):
            idx = groups[i]
            if self.factorised:
                with TIMERS("dense"):
                    proj = branch.project(xyz, h)
                with TIMERS("grouping"):
                    proj = pointops.gather(proj, idx)
                with TIMERS("dense"):
                    y = branch(proj, new_xyz)
            else:
                with TIMERS("grouping"):
                    grouped = torch.cat(
                        [pointops.gather(xyz, idx) - new_xyz.unsqueeze(2), pointops.gather(h, idx)], dim=-1
                    )
                with TIMERS("dense"):
                    y = branch.forward_grouped(grouped)
            out = y if out is None else out + y
        return new_xyz, out, centre_idx


class OGNetNetwork(nn.Module):
    """Omni-scale modules then max+mean pooling, FC (no bias), BN, dropout, identity classifier."""

    def __init__(self, cfg: NetConfig, num_classes: int, input_dims: int = 3) -> None:
        super().__init__()
        self.cfg = cfg
        widths = tuple(cfg.widths)
        self.convs = nn.ModuleList()
        self.groupings = nn.ModuleDict()
        self.shortcuts = nn.ModuleDict()
        npoint, last_npoint = cfg.init_points, -1
        c_prev = input_dims
        for i, c in enumerate(widths):
            for j in range(cfg.convs_per_module):
                self.convs.append(EdgeConv(c_prev if j == 0 else c, c, cfg.aggregation))
            if i > 0 and c > widths[i - 1]:
                npoint //= cfg.stride
            if npoint != last_npoint:
                self.groupings[str(i)] = MultiScaleGrouping(c, npoint, cfg)
                if cfg.shortcut:
                    self.shortcuts[str(i)] = nn.Linear(c_prev, c)
                last_npoint = npoint
            c_prev = c
        if cfg.shortcut:
            # one learned mixing weight per module, sigmoid(0) = 0.5 at start (``p_w``)
            self.mix = nn.Parameter(torch.zeros(len(widths)))
        self.fc = nn.Linear(2 * widths[-1], cfg.embed_dim, bias=False)
        self.bn = nn.BatchNorm1d(cfg.embed_dim)
        self.dropout = Dropout(cfg.dropout)
        self.classifier = nn.Linear(cfg.embed_dim, max(1, num_classes))
        self._init_weights()

    def _init_weights(self) -> None:
        """As the released ``weights_init_kaiming``: Kaiming fan-in for the (1x1 convolution)
        EdgeConv / grouping / SE layers, fan-out for the real Linears (embedding FC, shortcuts),
        BN weights ~ N(1, 0.02); classifier ~ N(0, 1e-6)."""
        fan_out = {id(m) for m in [self.fc, *self.shortcuts.values()]}
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight, a=0, mode="fan_out" if id(m) in fan_out else "fan_in")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm1d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.classifier.weight, std=1e-6)
        nn.init.zeros_(self.classifier.bias)

    def embedding_parameters(self):
        return (p for name, p in self.named_parameters() if not name.startswith("classifier."))

    def features(self, xyz: torch.Tensor, rgb: torch.Tensor) -> torch.Tensor:
        """xyz [B, N, 3] (centred), rgb [B, N, 3] (- 0.5) -> BN feature [B, embed_dim]."""
        cfg = self.cfg
        h = rgb
        widths = tuple(cfg.widths)
        for i in range(len(widths)):
            h_in, xyz_in = h, xyz
            last = i == len(widths) - 1
            dynamic = last and cfg.non_local  # graph on xyz + features: rebuilt for every EdgeConv
            idx = None
            for j in range(cfg.convs_per_module):
                if idx is None or dynamic:
                    with TIMERS("knn"):
                        space = torch.cat([xyz, h], dim=-1) if dynamic else xyz
                        idx = pointops.knn(space, space, min(cfg.k, xyz.shape[1]), cfg.knn_chunk)
                h = self.convs[i * cfg.convs_per_module + j](h, idx, cfg.factorised)
            key = str(i)
            if key in self.groupings:
                xyz, h, centre_idx = self.groupings[key](xyz_in, h)
                if cfg.shortcut:
                    h_in = F.leaky_relu(self.shortcuts[key](pointops.gather(h_in, centre_idx)), 0.2)
            if cfg.shortcut:
                w = torch.sigmoid(self.mix[i])
                h = w * h_in + (1 - w) * h
        pooled = torch.cat([h.max(dim=1).values, h.mean(dim=1)], dim=1)
        with TIMERS("dense"):
            return self.bn(self.fc(pooled))

    def forward(self, xyz: torch.Tensor, rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(xyz, rgb)
        return f, self.classifier(self.dropout(f))
