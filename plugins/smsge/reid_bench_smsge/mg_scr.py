"""MG-SCR (Rao, Xu, Hu, Cheng, Hu, IJCAI 2021) in PyTorch: multi-level graph encoding with
structural-collaborative relation learning, SM-SGE's predecessor from the same lab.

Per frame the skeleton is seen at three levels (joints, 10 parts, 5 bodies; SM-SGE's graphs
without the hyper-joint scale). Every node's 3-D position goes through a biased linear map to
D = 8 features, then a multi-head structural relation layer (8 GAT heads over the 1-hop
neighbourhood, ELU, averaged: SM-SGE's ``StructuralRelations``). The cross-level collaborative
relation layer lets each part attend to the joints and each body to the parts (inner-product
softmax), adds the attended features through a D x D matrix, and hands every joint its part's
and its body's features back, weighted by lambda = 0.3. The frames' joint-level features,
flattened, go through a 2-layer LSTM (128 units).

Training has two stages, as the release runs them (``train.py``):
1. self-supervised sparse sequential prediction (SSP): for every length k = 1..f-1, k sorted
   frames of the first f-1 are encoded and a 2-layer MLP predicts, from each LSTM state, the
   skeleton of the frame after it (sum of squared errors / 2, averaged over the lengths);
2. re-identification: the whole network and an MLP classifier are trained together with
   cross-entropy on the classifier's logits summed over the states of the f-1 prefixes
   (weight decay 0.0005 on every variable).
The representation is the frozen network's f-1 prefix states (``pool="concat"``).

"[R]" below is Kali-Hac/MG-SCR at commit cf9e1c99df35d522aabc3e1b5b3512ee5b146788 (TensorFlow
1.x), read for facts and not copied; the plugin README lists every default with its line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import nn

from reid_bench.api import (DataSpec, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, SampleSet,
                            TorchModel, TrialContext, run_setting)
from reid_bench.samples import class_balanced_order

from .graphs import ScaleGraph, build_graphs
from .model import SMSGEConfig, StructuralRelations, collaborative_relations, pool_states

LEVELS: tuple[str, ...] = ("joint", "part", "body")
_SYNTHETIC = ("synth-gait", "synth-gait-dev", "synth-gait-retrieval")
_CASIA_B = {"batch_size": 128, "hidden": 256, "lr": 0.0005}


@dataclass
class MGSCRConfig:
    """Hyper-parameters of MG-SCR (defaults: [R] train.py for BIWI / IAS / KGBD; KS20 and CASIA-B
    in ``protocol_overrides``).

    Architecture: ``d_t`` node features (``hid_units`` [8], train.py:35), ``heads`` structural
    relation heads (``n_heads`` 8, :36), ``hidden`` LSTM units (128, :27), ``lstm_layers`` (2,
    :28), ``nhood`` hops of the joint-level neighbourhood (1, :23), ``fusion_lambda`` (the
    ``--c_lambda`` default 0.3, :44 and :67), ``part_graph`` ("released": the release's part
    adjacency, utils/process.py:122-125; "bones": parts linked by the layout's bones).
    SSP: ``pretrain_epochs`` (150, :20; KS20 300, :77-78; 0 = the release's ``--task none``,
    :75-76), ``samples`` sampling rounds (``sample_num`` 1, :21), ``fixed_sampling`` (the frames
    are drawn once, while the release builds its graph, :284-287; false: redrawn every batch).
    Re-ID stage: ``epochs`` a fixed budget (the release stops on test accuracy, see the README),
    ``finetune`` (false: keep the SSP encoder frozen and let the probe do all the re-ID
    training). Both stages: ``lr`` Adam (0.005, :33), ``l2`` weight decay of the re-ID stage on
    every variable (0.0005, :34), ``batch_size`` (256, :30), ``balanced_batches`` (the release's
    class-balanced training set in a fixed order, utils/process.py:70 and 261-297).
    Scoring: ``pool`` over the f-1 prefix states ("concat": all of them, what the release's
    classifier sees; "mean"; "last"), ``probe`` ("released": the release's recognition MLP on the
    frozen features; "harness": ``ProbeConfig``'s defaults). ``embed_batch`` windows per pass
    (a run setting).
    """

    d_t: PositiveInt = 8
    heads: PositiveInt = 8
    hidden: PositiveInt = 128
    lstm_layers: PositiveInt = 2
    nhood: PositiveInt = 1
    fusion_lambda: NonNegativeFloat = 0.3
    part_graph: Literal["released", "bones"] = "released"
    pretrain_epochs: NonNegativeInt = 150
    samples: PositiveInt = 1
    fixed_sampling: bool = True
    epochs: NonNegativeInt = 100
    finetune: bool = True
    lr: PositiveFloat = 0.005
    l2: NonNegativeFloat = 0.0005
    batch_size: PositiveInt = 256
    balanced_batches: bool = True
    pool: Literal["concat", "mean", "last"] = "concat"
    probe: Literal["released", "harness"] = "released"
    embed_batch: PositiveInt = run_setting(512)


def membership(graph: ScaleGraph) -> np.ndarray:
    """[J, n] map that hands every joint the feature of the group holding it ([R] train.py
    150-230 tile each part's / body's feature onto its joints). A joint in several groups gets
    their mean, one in none gets nothing (neither happens on the release's layouts)."""
    held = (graph.pool.T > 0).astype(np.float32)
    counts = held.sum(1, keepdims=True)
    return held / np.maximum(counts, 1.0)


def sparse_frames(f: int, samples: int, gen: torch.Generator) -> list[torch.Tensor]:
    """Sorted source frames of every subsequence: for each round and k = 1..f-1, k distinct of
    the frames 0..f-2 ([R] train.py:65, 284-287); the target of frame t is frame t + 1."""
    out = []
    for _ in range(samples):
        for k in range(1, f):
            out.append(torch.sort(torch.randperm(f - 1, generator=gen)[:k]).values)
    return out


def ssp_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``tf.nn.l2_loss``: half the sum of squared errors over batch, steps and coordinates ([R] 342)."""
    return 0.5 * (pred - target).pow(2).sum()


def summed_logits(classifier: nn.Module, states: torch.Tensor) -> torch.Tensor:
    """Logits of every prefix state [B, f-1, H] through one classifier, summed ([R] 365-377)."""
    return classifier(states).sum(1)


class MultiLevelGraphEncoder(nn.Module):
    """Per-level embedding + structural relations, then cross-level collaborative fusion back
    onto the joints ([R] train.py:126-270)."""

    def __init__(self, cfg: MGSCRConfig, graphs: dict[str, ScaleGraph]) -> None:
        super().__init__()
        self.fusion_lambda = cfg.fusion_lambda
        # SM-SGE's relation layer computes exactly the release's attn_head (utils/layers.py:6-36):
        # biased 1x1 scores, LeakyReLU(0.2), no temperature, ELU, heads averaged (models/gat.py:26-27).
        relation_cfg = SMSGEConfig(d_t=cfg.d_t, heads=cfg.heads, t1=1.0, leaky_slope=0.2)
        self.embed = nn.ModuleDict({s: nn.Linear(3, cfg.d_t) for s in LEVELS})
        self.structural = nn.ModuleDict({s: StructuralRelations(relation_cfg, graphs[s].mask) for s in LEVELS})
        # W_cs_12 (joints -> parts) and W_cs_23 (parts -> bodies), [R] 241-242.
        self.joint_to_part = nn.Parameter(torch.empty(cfg.d_t, cfg.d_t))
        self.part_to_body = nn.Parameter(torch.empty(cfg.d_t, cfg.d_t))
        # W_cs_13 ([R] 243): created and trained in the release but never used (c_13 is computed
        # and dropped, :249). Kept so the parameter count and the weight decay match; no output
        # depends on it.
        self.joint_to_body_unused = nn.Parameter(torch.empty(cfg.d_t, cfg.d_t))
        self.register_buffer("part_back", torch.as_tensor(membership(graphs["part"])))
        self.register_buffer("body_back", torch.as_tensor(membership(graphs["body"])))
        with torch.no_grad():
            for s in LEVELS:  # W_h ~ N(0, 1), b_h = 0 ([R] 127-128)
                nn.init.normal_(self.embed[s].weight, 0.0, 1.0)
                nn.init.zeros_(self.embed[s].bias)
            for w in (self.joint_to_part, self.part_to_body, self.joint_to_body_unused):
                nn.init.normal_(w, 0.0, 1.0)  # tf.random_normal ([R] 241-243)

    def forward(self, nodes: dict[str, torch.Tensor]) -> torch.Tensor:
        """nodes[level]: [N, n_level, 3] -> fused joint features [N, J, D]."""
        h = {s: self.structural[s](self.embed[s](nodes[s])) for s in LEVELS}
        # Each part attends to the joints, each body to the parts ([R] 140-148, 245-247): the
        # same softmax(q k^T) v as SM-SGE's collaborative relations, queried from the coarser level.
        _, joints_in_parts = collaborative_relations(h["part"], h["joint"], 1.0)
        _, parts_in_bodies = collaborative_relations(h["body"], h["part"], 1.0)
        part = h["part"] + joints_in_parts @ self.joint_to_part  # [R] 256
        body = h["body"] + parts_in_bodies @ self.part_to_body  # [R] 257
        back = self.part_back @ part + self.body_back @ body  # [R] 267-268
        return h["joint"] + self.fusion_lambda * back  # [R] 269


class MGSCRNet(nn.Module):
    def __init__(self, cfg: MGSCRConfig, graphs: dict[str, ScaleGraph], num_joints: int, num_classes: int) -> None:
        super().__init__()
        self.hidden = cfg.hidden
        for s in LEVELS:
            self.register_buffer(f"pool_{s}", torch.as_tensor(graphs[s].pool))
        self.graph = MultiLevelGraphEncoder(cfg, graphs)
        self.lstm = nn.LSTM(num_joints * cfg.d_t, cfg.hidden, num_layers=cfg.lstm_layers, batch_first=True)
        h = cfg.hidden
        self.predictor = nn.Sequential(nn.Linear(h, h), nn.ReLU(), nn.Linear(h, 3 * num_joints))  # [R] 315-318
        self.classifier = nn.Sequential(nn.Linear(h, h), nn.ReLU(), nn.Linear(h, max(1, num_classes)))  # [R] 360-363
        self._init_like_tf()

    def _init_like_tf(self) -> None:
        h = self.hidden
        with torch.no_grad():
            for layer in range(self.lstm.num_layers):
                w_ih = getattr(self.lstm, f"weight_ih_l{layer}")
                w_hh = getattr(self.lstm, f"weight_hh_l{layer}")
                # TF LSTMCell: one Glorot-uniform kernel [in + H, 4H] ([R] 274; TF's default initialiser)
                bound = math.sqrt(6.0 / (w_ih.shape[1] + h + 4 * h))
                w_ih.uniform_(-bound, bound)
                w_hh.uniform_(-bound, bound)
                # TF's single bias (zeros, trainable) is bias_ih; bias_hh is frozen at TF's constant
                # forget_bias = 1, so the trainable parameters and their weight decay are TF's.
                getattr(self.lstm, f"bias_ih_l{layer}").zero_()
                b_hh = getattr(self.lstm, f"bias_hh_l{layer}")
                b_hh.zero_()
                b_hh[h:2 * h] = 1.0
                b_hh.requires_grad_(False)
            for head in (self.predictor, self.classifier):  # tf.random_normal weights, zero biases
                for m in head:
                    if isinstance(m, nn.Linear):
                        nn.init.normal_(m.weight, 0.0, 1.0)
                        nn.init.zeros_(m.bias)

    def trainable(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def node_positions(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x [B, f, J, 3] -> {level: [B * f, n, 3]}: joints, part and body means ([R] process.py 164-245)."""
        flat = x.reshape(-1, x.shape[2], 3)
        return {s: torch.einsum("nj,bjd->bnd", getattr(self, f"pool_{s}"), flat) for s in LEVELS}

    def frame_features(self, x: torch.Tensor) -> torch.Tensor:
        """[B, f, J, 3] -> [B, f, J * D]: the graph encoder per frame, flattened for the LSTM ([R] 273)."""
        b, f = x.shape[:2]
        return self.graph(self.node_positions(x)).reshape(b, f, -1)

    def prefix_states(self, x: torch.Tensor) -> torch.Tensor:
        """[B, f-1, H]: the top LSTM output after frames 1..f-1, i.e. the last state of each
        consecutive prefix of length k = 1..f-1 ([R] 303-310, 324-331; the LSTM is causal)."""
        feats = self.frame_features(x[:, :-1])
        out, _ = self.lstm(feats)
        return out

    def ssp_objective(self, x: torch.Tensor, frames: list[torch.Tensor]) -> torch.Tensor:
        """Mean over subsequences of the next-frame prediction loss ([R] 284-349)."""
        feats = self.frame_features(x)
        b = x.shape[0]
        skeletons = x.reshape(b, x.shape[1], -1)  # targets: the input joints ([R] 272, 282)
        losses = []
        for idx in frames:
            out, _ = self.lstm(feats[:, idx])
            losses.append(ssp_loss(self.predictor(out), skeletons[:, idx + 1]))
        return torch.stack(losses).mean()

    def l2_penalty(self) -> torch.Tensor:
        """``l2_coef`` x sum of tf.nn.l2_loss over every trainable variable (models/base_gattn.py:
        11-13; its name filter matches no TF variable name, so the biases are decayed too)."""
        return sum(0.5 * p.pow(2).sum() for p in self.trainable())


class MGSCR(TorchModel):
    """Multi-level skeleton graphs, structural + collaborative relations, SSP pretraining, re-ID fine-tuning."""

    published_as = "MG-SCR"
    version = "1"
    modality = "skeleton"
    config_class: ClassVar[type] = MGSCRConfig
    description = ("MG-SCR: joint/part/body graphs, multi-head structural + cross-level collaborative relations, "
                   "2-layer LSTM; sparse sequential prediction pretraining, then supervised fine-tuning")
    citation = ("Rao, Xu, Hu, Cheng, Hu. Multi-Level Graph Encoding with Structural-Collaborative Relation Learning "
                "for Skeleton-Based Person Re-Identification. IJCAI 2021. Code: github.com/Kali-Hac/MG-SCR")
    # [R] train.py:77-78 (KS20: 300 SSP epochs); train-CASIA.py:79-86 (CASIA-B: batch 128, 256 LSTM
    # units, lr 0.0005, 300 SSP epochs for the cross-view splits, 160 for condition matching).
    protocol_overrides: ClassVar[dict[str, dict[str, Any]]] = {
        **dict.fromkeys(("ks20", "ks20-retrieval"), {"pretrain_epochs": 300}),
        **dict.fromkeys(("casia-b", "casia-b-npy"), {**_CASIA_B, "pretrain_epochs": 300}),
        "casia-b-cme": {**_CASIA_B, "pretrain_epochs": 160},
        # A CPU budget of this benchmark, not the paper's, chosen on synth-gait-dev (fold A, seed 0)
        # between 10 and 30 re-ID epochs: Rank-1 46.5 vs 54.0 (training accuracy 0.66 vs 0.89).
    }
    budget_overrides: ClassVar[dict[str, dict[str, Any]]] = dict.fromkeys(_SYNTHETIC, {"pretrain_epochs": 10,
                                                                                       "epochs": 30})
    protocol_notes: ClassVar[dict[str, str]] = dict.fromkeys(
        _SYNTHETIC, "CPU budget: 10 SSP + 30 re-ID epochs (the release: 150 SSP epochs, re-ID until 100 epochs "
        "without a better test accuracy; its 150 + 100 epochs: about 6 min per trial on 2 idle threads here, by `make bench`; 3 h on the shared machine these rows ran on)")

    def __init__(self, config: MGSCRConfig, spec: DataSpec) -> None:
        super().__init__(config, spec)
        if spec.layout is None:
            raise ValueError("mg-scr needs a skeleton layout in the data spec")
        if spec.window is not None and spec.window < 2:
            raise ValueError(f"mg-scr needs windows of at least 2 frames (it predicts the next frame), got {spec.window}")
        self.cfg = config
        self.layout = spec.layout
        part_graph = config.part_graph if len(spec.layout.parts) == 10 else "bones"
        self.graphs = build_graphs(spec.layout, config.nhood, part_graph)
        self.net = MGSCRNet(config, self.graphs, spec.layout.num_joints, spec.num_classes or 1)
        self.history: list[dict[str, float]] = []

    @classmethod
    def example_spec(cls) -> DataSpec:
        from reid_bench.layouts import KINECT_V1_20

        return DataSpec("skeleton", num_classes=11, layout=KINECT_V1_20, window=6)  # IAS-Lab: 11 identities

    @classmethod
    def probe_defaults(cls, config: MGSCRConfig, protocol: Any) -> dict[str, Any]:
        """The release's recognition layer ([R] 351-386) trained again on the frozen, fine-tuned
        network: H -> H -> ReLU -> C on every prefix state, logits summed, N(0, 1) weights, Adam at
        the run's lr with weight decay 0.0005 (the gradient of l2_coef x l2_loss), the pretraining
        batch over the class-balanced set in its fixed order, raw features, scores = summed logits."""
        if config.probe != "released":
            return {}
        f = protocol.window or 6
        chunks = max(1, f - 1) if config.pool == "concat" else 1
        return {"kind": "mlp", "hidden": config.hidden, "init": "normal", "lr": config.lr, "weight_decay": config.l2,
                "batch_size": config.batch_size, "standardize": False, "chunks": chunks, "chunk_loss": "summed",
                "balanced": config.balanced_batches, "shuffle": False, "scores": "logits"}

    # ------------------------------------------------------------------------------ training
    training_attributes = ("pretrain_optimizer", "finetune_optimizer", "generator", "history")

    def start_fit(self, train: SampleSet, ctx: TrialContext) -> None:
        cfg = self.cfg
        self.generator = torch.Generator().manual_seed(ctx.seed)
        labels = np.asarray(train.labels, dtype=np.int64)
        if len(labels) and labels.min() < 0:
            raise ValueError("mg-scr: training labels must be class indices >= 0")
        num_classes = max(int(train.num_classes or 0), int(labels.max()) + 1 if len(labels) else 1)
        self.net = MGSCRNet(cfg, self.graphs, self.layout.num_joints, num_classes).to(self.device)
        self.data = torch.as_tensor(np.asarray(train.data, dtype=np.float32))
        self.targets = torch.as_tensor(labels)
        f = self.data.shape[1]
        if f < 2:
            raise ValueError(f"mg-scr needs windows of at least 2 frames, got {f}")
        if cfg.balanced_batches:  # built once, used in this order by both stages (utils/process.py:70)
            self.order = torch.as_tensor(class_balanced_order(labels, cfg.batch_size, np.random.default_rng(ctx.seed)))
        else:
            self.order = None
        self.fixed = sparse_frames(f, cfg.samples, self.generator) if cfg.fixed_sampling else None
        self.history = []
        self.pretrain_optimizer = torch.optim.Adam(self.net.trainable(), lr=cfg.lr)  # pred_opt ([R] 348-349)
        # The re-ID stage's fresh Adam over every variable, loss = CE + l2 ([R] 384-386;
        # base_gattn.py:9-19). The release's later ``lr = 0.0005`` (:432) comes after this
        # optimiser is built: no effect.
        self.finetune_optimizer = torch.optim.Adam(self.net.trainable(), lr=cfg.lr)

    def num_epochs(self) -> int:
        return self.cfg.pretrain_epochs + (self.cfg.epochs if self.cfg.finetune else 0)

    def _batches(self):
        m = len(self.data) if self.order is None else len(self.order)
        bs = max(1, min(self.cfg.batch_size, m))
        perm = torch.randperm(len(self.data), generator=self.generator) if self.order is None else self.order
        for start in range(0, m - bs + 1, bs):  # the last partial batch is dropped ([R] 407-409)
            idx = perm[start:start + bs]
            yield self.data[idx].to(self.device), self.targets[idx].to(self.device)

    def train_epoch(self, epoch: int, ctx: TrialContext) -> dict[str, float]:
        cfg, net = self.cfg, self.net
        net.train()
        if epoch < cfg.pretrain_epochs:  # sparse sequential prediction
            opt, total, steps = self.pretrain_optimizer, 0.0, 0
            for x, _ in self._batches():
                frames = self.fixed if self.fixed is not None else sparse_frames(self.data.shape[1], cfg.samples,
                                                                                 self.generator)
                loss = net.ssp_objective(x, [i.to(self.device) for i in frames])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach())
                steps += 1
            metrics = {"ssp_loss": total / max(1, steps)}
        else:  # re-ID fine-tuning
            opt, total, correct, count, steps = self.finetune_optimizer, 0.0, 0, 0, 0
            for x, target in self._batches():
                logits = summed_logits(net.classifier, net.prefix_states(x))
                ce = nn.functional.cross_entropy(logits, target)
                loss = ce + cfg.l2 * net.l2_penalty()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(ce.detach())
                correct += int((logits.argmax(1) == target).sum())
                count += len(target)
                steps += 1
            metrics = {"ce_loss": total / max(1, steps), "train_acc": correct / max(1, count)}
        self.history.append(metrics)
        return metrics

    # ------------------------------------------------------------------------------ embedding
    def embedding_dim(self, samples: SampleSet) -> int:
        data = np.asarray(samples.data)
        f = data.shape[1] if data.ndim == 4 else (self.spec.window or 6)
        return self.cfg.hidden * max(1, f - 1) if self.cfg.pool == "concat" else self.cfg.hidden

    def features(self, batch: torch.Tensor) -> torch.Tensor:
        return pool_states(self.net.prefix_states(batch), self.cfg.pool)

    def num_parameters(self) -> int:
        """The release's trainable variables: graph encoder, LSTM, SSP predictor and the re-ID
        classifier, which MG-SCR trains with the encoder (for the spec's number of classes)."""
        return sum(p.numel() for p in self.net.trainable())

    def encoder_parameters(self) -> int:
        """Graph encoder + LSTM: what produces the representation."""
        return sum(p.numel() for m in (self.net.graph, self.net.lstm) for p in m.parameters() if p.requires_grad)

    @classmethod
    def search_space(cls) -> dict[str, Any] | None:
        return {"lr": {"loguniform": [5e-4, 1e-2]}, "fusion_lambda": {"choice": [0.1, 0.3, 0.5, 1.0]},
                "l2": {"loguniform": [1e-5, 1e-3]}}
