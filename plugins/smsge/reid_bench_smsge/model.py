"""SM-SGE (Rao et al., ACM MM 2021) in PyTorch: self-supervised multi-scale skeleton graph encoding.

Per frame, the skeleton is seen at four scales (graphs.py). The multi-scale graph relation
network (MGRN) maps every node to D_t features and mixes them with (1) structural relations:
P attention heads over adjacent nodes, averaged, and (2) collaborative relations: inner-product
attention to the nodes of the same scale and of every coarser scale, fused with coefficient
lambda_C through one learned D_t x D_t matrix per scale pair. The frames' node features of one
scale, flattened, go through that scale's 2-layer LSTM. Multi-scale skeleton reconstruction (MSR)
trains everything without labels: subsequences made by randomly dropping frames are encoded, and
per-step MLP heads reconstruct the kept frames' skeleton at the same scale and infer it at every
coarser scale (one head per (source, target) pair), with an L1 loss summed over subsequences and
heads. The representation of a window is, per frame, the four LSTM outputs concatenated
(4 x D_h), pooled over the frames (``pool``); the encoder is frozen when embedding.

Facts from the released code (Kali-Hac/SM-SGE, TensorFlow 1.x) that this follows: D_t = 8,
P = 8, ELU after each head, LeakyReLU(0.2) scores, biased W_h: 3 -> D_t per scale, collaborative
features from the pre-fusion features, LSTM input = flattened node features, heads
Linear(D_h, D_h) + ReLU + Linear(D_h, 3 n_target), frames sampled once per batch for the whole
batch, the last incomplete batch dropped, IAS batch 64 (the released script sets its per-dataset
values before reading ``--split``, so both IAS folds use split B's 64), epochs 120/160/200/160
(IAS/KGBD/KS20/CASIA-B), D_h = 128 on KGBD.

Released-code differences, each a switch (defaults follow the paper) or a documented deviation:
- ``lengths="released"``: subsequence lengths 1..f (the paper: 1..f-1).
- ``per_scale_adam``: one Adam per scale loss (the released code); each steps the shared MGRN.
- ``normal_init``: N(0, 1) initialisation of W_h (b_h = 0), the fusion matrices and the MLP heads.
- ``embed_init="normal"``: the released W_h ~ N(0, 1), b_h = 0 alone (the paper gives no
  initialisation; "torch" is PyTorch's U(+-1/sqrt(3)), which feeds the LSTMs node features
  about 3x smaller than the released code's).
- ``fixed_subsequences``: frames drawn once for the whole training (the released code draws
  them with numpy while building the TF graph); by default they are redrawn every batch.
- ``zero_pad_step``: the released recognition stage also feeds an (f+1)-th prefix whose last
  frame is an out-of-range gather (zeros on GPU); this appends one zero-input LSTM step.
- Model selection on the test set (the released script keeps the best test accuracy): not
  done, not offered. Training runs a fixed number of epochs.
- Deviation: PyTorch's LSTM has two bias vectors (TF's LSTMCell one), 4 D_h extra parameters
  per LSTM layer (8,192 in the IAS configuration); TF's forget-gate bias of 1 is reproduced at
  initialisation. The released graph also creates one fusion matrix it never uses (64).
- Deviation: the released recognition MLP averages its logits over the f prefixes (prefix k's
  last LSTM output = the full window's output at frame k, the LSTM being causal); the harness's
  probe classifies one vector per window, so the per-frame states are averaged before the probe
  (``pool="mean"``; ``"concat"`` keeps every frame, ``"last"`` the last one).

Parameters (IAS configuration, ``num_parameters``): MGRN 3,648 + LSTMs 3,768,320 + MSR heads
757,379 = 4,529,347. The paper's 5.58M counts the released graph: these minus the 8,192 extra
biases, plus the unused matrix (64) and the 1024-1024-11 recognition MLP (1,060,875) = 5,582,094.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from reid_bench.samples import class_balanced_order
from reid_bench.api import (DataSpec, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, SampleSet,
                            TorchModel, TrialContext, run_setting)

from .graphs import SCALES, ScaleGraph, build_graphs

Variant = Literal[
    "full", "baseline", "sr", "mg-sr", "mg-sr-csi", "mg-sr-csi-ssr", "mg-sr-cr", "mg-sr-cr-csi",
    "no-multiscale", "no-structural", "no-collaborative", "no-cross-scale", "no-subsequence",
]

_BASELINE = {"scales": "joint", "graph_encoder": False, "structural": False, "collaborative": False,
             "cross_scale": False, "subsequences": False}
_ALL_SCALES = "hyper,joint,part,body"

# What each named variant forces. The paper's Table 4 is cumulative: its rows add components
# to the baseline (MG multi-scale graphs, SR structural relations, CR collaborative relations,
# CSI cross-scale inference, SSR subsequence reconstruction); "full" is its last row.
VARIANTS: dict[str, dict[str, Any]] = {
    "full": {},
    # The paper's baseline (Table 4, first row): an LSTM on joint trajectories, whole-window reconstruction.
    "baseline": dict(_BASELINE),
    "sr": dict(_BASELINE, graph_encoder=True, structural=True),
    "mg-sr": dict(_BASELINE, graph_encoder=True, structural=True, scales=_ALL_SCALES),
    "mg-sr-csi": dict(_BASELINE, graph_encoder=True, structural=True, scales=_ALL_SCALES, cross_scale=True),
    "mg-sr-csi-ssr": dict(_BASELINE, graph_encoder=True, structural=True, scales=_ALL_SCALES, cross_scale=True,
                          subsequences=True),
    "mg-sr-cr": dict(_BASELINE, graph_encoder=True, structural=True, scales=_ALL_SCALES, collaborative=True),
    "mg-sr-cr-csi": dict(_BASELINE, graph_encoder=True, structural=True, scales=_ALL_SCALES, collaborative=True,
                         cross_scale=True),
    # Leave-one-out variants (not in the paper): the full model minus one component.
    "no-multiscale": {"scales": "joint"},
    "no-structural": {"structural": False},
    "no-collaborative": {"collaborative": False},
    "no-cross-scale": {"cross_scale": False},
    "no-subsequence": {"subsequences": False},
}
#: The paper's Table 4 rows in its order (the first is the baseline, the last the full model).
TABLE4_ROWS = ("baseline", "sr", "mg-sr", "mg-sr-csi", "mg-sr-csi-ssr", "mg-sr-cr", "mg-sr-cr-csi", "full")

# The two training recipes. "released": Kali-Hac/SM-SGE as released (SM-SGE.py and
# utils/process_i.py; lines in the plugin README). "harness": chosen on synth-gait's development
# twin (CPU budget; see docs/research-notes.md). A field left unset (None) takes its recipe's
# value; a field set explicitly keeps its value.
RECIPES: dict[str, dict[str, Any]] = {
    "released": {"normal_init": True, "embed_init": "normal", "per_scale_adam": True, "lengths": "released",
                 "fixed_subsequences": True, "zero_pad_step": True, "pool": "concat", "balanced_batches": True,
                 "part_graph": "released", "probe": "released"},
    "harness": {"normal_init": True, "embed_init": "normal", "per_scale_adam": False, "lengths": "paper",
                "fixed_subsequences": False, "zero_pad_step": False, "pool": "last", "balanced_batches": False,
                "part_graph": "bones", "probe": "harness"},
}


@dataclass
class SMSGEConfig:
    """Hyper-parameters of SM-SGE (defaults: the paper and the released code, IAS-Lab).

    Architecture: ``d_t`` node feature size D_t; ``heads`` structural relation heads P;
    ``hidden`` LSTM size D_h; ``lstm_layers``; ``nhood`` hops of the joint-scale structural
    neighbourhood; ``t1`` / ``t2`` temperatures of the structural / collaborative softmax;
    ``fusion_lambda`` lambda_C. The window length f comes from the protocol.
    MSR: ``rounds`` r sampling rounds; ``lengths`` "paper" (1..f-1) or "released" (1..f).
    Ablations: ``scales`` comma list from hyper,joint,part,body; ``multi_scale`` false keeps the
    joint scale only; ``structural`` / ``collaborative`` relations; ``cross_scale`` inference
    heads; ``subsequences`` (false: reconstruct the whole window once); ``graph_encoder`` false
    feeds raw node coordinates to the LSTMs (no MGRN); ``variant`` a named variant that forces
    the switches in ``VARIANTS`` (the paper's cumulative Table 4 rows, and leave-one-out rows).
    ``recipe``: "released" or "harness" (``RECIPES``) decides every field left at None:
    ``per_scale_adam``, ``normal_init``, ``embed_init``, ``lengths``, ``fixed_subsequences``,
    ``zero_pad_step``, ``pool``, ``balanced_batches`` (the release's class-balanced training set
    in a fixed order), ``part_graph`` ("released": the release's part adjacency; "bones": parts
    linked by the layout's bones) and ``probe`` (the released recognition classifier or the
    harness's probe). Training: ``epochs``, ``lr``, ``batch_size`` (Adam; last incomplete batch
    dropped unless it is the only one). ``view_normalise``: rotate every window about the
    vertical (y) axis so that its mean hip-and-shoulder left-to-right vector lies along +x (not
    in the paper; see ``canonical_yaw``). Embedding: ``pool`` over a window's frames: "mean",
    "last" or "concat" (every frame's, and the zero-input step's with ``zero_pad_step``: the
    release's f+1 prefixes); ``embed_batch`` windows per pass (a run setting).
    """

    d_t: PositiveInt = 8
    heads: PositiveInt = 8
    hidden: PositiveInt = 256
    lstm_layers: PositiveInt = 2
    nhood: PositiveInt = 1
    t1: PositiveFloat = 1.0
    t2: PositiveFloat = 1.0
    fusion_lambda: NonNegativeFloat = 1.0
    leaky_slope: NonNegativeFloat = 0.2
    rounds: PositiveInt = 1
    scales: str = _ALL_SCALES
    multi_scale: bool = True
    structural: bool = True
    collaborative: bool = True
    cross_scale: bool = True
    subsequences: bool = True
    graph_encoder: bool = True
    variant: Variant = "full"
    recipe: Literal["released", "harness"] = "released"
    epochs: NonNegativeInt = 120
    lr: PositiveFloat = 0.0025
    batch_size: PositiveInt = 64
    lengths: Literal["paper", "released"] | None = None
    per_scale_adam: bool | None = None
    normal_init: bool | None = None
    embed_init: Literal["torch", "normal"] | None = None
    fixed_subsequences: bool | None = None
    zero_pad_step: bool | None = None
    balanced_batches: bool | None = None
    part_graph: Literal["released", "bones"] | None = None
    probe: Literal["released", "harness"] | None = None
    view_normalise: bool = False
    pool: Literal["mean", "last", "concat"] | None = None
    embed_batch: PositiveInt = run_setting(512)

    def __post_init__(self) -> None:
        active_scales(self)


def effective_config(cfg: SMSGEConfig) -> SMSGEConfig:
    """The config a trial runs: the recipe fills the fields left unset, the variant forces its
    switches, ``multi_scale`` false keeps the joint scale."""
    cfg = replace(cfg, **{k: v for k, v in RECIPES[cfg.recipe].items() if getattr(cfg, k) is None})
    cfg = replace(cfg, **VARIANTS[cfg.variant])
    if not cfg.multi_scale:
        cfg = replace(cfg, scales="joint")
    return cfg


def active_scales(cfg: SMSGEConfig) -> tuple[str, ...]:
    names = [s.strip() for s in cfg.scales.split(",") if s.strip()]
    bad = [s for s in names if s not in SCALES]
    if bad or not names:
        raise ValueError(f"smsge: scales must be a comma list from {','.join(SCALES)}, got {cfg.scales!r}")
    return tuple(s for s in SCALES if s in names)  # finest first, no duplicates


def subsequence_lengths(cfg: SMSGEConfig, f: int) -> list[int]:
    if not cfg.subsequences:
        return [f]
    top = f if cfg.lengths == "released" else f - 1
    return list(range(1, max(1, top) + 1))


# ------------------------------------------------------------------------------------ MGRN


class StructuralRelations(nn.Module):
    """P GAT-style heads over the 1-hop (+ self) neighbourhood of one scale, averaged.

    Score of pair (i, j): LeakyReLU(a^T [W h_i ; W h_j]) written as f1(W h_i) + f2(W h_j) with
    the released code's two biased 1x1 convolutions; softmax over neighbours at temperature T1.
    Only the mask's pairs are scored (hyper-joint scale: 115 of 39 x 39), then placed in a matrix
    of -inf: the release's masked logits bit for bit, so the softmax and all after it are equal.
    """

    def __init__(self, cfg: SMSGEConfig, mask: np.ndarray) -> None:
        super().__init__()
        p, d = cfg.heads, cfg.d_t
        self.heads, self.d, self.t1, self.slope = p, d, cfg.t1, cfg.leaky_slope
        self.w = nn.Parameter(torch.empty(p, d, d))
        self.a1 = nn.Parameter(torch.empty(p, d))
        self.b1 = nn.Parameter(torch.zeros(p))
        self.a2 = nn.Parameter(torch.empty(p, d))
        self.b2 = nn.Parameter(torch.zeros(p))
        self.bias = nn.Parameter(torch.zeros(p, d))
        self.register_buffer("mask", torch.as_tensor(mask, dtype=torch.bool))
        senders, receivers = np.nonzero(np.asarray(mask, dtype=bool))
        # the mask's pairs and their places in the flattened n x n matrix (derived from the mask,
        # so not saved: state dicts keep the keys they had)
        self.register_buffer("senders", torch.as_tensor(senders, dtype=torch.int64), persistent=False)
        self.register_buffer("receivers", torch.as_tensor(receivers, dtype=torch.int64), persistent=False)
        self.register_buffer("pair_places", torch.as_tensor(senders * len(mask) + receivers, dtype=torch.int64),
                             persistent=False)
        # TF's default Glorot-uniform on each head's own kernels (utils/layers.py lines 11-15 of
        # the release): W [D, D] with fan-in = fan-out = D, and a1 / a2 [D, 1] with fan-in D,
        # fan-out 1. (Glorot over the stacked [P, D, D] tensor would draw weights 2.8x smaller.)
        with torch.no_grad():
            w_bound, a_bound = math.sqrt(6.0 / (d + d)), math.sqrt(6.0 / (d + 1))
            self.w.uniform_(-w_bound, w_bound)
            self.a1.uniform_(-a_bound, a_bound)
            self.a2.uniform_(-a_bound, a_bound)

    def relations(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """h [B, n, D_t] -> (coefficients [B, P, n, n], zero outside the neighbourhood;
        transformed features [B, P, n, D_t])."""
        fts = torch.einsum("bnd,pde->bpne", h, self.w)
        s1 = torch.einsum("bpne,pe->bpn", fts, self.a1) + self.b1[:, None]
        s2 = torch.einsum("bpne,pe->bpn", fts, self.a2) + self.b2[:, None]
        # the scores of the mask's pairs only, placed in a matrix of -inf: the release's masked
        # n x n logits, the same numbers, without the element-wise work on the masked pairs
        n = h.shape[1]
        pairs = nn.functional.leaky_relu(s1[..., self.senders] + s2[..., self.receivers], self.slope) / self.t1
        logits = pairs.new_full((*pairs.shape[:-1], n * n), float("-inf"))
        logits.scatter_(-1, self.pair_places.expand(*pairs.shape), pairs)  # in place: no copy of the -inf matrix
        return torch.softmax(logits.view(*pairs.shape[:-1], n, n), dim=-1), fts

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        coefs, fts = self.relations(h)
        out = nn.functional.elu(coefs @ fts + self.bias[:, None, :])
        return out.mean(1)


def collaborative_relations(fine: torch.Tensor, coarse: torch.Tensor, t2: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Inner-product relations of each fine node to the coarse nodes (rows sum to 1), and the
    relation-weighted coarse features. fine [B, n_f, D], coarse [B, n_c, D]."""
    rel = torch.softmax(fine @ coarse.transpose(1, 2) / t2, dim=-1)
    return rel, rel @ coarse


class MGRN(nn.Module):
    """Per-scale embedding + structural relations, then multi-scale collaboration fusion."""

    def __init__(self, cfg: SMSGEConfig, graphs: dict[str, ScaleGraph], scales: tuple[str, ...]) -> None:
        super().__init__()
        self.cfg, self.scales = cfg, scales
        self.embed = nn.ModuleDict({s: nn.Linear(3, cfg.d_t) for s in scales})
        self.structural = nn.ModuleDict(
            {s: StructuralRelations(cfg, graphs[s].mask) for s in scales} if cfg.structural else {}
        )
        # one D_t x D_t matrix per (scale, same-or-coarser scale) pair
        self.pairs = [(s, c) for i, s in enumerate(scales) for c in scales[i:]]
        self.fuse = nn.ModuleDict(
            {f"{s}__{c}": nn.Linear(cfg.d_t, cfg.d_t, bias=False) for s, c in self.pairs} if cfg.collaborative else {}
        )

    def forward(self, nodes: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """nodes[s]: [B, n_s, 3] -> features [B, n_s, D_t]."""
        h = {}
        for s in self.scales:
            x = self.embed[s](nodes[s])
            h[s] = self.structural[s](x) if self.cfg.structural else x
        if not self.cfg.collaborative:
            return h
        out = {}
        for s in self.scales:
            agg = 0
            for c in self.scales[self.scales.index(s):]:
                _, feat = collaborative_relations(h[s], h[c], self.cfg.t2)
                agg = agg + self.fuse[f"{s}__{c}"](feat)
            out[s] = h[s] + self.cfg.fusion_lambda * agg
        return out


# ------------------------------------------------------------------------------------ network


class SMSGENet(nn.Module):
    def __init__(self, cfg: SMSGEConfig, graphs: dict[str, ScaleGraph]) -> None:
        super().__init__()
        self.cfg = cfg
        self.scales = active_scales(cfg)
        self.sizes = {s: graphs[s].num_nodes for s in self.scales}
        for s in self.scales:
            self.register_buffer(f"pool_{s}", torch.as_tensor(graphs[s].pool))
        self.mgrn = MGRN(cfg, graphs, self.scales) if cfg.graph_encoder else None
        feat = cfg.d_t if cfg.graph_encoder else 3
        self.lstm = nn.ModuleDict(
            {s: nn.LSTM(self.sizes[s] * feat, cfg.hidden, num_layers=cfg.lstm_layers, batch_first=True) for s in self.scales}
        )
        # same-scale reconstruction and (optionally) inference of every coarser scale
        self.targets = {
            s: (self.scales[i:] if cfg.cross_scale else (s,)) for i, s in enumerate(self.scales)
        }
        self.heads = nn.ModuleDict(
            {
                f"{s}__{t}": nn.Sequential(nn.Linear(cfg.hidden, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, 3 * self.sizes[t]))
                for s in self.scales
                for t in self.targets[s]
            }
        )
        self._init()

    def _init(self) -> None:
        for lstm in self.lstm.values():
            for name, p in lstm.named_parameters():
                if name.startswith("bias_ih"):
                    with torch.no_grad():  # TF LSTMCell: forget-gate bias 1 (bias_hh stays 0)
                        p.zero_()
                        p[self.cfg.hidden : 2 * self.cfg.hidden] = 1.0
                elif name.startswith("bias_hh"):
                    nn.init.zeros_(p)
        if self.mgrn is not None and (self.cfg.embed_init == "normal" or self.cfg.normal_init):
            for m in self.mgrn.embed.values():  # the released W_h ~ N(0, 1), b_h = 0
                nn.init.normal_(m.weight, 0.0, 1.0)
                nn.init.zeros_(m.bias)
        if self.cfg.normal_init:
            mats = [m.weight for m in self.heads.modules() if isinstance(m, nn.Linear)]
            if self.mgrn is not None:
                mats += [m.weight for m in self.mgrn.fuse.values()]
            for w in mats:
                nn.init.normal_(w, 0.0, 1.0)
            for m in self.heads.modules():
                if isinstance(m, nn.Linear):
                    nn.init.zeros_(m.bias)

    def encoder_modules(self) -> list[nn.Module]:
        """The parts that produce the representation (the reconstruction heads excluded)."""
        return ([self.mgrn] if self.mgrn is not None else []) + [self.lstm]

    def node_positions(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x [B, f, J, 3] -> {scale: [B, f, n_s, 3]}."""
        return {s: torch.einsum("nj,bfjd->bfnd", getattr(self, f"pool_{s}"), x) for s in self.scales}

    def frame_features(self, pos: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """{scale: [B, f, n_s, 3]} -> {scale: [B, f, n_s * D]} (MGRN per frame)."""
        b, f = next(iter(pos.values())).shape[:2]
        if self.mgrn is None:
            return {s: p.reshape(b, f, -1) for s, p in pos.items()}
        h = self.mgrn({s: p.reshape(b * f, p.shape[2], 3) for s, p in pos.items()})
        return {s: v.reshape(b, f, -1) for s, v in h.items()}

    def losses(self, x: torch.Tensor, frames: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """MSR loss per source scale, summed over subsequences and heads (L1, mean per element).

        ``frames``: sorted frame indices of each subsequence (shared by the batch)."""
        pos = self.node_positions(x)
        feats = self.frame_features(pos)
        # The heads act on each step alone, so every subsequence's steps go through a head in one
        # call; each step's L1 sum is weighted by 1 / (elements of its subsequence's term).
        steps = torch.cat(frames)
        share = torch.cat([x.new_full((len(idx),), 1.0 / (x.shape[0] * len(idx))) for idx in frames])
        out = {}
        for s in self.scales:
            h = torch.cat([self.lstm[s](feats[s][:, idx])[0] for idx in frames], dim=1)
            out[s] = x.new_zeros(())
            for t in self.targets[s]:
                pred = self.heads[f"{s}__{t}"](h)
                target = pos[t][:, steps].flatten(2)
                out[s] = out[s] + ((pred - target).abs().sum(-1) * share).sum() / pred.shape[-1]
        return out

    def states(self, x: torch.Tensor, zero_pad_step: bool = False) -> torch.Tensor:
        """Per-frame representation [B, f(+1), S * D_h]: each scale's top LSTM output."""
        feats = self.frame_features(self.node_positions(x))
        outs = []
        for s in self.scales:
            seq = feats[s]
            if zero_pad_step:
                seq = torch.cat([seq, seq.new_zeros(seq.shape[0], 1, seq.shape[2])], dim=1)
            h, _ = self.lstm[s](seq)
            outs.append(h)
        return torch.cat(outs, dim=-1)


def _side_pairs(layout: Any) -> list[tuple[int, int]]:
    """(left, right) joint pairs of hips and shoulders, found by name."""
    names = [j.lower().replace("_", "") for j in layout.joints]
    pairs = []
    for part in ("hip", "shoulder"):
        left = [i for i, n in enumerate(names) if part in n and "left" in n]
        right = [i for i, n in enumerate(names) if part in n and "right" in n]
        if left and right:
            pairs.append((left[0], right[0]))
    return pairs


def canonical_yaw(data: np.ndarray, layout: Any) -> np.ndarray:
    """Windows [N, f, J, 3] rotated about y so the mean left-to-right hip/shoulder vector is +x.

    A benchmark-side switch, not part of SM-SGE: it removes the walking direction, which a
    reconstruction objective otherwise has to encode (synth-gait's fold B has unseen oblique
    views). Layouts without named left/right hips or shoulders are returned unchanged."""
    pairs = _side_pairs(layout)
    if not pairs or len(data) == 0:
        return data
    vec = sum(data[:, :, r] - data[:, :, l] for l, r in pairs).mean(1)  # [N, 3]
    ang = np.arctan2(vec[:, 2], vec[:, 0])  # rotate by +ang about y brings vec onto +x
    c, s = np.cos(ang)[:, None, None], np.sin(ang)[:, None, None]
    x, y, z = data[..., 0], data[..., 1], data[..., 2]
    return np.stack([c * x + s * z, y, -s * x + c * z], axis=-1).astype(np.float32)


def pool_states(states: torch.Tensor, pool: str) -> torch.Tensor:
    """One vector per window from per-step states ``[B, T, D]``: their mean, the last step, or
    all steps concatenated (SM-SGE and MG-SCR expose the same three choices as ``pool``)."""
    if pool == "mean":
        return states.mean(1)
    if pool == "last":
        return states[:, -1]
    return states.reshape(states.shape[0], -1)


def sample_subsequences(lengths: list[int], f: int, rounds: int, gen: torch.Generator) -> list[torch.Tensor]:
    """Sorted frame indices: for each round and length k, k of the f frames kept at random."""
    out = []
    for _ in range(max(1, rounds)):
        for k in lengths:
            if k >= f:
                out.append(torch.arange(f))
            else:
                out.append(torch.sort(torch.randperm(f, generator=gen)[:k]).values)
    return out


class SMSGE(TorchModel):
    """Self-supervised multi-scale skeleton graph encoding (SM-SGE)."""

    published_as = "SM-SGE"
    # 2: per-head Glorot initialisation of the structural relations (was over the stacked heads).
    version = "2"
    modality = "skeleton"
    config_class = SMSGEConfig
    description = (
        "SM-SGE: multi-scale skeleton graphs (hyper-joint/joint/part/body), structural + collaborative "
        "graph relations, self-supervised multi-scale subsequence reconstruction; frozen 4 x D_h LSTM states"
    )
    citation = (
        "Rao, Xu, Hu, Cheng, Hu. SM-SGE: A Self-Supervised Multi-Scale Skeleton Graph Encoding Framework "
        "for Person Re-Identification. ACM MM 2021. Code: github.com/Kali-Hac/SM-SGE"
    )
    # Released-code values per dataset. synth-gait: a CPU-budget setting of this benchmark, not
    # the paper's, shared by every ablation row. View normalisation, because fold B's oblique
    # views never occur in training and a reconstruction objective encodes the walking direction
    # (without it SM-SGE scored 14% window Rank-1 on fold B). The rest was chosen on the
    # development twin (synth-gait-dev and a second draw, data.seed=2), never on synth-gait, by
    # SM-SGE's own mean Rank-1 over {3, 6} epochs x {PyTorch, W_h-only N(0,1), released N(0,1)}
    # initialisation x {mean, last} pooling: 6 epochs (about 15 s each on one core for 1,524
    # windows), the released ``normal_init`` and ``pool="last"`` (the released recognition
    # stage's last prefix). The grid and its figures are in the README.
    protocol_overrides = {
        "ias": {"lr": 0.0025, "batch_size": 64, "epochs": 120},
        "ias-retrieval": {"lr": 0.0025, "batch_size": 64, "epochs": 120},
        "kgbd": {"lr": 0.0025, "batch_size": 256, "epochs": 160, "hidden": 128},
        "kgbd-retrieval": {"lr": 0.0025, "batch_size": 256, "epochs": 160, "hidden": 128},
        "ks20": {"lr": 0.0005, "batch_size": 64, "epochs": 200},
        "ks20-retrieval": {"lr": 0.0005, "batch_size": 64, "epochs": 200},
        "casia-b": {"lr": 0.0005, "batch_size": 128, "epochs": 160},
        "casia-b-npy": {"lr": 0.0005, "batch_size": 128, "epochs": 160},
        "casia-b-cme": {"lr": 0.0005, "batch_size": 128, "epochs": 200},
    }
    budget_overrides = dict.fromkeys(("synth-gait", "synth-gait-dev", "synth-gait-retrieval"),
                                     {"recipe": "harness", "epochs": 6, "view_normalise": True})

    protocol_notes = dict.fromkeys(
        ("synth-gait", "synth-gait-dev", "synth-gait-retrieval"),
        "CPU budget: 6 epochs (the paper: 120-200) and the harness recipe, chosen on synth-gait-dev; "
        "recipe=released rows run the released one at the same budget")

    def __init__(self, config: SMSGEConfig, spec: DataSpec) -> None:
        super().__init__(config, spec)
        if spec.layout is None:
            raise ValueError("SM-SGE needs a skeleton layout in the data spec")
        self.cfg = effective_config(config)
        active_scales(self.cfg)  # validate early
        self.graphs = build_graphs(spec.layout, self.cfg.nhood, self.cfg.part_graph)
        self.net = SMSGENet(self.cfg, self.graphs)
        self.history: list[float] = []

    @classmethod
    def example_spec(cls) -> DataSpec:
        from reid_bench.layouts import KINECT_V1_20

        return DataSpec("skeleton", num_classes=11, layout=KINECT_V1_20, window=6)

    @classmethod
    def finalize_config(cls, config: SMSGEConfig, protocol: Any) -> SMSGEConfig:
        return effective_config(config)

    @classmethod
    def probe_defaults(cls, config: SMSGEConfig, protocol: Any) -> dict[str, Any]:
        """The released recognition stage (SM-SGE.py lines 1058-1137): one hidden layer as wide as
        the representation of one prefix (4 D_h), N(0, 1) weights, Adam at 0.0025 (CASIA-B:
        0.0005), the pretraining batch, no weight decay, raw features, the logits of the f+1
        prefixes summed, the class-balanced training set in its fixed order. The release stops
        on test accuracy; the harness trains the probe's fixed budget instead."""
        cfg = effective_config(config)
        if cfg.probe != "released":
            return {}
        width = len(active_scales(cfg)) * cfg.hidden
        chunks = ((protocol.window or 1) + (1 if cfg.zero_pad_step else 0)) if cfg.pool == "concat" else 1
        casia = str(getattr(protocol, "dataset", "") or "").startswith("casia") or any(
            str(d).startswith(("casia", "smsge-npy")) for d in getattr(protocol, "datasets", ()))
        return {"kind": "mlp", "hidden": width, "lr": 0.0005 if casia else 0.0025, "batch_size": cfg.batch_size,
                "weight_decay": 0.0, "standardize": False, "init": "normal", "chunks": chunks, "balanced": True,
                "shuffle": False, "scores": "logits"}

    # -------------------------------------------------------------------------------- training
    training_attributes = ("optimizers", "generator", "history")

    def start_fit(self, train: SampleSet, ctx: TrialContext) -> None:
        cfg = self.cfg
        self.generator = torch.Generator().manual_seed(ctx.seed)
        self.net = SMSGENet(cfg, self.graphs).to(self.device)  # fresh weights from the seeded RNG
        net = self.net
        self.data = torch.as_tensor(self._prepare(train))
        f = self.data.shape[1]
        self.lengths = subsequence_lengths(cfg, f)
        if cfg.per_scale_adam:
            shared = list(net.mgrn.parameters()) if net.mgrn is not None else []
            self.groups = {
                s: shared + list(net.lstm[s].parameters())
                + [p for t in net.targets[s] for p in net.heads[f"{s}__{t}"].parameters()]
                for s in net.scales
            }
            self.optimizers = {s: torch.optim.Adam(ps, lr=cfg.lr, foreach=True) for s, ps in self.groups.items()}
        else:
            self.optimizers = {"all": torch.optim.Adam(net.parameters(), lr=cfg.lr, foreach=True)}
        self.fixed = sample_subsequences(self.lengths, f, cfg.rounds, self.generator) if cfg.fixed_subsequences else None
        if cfg.balanced_batches:  # the release's class-balanced set, built once, in a fixed order
            self.order = torch.as_tensor(class_balanced_order(train.labels, cfg.batch_size,
                                                              np.random.default_rng(ctx.seed)))
        else:
            self.order = None
        self.history = []

    def num_epochs(self) -> int:
        return self.cfg.epochs

    def train_epoch(self, epoch: int, ctx: TrialContext) -> dict[str, float]:
        cfg, net, data = self.cfg, self.net, self.data
        n, f = data.shape[:2]
        m = n if self.order is None else len(self.order)
        bs = max(1, min(cfg.batch_size, m))
        net.train()
        perm = torch.randperm(n, generator=self.generator) if self.order is None else self.order
        total, steps = 0.0, 0
        for start in range(0, m - bs + 1, bs):  # the released code drops the last partial batch
            x = data[perm[start : start + bs]].to(self.device)
            frames = self.fixed if self.fixed is not None else sample_subsequences(self.lengths, f, cfg.rounds,
                                                                                   self.generator)
            losses = net.losses(x, [i.to(self.device) for i in frames])
            loss = sum(losses.values())
            if cfg.per_scale_adam:
                # TF's one sess.run: every gradient from the same forward, then four Adam steps.
                count = len(frames)
                grads = {
                    s: torch.autograd.grad(losses[s] / count, self.groups[s], retain_graph=True, allow_unused=True)
                    for s in net.scales
                }
                for s in net.scales:
                    self.optimizers[s].zero_grad(set_to_none=True)
                    for p, g in zip(self.groups[s], grads[s]):
                        p.grad = g
                    self.optimizers[s].step()
            else:
                opt = self.optimizers["all"]
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            total += float(loss.detach())
            steps += 1
        mean = total / max(1, steps)
        self.history.append(mean)
        return {"loss": mean}

    def _prepare(self, samples: SampleSet) -> np.ndarray:
        data = np.asarray(samples.data, dtype=np.float32)
        if self.cfg.view_normalise:
            data = canonical_yaw(data, samples.layout or self.spec.layout)
        return data

    # -------------------------------------------------------------------------------- embedding
    def embedding_dim(self, samples: SampleSet) -> int:
        data = np.asarray(samples.data)
        f = data.shape[1] if data.ndim == 4 else (self.spec.window or 1)
        d = len(self.net.scales) * self.cfg.hidden
        return d * (f + (1 if self.cfg.zero_pad_step else 0)) if self.cfg.pool == "concat" else d

    def embed_inputs(self, samples: SampleSet) -> torch.Tensor:
        return torch.from_numpy(self._prepare(samples))

    def features(self, batch: torch.Tensor) -> torch.Tensor:
        h = self.net.states(batch, self.cfg.zero_pad_step)  # frozen: no_grad, eval
        return pool_states(h, self.cfg.pool)

    def num_parameters(self) -> int:
        """MGRN + LSTMs + MSR heads (the whole self-supervised network; no identity classifier)."""
        return sum(p.numel() for p in self.net.parameters())

    def encoder_parameters(self) -> int:
        """MGRN + LSTMs only: what produces the representation."""
        return sum(p.numel() for m in self.net.encoder_modules() for p in m.parameters())

    @classmethod
    def search_space(cls) -> dict[str, Any] | None:
        return {
            "lr": {"loguniform": [3e-4, 5e-3]},
            "fusion_lambda": {"uniform": [0.0, 1.0]},
            "t1": {"choice": [0.5, 1.0, 2.0]},
            "t2": {"choice": [0.5, 1.0, 2.0]},
            "rounds": {"choice": [1, 2]},
        }
