"""GaitTR: spatial transformer network on skeleton-based gait recognition (Zhang, Zhang, Hu et al.,
Expert Systems 2023; arXiv 2204.03873), as a re-ID model trained with the release's triplet loss.

From the release, BNU-IVC/FastPoseGait at commit 94da9c8 (``[M]`` is
``fastposegait/modeling/models/gaittr.py``, ``[B]`` ``fastposegait/modeling/components/blocks.py``,
``[U]`` ``.../components/units/unit_st.py``, ``[C]`` ``.../units/unit_conv2d.py``, ``[O]``
``.../components/other_modules.py``, ``[I]`` ``fastposegait/modeling/base_model.py``, ``[D]``
``fastposegait/data/transform.py``, ``[Y]`` ``configs/gaittr/gaittr.yaml``), re-expressed:

- input: five streams of the joint coordinates stacked on the channel axis, stream-major
  (``stream * C + coordinate``, [D] 260-285): the joints; the joints minus the centre joint; the
  velocities x[t+1] - x[t] and x[t+2] - x[t] (zero in the last two frames, [D] 273-275); the
  bones, joint minus its ``connect_joint`` ([D] 277-278). The release keeps x, y (10 channels);
  here x, y, z (15 channels);
- data batch norm over the V x C input channels ([M] 24-25, 46-50);
- four TCN-ST blocks with widths [10], 64, 64, 128, 256 ([M] 27-31, [Y] 37-42). A block ([B] 8-40):
  ``x0 = tcn(x) + x`` with tcn a (9 x 1) temporal convolution (width kept) after dropout 0.1,
  then Mish and BN ([C] 10-24); ``y = st(x0) + res(x0)`` with res a 1x1 convolution + BN where
  the width changes; output ``y + x`` or ``y + down(x)``, down a 1x1 ``UnitConv2D`` (dropout 0);
- the spatial transformer ``st`` ([U] 6-131): a batch norm over its C x V input channels
  (channel index ``c * V + v``, [U] 24-26), then per frame self-attention over the joints: a 1x1
  convolution to q, k (dk = C_out / 4 each) and v (C_out), Nh = 8 heads, q scaled by
  dk_h^-1/2, softmax over the keys, a 1x1 output convolution ([U] 44-120); then Mish, BN
  ([U] 35-36). The adjacency is passed in but unused by the attention ([U] 53, 68-103);
- pooling: mean over joints, then time ([M] 55-61); a 1x1 convolution 256 -> 128 ([M] 33, 63):
  **the embedding** (the release's ``num_class: 128`` is this width, its inference feature,
  [M] 66-77);
- initialisation ([I] 186-198): convolutions Xavier-uniform, zero bias; 2D batch norms 1, 0;
- training ([Y]): batch-hard triplet loss, margin 0.3, alone (29-33); Adam, lr 1e-3, weight decay
  2e-5 (47-50); OneCycleLR, three phases, max lr 1e-3, div 100, final div 1000, 47.5% rising,
  40,000 iterations (52-59, 70); P x K = 4 x 64 (71-81); augmentation: Gaussian noise std 0.3 on
  every coordinate, per-frame left-right flip with probability 0.1, Gaussian noise std 0.3 per
  joint constant over the sequence (82-90; [D] 188-247).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from reid_bench.api import (DataSpec, Fraction, NonNegativeFloat, PositiveFloat, PositiveInt, SampleSet, TorchModel,
                            TrialContext, later_setting, run_setting)
from reid_bench.torchutil import Dropout, TrainPrecision
from reid_bench_gcn.graph import centre_joint, mirror_joints, parent_joints
from reid_bench_gcn.training import SYNTHETIC, PKLoop, batch_hard_triplet

#: The release's noise std (0.3, in pixels) over a person height of 225 pixels, the height
#: FastPoseGait's ``RescaleCenter`` gives GPGait's input ([D] 488): here a fraction of the window's
#: largest extent (3D joints are in metres or arbitrary units, not pixels).
RELATIVE_NOISE = 0.3 / 225


@dataclass
class GaitTRConfig:
    """GaitTR's settings (defaults: the release's CASIA-B configuration ``configs/gaittr/gaittr.yaml``).

    ``iterations``: P x K batches in all (40,000); ``epoch_iterations``: batches per harness
    epoch, between checkpoints (the release saves every 1,000). ``identities`` x
    ``per_identity``: the P x K batch (4 x 64). ``lr``: Adam's peak rate (OneCycleLR max_lr 1e-3);
    ``weight_decay`` 2e-5; ``div_factor`` 100, ``final_div_factor`` 1000, ``pct_start`` 0.475,
    ``three_phase`` true (torch's OneCycleLR). ``margin``: the triplet margin (0.3).
    ``channels``: the four blocks' widths (64, 64, 128, 256); ``embed_dim``: the final 1x1
    convolution's width (128); ``heads``: attention heads (8; C_out / 4 must be a multiple);
    ``temporal_kernel`` 9; ``dropout`` 0.1 before each temporal convolution. ``point_noise`` /
    ``joint_noise``: the two Gaussian noises' std as a fraction of the window's largest extent
    (0.3 / 225 each); ``flip_prob``: per-frame left-right swap (0.1). ``train_precision``:
    "bfloat16" runs the training steps under bf16 autocast (not the release's float32: a named
    switch, measured in the plugin README). ``embed_batch``: windows per forward pass in
    ``embed`` (a run setting).
    """

    iterations: PositiveInt = 40_000
    epoch_iterations: PositiveInt = 1_000
    identities: PositiveInt = 4
    per_identity: PositiveInt = 64
    lr: PositiveFloat = 1e-3
    weight_decay: NonNegativeFloat = 2e-5
    div_factor: PositiveFloat = 100.0
    final_div_factor: PositiveFloat = 1000.0
    pct_start: Fraction = 0.475
    three_phase: bool = True
    margin: NonNegativeFloat = 0.3
    channels: tuple[PositiveInt, ...] = (64, 64, 128, 256)
    embed_dim: PositiveInt = 128
    heads: PositiveInt = 8
    temporal_kernel: PositiveInt = 9
    dropout: Fraction = 0.1
    point_noise: NonNegativeFloat = RELATIVE_NOISE
    joint_noise: NonNegativeFloat = RELATIVE_NOISE
    flip_prob: Fraction = 0.1
    train_precision: TrainPrecision = later_setting("float32")
    embed_batch: PositiveInt = run_setting(256)

    def __post_init__(self) -> None:
        check_schedule(self, "gaittr")
        if not self.channels:
            raise ValueError("gaittr: channels needs at least one block width")
        for width in self.channels:
            if width % 4 or (width // 4) % self.heads or width % self.heads:
                raise ValueError(f"gaittr: every channel width must split into heads={self.heads} for q, k "
                                 f"(width / 4) and v (width); {width} does not (release: 64, 64, 128, 256 with 8 heads)")
        if self.temporal_kernel % 2 == 0:
            raise ValueError(f"gaittr: temporal_kernel must be odd (padded to keep the length), got {self.temporal_kernel}")


def check_schedule(cfg: Any, model: str) -> None:
    """OneCycleLR needs a rising and (with three phases) a falling part of at least one step each."""
    if cfg.three_phase and not 0 < cfg.pct_start <= 0.5:
        raise ValueError(f"{model}: pct_start={cfg.pct_start} must lie in (0, 0.5] with three_phase=true")
    if not cfg.three_phase and not 0 < cfg.pct_start < 1:
        raise ValueError(f"{model}: pct_start={cfg.pct_start} must lie in (0, 1)")
    if cfg.iterations < 4:
        raise ValueError(f"{model}: iterations={cfg.iterations} is too short for the one-cycle schedule (at least 4)")
    if cfg.per_identity < 2:
        raise ValueError(f"{model}: per_identity={cfg.per_identity} leaves the triplet loss no positive (at least 2)")


def one_cycle(optimizer: torch.optim.Optimizer, cfg: Any) -> torch.optim.lr_scheduler.OneCycleLR:
    """torch's OneCycleLR with the release's arguments ([I] 233-239 passes them through); Adam's
    beta1 cycles between 0.85 and 0.95 as torch's default ``cycle_momentum`` does there too."""
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=cfg.lr, total_steps=cfg.iterations, pct_start=cfg.pct_start, div_factor=cfg.div_factor,
        final_div_factor=cfg.final_div_factor, three_phase=cfg.three_phase)


# ------------------------------------------------------------------------------------- network


class UnitConv(nn.Module):
    """``UnitConv2D`` ([C] 10-24): dropout, (k x 1) convolution, Mish, BN."""

    def __init__(self, cin: int, cout: int, kernel: int, dropout: float) -> None:
        super().__init__()
        self.drop = Dropout(dropout)
        self.conv = nn.Conv2d(cin, cout, (kernel, 1), padding=((kernel - 1) // 2, 0))
        self.act = nn.Mish()  # [O] 5-9: x * tanh(softplus(x))
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.act(self.conv(self.drop(x))))


class SpatialTransformer(nn.Module):
    """``STModule`` with its ``spatial_attention`` ([U] 6-131): per-frame multi-head attention over joints."""

    def __init__(self, cin: int, cout: int, joints: int, heads: int) -> None:
        super().__init__()
        self.dk, self.dv, self.heads = cout // 4, cout, heads
        self.data_bn = nn.BatchNorm1d(cin * joints)
        self.qkv = nn.Conv2d(cin, 2 * self.dk + self.dv, 1)
        self.out = nn.Conv2d(self.dv, self.dv, 1)
        self.act = nn.Mish()
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, v = x.shape
        x = self.data_bn(x.permute(0, 1, 3, 2).reshape(n, c * v, t)).view(n, c, v, t).permute(0, 1, 3, 2)  # [U] 24-26
        q, k, val = torch.split(self.qkv(x), [self.dk, self.dk, self.dv], dim=1)
        h = self.heads

        def heads_of(z: torch.Tensor) -> torch.Tensor:  # [N, h*d, T, V] -> [N, T, h, V, d], channel h*d + i
            return z.view(n, h, -1, t, v).permute(0, 3, 1, 4, 2)

        q = heads_of(q) * (self.dk // h) ** -0.5  # [U] 115-116
        weights = torch.softmax(q @ heads_of(k).transpose(-1, -2), dim=-1)  # [U] 83-85: [N, T, h, V, V]
        y = (weights @ heads_of(val)).permute(0, 2, 4, 1, 3).reshape(n, self.dv, t, v)  # [U] 91-99
        return self.bn(self.act(self.out(y)))


class TCNST(nn.Module):
    """``TCN_ST`` ([B] 8-40)."""

    def __init__(self, cin: int, cout: int, joints: int, heads: int, kernel: int, dropout: float) -> None:
        super().__init__()
        self.tcn = UnitConv(cin, cin, kernel, dropout)
        self.st = SpatialTransformer(cin, cout, joints, heads)
        if cin != cout:
            self.residual_s = nn.Sequential(nn.Conv2d(cin, cout, 1), nn.BatchNorm2d(cout))
            self.down = UnitConv(cin, cout, 1, 0.0)
        else:
            self.residual_s = self.down = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x0 = self.tcn(x) + x
        y = self.st(x0) + (x0 if self.residual_s is None else self.residual_s(x0))
        return y + (x if self.down is None else self.down(x))


class GaitTRNet(nn.Module):
    """Input [N, C_in, T, V] (the stacked streams) -> the ``embed_dim`` embedding ([M] 11-66)."""

    def __init__(self, in_channels: int, joints: int, channels: tuple[int, ...] = (64, 64, 128, 256),
                 embed_dim: int = 128, heads: int = 8, kernel: int = 9, dropout: float = 0.1) -> None:
        super().__init__()
        self.data_bn = nn.BatchNorm1d(in_channels * joints)
        widths = (in_channels, *channels)
        self.blocks = nn.ModuleList(TCNST(a, b, joints, heads, kernel, dropout) for a, b in zip(widths, widths[1:]))
        self.fcn = nn.Conv1d(widths[-1], embed_dim, 1)
        for m in self.modules():  # [I] 186-198
            if isinstance(m, (nn.Conv1d, nn.Conv2d)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, v = x.shape
        x = self.data_bn(x.permute(0, 3, 1, 2).reshape(n, v * c, t)).view(n, v, c, t).permute(0, 2, 3, 1)  # [M] 46-50
        for block in self.blocks:
            x = block(x)
        return self.fcn(x.mean(dim=(2, 3))[:, :, None])[:, :, 0]  # [M] 55-65


def stream_inputs(x: torch.Tensor, centre: int, parent: np.ndarray) -> torch.Tensor:
    """[N, T, V, C] joints -> [N, 5 * C, T, V]: joints, joints - centre, two velocities, bones,
    stream-major ([D] 260-285)."""
    n, t, v, c = x.shape
    rel = x - x[:, :, centre : centre + 1]
    vel1, vel2 = torch.zeros_like(x), torch.zeros_like(x)
    if t > 2:
        vel1[:, : t - 2] = x[:, 1 : t - 1] - x[:, : t - 2]
        vel2[:, : t - 2] = x[:, 2:] - x[:, : t - 2]
    bones = x - x[:, :, torch.as_tensor(parent)]
    return torch.stack([x, rel, vel1, vel2, bones], 1).permute(0, 1, 4, 2, 3).reshape(n, 5 * c, t, v)


# ------------------------------------------------------------------------------------- model


class PKReID(TorchModel):
    """What GaitTR and GPGait share here: windows [N, f, J, 3] as [N, T, V, 3] tensors, the
    release's augmentation on training batches, Adam + OneCycleLR on P x K batches by iterations."""

    modality = "skeleton"
    name: ClassVar[str] = "pk"
    training_attributes = ("loop",)

    def __init__(self, config: Any, spec: DataSpec) -> None:
        super().__init__(config, spec)
        if spec.layout is None:
            raise ValueError(f"{self.name} needs a skeleton layout")
        self.layout = spec.layout
        self.mirror = torch.as_tensor(mirror_joints(self.layout))
        self.prepare_layout()
        self.net = self.build_net(max(1, spec.num_classes))

    def prepare_layout(self) -> None: ...

    def build_net(self, num_classes: int) -> nn.Module:
        raise NotImplementedError

    def loss_of(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """Per-sequence preprocessing before augmentation (none for GaitTR)."""
        return x

    @classmethod
    def example_spec(cls) -> DataSpec:
        from reid_bench.layouts import KINECT_V2_25

        return DataSpec("skeleton", num_classes=60, layout=KINECT_V2_25, window=60)

    def _inputs(self, data: Any) -> torch.Tensor:
        x = np.asarray(data, dtype=np.float32)
        if x.ndim != 4 or x.shape[2:] != (self.layout.num_joints, 3):
            raise ValueError(f"{self.name} expects windows [N, f, {self.layout.num_joints}, 3], got {x.shape}")
        return self.normalise(torch.from_numpy(np.ascontiguousarray(x)))

    def augment(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """[D] 188-247 in the release's order: point noise, per-frame flips, per-joint noise."""
        cfg = self.config
        n, t, v, c = x.shape
        extent = (x.amax(dim=(1, 2)) - x.amin(dim=(1, 2))).amax(-1).clamp_min(1e-6)[:, None, None, None]
        if cfg.point_noise > 0:
            x = x + torch.randn(x.shape, generator=gen) * cfg.point_noise * extent
        if cfg.flip_prob > 0:
            flip = torch.rand(n, t, generator=gen) <= cfg.flip_prob
            x = torch.where(flip[:, :, None, None], x[:, :, self.mirror], x)
        if cfg.joint_noise > 0:
            x = x + torch.randn(n, 1, v, c, generator=gen) * cfg.joint_noise * extent
        return x

    def start_fit(self, train: SampleSet, ctx: TrialContext) -> None:
        cfg = self.config
        gen = torch.Generator().manual_seed(ctx.seed)
        self.net = self.build_net(max(1, train.num_classes)).to(self.device)
        inputs = self._inputs(train.data)
        optimizer = torch.optim.Adam(self.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.loop = PKLoop(self.net, inputs, train.labels, identities=cfg.identities, per_identity=cfg.per_identity,
                           optimizer=optimizer, scheduler=one_cycle(optimizer, cfg), generator=gen,
                           loss_of=self.loss_of, batch_inputs=lambda idx: self.augment(inputs[idx], gen),
                           precision=cfg.train_precision)

    def num_epochs(self) -> int:
        return math.ceil(self.config.iterations / self.config.epoch_iterations)

    def train_epoch(self, epoch: int, ctx: TrialContext) -> dict[str, float]:
        cfg = self.config
        steps = min(cfg.epoch_iterations, cfg.iterations - epoch * cfg.epoch_iterations)
        lr = self.loop.optimizer.param_groups[0]["lr"]
        metrics = self.loop.run(steps, self.device)
        metrics["lr"] = lr  # the rate of the epoch's first batch
        return metrics

    def embed_inputs(self, samples: SampleSet) -> torch.Tensor:
        return self._inputs(samples.data)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.net.parameters())


class GaitTR(PKReID):
    """GaitTR's network trained with the batch-hard triplet loss; its 128-d output is the embedding."""

    published_as = "GaitTR"
    name = "gaittr"
    config_class: ClassVar[type] = GaitTRConfig
    description = ("GaitTR: 4 TCN + spatial-transformer blocks over joints, relative joints, velocities and bones "
                   "(3D), 128-d embedding; supervised (batch-hard triplet, P x K batches)")
    citation = ("Zhang, Zhang, Hu, Zhang, Lin: Spatial transformer network on skeleton-based gait recognition, "
                "Expert Systems 2023 (arXiv 2204.03873); code: BNU-IVC/FastPoseGait")
    budget_overrides: ClassVar[dict[str, dict[str, Any]]] = dict.fromkeys(
        SYNTHETIC, {"iterations": 240, "epoch_iterations": 30, "per_identity": 8})
    protocol_notes: ClassVar[dict[str, str]] = dict.fromkeys(
        SYNTHETIC, "CPU budget: 240 iterations (8 epochs of 30) of 4 x 8 batches, one-cycle schedule over them "
                   "(release: 40,000 iterations of 4 x 64; about 11.5-12.5 h per trial on 2 idle threads here, by "
                   "`make bench`)")

    def prepare_layout(self) -> None:
        self.centre = centre_joint(self.layout)
        self.parent = parent_joints(self.layout.num_joints, self.layout.edges, self.centre)

    def build_net(self, num_classes: int) -> GaitTRNet:
        cfg = self.config
        return GaitTRNet(15, self.layout.num_joints, tuple(cfg.channels), cfg.embed_dim, cfg.heads,
                         cfg.temporal_kernel, cfg.dropout)

    def loss_of(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        loss = batch_hard_triplet(net(stream_inputs(x, self.centre, self.parent))[:, :, None], y, self.config.margin)
        return loss, {}

    def features(self, batch: torch.Tensor) -> torch.Tensor:
        return self.net(stream_inputs(batch, self.centre, self.parent))

    def embedding_dim(self, samples: SampleSet) -> int:
        return self.config.embed_dim

    @classmethod
    def search_space(cls) -> dict[str, Any] | None:
        return {"lr": {"loguniform": [1e-4, 3e-3]}, "weight_decay": {"choice": [0.0, 2e-5, 1e-4]}}
