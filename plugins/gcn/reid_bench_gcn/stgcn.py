"""ST-GCN: spatial temporal graph convolutional networks (Yan, Xiong, Lin, AAAI 2018), as a
supervised re-ID model.

From the release, yysijie/st-gcn (``[S]`` is ``net/st_gcn.py``, ``[T]`` ``net/utils/tgcn.py``,
``[G]`` ``net/utils/graph.py``, ``[R]`` ``processor/recognition.py``, ``[Y]``
``config/st_gcn/ntu-xsub/train.yaml``; commit in the plugin README), re-expressed:

- data batch norm over the J x C input channels of every frame ([S] 42, 72-78);
- ten ST-GCN blocks 64-64-64-64-128-128-128-256-256-256, temporal stride 2 into the fifth and
  eighth ([S] 44-55); the first without residual and without dropout ([S] 43-45);
- a block: a 1x1 convolution to K x C_out channels, summed over the K adjacency subsets
  ([T] 48-66); then BN, ReLU, a (9 x 1) temporal convolution, BN, dropout ([S] 159-171); plus
  the residual (identity, or 1x1 convolution + BN where the width or stride changes,
  [S] 173-187); ReLU ([S] 191-197);
- edge importance weighting: a learned K x J x J mask per block, initialised to ones,
  multiplying the adjacency ([S] 58-64, 81-82);
- global average pooling over time and joints ([S] 84-86): **the embedding** (256-d); the
  classifier is a 1x1 convolution to the classes ([S] 67, 88-90);
- initialisation: convolutions N(0, 0.02) with zero bias, batch norms' weights N(1, 0.02) and
  zero bias ([R] 21-33, 43);
- graph: the spatial partition with max_hop 1 ([Y] 19-21; ``graph.stgcn_adjacency``);
- training: cross-entropy, SGD momentum 0.9, Nesterov, lr 0.1, weight decay 1e-4, lr x 0.1 at
  epochs 10 and 50, batch 64, 80 epochs, dropout 0.5 ([Y] 14-32; [R] 46-70, 162-163).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from reid_bench.api import Fraction, PositiveInt, later_setting
from reid_bench.torchutil import Dropout, TrainPrecision
from reid_bench_gcn.graph import Partition, layout_stgcn_adjacency
from reid_bench_gcn.training import SYNTHETIC, GCNReID, GCNTrainingConfig


@dataclass
class STGCNConfig(GCNTrainingConfig):
    """ST-GCN's settings (defaults: the release's NTU RGB+D cross-subject configuration, see the
    module docstring), on top of the shared training fields (``training.GCNTrainingConfig``).

    ``base_channels``: the first blocks' width (64; the later ones 2x and 4x, [S] 44-55).
    ``temporal_kernel``: 9 ([S] 40), odd. ``partition``: ``spatial`` (the release, [Y] 21),
    ``spatial-geodesic``, ``distance`` or ``uniform`` (``graph.stgcn_adjacency``).
    ``edge_importance``: learned edge weights ([Y] 18). ``dropout``: in blocks 2-10 (0.5, [Y] 17).
    ``train_precision``: "bfloat16" runs the training steps under bf16 autocast (not the
    release's float32: a named switch, measured in the plugin README).
    """

    base_channels: PositiveInt = 64
    temporal_kernel: PositiveInt = 9
    partition: Partition = "spatial"
    edge_importance: bool = True
    dropout: Fraction = 0.5
    train_precision: TrainPrecision = later_setting("float32")

    def __post_init__(self) -> None:
        self._check_training("stgcn")
        if self.temporal_kernel % 2 == 0:
            raise ValueError(f"stgcn: temporal_kernel must be odd (padded to keep the length), got {self.temporal_kernel}")


def block_plan(base: int) -> list[tuple[int, int, int, bool]]:
    """(in, out, stride, residual) of the ten blocks ([S] 44-55; CTR-GCN's l1-l10 have the same
    widths and strides, ``model/ctrgcn.py`` 291-300). The input width is filled in by the caller."""
    b2, b4 = 2 * base, 4 * base
    return [(0, base, 1, False), (base, base, 1, True), (base, base, 1, True), (base, base, 1, True),
            (base, b2, 2, True), (b2, b2, 1, True), (b2, b2, 1, True), (b2, b4, 2, True), (b4, b4, 1, True),
            (b4, b4, 1, True)]


class STGCNBlock(nn.Module):
    """One ST-GCN block ([S] 118-197 with [T] 36-66)."""

    def __init__(self, cin: int, cout: int, subsets: int, kernel: int, stride: int, dropout: float,
                 residual: bool) -> None:
        super().__init__()
        self.subsets = subsets
        self.gcn = nn.Conv2d(cin, cout * subsets, kernel_size=1)  # [T] 48-55
        self.tcn = nn.Sequential(
            nn.BatchNorm2d(cout), nn.ReLU(),
            nn.Conv2d(cout, cout, (kernel, 1), (stride, 1), ((kernel - 1) // 2, 0)),
            nn.BatchNorm2d(cout), Dropout(dropout))
        self.residual_mode = "none" if not residual else ("identity" if cin == cout and stride == 1 else "conv")
        if self.residual_mode == "conv":
            self.residual = nn.Sequential(nn.Conv2d(cin, cout, kernel_size=1, stride=(stride, 1)), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        if self.residual_mode == "none":
            res: torch.Tensor | float = 0.0
        elif self.residual_mode == "identity":
            res = x
        else:
            res = self.residual(x)
        y = self.gcn(x)
        n, kc, t, v = y.shape
        y = torch.einsum("nkctv,kvw->nctw", y.view(n, self.subsets, kc // self.subsets, t, v), adjacency)
        return torch.relu(self.tcn(y) + res)


class STGCNNet(nn.Module):
    """The backbone and the classifier. Input [N, C, T, V] (one person: the release's M = 1)."""

    def __init__(self, adjacency: torch.Tensor, in_channels: int, num_classes: int, base: int = 64, kernel: int = 9,
                 dropout: float = 0.5, edge_importance: bool = True) -> None:
        super().__init__()
        subsets, joints, _ = adjacency.shape
        self.register_buffer("adjacency", adjacency.to(torch.get_default_dtype()))
        self.data_bn = nn.BatchNorm1d(in_channels * joints)
        plan = block_plan(base)
        self.blocks = nn.ModuleList(
            STGCNBlock(cin or in_channels, cout, subsets, kernel, stride, dropout if i else 0.0, residual)
            for i, (cin, cout, stride, residual) in enumerate(plan))
        if edge_importance:
            self.edge_importance = nn.ParameterList(nn.Parameter(torch.ones(adjacency.shape)) for _ in plan)
        else:
            self.edge_importance = None
        self.classifier = nn.Conv2d(plan[-1][1], num_classes, kernel_size=1)
        self.apply(_release_init)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """[N, C, T, V] -> the pooled 4*base-d feature ([S] 71-86)."""
        n, c, t, v = x.shape
        x = self.data_bn(x.permute(0, 3, 1, 2).reshape(n, v * c, t))  # channel index v * C + c, as [S] 73-74
        x = x.view(n, v, c, t).permute(0, 2, 3, 1)
        for i, block in enumerate(self.blocks):
            a = self.adjacency if self.edge_importance is None else self.adjacency * self.edge_importance[i]
            x = block(x, a)
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x)[:, :, None, None]).flatten(1)


def _release_init(module: nn.Module) -> None:
    """[R] 21-33: convolutions N(0, 0.02), zero bias; batch norms N(1, 0.02), zero bias."""
    if isinstance(module, nn.Conv2d):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class STGCN(GCNReID):
    """ST-GCN's backbone trained with identity cross-entropy; the pooled 256-d feature is the embedding."""

    published_as = "ST-GCN"
    name = "stgcn"
    config_class: ClassVar[type] = STGCNConfig
    description = ("ST-GCN: 10 spatial temporal graph convolution blocks (spatial partition, edge importance) "
                   "on the layout's bones, pooled 256-d embedding; supervised (cross-entropy)")
    citation = ("Yan, Xiong, Lin: Spatial temporal graph convolutional networks for skeleton-based action "
                "recognition, AAAI 2018")
    budget_overrides: ClassVar[dict[str, dict[str, Any]]] = dict.fromkeys(
        SYNTHETIC, {"epochs": 8, "lr_steps": (6,), "batch_size": 32})
    protocol_notes: ClassVar[dict[str, str]] = dict.fromkeys(
        SYNTHETIC, "CPU budget: 8 epochs, lr x 0.1 at epoch 6, batch 32 (release: 80 epochs, steps at 10 and 50, batch 64; "
                   "about 9 min per trial on 2 idle threads here, by `make bench`)")

    def build_net(self, num_classes: int) -> STGCNNet:
        cfg = self.config
        adjacency = torch.from_numpy(layout_stgcn_adjacency(self.layout, cfg.partition))
        return STGCNNet(adjacency, 3, num_classes, cfg.base_channels, cfg.temporal_kernel, cfg.dropout,
                        cfg.edge_importance)
