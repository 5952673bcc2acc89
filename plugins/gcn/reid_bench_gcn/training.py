"""What ST-GCN and CTR-GCN share as re-ID models: inputs, the releases' SGD recipe, the loop.

``[SP]`` is yysijie/st-gcn ``processor/recognition.py`` and ``processor/processor.py``; ``[CM]``
Uason-Chen/CTR-GCN ``main.py`` and ``[CF]`` its ``feeders/tools.py``; ``[CS]`` its
``data/ntu/seq_transformation.py`` (commits in the plugin README).

Both releases train a classifier with cross-entropy: SGD, momentum 0.9, Nesterov, weight decay,
a learning rate multiplied by 0.1 at given epochs ([SP] recognition.py 46-70; [CM] 310-346), a
linear warm-up over the first epochs in CTR-GCN ([CM] 337-346), shuffled batches with the last
partial one dropped ([SP] processor.py 53-59; [CM] 254-260). Here the classes are the training
identities; the embedding is the globally pooled backbone feature in front of the classifier.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import nn

from reid_bench.api import (DataSpec, Fraction, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, SampleSet,
                            TorchModel, TrialContext, run_setting)
from reid_bench.torchutil import ClassifierLoop

SYNTHETIC = ("synth-gait", "synth-gait-dev", "synth-gait-retrieval")


@dataclass
class GCNTrainingConfig:
    """The training fields both models share (defaults: ST-GCN's NTU recipe; CTR-GCN's config
    overrides its own). ``epochs`` / ``batch_size``: a fixed budget of shuffled, drop-last
    batches. ``lr``: SGD's base rate; ``momentum`` 0.9 and ``nesterov`` as both releases;
    ``weight_decay``. ``lr_steps``: epochs at which the rate is multiplied by ``lr_decay``.
    ``warm_up_epochs``: a linear ramp lr x (e + 1) / W over epochs e < W (CTR-GCN). ``centre``:
    ``none`` feeds the coordinates as they come; ``first-frame`` subtracts the layout's spine
    joint of the window's first frame from every frame (CTR-GCN's NTU preprocessing).
    ``random_rot``: a random rotation of each training window about x, y and z by angles drawn
    from U(-theta, theta) (CTR-GCN's feeder; 0 turns it off). ``embed_batch``: windows per
    forward pass in ``embed`` (a run setting).
    """

    epochs: NonNegativeInt = 80
    batch_size: PositiveInt = 64
    lr: PositiveFloat = 0.1
    momentum: Fraction = 0.9
    nesterov: bool = True
    weight_decay: NonNegativeFloat = 1e-4
    lr_steps: tuple[NonNegativeInt, ...] = (10, 50)
    lr_decay: PositiveFloat = 0.1
    warm_up_epochs: NonNegativeInt = 0
    centre: Literal["none", "first-frame"] = "none"
    random_rot: NonNegativeFloat = 0.0
    embed_batch: PositiveInt = run_setting(256)

    def _check_training(self, model: str) -> None:
        if list(self.lr_steps) != sorted(self.lr_steps):
            raise ValueError(f"{model}: lr_steps must be in increasing order, got {list(self.lr_steps)}")
        if self.nesterov and self.momentum <= 0:
            raise ValueError(f"{model}: nesterov=true needs momentum > 0 (torch refuses Nesterov without momentum)")
        if self.random_rot > math.pi:
            raise ValueError(f"{model}: random_rot={self.random_rot} is an angle in radians; at most pi")


def learning_rate_factor(epoch: int, steps: tuple[int, ...], decay: float, warm_up: int) -> float:
    """The releases' per-epoch multiplier of the base rate ([SP] recognition.py 62-70; [CM] 337-346)."""
    if epoch < warm_up:
        return (epoch + 1) / warm_up
    return decay ** int(np.sum(epoch >= np.asarray(steps, dtype=np.int64))) if steps else 1.0


def rotation_matrices(angles: torch.Tensor) -> torch.Tensor:
    """[B, 3] angles (about x, y, z) -> [B, 3, 3] rotations Rz @ Ry @ Rx, with the sign
    conventions of [CF] 151-175 (one rotation for all frames of a window, [CF] 178-191)."""
    c, s = angles.cos(), angles.sin()
    one, zero = torch.ones_like(c[:, 0]), torch.zeros_like(c[:, 0])
    rx = torch.stack([one, zero, zero, zero, c[:, 0], s[:, 0], zero, -s[:, 0], c[:, 0]], 1).view(-1, 3, 3)
    ry = torch.stack([c[:, 1], zero, -s[:, 1], zero, one, zero, s[:, 1], zero, c[:, 1]], 1).view(-1, 3, 3)
    rz = torch.stack([c[:, 2], s[:, 2], zero, -s[:, 2], c[:, 2], zero, zero, zero, one], 1).view(-1, 3, 3)
    return rz @ ry @ rx


class GCNReID(TorchModel):
    """A GCN backbone over [C=3, T, V] windows trained as an identity classifier. Subclasses say
    which network (``build_net``); the network returns logits and has ``features``."""

    modality = "skeleton"
    name: ClassVar[str] = "gcn"
    training_attributes = ("loop",)

    def __init__(self, config: GCNTrainingConfig, spec: DataSpec) -> None:
        super().__init__(config, spec)
        if spec.layout is None:
            raise ValueError(f"{self.name} needs a skeleton layout")
        self.layout = spec.layout
        self.spine = dict(self.layout.roles).get("spine")
        if config.centre == "first-frame" and self.spine is None:
            # the same message as the roles' own check
            self.layout.role_joints(("spine",), self.name)
        self.net = self.build_net(max(1, spec.num_classes))

    # -- what a model says ------------------------------------------------------------------
    def build_net(self, num_classes: int) -> nn.Module:
        raise NotImplementedError

    @classmethod
    def example_spec(cls) -> DataSpec:
        from reid_bench.layouts import KINECT_V2_25

        return DataSpec("skeleton", num_classes=60, layout=KINECT_V2_25, window=64)

    # -- inputs ------------------------------------------------------------------------------
    def _inputs(self, data: Any) -> torch.Tensor:
        """Windows [N, f, J, 3] -> [N, 3, f, J] float32, centred as configured."""
        x = np.asarray(data, dtype=np.float32)
        if x.ndim != 4 or x.shape[2:] != (self.layout.num_joints, 3):
            raise ValueError(f"{self.name} expects windows [N, f, {self.layout.num_joints}, 3], got {x.shape}")
        if self.config.centre == "first-frame":  # [CS] 44-76: origin = joint 2 (spine) of the first frame
            x = x - x[:, :1, list(self.spine), :].mean(axis=2, keepdims=True)
        return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))

    def _rotate(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        theta = self.config.random_rot
        if theta <= 0:
            return x
        angles = (torch.rand(x.shape[0], 3, generator=gen) * 2 - 1) * theta
        rot = rotation_matrices(angles).to(x.dtype)
        return torch.einsum("bij,bjtv->bitv", rot, x)

    # -- training ----------------------------------------------------------------------------
    def start_fit(self, train: SampleSet, ctx: TrialContext) -> None:
        cfg = self.config
        gen = torch.Generator().manual_seed(ctx.seed)
        self.net = self.build_net(max(1, train.num_classes)).to(self.device)
        inputs = self._inputs(train.data)
        optimizer = torch.optim.SGD(self.net.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                                    weight_decay=cfg.weight_decay)
        self.loop = ClassifierLoop(self.net, inputs, train.labels, batch_size=cfg.batch_size, optimizer=optimizer,
                                   generator=gen, drop_last=True,
                                   batch_inputs=lambda idx: self._rotate(inputs[idx], gen))
        per_epoch = self.loop.steps_per_epoch
        steps, decay, warm = tuple(cfg.lr_steps), cfg.lr_decay, cfg.warm_up_epochs
        # stepped once per batch: batch s of the fit runs epoch s // per_epoch's rate
        self.loop.scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: learning_rate_factor(step // per_epoch, steps, decay, warm))

    def num_epochs(self) -> int:
        return self.config.epochs

    def train_epoch(self, epoch: int, ctx: TrialContext) -> dict[str, float]:
        lr = self.loop.optimizer.param_groups[0]["lr"]
        metrics = self.loop.epoch(self.device)
        metrics["lr"] = lr  # the rate this epoch ran at (the loop reports the next batch's)
        return metrics

    def embed_inputs(self, samples: SampleSet) -> torch.Tensor:
        return self._inputs(samples.data)

    def features(self, batch: torch.Tensor) -> torch.Tensor:
        return self.net.features(batch)

    def embedding_dim(self, samples: SampleSet) -> int:
        return 4 * self.config.base_channels

    def num_parameters(self) -> int:
        """The backbone's learned parameters (data BN, blocks, graph weights), classifier excluded."""
        return sum(p.numel() for name, p in self.net.named_parameters() if not name.startswith("classifier."))

    @classmethod
    def search_space(cls) -> dict[str, Any] | None:
        return {"lr": {"loguniform": [1e-3, 0.2]}, "weight_decay": {"choice": [1e-4, 4e-4, 1e-3]},
                "batch_size": {"choice": [16, 32, 64]}}
