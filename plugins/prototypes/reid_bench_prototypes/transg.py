"""TranSG: transformer-based skeleton graph prototype contrastive learning with structure-trajectory
prompted reconstruction (Rao & Miao, CVPR 2023).

From the release, Kali-Hac/TranSG at commit 7176262 (``[T]`` is ``TranSG.py``, last changed in
7003921; ``[P]`` is ``utils/process_SG.py`` and ``[C]`` ``utils/process_cme_SG.py``, both from
78e49f5), re-expressed in PyTorch. Every joint of every frame is embedded (3 -> H -> H), the
first K non-trivial eigenvectors of the skeleton graph's normalised Laplacian are projected and
added as a positional encoding, and two stacked multi-head full-relation attention layers (every
joint attends to every joint of its frame) are followed by one output projection, a residual, a
batch norm, a feed-forward block, a residual and a batch norm. A frame's graph representation
is the mean of its joints; a window's is the mean of its frames, and that is the embedding.
Training is supervised: every epoch the ground-truth identities' mean window features are the
prototypes; graph prototype contrast (GPC) pulls each window (cosine, temperature t1) and each
frame (through two learned maps, temperature t2) towards its identity's prototype, and two
reconstructions (STPR) rebuild the window's joints from the mean of a random subset of joints
(structure prompt) and each joint's trajectory from a random subset of frames (trajectory
prompt).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from reid_bench.api import (DataSpec, Layout, NonNegativeInt, PositiveFloat, PositiveInt, Probability, SampleSet,
                            TorchModel, TrialContext, run_setting)
from reid_bench.samples import class_balanced_order
from reid_bench.torchutil import Dropout
from reid_bench_prototypes.clustering import prototypes

_SYNTHETIC = ("synth-gait", "synth-gait-dev", "synth-gait-retrieval")
_KGBD = ("kgbd", "kgbd-retrieval")
_CASIA = ("casia-b", "casia-b-npy", "casia-b-cme", "casia-b-coco-cme")


@dataclass
class TranSGConfig:
    """Hyper-parameters of TranSG (defaults: the release's flags, [T] 27-68, and its non-KGBD,
    non-CASIA-B settings, [T] 88-100; per protocol in ``protocol_overrides``, lines in the plugin
    README).

    ``hidden``: H (128, [T] 46). ``heads``: full-relation heads per layer (8, [T] 47).
    ``layers``: stacked attention layers (2, [T] 48). ``seq_lambda``: alpha, the sequence-level
    GPC's share (0.5; 1.0 on CASIA-B, [T] 49, 98). ``prompt_lambda``: beta, the structure
    prompt's share of STPR (0.5, [T] 50). ``gpc_lambda``: lambda, GPC's share of the total
    (0.5, [T] 52). ``t_sequence`` / ``t_skeleton``: t1 0.07 and t2 14 ([T] 53-54).
    ``pos_enc``: add the Laplacian positional encoding ([T] 55). ``enc_k``: its eigenvectors
    (10, [T] 56). ``rand_flip``: random sign flips of the eigenvectors per training batch
    ([T] 57, 942-946; off on KGBD and CASIA-B, [T] 91, 96). ``structure_masked``: joints hidden
    from the structure prompt (10, [T] 58, 482-485). ``trajectory_masked``: frames hidden from
    the trajectory prompt (2; 10 on CASIA-B, [T] 60, 136). ``dropout``: 0.5 ([T] 298, 305).
    ``bn_running_stats``: false reproduces the release, whose batch norms never update their
    moving statistics (no ``UPDATE_OPS`` dependency on the train op, [T] 302, 308, 402), so
    inference normalises with mean 0 and variance 1. ``lr``: Adam (0.00035, [T] 33, 88-100,
    262). ``batch_size``: 256 ([T] 43). ``epochs``: a fixed budget, the release's patience
    (120; 60 on KGBD and CASIA-B, [T] 38, 92, 97; the release stops on test Rank-1, which the
    harness never does). ``balanced``: the release's class-balanced training set (all datasets
    but KGBD, [P] 171-172). ``root_centre``: subtract joint 0 per frame ([P] 28-31, 43-45).
    """

    hidden: PositiveInt = 128
    heads: PositiveInt = 8
    layers: PositiveInt = 2
    seq_lambda: Probability = 0.5
    prompt_lambda: Probability = 0.5
    gpc_lambda: Probability = 0.5
    t_sequence: PositiveFloat = 0.07
    t_skeleton: PositiveFloat = 14.0
    pos_enc: bool = True
    enc_k: PositiveInt = 10
    rand_flip: bool = True
    structure_masked: NonNegativeInt = 10
    trajectory_masked: NonNegativeInt = 2
    dropout: Probability = 0.5
    bn_running_stats: bool = False
    lr: PositiveFloat = 3.5e-4
    batch_size: PositiveInt = 256
    epochs: NonNegativeInt = 120
    balanced: bool = True
    root_centre: bool = True
    embed_batch: PositiveInt = run_setting(1024)


# --------------------------------------------------------------------------------------------
# Graph
# --------------------------------------------------------------------------------------------


def adjacency(layout: Layout) -> np.ndarray:
    """[J, J] 0/1 bone adjacency without self loops; the layouts' edges are the release's joint
    graphs for 20 ([P] 315-320), 25 ([P] 239-244) and 14 joints ([P] 306-309)."""
    adj = np.zeros((layout.num_joints, layout.num_joints))
    for a, b in layout.edges:
        adj[a, b] = adj[b, a] = 1.0
    return adj


def laplacian_positional_encoding(adj: np.ndarray, k: int) -> np.ndarray:
    """[J, k]: eigenvectors 1..k of I - D^-1/2 A D^-1/2 by increasing eigenvalue, the trivial
    first one skipped ([P] 110-115, 324-333).

    The release calls the general ``np.linalg.eig``; ``eigh`` gives the same eigenvalues of this
    symmetric matrix, and eigenvectors that may differ in sign (and, where eigenvalues repeat, by
    a rotation within their space): neither is fixed in the release either, and its training
    flips the signs at random.
    """
    n = adj.shape[0]
    if k > n - 1:
        raise ValueError(f"transg: enc_k={k} needs more than {k} joints; the layout has {n}")
    deg = adj.sum(1)
    inv_sqrt = np.where(deg > 0, 1.0 / np.sqrt(np.maximum(deg, 1e-12)), 0.0)
    lap = np.eye(n) - inv_sqrt[:, None] * adj * inv_sqrt[None, :]
    _, vectors = np.linalg.eigh(lap)
    return np.ascontiguousarray(vectors[:, 1:k + 1], dtype=np.float32)


# --------------------------------------------------------------------------------------------
# Network
# --------------------------------------------------------------------------------------------


def _dense(fan_in: int, fan_out: int, normal: bool = False) -> nn.Linear:
    """A TF dense layer: Glorot-uniform kernel, zero bias; or the release's hand-made
    ``tf.random_normal`` variables: N(0, 1) weights, zero bias."""
    layer = nn.Linear(fan_in, fan_out)
    if normal:
        nn.init.normal_(layer.weight, 0.0, 1.0)
    else:
        nn.init.xavier_uniform_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


def _batch_norm(hidden: int, running_stats: bool) -> nn.BatchNorm1d:
    """TF's ``batch_normalization`` (epsilon 1e-3, moving-average decay 0.99). Momentum 0 keeps
    the moving mean 0 and variance 1 forever, which is what the release's graph does."""
    return nn.BatchNorm1d(hidden, eps=1e-3, momentum=0.01 if running_stats else 0.0)


class FullRelationAttention(nn.Module):
    """One layer of full-relation heads ([T] 270-295): per head bias-free Q, K, V maps H -> H/M
    drawn from N(0, 1); scores QK^T / sqrt(H/M) clipped to [-5, 5], softmax over all joints of
    the frame; the heads' outputs concatenated. No residual, norm or projection inside."""

    def __init__(self, hidden: int, heads: int) -> None:
        super().__init__()
        width = hidden // heads
        self.query = nn.Parameter(torch.randn(heads, hidden, width))
        self.key = nn.Parameter(torch.randn(heads, hidden, width))
        self.value = nn.Parameter(torch.randn(heads, hidden, width))
        self.scale = 1.0 / math.sqrt(width)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """[B, f, J, H] -> [B, f, J, H]."""
        heads, hidden, width = self.query.shape
        # the 3M maps side by side: one matrix product for every head's Q, K and V
        maps = torch.cat([self.query, self.key, self.value]).permute(1, 0, 2).reshape(hidden, 3 * heads * width)
        q, k, v = (h @ maps).view(*h.shape[:3], 3, heads, width).permute(3, 0, 1, 4, 2, 5)  # 3 x [B, f, M, J, w]
        scores = torch.softmax(torch.clamp(q @ k.transpose(-1, -2) * self.scale, -5.0, 5.0), dim=-1)
        out = scores @ v  # [B, f, M, J, w]
        return out.permute(0, 1, 3, 2, 4).reshape(*h.shape[:3], heads * width)


class SkeletonGraphTransformer(nn.Module):
    """The encoder ([T] 256-308): node embedding, Laplacian positional encoding, L full-relation
    layers, then projection + residual + BN and feed-forward + residual + BN."""

    def __init__(self, pos_dim: int, hidden: int, heads: int, layers: int, dropout: float,
                 running_stats: bool, pos_enc: bool = True) -> None:
        super().__init__()
        if hidden % heads:
            raise ValueError(f"transg: hidden={hidden} must be a multiple of heads={heads}")
        self.use_pos = pos_enc
        self.embed_in = _dense(3, hidden)  # [T] 258, relu
        self.embed_out = _dense(hidden, hidden)  # [T] 260
        self.pos_proj = _dense(pos_dim, hidden)  # [T] 264-265
        self.attention = nn.ModuleList(FullRelationAttention(hidden, heads) for _ in range(layers))
        self.proj = _dense(hidden, hidden)  # [T] 299
        self.norm1 = _batch_norm(hidden, running_stats)  # [T] 302
        self.ffn_in = _dense(hidden, 2 * hidden)  # [T] 304, relu
        self.ffn_out = _dense(2 * hidden, hidden)  # [T] 306
        self.norm2 = _batch_norm(hidden, running_stats)  # [T] 308
        self.dropout = Dropout(dropout)

    @staticmethod
    def _norm(bn: nn.BatchNorm1d, h: torch.Tensor) -> torch.Tensor:
        return bn(h.reshape(-1, h.shape[-1])).reshape(h.shape)

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """Windows [B, f, J, 3] and eigenvectors [J, k] -> node features [B, f, J, H]."""
        h0 = self.embed_out(torch.relu(self.embed_in(x)))
        if self.use_pos:  # [T] 267-268
            h0 = h0 + self.pos_proj(pos)
        h = h0
        for layer in self.attention:
            h = layer(h)
        h = self._norm(self.norm1, self.proj(self.dropout(h)) + h0)  # residual to the encoded input, [T] 300-302
        h = self._norm(self.norm2, self.ffn_out(self.dropout(torch.relu(self.ffn_in(h)))) + h)  # [T] 303-308
        return h


class TranSGNet(nn.Module):
    """The encoder and what only training uses: the STPR decoders and the skeleton-level GPC maps."""

    def __init__(self, num_joints: int, window: int, pos_dim: int, cfg: TranSGConfig) -> None:
        super().__init__()
        h = cfg.hidden
        self.encoder = SkeletonGraphTransformer(pos_dim, h, cfg.heads, cfg.layers, cfg.dropout, cfg.bn_running_stats,
                                                cfg.pos_enc)
        # structure prompt: H -> H (relu) -> 3J, N(0, 1) weights, zero biases ([T] 316-322)
        self.structure_decoder = nn.Sequential(_dense(h, h, normal=True), nn.ReLU(), _dense(h, 3 * num_joints, normal=True))
        # trajectory prompt: H -> H/2 (relu) -> 3f ([T] 365-371)
        self.trajectory_decoder = nn.Sequential(_dense(h, h // 2, normal=True), nn.ReLU(),
                                                _dense(h // 2, 3 * window, normal=True))
        # skeleton-level GPC: one H x H map for the frames, one for the prototypes, N(0, 1) ([T] 334-340)
        self.skeleton_query = nn.Parameter(torch.randn(h, h))
        self.skeleton_key = nn.Parameter(torch.randn(h, h))


def graph_representations(nodes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Node features [B, f, J, H] -> skeleton-level [B, f, H] (mean of the joints, [T] 348) and
    sequence-level [B, H] (mean of the frames, [T] 350-353)."""
    skeletons = nodes.mean(dim=2)
    return skeletons, skeletons.mean(dim=1)


def gpc_sequence_loss(seq: torch.Tensor, protos: torch.Tensor, labels: torch.Tensor, t: float) -> torch.Tensor:
    """Cross-entropy of cos(window, prototypes) / t1 against the identity ([T] 384-390, 398)."""
    logits = nn.functional.normalize(seq, dim=-1) @ nn.functional.normalize(protos, dim=-1).T / t
    return nn.functional.cross_entropy(logits, labels)


def gpc_skeleton_loss(skeletons: torch.Tensor, protos: torch.Tensor, labels: torch.Tensor, w_query: torch.Tensor,
                      w_key: torch.Tensor, t: float) -> torch.Tensor:
    """Every frame's logits <s W_q, p W_k> / t2, unnormalised; cross-entropy towards the window's
    identity, summed over the frames, averaged over the windows ([T] 333-346, 399)."""
    logits = (skeletons @ w_query) @ (protos @ w_key).T / t  # [B, f, C]
    b, f, c = logits.shape
    ce = nn.functional.cross_entropy(logits.reshape(b * f, c), labels.repeat_interleave(f), reduction="none")
    return ce.view(b, f).sum(1).mean()


def structure_prompted_loss(nodes: torch.Tensor, keep_joints: torch.Tensor, decoder: nn.Module,
                            target: torch.Tensor) -> torch.Tensor:
    """Each frame's whole skeleton rebuilt from the mean of its unmasked joints' features; mean
    absolute error divided by the batch size, as the release's ``absolute_difference / B``
    ([T] 310-325)."""
    context = nodes[:, :, keep_joints].mean(dim=2)  # [B, f, H]
    pred = decoder(context)  # [B, f, 3J], joint-major xyz
    return (pred - target.reshape(*target.shape[:2], -1)).abs().mean() / target.shape[0]


def trajectory_prompted_loss(nodes: torch.Tensor, keep_frames: torch.Tensor, decoder: nn.Module,
                             target: torch.Tensor) -> torch.Tensor:
    """Each joint's whole trajectory rebuilt from the mean of its features over the unmasked
    frames; mean absolute error / B ([T] 357-377)."""
    context = nodes[:, keep_frames].mean(dim=1)  # [B, J, H]
    pred = decoder(context)  # [B, J, 3f], frame-major xyz
    traj = target.permute(0, 2, 1, 3).reshape(target.shape[0], target.shape[2], -1)
    return (pred - traj).abs().mean() / target.shape[0]


def random_keep(n: int, masked: int, rng: np.random.Generator) -> torch.Tensor:
    """Bool [n]: ``n - masked`` positions drawn without replacement are kept ([T] 452-455, 482-485)."""
    keep = np.zeros(n, dtype=bool)
    keep[rng.choice(n, n - masked, replace=False)] = True
    return torch.from_numpy(keep)


def transg_objective(net: TranSGNet, x: torch.Tensor, pos: torch.Tensor, protos: torch.Tensor, labels: torch.Tensor,
                     keep_joints: torch.Tensor, keep_frames: torch.Tensor, cfg: TranSGConfig
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """lambda x GPC + (1 - lambda) x STPR, with GPC = (1 - alpha) x skeleton + alpha x sequence
    level and STPR = beta x structure + (1 - beta) x trajectory prompt ([T] 392-402).
    Returns (total, GPC, STPR)."""
    nodes = net.encoder(x, pos)
    skeletons, seq = graph_representations(nodes)
    gpc = (1 - cfg.seq_lambda) * gpc_skeleton_loss(skeletons, protos, labels, net.skeleton_query, net.skeleton_key,
                                                   cfg.t_skeleton) \
        + cfg.seq_lambda * gpc_sequence_loss(seq, protos, labels, cfg.t_sequence)
    stpr = cfg.prompt_lambda * structure_prompted_loss(nodes, keep_joints, net.structure_decoder, x) \
        + (1 - cfg.prompt_lambda) * trajectory_prompted_loss(nodes, keep_frames, net.trajectory_decoder, x)
    return cfg.gpc_lambda * gpc + (1 - cfg.gpc_lambda) * stpr, gpc, stpr


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------


class TranSG(TorchModel):
    """A skeleton graph transformer trained with ground-truth graph prototypes (sequence and
    skeleton level) and structure / trajectory prompted reconstruction. Supervised."""

    published_as = "TranSG"
    modality = "skeleton"
    config_class: ClassVar[type] = TranSGConfig
    description = ("TranSG: skeleton graph transformer (full-relation heads, Laplacian positional encoding), "
                   "ground-truth graph prototype contrast + structure-trajectory prompted reconstruction; supervised")
    citation = ("Rao, Miao: TranSG: Transformer-based skeleton graph prototype contrastive learning with "
                "structure-trajectory prompted reconstruction for person re-identification, CVPR 2023")
    protocol_overrides: ClassVar[dict[str, dict[str, Any]]] = {
        # [T] 89-93; [P] 171: KGBD no sign flips, patience 60, no class balancing
        **dict.fromkeys(_KGBD, {"rand_flip": False, "epochs": 60, "balanced": False}),
        # [T] 94-98, 134-136: CASIA-B no sign flips, patience 60, alpha 1, 10 frames masked
        **dict.fromkeys(_CASIA, {"rand_flip": False, "epochs": 60, "seq_lambda": 1.0, "trajectory_masked": 10}),
    }
    budget_overrides: ClassVar[dict[str, dict[str, Any]]] = dict.fromkeys(_SYNTHETIC, {"epochs": 30})
    protocol_notes: ClassVar[dict[str, str]] = dict.fromkeys(_SYNTHETIC, "CPU budget: 30 epochs (default 120: about 11-12 min per trial on 2 idle threads here, by `make bench`; over 2 h on the shared machine these rows ran on)")

    def __init__(self, config: TranSGConfig, spec: DataSpec) -> None:
        super().__init__(config, spec)
        if spec.layout is None:
            raise ValueError("transg needs a skeleton layout")
        self.layout = spec.layout
        self.pos = torch.from_numpy(laplacian_positional_encoding(adjacency(self.layout), config.enc_k))
        self.window = spec.window or 6
        self._check(self.window)
        self.net = self._build(self.window)

    def _check(self, window: int) -> None:
        cfg = self.config
        if cfg.structure_masked >= self.layout.num_joints:
            raise ValueError(f"transg: structure_masked={cfg.structure_masked} leaves no joint of "
                             f"{self.layout.num_joints}")
        if cfg.trajectory_masked >= window:
            raise ValueError(f"transg: trajectory_masked={cfg.trajectory_masked} leaves no frame of a {window}-frame window")

    def _build(self, window: int) -> TranSGNet:
        return TranSGNet(self.layout.num_joints, window, self.config.enc_k, self.config)

    def _inputs(self, data: Any) -> torch.Tensor:
        x = np.asarray(data, dtype=np.float32)
        if x.ndim != 4 or x.shape[2:] != (self.layout.num_joints, 3):
            raise ValueError(f"transg expects windows [N, f, {self.layout.num_joints}, 3], got {x.shape}")
        if self.config.root_centre:  # [P] 28-31, 43-45: joint 0 of every frame subtracted
            x = x - x[:, :, :1]
        return torch.from_numpy(np.ascontiguousarray(x))

    #: Windows per forward pass when the prototypes are computed during training (fixed: they
    #: would otherwise depend on a run setting in their last bits).
    prototype_batch: ClassVar[int] = 1024
    training_attributes = ("optimizer", "rng")

    @torch.no_grad()
    def _features(self, x: torch.Tensor, step: int) -> torch.Tensor:
        """Sequence-level graph representations in inference mode (dropout off, BN on its moving
        statistics), as the release computes them for prototypes and evaluation ([T] 488-494, 518-523)."""
        self.net.eval()
        pos = self.pos.to(self.device)
        out = [graph_representations(self.net.encoder(x[s:s + step].to(self.device), pos))[1].cpu()
               for s in range(0, len(x), step)]
        return torch.cat(out) if out else torch.zeros(0, self.config.hidden)

    def start_fit(self, train: SampleSet, ctx: TrialContext) -> None:
        cfg = self.config
        self.rng = np.random.default_rng(ctx.seed)
        x_all = self._inputs(train.data)
        if len(x_all) == 0:
            raise ValueError("transg: the training split has no windows")
        self.window = x_all.shape[1]
        self._check(self.window)
        self.net = self._build(self.window).to(self.device)
        labels_all = np.asarray(train.labels, dtype=np.int64)
        if cfg.balanced:  # [P] 171-177, 740-777: built with the labels, shuffled once, never again
            order = self.rng.permutation(class_balanced_order(labels_all, cfg.batch_size, self.rng))
            x_all, labels_all = x_all[torch.as_tensor(order)], labels_all[order]
        self.batch = min(cfg.batch_size, len(x_all))
        usable = (len(x_all) // self.batch) * self.batch  # whole batches only ([T] 446-448, 930-932)
        self.x_all, self.labels_all = x_all[:usable], labels_all[:usable]
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=cfg.lr, foreach=True)  # [T] 262, 402

    def num_epochs(self) -> int:
        return self.config.epochs

    def train_epoch(self, epoch: int, ctx: TrialContext) -> dict[str, float]:
        cfg, rng, x_all, batch = self.config, self.rng, self.x_all, self.batch
        labels_t = torch.as_tensor(self.labels_all)
        pos = self.pos.to(self.device)
        j, f = self.layout.num_joints, self.window
        # prototypes: each identity's mean window feature at the current weights ([T] 799, 900-916)
        protos = torch.as_tensor(prototypes(self._features(x_all, self.prototype_batch).numpy(), self.labels_all))
        protos = protos.to(self.device)
        self.net.train()
        sums = np.zeros(3)
        steps = 0
        for s in range(0, len(x_all), batch):
            keep_frames = random_keep(f, cfg.trajectory_masked, rng)  # per batch ([T] 452-459)
            keep_joints = random_keep(j, cfg.structure_masked, rng)  # [T] 482-486
            pos_b = pos
            if cfg.rand_flip:  # [T] 942-946
                pos_b = pos * torch.as_tensor(np.where(rng.random(pos.shape[1]) >= 0.5, 1.0, -1.0),
                                              dtype=pos.dtype, device=self.device)
            xb, yb = x_all[s:s + batch].to(self.device), labels_t[s:s + batch].to(self.device)
            total, gpc, stpr = transg_objective(self.net, xb, pos_b, protos, yb, keep_joints.to(self.device),
                                                keep_frames.to(self.device), cfg)
            self.optimizer.zero_grad(set_to_none=True)
            total.backward()
            self.optimizer.step()
            sums += [float(total.detach()), float(gpc.detach()), float(stpr.detach())]
            steps += 1
        loss, gpc_mean, stpr_mean = sums / max(1, steps)
        return {"loss": loss, "gpc": gpc_mean, "stpr": stpr_mean}

    def embed(self, samples: SampleSet) -> np.ndarray:
        """The sequence-level graph representation, raw (H-d; [T] 518-523, 604-613)."""
        return self._features(self._inputs(samples.data), self.config.embed_batch).numpy().astype(np.float32)

    def features(self, batch: torch.Tensor) -> torch.Tensor:  # embed above batches itself
        return graph_representations(self.net.encoder(batch, self.pos.to(self.device)))[1]

    def num_parameters(self) -> int:
        """Every trainable variable of the released graph, the training-only decoders and GPC
        maps included (they are the release's too; 266,126 at J = 20, f = 6)."""
        return sum(p.numel() for p in self.net.parameters())

    @classmethod
    def search_space(cls) -> dict[str, Any] | None:
        return {"seq_lambda": {"choice": [0.25, 0.5, 0.75]}, "prompt_lambda": {"choice": [0.25, 0.5, 0.75]},
                "gpc_lambda": {"choice": [0.25, 0.5, 0.75]}, "t_sequence": {"choice": [0.05, 0.07, 0.1]}}
