"""CTR-GCN: channel-wise topology refinement graph convolution (Chen, Zhang, Yuan, Li, Deng, Hu,
ICCV 2021), as a supervised re-ID model.

From the release, Uason-Chen/CTR-GCN (``[M]`` is ``model/ctrgcn.py``, ``[C]``
``config/nturgbd-cross-subject/default.yaml``, ``[P]`` ``main.py``; commit in the plugin
README), re-expressed:

- data batch norm over the M x J x C input channels ([M] 288, 314-318); M = 1 here;
- ten TCN-GCN units with base width 64: 64 x4, 128 x3 (stride 2 into the first), 256 x3
  (stride 2 into the first), the first without residual ([M] 290-300);
- a unit: the graph convolution, then the multi-scale temporal convolution, plus the unit's
  residual (identity, or a 1x1 temporal convolution + BN), ReLU ([M] 252-270);
- the graph convolution ([M] 196-249): one CTRGC per adjacency subset (3), summed; BN
  (initialised to 1e-6); plus a 1x1 convolution + BN where the width changes; ReLU. The
  adjacency is a learned parameter initialised to the graph (``adaptive``, [M] 219-222) and a
  learned scalar alpha, initialised to 0, scales the refinement ([M] 223);
- CTRGC ([M] 150-177): 1x1 convolutions to R = C_in / 8 channels (8 for a 3-channel input) for
  two time-pooled projections, whose pairwise differences go through tanh and a 1x1 convolution
  to C_out channel-wise topologies, times alpha, plus the shared adjacency; they aggregate a
  third 1x1 projection to C_out over the joints;
- the multi-scale temporal convolution ([M] 72-147): four branches of C_out / 4 channels, each
  starting with a 1x1 convolution, BN, ReLU: two with a (5 x 1) temporal convolution at
  dilations 1 and 2 then BN; one with a (3 x 1) max pool then BN; one the 1x1 convolution (with
  the stride) and BN alone; concatenated ([M] 253-257: kernel 5, dilations [1, 2], no inner
  residual);
- global average pooling over time and joints ([M] 330-333): **the embedding** (256-d); the
  classifier a linear layer, N(0, sqrt(2 / classes)) ([M] 302-303), after dropout 0 ([M] 274-275, 305-308);
- initialisation as the release: Kaiming-normal (fan-out) convolutions with zero bias, batch
  norms at 1 (the temporal branches' N(1, 0.02)), zero bias ([M] 17-49, 134-135, 166-170,
  228-233, 188-189);
- training: SGD momentum 0.9, Nesterov, lr 0.1, weight decay 4e-4, 5 warm-up epochs, lr x 0.1
  at epochs 35 and 55, batch 64, 65 epochs ([C] 38-50; [P] 310-346); input centred on the
  first frame's spine joint and randomly rotated by up to 0.3 rad about each axis ([C] 14;
  ``training``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from reid_bench.api import Fraction, NonNegativeFloat, NonNegativeInt, PositiveInt
from reid_bench.torchutil import Dropout
from reid_bench_gcn.graph import layout_ctrgcn_adjacency
from reid_bench_gcn.stgcn import block_plan
from reid_bench_gcn.topology import aggregate
from reid_bench_gcn.training import SYNTHETIC, GCNReID, GCNTrainingConfig


@dataclass
class CTRGCNConfig(GCNTrainingConfig):
    """CTR-GCN's settings (defaults: the release's NTU-60 cross-subject configuration, see the
    module docstring), on top of the shared training fields (``training.GCNTrainingConfig``).

    ``base_channels``: 64 ([M] 290), a multiple of 4 (four temporal branches, [M] 83).
    ``rel_reduction``: C_in / R in CTRGC (8, [M] 151). ``temporal_kernel``: the branches' kernel
    (5, [M] 253). ``dilations``: one branch each (1, 2; [M] 253). ``adaptive``: the adjacency is
    learned ([M] 219-222). ``dropout``: before the classifier (0, [M] 274-275).
    """

    epochs: NonNegativeInt = 65
    weight_decay: NonNegativeFloat = 4e-4
    lr_steps: tuple[NonNegativeInt, ...] = (35, 55)
    warm_up_epochs: NonNegativeInt = 5
    centre: Literal["none", "first-frame"] = "first-frame"
    random_rot: NonNegativeFloat = 0.3
    base_channels: PositiveInt = 64
    rel_reduction: PositiveInt = 8
    temporal_kernel: PositiveInt = 5
    dilations: tuple[PositiveInt, ...] = (1, 2)
    adaptive: bool = True
    dropout: Fraction = 0.0

    def __post_init__(self) -> None:
        self._check_training("ctrgcn")
        branches = len(self.dilations) + 2
        if not self.dilations:
            raise ValueError("ctrgcn: dilations needs at least one temporal branch")
        if self.base_channels % branches:
            raise ValueError(f"ctrgcn: base_channels={self.base_channels} must be a multiple of {branches} "
                             f"(the temporal branches: one per dilation, a max-pool and a 1x1)")
        if self.base_channels < self.rel_reduction:
            raise ValueError(f"ctrgcn: base_channels={self.base_channels} below rel_reduction={self.rel_reduction} "
                             "leaves CTRGC no relation channel")
        if self.temporal_kernel % 2 == 0:
            raise ValueError(f"ctrgcn: temporal_kernel must be odd, got {self.temporal_kernel}")


def _kaiming(conv: nn.Conv2d) -> nn.Conv2d:
    nn.init.kaiming_normal_(conv.weight, mode="fan_out")  # [M] 26-30
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
    return conv


def _bn(channels: int, scale: float = 1.0) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(channels)
    nn.init.constant_(bn.weight, scale)  # [M] 33-35
    nn.init.zeros_(bn.bias)
    return bn


def _bn_noisy(channels: int) -> nn.BatchNorm2d:
    """The temporal module's batch norms: weight N(1, 0.02), zero bias ([M] 45-49, 135)."""
    bn = nn.BatchNorm2d(channels)
    nn.init.normal_(bn.weight, 1.0, 0.02)
    nn.init.zeros_(bn.bias)
    return bn


class CTRGC(nn.Module):
    """Channel-wise topology refinement graph convolution ([M] 150-177)."""

    def __init__(self, cin: int, cout: int, rel_reduction: int) -> None:
        super().__init__()
        rel = 8 if cin in (3, 9) else cin // rel_reduction  # [M] 155-160
        self.conv1 = _kaiming(nn.Conv2d(cin, rel, 1))
        self.conv2 = _kaiming(nn.Conv2d(cin, rel, 1))
        self.conv3 = _kaiming(nn.Conv2d(cin, cout, 1))
        self.conv4 = _kaiming(nn.Conv2d(rel, cout, 1))

    def forward(self, x: torch.Tensor, adjacency: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        q, k, v = self.conv1(x).mean(-2), self.conv2(x).mean(-2), self.conv3(x)  # [N, R, V] x2, [N, C, T, V]
        rel = torch.tanh(q.unsqueeze(-1) - k.unsqueeze(-2))  # [N, R, V, V]
        # einsum("ncuv,nctv->nctu", conv4(rel) * alpha + A, v) over the [N, C, V, V] topologies,
        # bit for bit, with a CPU backward that makes an epoch 1.2x faster
        return aggregate(self.conv4(rel), alpha, adjacency, v)


class UnitGCN(nn.Module):
    """The graph convolution of a unit ([M] 196-249)."""

    def __init__(self, cin: int, cout: int, adjacency: torch.Tensor, rel_reduction: int, adaptive: bool) -> None:
        super().__init__()
        self.convs = nn.ModuleList(CTRGC(cin, cout, rel_reduction) for _ in range(adjacency.shape[0]))
        self.down = nn.Sequential(_kaiming(nn.Conv2d(cin, cout, 1)), _bn(cout)) if cin != cout else None
        if adaptive:
            self.adjacency = nn.Parameter(adjacency.clone())
        else:
            self.register_buffer("adjacency", adjacency.clone())
        self.alpha = nn.Parameter(torch.zeros(1))
        self.bn = _bn(cout, 1e-6)  # [M] 233

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = sum(conv(x, self.adjacency[i], self.alpha) for i, conv in enumerate(self.convs))
        y = self.bn(y) + (x if self.down is None else self.down(x))
        return torch.relu(y)


class MultiScaleTemporalConv(nn.Module):
    """Four temporal branches, concatenated ([M] 52-147; the unit builds it without residual)."""

    def __init__(self, channels: int, kernel: int, stride: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        width = channels // (len(dilations) + 2)

        def entry(stride_1x1: int = 1) -> list[nn.Module]:
            return [_kaiming(nn.Conv2d(channels, width, 1, stride=(stride_1x1, 1))), _bn_noisy(width)]

        branches = []
        for d in dilations:
            pad = (kernel + (kernel - 1) * (d - 1) - 1) // 2  # [M] 55
            branches.append(nn.Sequential(*entry(), nn.ReLU(), _kaiming(
                nn.Conv2d(width, width, (kernel, 1), (stride, 1), (pad, 0), (d, 1))), _bn_noisy(width)))
        branches.append(nn.Sequential(*entry(), nn.ReLU(), nn.MaxPool2d((3, 1), (stride, 1), (1, 0)), _bn_noisy(width)))
        branches.append(nn.Sequential(*entry(stride)))
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


class TCNGCNUnit(nn.Module):
    """[M] 252-270."""

    def __init__(self, cin: int, cout: int, adjacency: torch.Tensor, stride: int, residual: bool,
                 cfg: CTRGCNConfig) -> None:
        super().__init__()
        self.gcn = UnitGCN(cin, cout, adjacency, cfg.rel_reduction, cfg.adaptive)
        self.tcn = MultiScaleTemporalConv(cout, cfg.temporal_kernel, stride, tuple(cfg.dilations))
        self.residual_mode = "none" if not residual else ("identity" if cin == cout and stride == 1 else "conv")
        if self.residual_mode == "conv":  # unit_tcn with kernel 1 ([M] 179-193, 266)
            self.residual = nn.Sequential(_kaiming(nn.Conv2d(cin, cout, 1, stride=(stride, 1))), _bn(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.residual_mode == "none":
            res: torch.Tensor | float = 0.0
        elif self.residual_mode == "identity":
            res = x
        else:
            res = self.residual(x)
        return torch.relu(self.tcn(self.gcn(x)) + res)


class CTRGCNNet(nn.Module):
    """The backbone and the classifier. Input [N, C, T, V]; ``persons`` sizes the data BN as the
    release's M ([M] 288; the harness feeds one person, M = 1)."""

    def __init__(self, adjacency: torch.Tensor, in_channels: int, num_classes: int, cfg: CTRGCNConfig,
                 persons: int = 1) -> None:
        super().__init__()
        joints = adjacency.shape[1]
        self.persons = persons
        self.data_bn = nn.BatchNorm1d(persons * in_channels * joints)
        nn.init.constant_(self.data_bn.weight, 1.0)  # [M] 304
        nn.init.zeros_(self.data_bn.bias)
        self.units = nn.ModuleList(
            TCNGCNUnit(cin or in_channels, cout, adjacency.to(torch.get_default_dtype()), stride, residual, cfg)
            for cin, cout, stride, residual in block_plan(cfg.base_channels))
        self.drop = Dropout(cfg.dropout)
        self.classifier = nn.Linear(4 * cfg.base_channels, num_classes)
        nn.init.normal_(self.classifier.weight, 0.0, math.sqrt(2.0 / num_classes))  # [M] 303; bias: torch's default

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """[N, C, T, V] -> the pooled 4*base-d feature ([M] 310-333), M = 1."""
        if self.persons != 1:
            raise ValueError("CTRGCNNet.features takes one person per window")
        n, c, t, v = x.shape
        x = self.data_bn(x.permute(0, 3, 1, 2).reshape(n, v * c, t))  # channel index v * C + c ([M] 316)
        x = x.view(n, v, c, t).permute(0, 2, 3, 1)
        for unit in self.units:
            x = unit(x)
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.drop(self.features(x)))


class CTRGCN(GCNReID):
    """CTR-GCN's backbone trained with identity cross-entropy; the pooled 256-d feature is the embedding."""

    published_as = "CTR-GCN"
    name = "ctrgcn"
    config_class: ClassVar[type] = CTRGCNConfig
    description = ("CTR-GCN: 10 TCN-GCN units with channel-wise topology refinement and multi-scale temporal "
                   "convolution on the layout's bones, pooled 256-d embedding; supervised (cross-entropy)")
    citation = ("Chen, Zhang, Yuan, Li, Deng, Hu: Channel-wise topology refinement graph convolution for "
                "skeleton-based action recognition, ICCV 2021")
    budget_overrides: ClassVar[dict[str, dict[str, Any]]] = dict.fromkeys(
        SYNTHETIC, {"epochs": 8, "lr_steps": (6,), "warm_up_epochs": 1, "batch_size": 32})
    protocol_notes: ClassVar[dict[str, str]] = dict.fromkeys(
        SYNTHETIC, "CPU budget: 8 epochs, 1 warm-up epoch, lr x 0.1 at epoch 6, batch 32 "
                   "(release: 65 epochs, 5 warm-up, steps at 35 and 55, batch 64; about 30 min per trial on 2 idle "
                   "threads here, by `make bench`)")

    def build_net(self, num_classes: int) -> CTRGCNNet:
        adjacency = torch.from_numpy(layout_ctrgcn_adjacency(self.layout))
        return CTRGCNNet(adjacency, 3, num_classes, self.config)
