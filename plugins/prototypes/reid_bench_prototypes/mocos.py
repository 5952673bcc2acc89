"""MoCos: motif guided graph transformer with combinatorial skeleton prototype learning (Rao &
Miao, AAAI 2025).

From the release, Kali-Hac/MoCos at commit 64fe918 (``[M]`` is ``MoCos.py``, last changed in
a3a83c2; ``[P]`` is ``utils/process_SG.py`` and ``[C]`` ``utils/process_cme_SG.py``, both the
very blobs TranSG's release ships), re-expressed in PyTorch. The encoder is TranSG's skeleton
graph transformer with its heads restricted by motifs ("MGT"): every joint of every frame is
embedded (3 -> H -> H), a projected Laplacian positional encoding is added, and two stacked
layers of eight heads follow, of which head 0, 6 and 7 relate every joint to every joint while
heads 1-5 multiply their scores by a motif: the 1-, 2- and 3-hop neighbourhoods of the joint
graph (hierarchical structural motifs) and, for the arm joints and for the leg joints, all
other limb joints (gait collaborative motifs). Training is supervised ("CSP"): every epoch the
ground-truth identities' mean window features are the prototypes; per batch a random subset of
joints (each dropped with probability p_s) and of frames (p_t) is drawn; the mean of the kept
joints of each frame (a sub-skeleton) is contrasted with the prototypes through two learned maps
(temperature t2), and the mean of those over the kept frames (a sub-tracklet) by cosine
(temperature t1). The embedding is the window's unmasked mean node feature.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from reid_bench.api import (DataSpec, Fraction, Layout, NonNegativeInt, PositiveFloat, PositiveInt, Probability,
                            SampleSet, TorchModel, TrialContext, run_setting)
from reid_bench.samples import class_balanced_order
from reid_bench.torchutil import Dropout
from reid_bench_prototypes.clustering import prototypes
from reid_bench_prototypes.transg import (_batch_norm, _dense, adjacency, gpc_sequence_loss, gpc_skeleton_loss,
                                          laplacian_positional_encoding)

_SYNTHETIC = ("synth-gait", "synth-gait-dev", "synth-gait-retrieval")
_IAS = ("ias", "ias-retrieval")
_KS20 = ("ks20", "ks20-retrieval")
_KGBD = ("kgbd", "kgbd-retrieval")
_CASIA = ("casia-b", "casia-b-npy", "casia-b-cme", "casia-b-coco-cme")

#: Motif heads: head i (1..5) of every layer multiplies its scores by motif i ([M] 561-575);
#: every other head relates all joints ([M] 576-579).
MOTIF_NAMES: tuple[str, ...] = ("full", "1-hop", "2-hop", "3-hop", "arms", "legs")


@dataclass
class MoCosConfig:
    """Hyper-parameters of MoCos (defaults: the release's flags, [M] 28-59, and its settings for
    datasets it does not name, [M] 92-93; per protocol and fold in ``protocol_overrides`` /
    ``fold_overrides``, lines in the plugin README).

    ``hidden``: H (128, [M] 48). ``heads``: heads per layer (8, [M] 49); heads 1-5 carry the
    motifs, so fewer than 6 heads drop the last motifs, as the release's loop would.
    ``layers``: stacked MGT layers (2, [M] 50). ``motifs``: false makes every head full-relation
    (an ablation: the release's ``--motif_all`` flag, [M] 59, is read nowhere).
    ``released_motif_gaps``: the release's 20-joint 3-hop motif lacks HipCenter -> ShoulderLeft
    and HipCenter -> ShoulderRight ([M] 299, row 0), which are 3 hops apart; true keeps that gap
    on kinect-v1-20 (IAS, BIWI, KGBD), false uses the plain 3-hop neighbourhood.
    ``fusion_lambda``: lambda, the sub-tracklet CSP's share, (1 - lambda) the sub-skeleton's
    (0.5, [M] 51, 650). ``t_tracklet`` / ``t_skeleton``: t1 0.1 and t2 10 ([M] 52-53).
    ``pos_enc``: add the Laplacian positional encoding ([M] 54, 546-547). ``enc_k``: its
    eigenvectors (10, [M] 55). ``rand_flip``: random sign flips of the eigenvectors per
    training batch ([M] 56, 1096-1100). ``prob_s``: chance that a joint is left out of a
    batch's sub-skeletons (0.5, [M] 58, 710-716). ``prob_t``: chance that a frame is left out of
    its sub-tracklets (0.0, [M] 57, 695-702). ``dropout``: 0.5 ([M] 592, 599).
    ``bn_running_stats``: false reproduces the release, whose batch norms never update their
    moving statistics (no ``UPDATE_OPS`` dependency on the train op, [M] 596, 602, 651).
    ``lr``: Adam (0.00035, [M] 35, 81-93, 541). ``batch_size``: 256 ([M] 45, 121).
    ``epochs``: a fixed budget, the release's patience (150; 100 on CASIA-B, [M] 40, 89-90, 120;
    the release stops on test Rank-1, which the harness never does). ``balanced``: the
    release's class-balanced training set (all datasets but KGBD, [P] 171-172; [C] 88-89).
    ``root_centre``: subtract joint 0 per frame ([P] 28-31, 43-45).
    """

    hidden: PositiveInt = 128
    heads: PositiveInt = 8
    layers: PositiveInt = 2
    motifs: bool = True
    released_motif_gaps: bool = True
    fusion_lambda: Probability = 0.5
    t_tracklet: PositiveFloat = 0.1
    t_skeleton: PositiveFloat = 10.0
    pos_enc: bool = True
    enc_k: PositiveInt = 10
    rand_flip: bool = True
    prob_s: Fraction = 0.5
    prob_t: Fraction = 0.0
    dropout: Fraction = 0.5
    bn_running_stats: bool = False
    lr: PositiveFloat = 3.5e-4
    batch_size: PositiveInt = 256
    epochs: NonNegativeInt = 150
    balanced: bool = True
    root_centre: bool = True
    embed_batch: PositiveInt = run_setting(1024)


# --------------------------------------------------------------------------------------------
# Motifs
# --------------------------------------------------------------------------------------------


def hop_distances(layout: Layout) -> np.ndarray:
    """[J, J] shortest path lengths (in bones) of the layout's joint graph."""
    n = layout.num_joints
    adj = adjacency(layout) > 0
    dist = np.full((n, n), -1, dtype=np.int64)
    for start in range(n):
        dist[start, start] = 0
        frontier, hops = [start], 0
        while frontier:
            hops += 1
            nxt = [j for i in frontier for j in np.flatnonzero(adj[i]) if dist[start, j] < 0]
            for j in nxt:
                dist[start, j] = hops
            frontier = sorted(set(nxt))
    return dist


def limb_groups(layout: Layout) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(arm joints, leg joints): the layout's bodies that hold the shoulders and the hips.

    The release lists them per skeleton: 20 joints [M] 321-353, 25 joints (hand tips and thumbs
    in the arms) [M] 442-477, 14 joints [M] 224-251; the harness layouts' ``bodies`` are those
    groups."""
    roles = layout.role_joints(("shoulder_left", "shoulder_right", "hip_left", "hip_right"), "mocos's gait motifs")

    def body(role: str) -> set[int]:
        joint = roles[role][0]
        return next(set(b) for b in layout.bodies if joint in b)

    arms = body("shoulder_left") | body("shoulder_right")
    legs = body("hip_left") | body("hip_right")
    if arms & legs:
        raise ValueError(f"mocos: layout {layout.name!r} puts an arm and a leg in one body; "
                         "its gait motifs need them apart")
    return tuple(sorted(arms)), tuple(sorted(legs))


def motif_matrices(layout: Layout, released_gaps: bool = True) -> np.ndarray:
    """[5, J, J] 0/1 motifs, row = attending joint, column = attended joint, no self loops.

    0-2: joints within 1, 2, 3 bones (hierarchical structural motifs; 20 joints [M] 255-318,
    25 joints [M] 356-439, 14 joints [M] 172-221). 3: every arm joint to every other limb joint
    (arms and legs), 4: every leg joint to every other limb joint (gait collaborative motifs,
    "hand + arm" and "foot + leg"; the rows of the other joints are empty). Built from the
    layout by rule; equal, entry by entry, to the release's hand-written matrices for 20, 25 and
    14 joints except one gap the release has, kept when ``released_gaps`` (20 joints only: its
    3-hop row of HipCenter omits both shoulders, [M] 299)."""
    n = layout.num_joints
    dist = hop_distances(layout)
    out = np.zeros((5, n, n), dtype=np.float32)
    for order in (1, 2, 3):
        out[order - 1] = (dist >= 1) & (dist <= order)
    arms, legs = limb_groups(layout)
    limbs = np.zeros(n, dtype=bool)
    limbs[list(arms) + list(legs)] = True
    for slot, rows in ((3, arms), (4, legs)):
        for i in rows:
            out[slot, i] = limbs
            out[slot, i, i] = 0.0
    if released_gaps and layout.name == "kinect-v1-20":
        roles = dict(layout.roles)
        pelvis = roles["pelvis"][0]
        for shoulder in ("shoulder_left", "shoulder_right"):
            out[2, pelvis, roles[shoulder][0]] = 0.0
    return out


def head_masks(layout: Layout, heads: int, motifs: bool = True, released_gaps: bool = True) -> np.ndarray:
    """[heads, J, J] multipliers of each head's scores: ones for full-relation heads, head i in
    1..5 motif i ([M] 561-579)."""
    n = layout.num_joints
    masks = np.ones((heads, n, n), dtype=np.float32)
    if motifs:
        mats = motif_matrices(layout, released_gaps)
        for i in range(1, min(heads, 6)):
            masks[i] = mats[i - 1]
    return masks


# --------------------------------------------------------------------------------------------
# Network
# --------------------------------------------------------------------------------------------


class MotifAttention(nn.Module):
    """One MGT layer ([M] 549-590): per head bias-free Q, K, V maps H -> H/M drawn from N(0, 1);
    scores QK^T **multiplied by the head's motif**, divided by sqrt(H/M), clipped to [-5, 5],
    softmax over all J joints of the frame; the heads' outputs concatenated. A motif zeroes the
    scores outside it, so those joints stay in the softmax with score 0 (a joint whose motif row
    is empty attends uniformly): the release's multiplicative masking, not a -inf mask."""

    def __init__(self, hidden: int, heads: int) -> None:
        super().__init__()
        width = hidden // heads
        self.query = nn.Parameter(torch.randn(heads, hidden, width))
        self.key = nn.Parameter(torch.randn(heads, hidden, width))
        self.value = nn.Parameter(torch.randn(heads, hidden, width))
        self.scale = 1.0 / math.sqrt(width)

    def forward(self, h: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """[B, f, J, H] and head masks [M, J, J] -> [B, f, J, H]."""
        heads, hidden, width = self.query.shape
        maps = torch.cat([self.query, self.key, self.value]).permute(1, 0, 2).reshape(hidden, 3 * heads * width)
        q, k, v = (h @ maps).view(*h.shape[:3], 3, heads, width).permute(3, 0, 1, 4, 2, 5)  # 3 x [B, f, M, J, w]
        scores = torch.clamp((q @ k.transpose(-1, -2)) * masks * self.scale, -5.0, 5.0)
        out = torch.softmax(scores, dim=-1) @ v  # [B, f, M, J, w]
        return out.permute(0, 1, 3, 2, 4).reshape(*h.shape[:3], heads * width)


class MotifGraphTransformer(nn.Module):
    """The encoder ([M] 535-603): node embedding, Laplacian positional encoding, L motif-guided
    layers, then projection + residual + BN and feed-forward + residual + BN (TranSG's layout
    after the attention, [M] 592-602)."""

    def __init__(self, masks: np.ndarray, pos_dim: int, hidden: int, heads: int, layers: int, dropout: float,
                 running_stats: bool, pos_enc: bool = True) -> None:
        super().__init__()
        if hidden % heads:
            raise ValueError(f"mocos: hidden={hidden} must be a multiple of heads={heads}")
        self.use_pos = pos_enc
        self.embed_in = _dense(3, hidden)  # [M] 537, relu
        self.embed_out = _dense(hidden, hidden)  # [M] 539
        self.pos_proj = _dense(pos_dim, hidden)  # [M] 543-544 (built even when unused, as there)
        self.attention = nn.ModuleList(MotifAttention(hidden, heads) for _ in range(layers))
        self.proj = _dense(hidden, hidden)  # [M] 593
        self.norm1 = _batch_norm(hidden, running_stats)  # [M] 596
        self.ffn_in = _dense(hidden, 2 * hidden)  # [M] 598, relu
        self.ffn_out = _dense(2 * hidden, hidden)  # [M] 600
        self.norm2 = _batch_norm(hidden, running_stats)  # [M] 602
        self.dropout = Dropout(dropout)
        # saved with the weights: a model trained on one skeleton's motifs refuses another's
        self.register_buffer("masks", torch.as_tensor(masks, dtype=torch.float32))

    @staticmethod
    def _norm(bn: nn.BatchNorm1d, h: torch.Tensor) -> torch.Tensor:
        return bn(h.reshape(-1, h.shape[-1])).reshape(h.shape)

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """Windows [B, f, J, 3] and eigenvectors [J, k] -> node features [B, f, J, H]."""
        h0 = self.embed_out(torch.relu(self.embed_in(x)))
        if self.use_pos:
            h0 = h0 + self.pos_proj(pos)
        h = h0
        for layer in self.attention:
            h = layer(h, self.masks)
        h = self._norm(self.norm1, self.proj(self.dropout(h)) + h0)  # residual to the encoded input, [M] 592-596
        return self._norm(self.norm2, self.ffn_out(self.dropout(torch.relu(self.ffn_in(h)))) + h)  # [M] 597-602


class MoCosNet(nn.Module):
    """The encoder and the sub-skeleton CSP's two H x H maps (N(0, 1), [M] 607-613), which only
    training uses."""

    def __init__(self, masks: np.ndarray, pos_dim: int, cfg: MoCosConfig) -> None:
        super().__init__()
        h = cfg.hidden
        self.encoder = MotifGraphTransformer(masks, pos_dim, h, cfg.heads, cfg.layers, cfg.dropout,
                                             cfg.bn_running_stats, cfg.pos_enc)
        self.skeleton_query = nn.Parameter(torch.randn(h, h))
        self.skeleton_key = nn.Parameter(torch.randn(h, h))


def window_embedding(nodes: torch.Tensor) -> torch.Tensor:
    """Node features [B, f, J, H] -> [B, H]: mean of the joints, then of the frames ([M] 622-627)."""
    return nodes.mean(dim=2).mean(dim=1)


def combinatorial_representations(nodes: torch.Tensor, keep_joints: torch.Tensor, keep_frames: torch.Tensor
                                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Sub-skeletons [B, f, H]: each frame's mean over the kept joints ([M] 642-643); sub-tracklets
    [B, H]: their mean over the kept frames ([M] 645-646). The masks are shared by the batch."""
    sub_skeletons = nodes[:, :, keep_joints].mean(dim=2)
    return sub_skeletons, sub_skeletons[:, keep_frames].mean(dim=1)


def random_keep(n: int, drop: float, rng: np.random.Generator) -> torch.Tensor:
    """Bool [n]: position i kept when u_i >= ``drop`` (u uniform on [0, 1)), drawn again until one
    is kept ([M] 695-716). ``drop`` 0 keeps everything."""
    if not 0.0 <= drop < 1.0:
        raise ValueError(f"mocos: a drop probability must be in [0, 1), got {drop}")
    while True:
        keep = rng.random(n) >= drop
        if keep.any():
            return torch.from_numpy(keep)


def csp_objective(net: MoCosNet, x: torch.Tensor, pos: torch.Tensor, protos: torch.Tensor, labels: torch.Tensor,
                  keep_joints: torch.Tensor, keep_frames: torch.Tensor, cfg: MoCosConfig
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(1 - lambda) x sub-skeleton CSP + lambda x sub-tracklet CSP ([M] 648-650); returns (total,
    sub-skeleton, sub-tracklet).

    Sub-tracklet CSP: cross-entropy of cos(sub-tracklet, prototypes) / t1 against the identity
    ([M] 634-640). Sub-skeleton CSP: every sub-skeleton's logits <s W_1, p W_2> / t2,
    unnormalised, cross-entropy towards the window's identity summed over the frames and
    averaged over the windows ([M] 606-619). These are TranSG's two GPC formulas ([T] 333-346,
    384-390), here on the masked combinations; the functions are shared."""
    nodes = net.encoder(x, pos)
    sub_skeletons, sub_tracklets = combinatorial_representations(nodes, keep_joints, keep_frames)
    ssk = gpc_skeleton_loss(sub_skeletons, protos, labels, net.skeleton_query, net.skeleton_key, cfg.t_skeleton)
    stra = gpc_sequence_loss(sub_tracklets, protos, labels, cfg.t_tracklet)
    return (1 - cfg.fusion_lambda) * ssk + cfg.fusion_lambda * stra, ssk, stra


def release_profiler_count(cfg: MoCosConfig) -> int:
    """What the release's ``--model_size 1`` (TF profiler over the trainable variables, [M]
    658-670) counts: every used variable plus one unused copy of each head map and of the two
    CSP maps. ``W_head`` is a lambda creating a ``tf.Variable`` that is passed as the *initial
    value* of another ``tf.Variable`` ([M] 549, 554-556, 607, 610-611); TF 1 registers both as
    trainable, the loss reaches only the outer one. 363,520 on the default setting: 232,448
    used + 131,072 copies, independent of J and f."""
    h, width = cfg.hidden, cfg.hidden // cfg.heads
    used = (3 * h + h) + (h * h + h) + (cfg.enc_k * h + h) + cfg.layers * cfg.heads * 3 * h * width \
        + (h * h + h) + 2 * h + (h * 2 * h + 2 * h) + (2 * h * h + h) + 2 * h + 2 * h * h
    copies = cfg.layers * cfg.heads * 3 * h * width + 2 * h * h
    return used + copies


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------


class MoCos(TorchModel):
    """A motif-guided skeleton graph transformer trained by contrasting random sub-skeletons and
    sub-tracklets with the identities' prototypes. Supervised."""

    published_as = "MoCos"
    modality = "skeleton"
    config_class: ClassVar[type] = MoCosConfig
    description = ("MoCos: skeleton graph transformer with structural (1-3 hop) and gait (limb) motif heads, "
                   "Laplacian positional encoding; sub-skeleton / sub-tracklet prototype contrast; supervised")
    citation = ("Rao, Miao: Motif guided graph transformer with combinatorial skeleton prototype learning for "
                "skeleton-based person re-identification, AAAI 2025")
    protocol_overrides: ClassVar[dict[str, dict[str, Any]]] = {
        # [M] 93-99: IAS no sign flips; probe A p_s 0.5, p_t 0.1, lambda 0.75 (B: fold_overrides)
        **dict.fromkeys(_IAS, {"rand_flip": False, "prob_s": 0.5, "prob_t": 0.1, "fusion_lambda": 0.75}),
        # [M] 104-108: BIWI probe Walking p_s 0.25, p_t 0.25, lambda 0.9 (Still: fold_overrides)
        "biwi": {"prob_s": 0.25, "prob_t": 0.25, "fusion_lambda": 0.9},
        # [M] 113-116: KS20 p_s 0.25, p_t 0.25, lambda 0.9
        **dict.fromkeys(_KS20, {"prob_s": 0.25, "prob_t": 0.25, "fusion_lambda": 0.9}),
        # [M] 80-85; [P] 171: KGBD no sign flips, p_s 0.5, p_t 0.25, lambda 0.9, no class balancing
        **dict.fromkeys(_KGBD, {"rand_flip": False, "prob_s": 0.5, "prob_t": 0.25, "fusion_lambda": 0.9,
                                "balanced": False}),
        # [M] 86-91: CASIA-B no sign flips, patience 100, lambda 1 (sub-tracklet CSP only)
        **dict.fromkeys(_CASIA, {"rand_flip": False, "epochs": 100, "fusion_lambda": 1.0}),
    }
    fold_overrides: ClassVar[dict[str, dict[str, dict[str, Any]]]] = {
        # [M] 100-103: IAS probe B p_s 0.25, p_t 0.25 (lambda 0.75 as A)
        "ias": {"B": {"prob_s": 0.25, "prob_t": 0.25}},
        "ias-retrieval": {"B-A": {"prob_s": 0.25, "prob_t": 0.25}},
        # [M] 109-112: BIWI probe Still lambda 0.25 (fold S ranks Still windows against Walking ones)
        "biwi": {"S": {"fusion_lambda": 0.25}},
    }
    budget_overrides: ClassVar[dict[str, dict[str, Any]]] = dict.fromkeys(_SYNTHETIC, {"epochs": 30})
    protocol_notes: ClassVar[dict[str, str]] = dict.fromkeys(
        _SYNTHETIC, "CPU budget: 30 epochs (default 150, the release's patience; about 5.5 s an epoch of synth-gait's "
                    "2,304 training windows on 2 idle threads here, by `make bench`: 3 min per trial, 14 at 150)")

    def __init__(self, config: MoCosConfig, spec: DataSpec) -> None:
        super().__init__(config, spec)
        if spec.layout is None:
            raise ValueError("mocos needs a skeleton layout")
        self.layout = spec.layout
        n = self.layout.num_joints
        if config.enc_k > n - 1:
            raise ValueError(f"mocos: enc_k={config.enc_k} needs more than {config.enc_k} joints; the layout has {n}")
        if config.hidden % config.heads:
            raise ValueError(f"mocos: hidden={config.hidden} must be a multiple of heads={config.heads}")
        self.pos = torch.from_numpy(laplacian_positional_encoding(adjacency(self.layout), config.enc_k))
        self.masks = head_masks(self.layout, config.heads, config.motifs, config.released_motif_gaps)
        self.window = spec.window or 6
        self.net = self._build()

    def _build(self) -> MoCosNet:
        return MoCosNet(self.masks, self.config.enc_k, self.config)

    def _inputs(self, data: Any) -> torch.Tensor:
        x = np.asarray(data, dtype=np.float32)
        if x.ndim != 4 or x.shape[2:] != (self.layout.num_joints, 3):
            raise ValueError(f"mocos expects windows [N, f, {self.layout.num_joints}, 3], got {x.shape}")
        if self.config.root_centre:  # [P] 28-31, 43-45: joint 0 of every frame subtracted
            x = x - x[:, :, :1]
        return torch.from_numpy(np.ascontiguousarray(x))

    #: Windows per forward pass when the prototypes are computed during training (fixed: they
    #: would otherwise depend on a run setting in their last bits).
    prototype_batch: ClassVar[int] = 1024
    training_attributes = ("optimizer", "rng")

    @torch.no_grad()
    def _window_features(self, x: torch.Tensor, step: int) -> torch.Tensor:
        """Unmasked window embeddings in inference mode (dropout off, BN on its moving
        statistics), as the release computes them for prototypes and evaluation ([M] 718-725,
        749-754, 771-776)."""
        self.net.eval()
        pos = self.pos.to(self.device)
        out = [window_embedding(self.net.encoder(x[s:s + step].to(self.device), pos)).cpu()
               for s in range(0, len(x), step)]
        return torch.cat(out) if out else torch.zeros(0, self.config.hidden)

    def start_fit(self, train: SampleSet, ctx: TrialContext) -> None:
        cfg = self.config
        self.rng = np.random.default_rng(ctx.seed)
        x_all = self._inputs(train.data)
        if len(x_all) == 0:
            raise ValueError("mocos: the training split has no windows")
        self.window = x_all.shape[1]
        self.net = self._build().to(self.device)
        labels_all = np.asarray(train.labels, dtype=np.int64)
        if cfg.balanced:  # [P] 171-177, 740-777: built with the labels, shuffled once, never again
            order = self.rng.permutation(class_balanced_order(labels_all, cfg.batch_size, self.rng))
            x_all, labels_all = x_all[torch.as_tensor(order)], labels_all[order]
        self.batch = min(cfg.batch_size, len(x_all))
        usable = (len(x_all) // self.batch) * self.batch  # whole batches only ([M] 689-691, 1083-1085)
        self.x_all, self.labels_all = x_all[:usable], labels_all[:usable]
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=cfg.lr, foreach=True)  # [M] 541, 651

    def num_epochs(self) -> int:
        return self.config.epochs

    def train_epoch(self, epoch: int, ctx: TrialContext) -> dict[str, float]:
        cfg, rng, x_all, batch = self.config, self.rng, self.x_all, self.batch
        labels_t = torch.as_tensor(self.labels_all)
        pos = self.pos.to(self.device)
        j, f = self.layout.num_joints, self.window
        # prototypes: each identity's mean window feature at the current weights ([M] 949, 1056-1072)
        protos = torch.as_tensor(prototypes(self._window_features(x_all, self.prototype_batch).numpy(),
                                            self.labels_all)).to(self.device)
        self.net.train()
        sums = np.zeros(3)
        steps = 0
        for s in range(0, len(x_all), batch):
            keep_frames = random_keep(f, cfg.prob_t, rng).to(self.device)  # per batch ([M] 695-702)
            keep_joints = random_keep(j, cfg.prob_s, rng).to(self.device)  # [M] 710-716
            pos_b = pos
            if cfg.rand_flip:  # [M] 1096-1100
                pos_b = pos * torch.as_tensor(np.where(rng.random(pos.shape[1]) >= 0.5, 1.0, -1.0),
                                              dtype=pos.dtype, device=self.device)
            xb, yb = x_all[s:s + batch].to(self.device), labels_t[s:s + batch].to(self.device)
            total, ssk, stra = csp_objective(self.net, xb, pos_b, protos, yb, keep_joints, keep_frames, cfg)
            self.optimizer.zero_grad(set_to_none=True)
            total.backward()
            self.optimizer.step()
            sums += [float(total.detach()), float(ssk.detach()), float(stra.detach())]
            steps += 1
        loss, ssk_mean, str_mean = sums / max(1, steps)
        return {"loss": loss, "csp_skeleton": ssk_mean, "csp_tracklet": str_mean}

    def embed_inputs(self, samples: SampleSet) -> torch.Tensor:
        return self._inputs(samples.data)

    def features(self, batch: torch.Tensor) -> torch.Tensor:
        """The window's mean node feature, raw H-d: what the release ranks by Euclidean distance
        ([M] 622-627, 749-778, 833-845)."""
        return window_embedding(self.net.encoder(batch, self.pos.to(self.device)))

    def num_parameters(self) -> int:
        """The trainable parameters the loss reaches: the encoder (199,680 at H = 128) and the
        two sub-skeleton CSP maps (32,768): 232,448 for every J and f. The release's profiler
        also counts unused copies (``release_profiler_count``: 363,520)."""
        return sum(p.numel() for p in self.net.parameters())

    @classmethod
    def search_space(cls) -> dict[str, Any] | None:
        return {"fusion_lambda": {"choice": [0.25, 0.5, 0.75, 0.9]}, "prob_s": {"choice": [0.25, 0.5]},
                "prob_t": {"choice": [0.0, 0.1, 0.25]}, "t_tracklet": {"choice": [0.07, 0.1]}}
