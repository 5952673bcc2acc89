"""GPGait: generalized pose-based gait recognition (Fu, Hou, Meng, Lei, Wang, Zhong, Li, Xiong, ICCV 2023),
as a re-ID model trained with the release's triplet + cross-entropy losses.

From the release, BNU-IVC/FastPoseGait at commit 94da9c8 (``[M]`` is
``fastposegait/modeling/models/gpgait.py``, ``[B]`` ``.../components/blocks.py``, ``[P]``
``.../components/units/unit_pagcn.py``, ``[H]`` ``.../components/head.py``, ``[G]``
``.../graph/graph.py``, ``[GP]`` ``.../graph/partition.py``, ``[D]`` ``fastposegait/data/transform.py``,
``[I]`` ``fastposegait/modeling/base_model.py``, ``[Y]`` ``configs/gpgait/gpgait.yaml``), re-expressed:

- input, the Human-Oriented Descriptor ([D] 336-440) after ``RescaleCenter`` ([D] 483-524):
  every frame scaled to a height of 225 and centred on the neck; then the joints, the bones
  (joint minus ``connect_joint``) and one angle per joint (the inner angle at a joint between two
  neighbours by the law of cosines, pi - arccos; at an end joint the angle of its bone to the
  vertical, [D] 385-413). Three branches ([M] 18-41): pose (joints), bone (bones), angle (the
  angles of the arm and leg joints only: COCO's joints 5-16 on the "coco-no-head" graph);
- a branch (``BranchPAGCN``, [M] 65-186): data BN over V x C; three shared part-aware GCN layers
  (C -> 64 -> 64 -> 128) masked by the five-part partition; then, from the shared feature,
  part branches of one 128 -> 256 layer each, masked by the 2-part (upper / lower), 2-part (arms /
  head + legs) and 3-part (arms / legs / head) partitions (the angle branch: upper / lower only),
  and a global branch without mask; each followed by max over time (set pooling) and semantic
  pyramid pooling: per part, mean + max over its joints ([H] 35-50); 8 + 8 + 3 = 19 parts;
- the part-aware GCN (``PAGCN`` + residual, [P] 7-63, [B] 99-119): three subsets of the hop graph
  (``Graph`` with max_hop 2: hops 0, 1, 2, [G] 7, 80-102), each ``A_i + PA_i`` (PA learned, all
  1e-6 at start) plus a data-dependent attention softmax(q k / (C_inter T)) over the whole
  sequence (C_inter = C_out / 4), multiplied by the part mask (1 within a part), aggregating the
  input, then a 1x1 convolution; summed, BN, Mish; plus the input or a 1x1 convolution + BN;
- head ([M] 22-24, 45-48; [H] 52-113): separate FCs per part 256 -> 256 (no bias): the training
  embedding; a BNNeck (BN over the 19 x 256 features, L2-normalised per part) whose normalised
  features score cosine logits against normalised class weights; **the embedding** is the
  BNNeck feature (its inference feature, [M] 56-58), 19 x 256 flattened;
- initialisation ([I] 186-198): convolutions Xavier-uniform, zero bias; 2D batch norms 1, 0;
  the separate FCs and class weights Xavier-uniform ([H] 56-58, 85-87);
- training ([Y]): batch-hard triplet, margin 0.3, on the separate FCs' output, plus cross-entropy
  with scale 16 on the BNNeck logits without label smoothing, weights 1 and 1 (27-38); Adam,
  lr 1e-3, weight decay 2e-5 (52-56); OneCycleLR, three phases, max lr 1e-3, div 100, final div
  torch's default 1e4, half rising, 40,000 iterations (58-64, 75); P x K = 4 x 32 (76-86);
  augmentation after the rescaling: per-frame left-right flip with probability 0.1 and Gaussian
  noise std 0.3 per joint, constant over the sequence (87-99).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import math

import numpy as np
import torch
from torch import nn

from reid_bench.api import (DataSpec, Fraction, NonNegativeFloat, PositiveFloat, PositiveInt, SampleSet, later_setting,
                            run_setting)
from reid_bench.torchutil import TrainPrecision
from reid_bench_gcn.gaittr import PKReID, check_schedule
from reid_bench_gcn.graph import centre_joint, parent_joints, stgcn_adjacency
from reid_bench_gcn.training import SYNTHETIC, batch_hard_triplet, part_cross_entropy

ARM_ROLES = tuple(f"{j}_{s}" for j in ("shoulder", "elbow", "wrist", "hand") for s in ("left", "right"))
LEG_ROLES = tuple(f"{j}_{s}" for j in ("hip", "knee", "ankle", "foot") for s in ("left", "right"))


@dataclass
class GPGaitConfig:
    """GPGait's settings (defaults: the release's CASIA-B configuration ``configs/gpgait/gpgait.yaml``).

    As ``gaittr`` for ``iterations``, ``epoch_iterations``, ``identities`` x ``per_identity``
    (4 x 32), ``lr``, ``weight_decay``, the one-cycle fields (``final_div_factor`` 1e4, torch's
    default, ``pct_start`` 0.5) and ``margin``. ``ce_scale``: the cross-entropy's logit scale (16);
    ``label_smoothing`` (0); ``ce_weight`` (1). ``channels``: the layer widths after the input
    (64, 64, 128, 256); ``shared``: layers shared by the part branches (3). ``height``: the
    rescaled frame height (225); ``joint_noise``: per-joint noise std in those units (0.3);
    ``flip_prob``: per-frame left-right swap (0.1). ``train_precision``: as ``gaittr``'s (a named
    bf16 switch).
    """

    iterations: PositiveInt = 40_000
    epoch_iterations: PositiveInt = 1_000
    identities: PositiveInt = 4
    per_identity: PositiveInt = 32
    lr: PositiveFloat = 1e-3
    weight_decay: NonNegativeFloat = 2e-5
    div_factor: PositiveFloat = 100.0
    final_div_factor: PositiveFloat = 1e4
    pct_start: Fraction = 0.5
    three_phase: bool = True
    margin: NonNegativeFloat = 0.3
    ce_scale: PositiveFloat = 16.0
    ce_weight: NonNegativeFloat = 1.0
    label_smoothing: Fraction = 0.0
    channels: tuple[PositiveInt, ...] = (64, 64, 128, 256)
    shared: PositiveInt = 3
    height: PositiveFloat = 225.0
    joint_noise: NonNegativeFloat = 0.3
    flip_prob: Fraction = 0.1
    train_precision: TrainPrecision = later_setting("float32")
    embed_batch: PositiveInt = run_setting(256)

    point_noise: ClassVar[float] = 0.0  # the release's GPGait has no per-point noise

    def __post_init__(self) -> None:
        check_schedule(self, "gpgait")
        if not 1 <= self.shared < len(self.channels):
            raise ValueError(f"gpgait: shared={self.shared} must leave at least one of the {len(self.channels)} "
                             "layers to the part branches (release: 3 of 4)")
        for width in self.channels:
            if width < 4:
                raise ValueError(f"gpgait: channel width {width} leaves the attention no channel (C / 4 >= 1)")


def body_groups(layout) -> dict[str, list[int]]:
    """The layout's five bodies sorted into arms, legs and the rest ("head": COCO's head, the
    Kinect trunk with its head) by the roles of their joints; joints in no body join the rest."""
    roles = dict(layout.roles)
    arm = {j for r in ARM_ROLES for j in roles.get(r, ())}
    leg = {j for r in LEG_ROLES for j in roles.get(r, ())}
    groups: dict[str, list[list[int]]] = {"arm": [], "leg": [], "head": []}
    for body in layout.bodies:
        a, g = sum(j in arm for j in body), sum(j in leg for j in body)
        groups["arm" if a > g else "leg" if g > a else "head"].append(sorted(body))
    if not groups["arm"] or not groups["leg"]:
        raise ValueError(f"gpgait: layout {layout.name!r} needs bodies recognisable as arms and legs through its "
                         "roles (shoulder/elbow/wrist/hand and hip/knee/ankle/foot) for the part partitions")
    covered = {j for bodies in groups.values() for body in bodies for j in body}
    rest = [j for j in range(layout.num_joints) if j not in covered]
    head = sorted({j for body in groups["head"] for j in body} | set(rest))
    return {"arms": [b for b in groups["arm"]], "legs": [b for b in groups["leg"]], "head": head}


def partitions(groups: dict[str, Any], with_head: bool) -> dict[str, list[list[int]]]:
    """[GP] 10-66 from the layout's bodies: "limbs" (the five parts: each arm, each leg, the head),
    "upper-lower", "arms-rest" and "arms-legs-head" (empty groups dropped)."""
    arms = sorted(j for b in groups["arms"] for j in b)
    legs = sorted(j for b in groups["legs"] for j in b)
    head = groups["head"] if with_head else []

    def keep(parts: list[list[int]]) -> list[list[int]]:
        return [sorted(p) for p in parts if p]

    return {"limbs": keep([*groups["arms"], *groups["legs"], head]), "upper-lower": keep([arms + head, legs]),
            "arms-rest": keep([arms, legs + head]), "arms-legs-head": keep([arms, legs, head])}


def part_mask(parts: list[list[int]], joints: int) -> torch.Tensor:
    """[P] 32-39: 1 between two joints of the same part."""
    mask = torch.zeros(joints, joints)
    for p in parts:
        mask[np.ix_(p, p)] = 1.0
    return mask


class PAGCN(nn.Module):
    """Part-aware graph convolution with its residual ([P] 12-63, [B] 103-119)."""

    def __init__(self, cin: int, cout: int, adjacency: torch.Tensor, mask: torch.Tensor | None) -> None:
        super().__init__()
        subsets = adjacency.shape[0]
        self.inter = cout // 4
        self.register_buffer("adjacency", adjacency.float())
        self.register_buffer("mask", mask if mask is not None else torch.ones(adjacency.shape[1:]))
        self.pa = nn.Parameter(torch.full(adjacency.shape, 1e-6))
        self.conv_a = nn.ModuleList(nn.Conv2d(cin, self.inter, 1) for _ in range(subsets))
        self.conv_b = nn.ModuleList(nn.Conv2d(cin, self.inter, 1) for _ in range(subsets))
        self.conv_d = nn.ModuleList(nn.Conv2d(cin, cout, 1) for _ in range(subsets))
        self.bn = nn.BatchNorm2d(cout)
        self.act = nn.Mish()
        self.residual = nn.Sequential(nn.Conv2d(cin, cout, 1), nn.BatchNorm2d(cout)) if cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, v = x.shape
        a = self.adjacency + self.pa
        y = 0.0
        for i in range(a.shape[0]):
            q = self.conv_a[i](x).permute(0, 3, 1, 2).reshape(n, v, self.inter * t)
            k = self.conv_b[i](x).reshape(n, self.inter * t, v)
            attention = torch.softmax(q @ k / q.shape[-1], dim=-2)  # [P] 54
            y = y + self.conv_d[i]((x.reshape(n, c * t, v) @ ((attention + a[i]) * self.mask)).view(n, c, t, v))
        y = self.act(self.bn(y))
        return y + (x if self.residual is None else self.residual(x))


class Branch(nn.Module):
    """``BranchPAGCN`` ([M] 65-186) on a graph of ``joints`` with the given partitions."""

    def __init__(self, cin: int, joints: int, edges, parts: dict[str, list[list[int]]], branches: tuple[str, ...],
                 channels: tuple[int, ...], shared: int) -> None:
        super().__init__()
        adjacency = torch.from_numpy(stgcn_adjacency(joints, edges, 0, "distance", 2)).float()  # [G] 7: max_hop 2
        self.parts = parts
        self.branch_names = branches
        self.data_bn = nn.BatchNorm1d(cin * joints)
        widths = (cin, *channels)
        five = part_mask(parts["limbs"], joints)
        self.shared = nn.Sequential(*(PAGCN(widths[i], widths[i + 1], adjacency, five) for i in range(shared)))

        def stack(mask: torch.Tensor | None) -> nn.Sequential:
            return nn.Sequential(*(PAGCN(widths[i], widths[i + 1], adjacency, mask)
                                   for i in range(shared, len(channels))))

        self.branches = nn.ModuleList(stack(part_mask(parts[name], joints)) for name in branches)
        self.whole = stack(None)

    @property
    def num_parts(self) -> int:
        return sum(len(self.parts[name]) for name in self.branch_names) + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, v = x.shape
        x = self.data_bn(x.permute(0, 3, 1, 2).reshape(n, v * c, t)).view(n, v, c, t).permute(0, 2, 3, 1)
        x = self.shared(x)
        out = []
        for name, branch in zip(self.branch_names, self.branches):
            y = branch(x).amax(dim=2)  # set pooling: max over time ([M] 148)
            out += [y[..., p].mean(-1) + y[..., p].amax(-1) for p in self.parts[name]]  # [H] 42-50
        y = self.whole(x).amax(dim=2)
        out.append(y.mean(-1) + y.amax(-1))
        return torch.stack(out, -1)  # [n, c, parts]


class GPGaitNet(nn.Module):
    """Three branches, separate FCs and the BNNeck ([M] 10-62). ``forward`` returns the training
    embedding [n, c, p], the BNNeck feature [n, c, p] and the logits [n, classes, p]."""

    def __init__(self, num_joints: int, edges, groups: dict[str, Any], num_classes: int,
                 channels: tuple[int, ...] = (64, 64, 128, 256), shared: int = 3, coords: int = 3) -> None:
        super().__init__()
        full = partitions(groups, with_head=True)
        limb_joints = sorted(j for key in ("arms", "legs") for b in groups[key] for j in b)
        self.register_buffer("limb_joints", torch.as_tensor(limb_joints))
        remap = {j: i for i, j in enumerate(limb_joints)}
        limb_edges = [(remap[a], remap[b]) for a, b in edges if a in remap and b in remap]
        local = {"arms": [[remap[j] for j in b] for b in groups["arms"]],
                 "legs": [[remap[j] for j in b] for b in groups["legs"]], "head": []}
        limb_parts = partitions(local, with_head=False)
        names = ("upper-lower", "arms-rest", "arms-legs-head")
        self.pose = Branch(coords, num_joints, edges, full, names, channels, shared)
        self.bone = Branch(coords, num_joints, edges, full, names, channels, shared)
        self.angle = Branch(1, len(limb_joints), limb_edges, limb_parts, ("upper-lower",), channels, shared)
        parts = self.pose.num_parts + self.bone.num_parts + self.angle.num_parts
        width = channels[-1]
        self.fcs = nn.Parameter(nn.init.xavier_uniform_(torch.zeros(parts, width, width)))
        self.neck_bn = nn.BatchNorm1d(width * parts)
        self.classifier = nn.Parameter(nn.init.xavier_uniform_(torch.zeros(parts, width, num_classes)))
        for m in self.modules():  # [I] 186-198
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, pose: torch.Tensor, bone: torch.Tensor, angle: torch.Tensor):
        feature = torch.cat([self.pose(pose), self.bone(bone), self.angle(angle[..., self.limb_joints])], -1)
        embed = (feature.permute(2, 0, 1) @ self.fcs).permute(1, 2, 0)  # [H] 61-71
        n, c, p = embed.shape
        neck = nn.functional.normalize(self.neck_bn(embed.reshape(n, c * p)).view(n, c, p).permute(2, 0, 1), dim=-1)
        logits = neck @ nn.functional.normalize(self.classifier, dim=1)  # [H] 94-113
        return embed, neck.permute(1, 2, 0), logits.permute(1, 2, 0)


class GPGait(PKReID):
    """GPGait's three-branch part-aware network trained with triplet + cross-entropy; the BNNeck
    feature (19 parts x 256) is the embedding."""

    published_as = "GPGait"
    name = "gpgait"
    config_class: ClassVar[type] = GPGaitConfig
    description = ("GPGait: part-aware GCN branches over joints, bones and joint angles (human-oriented descriptor, "
                   "3D), semantic part pooling from the layout's bodies, BNNeck embedding; triplet + cross-entropy")
    citation = ("Fu, Hou, Meng, Lei, Wang, Zhong, Li, Xiong: GPGait: Generalized pose-based gait recognition, "
                "ICCV 2023; code: BNU-IVC/FastPoseGait")
    budget_overrides: ClassVar[dict[str, dict[str, Any]]] = dict.fromkeys(
        SYNTHETIC, {"iterations": 240, "epoch_iterations": 30, "per_identity": 8})
    protocol_notes: ClassVar[dict[str, str]] = dict.fromkeys(
        SYNTHETIC, "CPU budget: 240 iterations (8 epochs of 30) of 4 x 8 batches, one-cycle schedule over them "
                   "(release: 40,000 iterations of 4 x 32; about 26-28 h per trial on 2 idle threads here, by "
                   "`make bench`)")

    def prepare_layout(self) -> None:
        self.groups = body_groups(self.layout)
        self.centre = centre_joint(self.layout)
        self.parent = torch.as_tensor(parent_joints(self.layout.num_joints, self.layout.edges, self.centre))
        roles = dict(self.layout.roles)
        self.neck = list(roles.get("neck", (self.centre,)))
        self.pelvis = list(roles["pelvis"]) if "pelvis" in roles else None
        self.angle_pairs = self._angle_pairs()

    def _angle_pairs(self) -> torch.Tensor:
        """For each joint the two neighbours of its inner angle: the one nearer the centre and the
        first farther one (the centre: its first two neighbours); an end joint uses its one
        neighbour twice, marking the angle to the vertical ([D] 343-362 hand-writes COCO's)."""
        nb: list[list[int]] = [[] for _ in range(self.layout.num_joints)]
        for a, b in self.layout.edges:
            nb[a].append(b)
            nb[b].append(a)
        pairs = []
        for j in range(self.layout.num_joints):
            others = sorted(n for n in nb[j] if n != int(self.parent[j]))
            if int(self.parent[j]) != j:
                pair = [int(self.parent[j]), others[0] if others else int(self.parent[j])]
            else:
                pair = (sorted(nb[j]) + [j, j])[:2]
            pairs.append(pair)
        return torch.as_tensor(pairs)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """``RescaleCenter`` ([D] 492-524): per frame, scale the largest extent to ``height``
        (the release: the image height of the pose) and centre on the neck."""
        extent = (x.amax(2) - x.amin(2)).amax(-1).clamp_min(1e-6)[:, :, None, None]
        x = x * (self.config.height / extent)
        return x - x[:, :, self.neck].mean(2, keepdim=True)

    def descriptor(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """HOD ([D] 415-440): joints, bones, angles, each [N, C, T, V]."""
        bones = x - x[:, :, self.parent]
        centre = x
        left, right = x[:, :, self.angle_pairs[:, 0]], x[:, :, self.angle_pairs[:, 1]]
        u, w = left - centre, right - centre
        end = (self.angle_pairs[:, 0] == self.angle_pairs[:, 1])
        if self.pelvis is not None:
            up = x[:, :, self.neck].mean(2) - x[:, :, self.pelvis].mean(2)  # the spine as the vertical
        else:
            up = torch.zeros_like(x[:, :, 0]) + torch.tensor([0.0, 1.0, 0.0])
        up = up[:, :, None].expand_as(u)
        w = torch.where(end[None, None, :, None], (u * up).sum(-1, keepdim=True) * up / (up * up).sum(
            -1, keepdim=True).clamp_min(1e-12), w)  # the bone's projection on the vertical ([D] 385-390)
        den = u.norm(dim=-1) * w.norm(dim=-1)
        cos = ((u * w).sum(-1) / den.clamp_min(1e-12)).clamp(-1, 1)
        angle = torch.where(den > 0, math.pi - torch.arccos(cos), torch.full_like(cos, math.pi))  # [D] 395-413
        as_nctv = lambda z: z.permute(0, 3, 1, 2)  # noqa: E731
        return as_nctv(x), as_nctv(bones), angle[:, None]

    def build_net(self, num_classes: int) -> GPGaitNet:
        cfg = self.config
        return GPGaitNet(self.layout.num_joints, self.layout.edges, self.groups, num_classes, tuple(cfg.channels),
                         cfg.shared)

    def loss_of(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        cfg = self.config
        embed, _, logits = net(*self.descriptor(x))
        triplet = batch_hard_triplet(embed, y, cfg.margin)
        ce = part_cross_entropy(logits, y, cfg.ce_scale, cfg.label_smoothing)
        return triplet + cfg.ce_weight * ce, {"triplet": float(triplet.detach()), "ce": float(ce.detach())}

    def features(self, batch: torch.Tensor) -> torch.Tensor:
        return self.net(*self.descriptor(batch))[1].flatten(1)

    def embedding_dim(self, samples: SampleSet) -> int:
        return self.config.channels[-1] * self.net.fcs.shape[0]

    def num_parameters(self) -> int:
        """The network without the class weights (the BNNeck's classifier)."""
        return sum(p.numel() for name, p in self.net.named_parameters() if name != "classifier")
