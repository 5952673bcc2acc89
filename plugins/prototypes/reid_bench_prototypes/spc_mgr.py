"""SPC-MGR: skeleton prototype contrastive learning with multi-level graph relation modeling
(Rao & Miao, 2022).

From the release, Kali-Hac/SPC-MGR (commit e0ea7da; ``[R]`` is ``SPC-MGR.py``, ``[P]``
``utils/process_L3.py``, ``[G]`` ``models/gat.py``, ``[L]`` ``utils/layers.py``), re-expressed in
PyTorch. Every frame's joints are averaged into three coarser graphs: 10 parts, 5 bodies and 3
"hyper-body" nodes (upper body, pelvis, legs); the joint graph itself is not used ([R] 204-207
discard it). Each level has its own linear node embedding and multi-head graph attention
(structural relations); each level then attends to itself and to the coarser levels through
unscaled dot-product attention (collaborative relations), added back through a learned
matrix. A window's feature is the per-node mean over frames, the three levels concatenated
(10 + 5 + 3 nodes x 8 = 144-d). Every epoch the training features are clustered (Jaccard
distance of k-reciprocal encodings, DBSCAN), outliers sit the epoch out, and the loss is the
cross-entropy of the cosine similarity to the cluster means over a temperature.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from reid_bench.api import (DataSpec, Layout, NonNegativeInt, PositiveFloat, PositiveInt, Probability, SampleSet,
                            TorchModel, TrialContext, run_setting)
from reid_bench.samples import class_balanced_order
from reid_bench.torchutil import descend, softmax_last_dim
from reid_bench_prototypes.clustering import prototypes, pseudo_labels

_SYNTHETIC = ("synth-gait", "synth-gait-dev", "synth-gait-retrieval")

LEVELS: tuple[str, ...] = ("part", "body", "hyper_body")

#: The release's graphs over the layout's groups, the same for every dataset ([P] 258-274):
#: parts in the layout's order (left thigh, left shank, right thigh, right shank, lower spine,
#: upper spine/head, left upper arm, left forearm, right upper arm, right forearm); bodies (left
#: leg, right leg, torso, left arm, right arm) all hang from the torso; the hyper-body graph is
#: the chain upper body - pelvis - legs.
LEVEL_EDGES: dict[str, tuple[tuple[int, int], ...]] = {
    "part": ((5, 6), (5, 8), (6, 7), (8, 9), (5, 4), (4, 2), (4, 0), (2, 3), (1, 0)),
    "body": ((2, 3), (2, 4), (2, 1), (2, 0)),
    "hyper_body": ((0, 1), (1, 2)),
}


@dataclass
class SPCMGRConfig:
    """Hyper-parameters of SPC-MGR (defaults: the release's flags and its non-KGBD settings;
    per protocol in ``protocol_overrides``, lines in the plugin README).

    ``hidden``: node feature size (8, [R] 42). ``heads``: attention heads per level (8; 16 on
    KGBD, [R] 43, 60, 144-148). ``fusion_lambda``: weight of the collaborative relations (1;
    0 is the release's ``struct_only`` ablation, [R] 33, 63, 339-343). ``temperature``: the
    prototype contrast's t (0.07, [R] 51). ``eps`` / ``min_samples``: DBSCAN (0.6, 2, [R]
    53-54). ``k1`` / ``k2``: the re-ranking's neighbourhoods (20, 6, [R] 44). ``lr``: Adam
    (0.00035, [R] 52). ``batch_size``: 128 (256 on KGBD, [R] 96-109). ``epochs``: a fixed
    budget (the release stops on test Rank-1, which the harness never does). ``balanced``: the
    release's class-balanced training set built with the identity labels (all datasets but
    KGBD, [P] 138-144). ``root_centre``: subtract joint 0 per frame, as [P] 24-27 does.
    """

    hidden: PositiveInt = 8
    heads: PositiveInt = 8
    fusion_lambda: Probability = 1.0
    temperature: PositiveFloat = 0.07
    eps: PositiveFloat = 0.6
    min_samples: PositiveInt = 2
    k1: PositiveInt = 20
    k2: PositiveInt = 6
    lr: PositiveFloat = 3.5e-4
    batch_size: PositiveInt = 128
    epochs: NonNegativeInt = 200
    balanced: bool = True
    root_centre: bool = True
    embed_batch: PositiveInt = run_setting(2048)


# --------------------------------------------------------------------------------------------
# Graphs
# --------------------------------------------------------------------------------------------


def hyper_body_groups(layout: Layout) -> tuple[tuple[int, ...], ...]:
    """Upper body, pelvis, legs ([P] 426-460), derived from the layout so that any layout works:
    the pelvis role, the two leg bodies without it, and every other joint. On Kinect v1/v2 and
    CASIA-B's 14 joints this gives the release's lists exactly."""
    if len(layout.bodies) != 5:
        raise ValueError(f"spc-mgr needs the layout's 5 body groups; {layout.name!r} has {len(layout.bodies)}")
    middle = tuple(sorted(layout.role_joints(["pelvis"], "spc-mgr")["pelvis"]))
    lower = tuple(sorted((set(layout.bodies[0]) | set(layout.bodies[1])) - set(middle)))
    upper = tuple(j for j in range(layout.num_joints) if j not in middle and j not in lower)
    if not upper or not lower:
        raise ValueError(f"layout {layout.name!r}: no upper body or no legs left for spc-mgr's hyper-body level")
    return upper, middle, lower


def level_groups(layout: Layout) -> dict[str, tuple[tuple[int, ...], ...]]:
    if len(layout.parts) != 10:
        raise ValueError(f"spc-mgr needs the layout's 10 part groups; {layout.name!r} has {len(layout.parts)}")
    return {"part": tuple(layout.parts), "body": tuple(layout.bodies), "hyper_body": hyper_body_groups(layout)}


def pooling_matrix(groups: tuple[tuple[int, ...], ...], num_joints: int) -> np.ndarray:
    """[n, J]: node position = mean of its joints ([P] 374-386, 413-419, 455-459)."""
    pool = np.zeros((len(groups), num_joints), dtype=np.float32)
    for g, joints in enumerate(groups):
        pool[g, list(joints)] = 1.0 / len(joints)
    return pool


def neighbour_mask(num_nodes: int, edges: tuple[tuple[int, int], ...]) -> np.ndarray:
    """Bool [n, n]: linked or the node itself (the release's ``adj_to_bias`` with nhood 1, [P]
    688-699: everything else gets -1e9 before the softmax)."""
    mask = np.eye(num_nodes, dtype=bool)
    for a, b in edges:
        mask[a, b] = mask[b, a] = True
    return mask


# --------------------------------------------------------------------------------------------
# Network
# --------------------------------------------------------------------------------------------


def _glorot_uniform_(t: torch.Tensor, fan_in: int, fan_out: int) -> None:
    """TF's default kernel initialiser for the release's 1x1 convolutions ([L] 11-15)."""
    bound = (6.0 / (fan_in + fan_out)) ** 0.5
    with torch.no_grad():
        t.uniform_(-bound, bound)


class LevelAttention(nn.Module):
    """One level's structural relations: a linear node embedding, then GAT heads restricted to
    graph neighbours, averaged ([R] 271-283; [G] 8-27; [L] 6-38)."""

    def __init__(self, mask: np.ndarray, hidden: int, heads: int, in_dim: int = 3) -> None:
        super().__init__()
        # W_h ~ N(0, 1), b_h = 0 ([R] 272-273)
        self.embed_weight = nn.Parameter(torch.randn(in_dim, hidden))
        self.embed_bias = nn.Parameter(torch.zeros(hidden))
        # per head: seq_fts kernel (no bias), f_1 and f_2 kernels with biases, output bias ([L] 11-29)
        self.head_weight = nn.Parameter(torch.empty(heads, hidden, hidden))
        self.score_src = nn.Parameter(torch.empty(heads, hidden))
        self.score_src_bias = nn.Parameter(torch.zeros(heads))
        self.score_dst = nn.Parameter(torch.empty(heads, hidden))
        self.score_dst_bias = nn.Parameter(torch.zeros(heads))
        self.out_bias = nn.Parameter(torch.zeros(heads, hidden))
        for h in range(heads):
            _glorot_uniform_(self.head_weight[h], hidden, hidden)
            _glorot_uniform_(self.score_src[h], hidden, 1)
            _glorot_uniform_(self.score_dst[h], hidden, 1)
        self.register_buffer("mask", torch.as_tensor(mask, dtype=torch.bool))

    def forward(self, nodes: torch.Tensor) -> torch.Tensor:
        """[M, n, 3] node positions -> [M, n, hidden]."""
        h = nodes @ self.embed_weight + self.embed_bias
        seq = torch.einsum("mnd,hde->mhne", h, self.head_weight)
        src = torch.einsum("mhne,he->mhn", seq, self.score_src) + self.score_src_bias[:, None]
        dst = torch.einsum("mhne,he->mhn", seq, self.score_dst) + self.score_dst_bias[:, None]
        logits = nn.functional.leaky_relu(src[..., :, None] + dst[..., None, :], 0.2)  # TF's default slope
        coefs = softmax_last_dim(logits.masked_fill(~self.mask, float("-inf")))
        out = nn.functional.elu(coefs @ seq + self.out_bias[:, None, :])
        return out.mean(dim=1)  # r_pool: the heads' mean ([G] 25-27)


def relation_context(keys: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
    """Collaborative relations ([R] 286-294): each query node's mean of the key nodes weighted by
    softmax over keys of the raw dot products <query, key> (no scaling). [M, nq, d]."""
    weights = softmax_last_dim(queries @ keys.transpose(1, 2))
    return weights @ keys


class MultiLevelGraphEncoder(nn.Module):
    """Part, body and hyper-body graphs of every frame, fused, averaged over time ([R] 297-368)."""

    def __init__(self, layout: Layout, hidden: int, heads: int, fusion_lambda: float, in_dim: int = 3) -> None:
        super().__init__()
        groups = level_groups(layout)
        self.hidden = hidden
        self.fusion_lambda = fusion_lambda
        self.levels = nn.ModuleDict({
            name: LevelAttention(neighbour_mask(len(groups[name]), LEVEL_EDGES[name]), hidden, heads, in_dim)
            for name in LEVELS})
        for name in LEVELS:
            self.register_buffer(f"pool_{name}", torch.as_tensor(pooling_matrix(groups[name], layout.num_joints)))
        # W_self_2/3/4 and W_cs_23/24/34, all ~ N(0, 1) ([R] 307-314)
        self.self_weight = nn.Parameter(torch.randn(3, hidden, hidden))
        self.cross_weight = nn.Parameter(torch.randn(3, hidden, hidden))

    @property
    def out_dim(self) -> int:
        return self.hidden * sum(getattr(self, f"pool_{name}").shape[0] for name in LEVELS)

    def level_features(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """[M, J, 3] frames -> fused part [M, 10, d], body [M, 5, d], hyper-body [M, 3, d]."""
        part, body, hyper = (self.levels[name](getattr(self, f"pool_{name}") @ frames) for name in LEVELS)
        lam = self.fusion_lambda
        if lam == 0:
            return part, body, hyper
        ws, wc = self.self_weight, self.cross_weight
        # relations use the levels' structural features before any fusion ([R] 316-343)
        fused_part = part + lam * (relation_context(part, part) @ ws[0] + relation_context(body, part) @ wc[0]
                                   + relation_context(hyper, part) @ wc[1])
        fused_body = body + lam * (relation_context(body, body) @ ws[1] + relation_context(hyper, body) @ wc[2])
        fused_hyper = hyper + lam * (relation_context(hyper, hyper) @ ws[2])
        return fused_part, fused_body, fused_hyper

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        """[B, f, J, 3] -> [B, 144]: per level, node-major features averaged over frames, then
        concatenated part, body, hyper-body ([R] 359-368)."""
        b, f = windows.shape[:2]
        levels = self.level_features(windows.reshape(b * f, *windows.shape[2:]))
        return torch.cat([z.reshape(b, f, -1).mean(dim=1) for z in levels], dim=-1)


def prototype_contrastive_loss(features: torch.Tensor, protos: torch.Tensor, labels: torch.Tensor,
                               temperature: float) -> torch.Tensor:
    """Cross-entropy of cos(feature, prototypes) / t against the cluster label ([R] 372-378)."""
    logits = nn.functional.normalize(features, dim=1) @ nn.functional.normalize(protos, dim=1).T / temperature
    return nn.functional.cross_entropy(logits, labels)


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------


class SPCMGR(TorchModel):
    """Multi-level skeleton graphs with structural and collaborative relations, clustered every
    epoch; prototype contrast. Unsupervised."""

    published_as = "SPC-MGR"
    modality = "skeleton"
    config_class: ClassVar[type] = SPCMGRConfig
    description = ("SPC-MGR: part/body/hyper-body graph attention with cross-level relations, clustered each epoch "
                   "(Jaccard + DBSCAN), skeleton prototype contrast; unsupervised")
    citation = ("Rao, Miao: Skeleton prototype contrastive learning with multi-level graph relation modeling for "
                "unsupervised person re-identification, arXiv 2208.11814 (2022)")
    protocol_overrides: ClassVar[dict[str, dict[str, Any]]] = {
        # [R] 107-112: IAS and KS20 t 0.08, eps 0.8, batch 128
        **dict.fromkeys(("ias", "ias-retrieval", "ks20", "ks20-retrieval"), {"temperature": 0.08, "eps": 0.8}),
        # [R] 107-109, 113-114: BIWI t 0.07, eps 0.6 (the flag's default), batch 128
        **dict.fromkeys(("biwi",), {"temperature": 0.07, "eps": 0.6}),
        # [R] 96-100, 144-145; [P] 138: KGBD batch 256, min_samples 4, t 0.06, eps 0.6, 16 heads, no balancing
        **dict.fromkeys(("kgbd", "kgbd-retrieval"), {"batch_size": 256, "min_samples": 4, "temperature": 0.06,
                                                     "eps": 0.6, "heads": 16, "balanced": False}),
        # [R] 101-106: CASIA-B batch 128, min_samples 2, eps 0.75, t 0.075
        **dict.fromkeys(("casia-b", "casia-b-npy", "casia-b-cme", "casia-b-coco-cme"),
                        {"temperature": 0.075, "eps": 0.75, "min_samples": 2}),
    }
    budget_overrides: ClassVar[dict[str, dict[str, Any]]] = dict.fromkeys(_SYNTHETIC, {"epochs": 30})
    protocol_notes: ClassVar[dict[str, str]] = dict.fromkeys(_SYNTHETIC, "CPU budget: 30 epochs (default 200: about 3 min per trial on 2 idle threads here, by `make bench`)")

    def __init__(self, config: SPCMGRConfig, spec: DataSpec) -> None:
        super().__init__(config, spec)
        if spec.layout is None:
            raise ValueError("spc-mgr needs a skeleton layout")
        self.layout = spec.layout
        self.net = self._build()

    def _build(self) -> MultiLevelGraphEncoder:
        cfg = self.config
        # three coordinates per node for every layout (2D layouts carry z = 0; [R] 34 ft_size 3)
        return MultiLevelGraphEncoder(self.layout, cfg.hidden, cfg.heads, cfg.fusion_lambda)

    def _inputs(self, data: Any) -> torch.Tensor:
        x = np.asarray(data, dtype=np.float32)
        if x.ndim != 4 or x.shape[2:] != (self.layout.num_joints, 3):
            raise ValueError(f"spc-mgr expects windows [N, f, {self.layout.num_joints}, 3], got {x.shape}")
        if self.config.root_centre:  # [P] 24-27: joint 0 of every frame subtracted
            x = x - x[:, :, :1]
        return torch.from_numpy(np.ascontiguousarray(x))

    #: Windows per forward pass when the training set is clustered (fixed: the features, and so the
    #: clusters, would otherwise depend on a run setting in their last bits).
    cluster_batch: ClassVar[int] = 2048
    training_attributes = ("optimizer",)

    def _features(self, x: torch.Tensor, step: int) -> torch.Tensor:
        return torch.cat([self.net(x[s:s + step].to(self.device)).cpu() for s in range(0, len(x), step)])

    def start_fit(self, train: SampleSet, ctx: TrialContext) -> None:
        cfg = self.config
        rng = np.random.default_rng(ctx.seed)
        self.net = self._build().to(self.device)
        x_all = self._inputs(train.data)
        if cfg.balanced:  # [P] 138-144, 641-678: built with the labels, shuffled once, never again
            order = class_balanced_order(train.labels, cfg.batch_size, rng)
            x_all = x_all[torch.as_tensor(rng.permutation(order))]
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=cfg.lr, foreach=True)  # [R] 358
        if len(x_all) == 0:
            raise ValueError("spc-mgr: the training split has no windows")
        self.batch = min(cfg.batch_size, len(x_all))
        self.x_all = x_all[:(len(x_all) // self.batch) * self.batch]  # whole batches only ([R] 403-405)

    def num_epochs(self) -> int:
        return self.config.epochs

    def train_epoch(self, epoch: int, ctx: TrialContext) -> dict[str, float]:
        cfg, x_all, batch, usable = self.config, self.x_all, self.batch, len(self.x_all)
        with torch.no_grad():
            self.net.eval()
            feats = self._features(x_all, self.cluster_batch)
        labels = pseudo_labels(feats.numpy(), cfg.eps, cfg.min_samples, cfg.k1, cfg.k2)  # [R] 709-715
        keep = np.flatnonzero(labels >= 0)  # outliers sit the epoch out ([R] 717-722)
        metrics: dict[str, float] = {"clusters": float(labels.max() + 1) if len(labels) else 0.0,
                                     "kept": len(keep) / max(1, usable)}
        if len(keep) < 2 or labels.max() < 0:
            return {"loss": float("nan"), **metrics}
        # plain means of the raw features, recomputed every epoch, no memory ([R] 726-742)
        protos = torch.as_tensor(prototypes(feats.numpy(), labels)).to(self.device)
        kept_x, kept_labels = x_all[torch.as_tensor(keep)], torch.as_tensor(labels[keep], dtype=torch.int64)
        self.net.train()
        total, steps = 0.0, 0
        # whole batches in the kept order ([R] 744-772); a set smaller than one batch trains once
        last = len(keep) - batch + 1 if len(keep) >= batch else 1
        for s in range(0, last, batch):
            xb, yb = kept_x[s:s + batch].to(self.device), kept_labels[s:s + batch].to(self.device)
            loss = prototype_contrastive_loss(self.net(xb), protos, yb, cfg.temperature)
            # [R] 385-387: a batch whose labels sum to 0 (all in cluster 0) has loss 0; Adam
            # still steps on its moments, as TF's does on the zero gradient
            if int(yb.sum()) == 0:
                loss = loss * 0.0
            total += descend(self.optimizer, loss)
            steps += 1
        metrics["loss"] = total / max(1, steps)
        return metrics

    def embedding_dim(self, samples: SampleSet) -> int:
        """The concatenated per-level features, raw (144-d; [R] 367, 505-508)."""
        return self.net.out_dim

    def embed_inputs(self, samples: SampleSet) -> torch.Tensor:
        return self._inputs(samples.data)

    def features(self, batch: torch.Tensor) -> torch.Tensor:
        return self.net(batch)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.net.parameters())

    @classmethod
    def search_space(cls) -> dict[str, Any] | None:
        return {"temperature": {"choice": [0.06, 0.07, 0.075, 0.08]}, "eps": {"choice": [0.6, 0.75, 0.8]},
                "min_samples": {"choice": [2, 4]}}
