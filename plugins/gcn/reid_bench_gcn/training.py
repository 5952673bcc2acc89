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
from reid_bench.torchutil import ClassifierLoop, class_indices, check_precision, training_autocast

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
        """Windows [N, f, J, 3] -> [N, 3, f, J] in torch's default dtype (float32; float64 where a
        caller sets it, as the seeded-loss test does, to pin the recipe above rounding), centred
        as configured."""
        x = np.asarray(data, dtype=np.float32)
        if x.ndim != 4 or x.shape[2:] != (self.layout.num_joints, 3):
            raise ValueError(f"{self.name} expects windows [N, f, {self.layout.num_joints}, 3], got {x.shape}")
        if self.config.centre == "first-frame":  # [CS] 44-76: origin = joint 2 (spine) of the first frame
            x = x - x[:, :1, list(self.spine), :].mean(axis=2, keepdims=True)
        return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).to(torch.get_default_dtype())

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
                                   batch_inputs=lambda idx: self._rotate(inputs[idx], gen),
                                   precision=getattr(cfg, "train_precision", "float32"))  # ST-GCN's switch
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


# ---------------------------------------------------------------------------------------------
# GaitTR and GPGait (FastPoseGait): P x K batches, batch-hard triplet and part cross-entropy.
# ``[FS]`` is BNU-IVC/FastPoseGait ``fastposegait/data/sampler.py``, ``[FT]``
# ``fastposegait/modeling/losses/triplet.py``, ``[FC]`` ``.../losses/softmax.py``, ``[FA]``
# ``fastposegait/modeling/loss_aggregator.py`` (commit 94da9c8), read and re-expressed.


def batch_hard_triplet(embeddings: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    """[FT] 14-43, 59-78: embeddings [n, c, p] (p parts); per part, Euclidean distances, for each
    anchor the farthest positive and the nearest negative, relu(d_ap - d_an + margin), averaged
    over the non-zero terms (0 when all are zero); the parts' losses averaged ([FA] 62)."""
    x = embeddings.permute(2, 0, 1).float()  # [p, n, c]
    sq = (x * x).sum(-1)
    dist = torch.sqrt(torch.relu(sq[:, :, None] + sq[:, None, :] - 2 * x @ x.transpose(1, 2)))
    same = labels[:, None] == labels[None, :]
    ap = dist.masked_fill(~same, float("-inf")).amax(-1)
    an = dist.masked_fill(same, float("inf")).amin(-1)
    loss = torch.relu(ap - an + margin)  # an = inf (one identity in the batch) gives 0
    count = (loss != 0).sum(-1).float()
    per_part = loss.sum(-1) / (count + 1e-9)
    per_part = torch.where(count == 0, torch.zeros_like(per_part), per_part)
    return per_part.mean()


def part_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, scale: float, smoothing: float = 0.0) -> torch.Tensor:
    """[FC] 15-40: logits [n, classes, p] times ``scale``, cross-entropy per part (mean over the
    batch), optional label smoothing eps; the parts averaged ([FA] 62)."""
    n, c, p = logits.shape
    log_p = torch.log_softmax((logits * scale).float(), dim=1)  # [n, c, p]
    nll = -log_p.gather(1, labels[:, None, None].expand(n, 1, p)).squeeze(1)  # [n, p]
    if smoothing:
        nll = (1 - smoothing) * nll - smoothing * log_p.mean(1)
    return nll.mean()


def pk_indices(labels: torch.Tensor, identities: int, per_identity: int, gen: torch.Generator) -> torch.Tensor:
    """One P x K batch as [FS] 24-47 draws it: P identities at random, then K of each identity's
    samples without replacement, or with replacement when it has fewer than K ([FS] 201-209).
    With fewer than P training identities all of them are taken (the release would repeat some)."""
    classes = torch.unique(labels)
    pick = classes[torch.randperm(len(classes), generator=gen)[:identities]]
    out = []
    for c in pick.tolist():
        members = torch.nonzero(labels == c).flatten()
        if len(members) >= per_identity:
            out.append(members[torch.randperm(len(members), generator=gen)[:per_identity]])
        else:
            out.append(members[torch.randint(len(members), (per_identity,), generator=gen)])
    return torch.cat(out)


class PKLoop:
    """Training by iterations on P x K batches, ``epoch_iterations`` per harness epoch: the
    release trains by iterations ([FS] 24-47, an endless sampler) and saves every ``save_iter``.
    ``loss_of(net, x, y)`` returns the loss and a dict of floats to report. The scheduler steps
    once per iteration. ``state_dict`` holds what a checkpoint needs besides the network.
    ``precision``: "bfloat16" runs ``loss_of`` under bf16 autocast (``TrainPrecision``)."""

    def __init__(self, net: nn.Module, inputs: torch.Tensor, labels: Any, *, identities: int, per_identity: int,
                 optimizer: Any, scheduler: Any, generator: torch.Generator, loss_of: Any, batch_inputs: Any,
                 precision: str = "float32") -> None:
        self.net = net
        self.inputs = inputs
        self.labels = class_indices(net, labels)
        self.identities, self.per_identity = identities, per_identity
        self.optimizer, self.scheduler, self.generator = optimizer, scheduler, generator
        self.loss_of, self.batch_inputs = loss_of, batch_inputs
        self.precision = check_precision(precision)

    def run(self, iterations: int, device: Any) -> dict[str, float]:
        self.net.train()
        sums: dict[str, float] = {}
        for _ in range(iterations):
            idx = pk_indices(self.labels, self.identities, self.per_identity, self.generator)
            x, y = self.batch_inputs(idx).to(device), self.labels[idx].to(device)
            with training_autocast(self.precision, device):
                loss, info = self.loss_of(self.net, x, y)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()
            for key, value in {"loss": float(loss.detach()), **info}.items():
                sums[key] = sums.get(key, 0.0) + value
        return {k: v / max(1, iterations) for k, v in sums.items()}

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.generator.set_state(state["generator"])
