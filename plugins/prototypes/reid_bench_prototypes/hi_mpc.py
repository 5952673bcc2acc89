"""Hi-MPC: hierarchical skeleton meta-prototype contrastive learning with hard skeleton mining
(Rao, Leung & Miao, IJCV 2023).

From the release, Kali-Hac/Hi-MPC ``Hi-MPC.py`` ("[H]") and ``utils/process.py`` ("[P]") at
commit 20b2c74, re-expressed in PyTorch. A window is seen at three levels: its joints, its 10
components (the layout's parts) and its 5 limbs (the layout's bodies), each node the mean of its
joints. Each level has its own per-frame two-layer MLP (3n -> H -> ReLU -> H). Every epoch each
level's window features (frame means) are clustered (Jaccard distance of k-reciprocal encodings,
then DBSCAN) and a window that is an outlier at any level sits the epoch out; a level's
prototypes are its clusters' mean features. M meta-transformation heads per level, each one
H x H matrix shared by the frames and the prototypes, give per-frame logits against the
transformed prototypes (scaled by 1/sqrt(H)); every frame's cross-entropy towards its window's
cluster is weighted by hard skeleton mining: a softmax over the window's frames of the frame's
score for the window's predicted cluster, negated where that prediction is right (so the
frames that fit worst count most). The embedding (MSMR) joins the three levels' head-averaged
transformed window features.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import nn

from reid_bench.api import (DataSpec, NonNegativeInt, PositiveFloat, PositiveInt, SampleSet, TorchModel, TrialContext,
                            run_setting)
from reid_bench.samples import class_balanced_order
from reid_bench.torchutil import descend
from reid_bench_prototypes.clustering import prototypes, pseudo_labels_of

_SYNTHETIC = ("synth-gait", "synth-gait-dev", "synth-gait-retrieval")
LEVELS: tuple[str, ...] = ("joint", "component", "limb")


@dataclass
class HiMPCConfig:
    """Hyper-parameters of Hi-MPC (defaults: the release's KS20 / IAS settings, its default
    dataset; per protocol in ``protocol_overrides``, lines in the plugin README).

    ``hidden``: H, every level's MLP width ([H] 46). ``heads``: M meta-transformation heads per
    level ([H] 47). ``eps`` / ``min_samples``: DBSCAN ([H] 99-102, 114-115). ``k1`` / ``k2``:
    the re-ranking's neighbourhoods ([H] 56-57). ``mining``: hard skeleton mining's focus
    ([H] 59, 363-389): "hard" weights the frames that fit the window's cluster worst, "easy"
    the reverse, "off" weights every frame 1. ``joint_heads_summed``: the release sums the
    joint level's head losses but averages the other two levels' ([H] 447-448). ``lr``: Adam
    (0.00035). ``batch_size``: 256. ``epochs``: a fixed budget (the release stops on test
    Rank-1, which the harness never does). ``balanced``: the release's class-balanced training
    set built with the identity labels (all datasets but KGBD). ``root_centre``: subtract the
    pelvis joint per frame, as the release subtracts joint 0. ``embedding``: "msmr" (the
    release's evaluated feature, 3H-d) or one level's raw frame mean (H-d).
    """

    hidden: PositiveInt = 256
    heads: PositiveInt = 8
    eps: PositiveFloat = 0.8
    min_samples: PositiveInt = 2
    k1: PositiveInt = 20
    k2: PositiveInt = 6
    mining: Literal["hard", "easy", "off"] = "hard"
    joint_heads_summed: bool = True
    lr: PositiveFloat = 3.5e-4
    batch_size: PositiveInt = 256
    epochs: NonNegativeInt = 100
    balanced: bool = True
    root_centre: bool = True
    embedding: Literal["msmr", "joint", "component", "limb"] = "msmr"
    embed_batch: PositiveInt = run_setting(4096)


class LevelEncoder(nn.Module):
    """One level's per-frame MLP ([H] 239-265): Glorot-uniform kernels, zero biases."""

    def __init__(self, in_dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_dim, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        for layer in (self.fc1, self.fc2):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, f, 3n] -> per-frame features [B, f, H]."""
        return self.fc2(torch.relu(self.fc1(x)))


class HiMPCNet(nn.Module):
    """Three level encoders and, per level, M square head matrices (one per head, used for both
    the frames and the prototypes, [H] 303-317) drawn from N(0, 1) ([H] 296)."""

    def __init__(self, nodes: dict[str, int], hidden: int, heads: int) -> None:
        super().__init__()
        self.encoders = nn.ModuleDict({lv: LevelEncoder(3 * nodes[lv], hidden) for lv in LEVELS})
        self.heads = nn.ParameterDict({lv: nn.Parameter(torch.randn(heads, hidden, hidden)) for lv in LEVELS})

    def frames(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {lv: self.encoders[lv](inputs[lv]) for lv in LEVELS}

    def msmr(self, frames: dict[str, torch.Tensor]) -> torch.Tensor:
        """Each level's frame mean through its heads, averaged over the heads, joined ([H] 391, 449-461)."""
        return torch.cat([frames[lv].mean(1) @ self.heads[lv].mean(0) for lv in LEVELS], dim=1)


def mining_weights(frame_logits: torch.Tensor, labels: torch.Tensor, mining: str = "hard") -> torch.Tensor:
    """Hard skeleton mining ([H] 319-389) for one head: ``frame_logits`` [B, f, K], cluster
    ``labels`` [B] -> frame weights [B, f].

    The window's predicted cluster is the argmax of its mean-feature logits (= the frame logits'
    mean, the map being linear); each frame's score is its logit for that cluster; a softmax
    over the frames of the score, negated where the prediction is right ("hard"; "easy" the
    other way round), weights the frames; "off" weights them all 1. Not detached, as there.
    """
    if mining == "off":
        return torch.ones(frame_logits.shape[:2], dtype=frame_logits.dtype, device=frame_logits.device)
    predicted = frame_logits.mean(1).argmax(-1)
    score = frame_logits.gather(2, predicted[:, None, None].expand(-1, frame_logits.shape[1], 1)).squeeze(2)
    right = predicted == labels
    flip = right if mining == "hard" else ~right
    sign = torch.where(flip, -1.0, 1.0).to(score.dtype)
    return torch.softmax(score * sign[:, None], dim=1)


def meta_prototype_losses(frames: torch.Tensor, protos: torch.Tensor, labels: torch.Tensor, heads: torch.Tensor,
                          mining: str = "hard") -> torch.Tensor:
    """Per-head meta-prototype contrastive losses [M] of one level ([H] 307-329, 401-433).

    Head m maps frames [B, f, H] and prototypes [K, H] through its matrix W_m; logits are
    <x W_m, p W_m> / sqrt(H); each frame's cross-entropy towards its window's cluster is
    weighted by :func:`mining_weights`, summed over the frames and averaged over the windows.
    Computed as x (p W_m W_m^T)^T, which is the same product for a fraction of the work.
    """
    hidden = frames.shape[-1]
    k = protos.shape[0]
    back = (protos @ heads) @ heads.transpose(1, 2)  # [M, K, H]
    logits = torch.einsum("bth,mkh->mbtk", frames, back) / math.sqrt(hidden)  # [M, B, f, K]
    m, b, f, _ = logits.shape
    targets = labels[None, :, None].expand(m, b, f).reshape(-1)
    ce = nn.functional.cross_entropy(logits.reshape(-1, k), targets, reduction="none").view(m, b, f)
    weights = torch.stack([mining_weights(logits[i], labels, mining) for i in range(m)])
    return (weights * ce).sum(-1).mean(-1)


def hi_mpc_loss(per_level: dict[str, torch.Tensor], joint_heads_summed: bool = True) -> torch.Tensor:
    """The three levels' losses, averaged ([H] 459): the joint level's heads summed (or averaged),
    the component and limb levels' heads averaged ([H] 447-448)."""
    parts = [per_level[lv].sum() if (lv == "joint" and joint_heads_summed) else per_level[lv].mean() for lv in LEVELS]
    return sum(parts) / len(LEVELS)


class HiMPC(TorchModel):
    """Joint, component and limb views of a window clustered every epoch; meta-prototype contrast
    through shared-weight heads, frames weighted by hard skeleton mining."""

    published_as = "Hi-MPC"
    modality = "skeleton"
    config_class: ClassVar[type] = HiMPCConfig
    description = ("Hi-MPC: per-frame MLPs on joint, component and limb levels, clustered each epoch (Jaccard + "
                   "DBSCAN), meta-prototype contrast through 8 heads per level with hard skeleton mining; unsupervised")
    citation = ("Rao, Leung, Miao: Hierarchical skeleton meta-prototype contrastive learning with hard skeleton "
                "mining for unsupervised person re-identification, IJCV 2023")
    protocol_overrides: ClassVar[dict[str, dict[str, Any]]] = {
        # [H] 99-102, 114-115: KS20 and IAS eps 0.8, min_samples 2
        **dict.fromkeys(("ias", "ias-retrieval", "ks20", "ks20-retrieval"), {"eps": 0.8, "min_samples": 2}),
        # [H] 103-106, 111-112: BIWI eps 0.8 (Walking; Still falls through to 0.6)
        **dict.fromkeys(("biwi",), {"eps": 0.8, "min_samples": 2}),
        # [H] 85-88, 111-112; [P] 155-156: KGBD eps 0.6, min_samples 4, no class balancing
        **dict.fromkeys(("kgbd", "kgbd-retrieval"), {"eps": 0.6, "min_samples": 4, "balanced": False}),
        # [H] 90-95: CASIA-B eps 0.75, min_samples 2 (windows of 40 frames, [H] 68-69)
        **dict.fromkeys(("casia-b-cme", "casia-b-coco-cme"), {"eps": 0.75, "min_samples": 2}),
    }
    # [H] 85-115: BIWI-Still falls through to the eps default 0.6 (only Walking sets 0.8)
    fold_overrides: ClassVar[dict[str, dict[str, dict[str, Any]]]] = {"biwi": {"S": {"eps": 0.6}}}
    budget_overrides: ClassVar[dict[str, dict[str, Any]]] = dict.fromkeys(_SYNTHETIC, {"epochs": 30})
    protocol_notes: ClassVar[dict[str, str]] = dict.fromkeys(_SYNTHETIC, "CPU budget: 30 epochs (default 100: about 1 min per trial on 2 idle threads here, by `make bench`)")

    def __init__(self, config: HiMPCConfig, spec: DataSpec) -> None:
        super().__init__(config, spec)
        if spec.layout is None:
            raise ValueError("hi-mpc needs a skeleton layout")
        self.layout = spec.layout
        self.groups = {"component": [list(g) for g in self.layout.parts], "limb": [list(g) for g in self.layout.bodies]}
        self.nodes = {"joint": self.layout.num_joints, "component": len(self.layout.parts), "limb": len(self.layout.bodies)}
        self.net = HiMPCNet(self.nodes, config.hidden, config.heads)

    def _levels(self, data: Any) -> dict[str, torch.Tensor]:
        """Windows [N, f, J, 3] -> per level [N, f, 3n]: joints root-centred per frame, then each
        component / limb the mean of its joints ([P] 25-28, 365-446)."""
        x = np.asarray(data, dtype=np.float32)
        if x.ndim != 4:
            raise ValueError(f"hi-mpc expects windows [N, f, J, 3], got {x.shape}")
        if self.config.root_centre:
            root = list(dict(self.layout.roles).get("pelvis", (0,)))
            x = x - x[:, :, root].mean(axis=2, keepdims=True)
        out = {"joint": x}
        for lv, groups in self.groups.items():
            out[lv] = np.stack([x[:, :, g].mean(axis=2) for g in groups], axis=2)
        return {lv: torch.from_numpy(np.ascontiguousarray(v.reshape(v.shape[0], v.shape[1], -1))) for lv, v in out.items()}

    training_attributes = ("optimizer",)

    def start_fit(self, train: SampleSet, ctx: TrialContext) -> None:
        cfg = self.config
        rng = np.random.default_rng(ctx.seed)
        self.net = HiMPCNet(self.nodes, cfg.hidden, cfg.heads).to(self.device)
        inputs = self._levels(train.data)
        if cfg.balanced:  # [P] 155-161: built with the labels, shuffled once, never again
            order = torch.as_tensor(rng.permutation(class_balanced_order(train.labels, cfg.batch_size, rng)))
            inputs = {lv: v[order] for lv, v in inputs.items()}
        self.inputs = inputs
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=cfg.lr, foreach=True)

    def num_epochs(self) -> int:
        return self.config.epochs

    def train_epoch(self, epoch: int, ctx: TrialContext) -> dict[str, float]:
        cfg, inputs = self.config, self.inputs
        n = len(inputs["joint"])
        batch = min(cfg.batch_size, n)
        usable = (n // batch) * batch if batch else 0  # whole batches only ([H] 503-505, 992-994)
        feats = self._window_features({lv: v[:usable] for lv, v in inputs.items()}, batch)
        clustered = pseudo_labels_of([feats[lv] for lv in LEVELS], cfg.eps, cfg.min_samples, cfg.k1, cfg.k2)
        labels = dict(zip(LEVELS, clustered))
        keep = np.flatnonzero(np.all([labels[lv] >= 0 for lv in LEVELS], axis=0))  # [H] 955-968
        metrics: dict[str, float] = {f"clusters_{lv}": float(labels[lv].max() + 1) for lv in LEVELS}
        metrics["kept"] = len(keep) / max(1, usable)
        if len(keep) < 2:
            return {"loss": float("nan"), **metrics}
        protos = {lv: torch.as_tensor(prototypes(feats[lv], labels[lv])).to(self.device) for lv in LEVELS}
        pl = {lv: torch.as_tensor(labels[lv][keep], dtype=torch.int64) for lv in LEVELS}
        kept = {lv: v[torch.as_tensor(keep)] for lv, v in inputs.items()}
        self.net.train()
        total, steps = 0.0, 0
        # whole batches of the kept windows in order; one short batch when fewer are kept
        starts = range(0, len(keep) - batch + 1, batch) if len(keep) >= batch else range(1)
        for s in starts:
            xb = {lv: v[s:s + batch].to(self.device) for lv, v in kept.items()}
            frames = self.net.frames(xb)
            per_level = {lv: meta_prototype_losses(frames[lv], protos[lv], pl[lv][s:s + batch].to(self.device),
                                                   self.net.heads[lv], cfg.mining) for lv in LEVELS}
            loss = hi_mpc_loss(per_level, cfg.joint_heads_summed)
            total += descend(self.optimizer, loss)
            steps += 1
        metrics["loss"] = total / max(1, steps)
        return metrics

    @torch.no_grad()
    def _window_features(self, inputs: dict[str, torch.Tensor], batch: int) -> dict[str, np.ndarray]:
        """Each level's raw frame-mean features, the ones the release clusters ([H] 516-542, 933-953)."""
        self.net.eval()
        n = len(inputs["joint"])
        parts: dict[str, list[torch.Tensor]] = {lv: [] for lv in LEVELS}
        for s in range(0, n, max(1, batch)):
            frames = self.net.frames({lv: v[s:s + batch].to(self.device) for lv, v in inputs.items()})
            for lv in LEVELS:
                parts[lv].append(frames[lv].mean(1).cpu())
        return {lv: (torch.cat(parts[lv]).numpy() if parts[lv] else np.zeros((0, self.config.hidden), np.float32))
                for lv in LEVELS}

    def embedding_dim(self, samples: SampleSet) -> int:
        """MSMR (3H-d, the release's evaluated feature) or one level's raw frame mean (H-d)."""
        return self.config.hidden * (3 if self.config.embedding == "msmr" else 1)

    def embed_batches(self, samples: SampleSet):
        inputs = self._levels(samples.data)
        step = self.config.embed_batch
        for s in range(0, len(inputs["joint"]), step):
            yield {lv: v[s:s + step].to(self.device) for lv, v in inputs.items()}

    def features(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        frames = self.net.frames(batch)
        if self.config.embedding == "msmr":
            return self.net.msmr(frames)
        return frames[self.config.embedding].mean(1)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.net.parameters())

    @classmethod
    def search_space(cls) -> dict[str, Any] | None:
        return {"eps": {"choice": [0.6, 0.7, 0.75, 0.8]}, "min_samples": {"choice": [2, 4]},
                "mining": {"choice": ["hard", "off"]}}
