"""OG-Net, OG-Net-Small and OG-Net-Deep as reid-bench models.

Training follows the README commands of layumi/person-reid-3d: Adam (amsgrad), weight decay
5e-4, cosine decay to 1 % of the base lr with warm-up, batch 36, identity cross-entropy (plus
circle loss, m = 0.25, gamma = 64, on the L2-normalised BN feature when ``circle`` is set),
class-balanced sampling (``--balance``: a WeightedRandomSampler with 1 / class-size weights),
augmentation: x flip, per-axis scale U(0.75, 1.33), Gaussian jitter 0.01 clipped at +-0.01.
Input: ``points`` points per cloud (training: a random subset half of the time, else evenly
spaced; test: evenly spaced), xyz centred on the whole cloud's mean, rgb - 0.5. Embedding: the
512-d BN feature of xyz and of 1.1 xyz summed, then L2-normalised (test-time scale augmentation
of the released ``test_M.py``).

Deviations, each a switch: warm-up scales the learning rate from 0.1 to 1 over ``warmup_epochs``
(per iteration), where the code scales the loss that way, which under Adam changes almost
nothing but the relative weight of the decay; no weight averaging (``--wa``) and no separate MSMT test script.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from reid_bench.pointops import even_index
from reid_bench.api import (DataSpec, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, Probability, Range,
                            SampleSet, TorchModel, TrialContext, require_order, run_setting)

from .network import NetConfig, OGNetNetwork

_CITATION = (
    "Zheng, Zheng, Yang, Sebe, Yang. Parameter-Efficient Person Re-identification in the 3D Space. "
    "IEEE TNNLS 2022 (code: github.com/layumi/person-reid-3d)"
)


@dataclass
class OGNetConfig(NetConfig):
    """OG-Net hyper-parameters: the network's (``NetConfig``) plus data and optimisation (defaults: the paper / released code, Market-1501-3D).

    Network: ``widths`` per omni-scale module; ``k`` EdgeConv neighbours; ``convs_per_module``
    EdgeConvs per module (Deep: 2); ``shortcut`` the gated residual of OG-Net-Deep
    (``--id_skip 2``); ``init_points`` and ``stride``: FPS schedule (768, halved whenever the
    width grows: 4096 -> 768 -> 384 -> 192 -> 96); ``group_sizes`` / ``radii`` / ``grouping``
    ("ball": the code's ball query; "knn": the paper's nearest neighbours); ``aggregation``
    ("gated": the code's learned max/mean mix; "max"; "sum": the paper's equation);
    ``non_local``: last module's graph on xyz + appearance (``--cluster xyzrgb``); ``use_se``;
    ``embed_dim``, ``dropout``; ``factorised``: run EdgeConv's and the first grouping linear per
    point before gathering (identical maths, several times cheaper).
    Data: ``input`` "released" (market3d.py lines 97-136 of the release: ``slim`` of the mesh
    vertices, taken from the coloured ones, pure-white vertices neutralised to grey) or "harness"
    (``points`` per cloud from all vertices); ``random_subset``: probability of a random (vs
    evenly spaced) subset in training; ``flip``, ``scale_min``/``scale_max`` (uniform, per axis),
    ``jitter`` (sigma, clipped at the same value); ``colour_jitter``: per-channel rgb gain
    1 + U(-c, c), not in the paper (0 = off); ``tta_scales``: xyz scales whose features are summed.
    Optimisation: ``epochs``, ``batch_size``, ``lr``, ``warmup_epochs``, ``lr_min_ratio``,
    ``weight_decay``, ``amsgrad``; sampling: ``class_sampler`` N > 0 (``--class N``: per pass N
    random clouds of every identity) or else ``balanced`` (``--balance``: 1 / class-size
    weights) or uniform; ``circle`` / ``circle_m`` / ``circle_gamma``. ``embed_batch``: clouds per
    forward pass in ``embed`` (a run setting).
    """

    input: Literal["released", "harness"] = "released"
    slim: Annotated[float, Range(gt=0, le=1)] = 0.5
    points: PositiveInt = 4096
    random_subset: Probability = 0.5
    flip: bool = True
    scale_min: PositiveFloat = 0.75
    scale_max: PositiveFloat = 1.33
    jitter: NonNegativeFloat = 0.01
    colour_jitter: Annotated[float, Range(ge=0, lt=1)] = 0.0
    tta_scales: tuple[PositiveFloat, ...] = (1.0, 1.1)
    epochs: NonNegativeInt = 1000
    batch_size: PositiveInt = 36
    lr: PositiveFloat = 8e-4
    warmup_epochs: NonNegativeInt = 10
    lr_min_ratio: Probability = 0.01
    weight_decay: NonNegativeFloat = 5e-4
    amsgrad: bool = True
    balanced: bool = True
    class_sampler: NonNegativeInt = 0
    circle: bool = False
    circle_m: NonNegativeFloat = 0.25
    circle_gamma: PositiveFloat = 64.0
    embed_batch: PositiveInt = run_setting(36)

    def net_config(self) -> NetConfig:
        names = {f.name for f in dataclasses.fields(NetConfig)}
        return NetConfig(**{n: getattr(self, n) for n in names})

    def __post_init__(self) -> None:
        require_order(self, "scale_min", "scale_max")


@dataclass
class OGNetSmallConfig(OGNetConfig):
    widths: tuple[PositiveInt, ...] = (48, 96, 192, 384)


@dataclass
class OGNetDeepConfig(OGNetConfig):
    """OG-Net-Deep (README: ``--feature_dims 48,96,96,192,192,384,384 --k 9 --num_conv 2
    --id_skip 2 --lrRate 6e-4``)."""

    widths: tuple[PositiveInt, ...] = (48, 96, 96, 192, 192, 384, 384)
    k: PositiveInt = 9
    convs_per_module: PositiveInt = 2
    shortcut: bool = True
    lr: PositiveFloat = 6e-4


# CPU budget on the synthetic protocols (one core, ~2-3 min a trial): 256 points from all
# vertices (the synthetic clouds have no mesh: the harness input) and an FPS schedule scaled with
# them (256 -> 48 -> 24 -> 12 -> 6), few epochs, higher lr, short warm-up. Architecture, widths
# and parameter counts stay the paper's; radii stay in metres. Measured (2-core shared CPU, 1
# thread): ~140 CPU-s a synth-market trial; OG-Net fits ~95 % of the training set in 8 epochs,
# so these numbers rank the budget, not the method (pointnet-lite trains 12 epochs on 512
# points for ~40 CPU-s).
_SYNTH = {"input": "harness", "points": 256, "init_points": 48, "epochs": 8, "warmup_epochs": 1, "lr": 2e-3}

# The README commands of the release, per model and training dataset (cross-domain: the training
# domain's), read at commit 5a0bda9: epochs, lr, batch, sampling (--class N or --balance), weight
# decay. README line numbers in the plugin README.
_MARKET = {"epochs": 1500, "lr": 1e-3, "class_sampler": 3}                      # L100
_DUKE = {"epochs": 1000, "lr": 1e-3, "class_sampler": 1}                        # L138
_CUHK = {"epochs": 1000, "lr": 8e-4, "weight_decay": 1e-3, "class_sampler": 1}  # L160
_MSMT = {"epochs": 600, "lr": 6e-4, "balanced": True}                           # L192


def _overrides(market, duke, cuhk, msmt) -> dict[str, dict[str, Any]]:
    return {
        "market3d": dict(market),
        "market3d-to-duke3d": dict(market),
        "market3d-to-msmt3d": dict(market),
        "duke3d": dict(duke),
        "duke3d-to-market3d": dict(duke),
        "cuhk03np3d": dict(cuhk),
        "msmt3d": dict(msmt),
    }


def released_index(rgb: np.ndarray, count: int, random: bool, rng: np.random.Generator) -> np.ndarray:
    """The release's vertex choice for one cloud (market3d.py lines 107-124): ``count`` of the
    coloured (not pure-white) vertices, at random (all but the last candidate, as the release's
    ``permutation(len - 1)``) or evenly spaced; with too few coloured vertices, all of them plus
    evenly spaced white ones. Sorted, so the vertex order is kept."""
    blank = np.abs(rgb.mean(axis=1) - 1.0) < 1e-5
    coloured, white = np.flatnonzero(~blank), np.flatnonzero(blank)
    if len(coloured) >= count:
        if random and len(coloured) > count:
            chosen = coloured[rng.permutation(len(coloured) - 1)[:count]]
        else:
            chosen = coloured[np.linspace(0, len(coloured) - 1, count).astype(np.int64)]
    else:
        extra = count - len(coloured)
        chosen = np.concatenate([coloured, white[np.linspace(0, len(white) - 1, extra).astype(np.int64)]])
    return np.sort(chosen)


class CircleLoss(nn.Module):
    """Circle loss (Sun et al., CVPR 2020) on all positive / negative pairs of a batch."""

    def __init__(self, m: float, gamma: float) -> None:
        super().__init__()
        self.m, self.gamma = m, gamma

    def forward(self, feats: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        sim = feats @ feats.t()
        same = labels[:, None] == labels[None, :]
        upper = torch.ones_like(same).triu(diagonal=1)
        sp, sn = sim[same & upper], sim[~same & upper]
        ap = (1 + self.m - sp.detach()).clamp_min(0)
        an = (sn.detach() + self.m).clamp_min(0)
        logit_p = -ap * (sp - (1 - self.m)) * self.gamma
        logit_n = an * (sn - self.m) * self.gamma
        lp = torch.logsumexp(logit_p, 0) if sp.numel() else sim.new_tensor(-math.inf)
        ln = torch.logsumexp(logit_n, 0) if sn.numel() else sim.new_tensor(-math.inf)
        return F.softplus(lp + ln)


class OGNet(TorchModel):
    """OG-Net: omni-scale graph network on coloured point clouds (1.95M parameters)."""

    published_as = "OG-Net"
    modality = "pointcloud"
    config_class = OGNetConfig
    protocol_overrides = _overrides(_MARKET, _DUKE, _CUHK, _MSMT)
    budget_overrides = dict.fromkeys(("synth-market", "synth-market-to-duke"), dict(_SYNTH))
    protocol_notes = dict.fromkeys(
        ("synth-market", "synth-market-to-duke"),
        "CPU budget: 256 points, 8 epochs (the release: 3,445 points, 600-1,500 epochs); ranks the budget")
    description = (
        "OG-Net (EdgeConv k=20 + 3-branch SE grouping, widths 64-128-256-512, FPS 768-384-192-96, "
        "non-local last graph), max+avg pooling, 512-d BN embedding, xyz / 1.1 xyz test-time sum"
    )
    citation = _CITATION

    def __init__(self, config: OGNetConfig, spec: DataSpec) -> None:
        super().__init__(config, spec)
        self.net = OGNetNetwork(config.net_config(), max(1, spec.num_classes))

    # -- data ------------------------------------------------------------------------------------
    def _prepare(self, clouds: np.ndarray, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Centre xyz on the whole cloud's mean, pick ``index`` points per cloud, rgb - 0.5."""
        pts = np.take_along_axis(clouds, index[..., None], axis=1) if index.ndim == 2 else clouds[:, index]
        xyz = pts[..., :3] - clouds[..., :3].mean(axis=1, keepdims=True)
        return torch.from_numpy(np.ascontiguousarray(xyz, dtype=np.float32)), torch.from_numpy(
            np.ascontiguousarray(pts[..., 3:6] - 0.5, dtype=np.float32)
        )

    def _released_index(self, clouds: np.ndarray, random: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        count = max(1, int(round(clouds.shape[1] * self.config.slim)))
        return np.stack([released_index(c[:, 3:6], count, bool(r), rng) for c, r in zip(clouds, random)])

    def _neutralised(self, clouds: np.ndarray) -> np.ndarray:
        """Pure-white vertices (no texture) made grey: rgb 0.5, 0 once centred (market3d.py L107-110)."""
        clouds = clouds.copy()
        blank = np.abs(clouds[..., 3:6].mean(axis=-1) - 1.0) < 1e-5
        clouds[..., 3:6][blank] = 0.5
        return clouds

    def _train_batch(self, data: np.ndarray, idx: np.ndarray, gen: torch.Generator):
        cfg = self.config
        clouds = data[idx]
        b, total = clouds.shape[:2]
        if cfg.input == "released":
            rand = torch.rand(b, generator=gen).numpy() < cfg.random_subset
            rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
            index = self._released_index(clouds, rand, rng)
            clouds = self._neutralised(clouds)
        else:
            p = cfg.points
            even = even_index(total, p, repeat=True)
            index = np.broadcast_to(even, (b, p)).copy()
            if total >= p and cfg.random_subset > 0:
                rand = torch.rand(b, generator=gen).numpy() < cfg.random_subset
                if rand.any():
                    keys = torch.rand(int(rand.sum()), total, generator=gen)
                    index[rand] = keys.argsort(dim=1)[:, :p].sort(dim=1).values.numpy()
        xyz, rgb = self._prepare(clouds, index)
        if cfg.flip:
            sign = torch.where(torch.rand(b, generator=gen) < 0.5, -1.0, 1.0)
            xyz[..., 0] *= sign[:, None]
        if cfg.scale_max > cfg.scale_min:
            scale = cfg.scale_min + (cfg.scale_max - cfg.scale_min) * torch.rand(b, 1, 3, generator=gen)
            xyz = xyz * scale
        if cfg.jitter > 0:
            xyz = xyz + (torch.randn(xyz.shape, generator=gen) * cfg.jitter).clamp(-cfg.jitter, cfg.jitter)
        if cfg.colour_jitter > 0:  # not in the paper: per-channel gain (camera white balance)
            gain = 1 + (torch.rand(b, 1, 3, generator=gen) * 2 - 1) * cfg.colour_jitter
            rgb = (rgb + 0.5) * gain - 0.5
        return xyz, rgb

    def _test_batches(self, data: np.ndarray):
        even = even_index(data.shape[1], self.config.points, repeat=True)
        for s in range(0, len(data), self.config.embed_batch):
            clouds = data[s : s + self.config.embed_batch]
            if self.config.input == "released":  # evenly spaced coloured vertices: deterministic
                index = self._released_index(clouds, np.zeros(len(clouds), dtype=bool), np.random.default_rng(0))
                xyz, rgb = self._prepare(self._neutralised(clouds), index)
            else:
                xyz, rgb = self._prepare(clouds, even)
            yield xyz.to(self.device), rgb.to(self.device)

    # -- training --------------------------------------------------------------------------------
    training_attributes = ("optimizer", "generator")

    def _lr_factor(self, epoch: int, step: int, steps_per_epoch: int) -> float:
        """Cosine per epoch down to ``lr_min_ratio`` (CosineAnnealingLR, eta_min = 1 %), times a
        linear warm-up from 0.1 to 1 over the first ``warmup_epochs``, per iteration as the
        released code's (loss) warm-up."""
        cfg = self.config
        cosine = cfg.lr_min_ratio + (1 - cfg.lr_min_ratio) * 0.5 * (1 + math.cos(math.pi * epoch / max(1, cfg.epochs)))
        warm_steps = cfg.warmup_epochs * steps_per_epoch
        done = epoch * steps_per_epoch + step
        if done < warm_steps:
            cosine *= 0.1 + 0.9 * done / warm_steps
        return cosine

    def start_fit(self, train: SampleSet, ctx: TrialContext) -> None:
        cfg = self.config
        self.generator = torch.Generator().manual_seed(ctx.seed)
        self.data = np.ascontiguousarray(np.asarray(train.data, dtype=np.float32)[..., :6])
        self.labels = torch.as_tensor(train.labels, dtype=torch.int64)
        if len(self.labels) == 0:
            raise ValueError("OGNet.fit: empty training split")
        if (self.labels < 0).any():
            raise ValueError("OGNet.fit: training labels must be class indices >= 0")
        self.net = OGNetNetwork(cfg.net_config(), train.num_classes).to(self.device)  # fresh seeded weights
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                                          amsgrad=cfg.amsgrad)
        self.circle = CircleLoss(cfg.circle_m, cfg.circle_gamma) if cfg.circle else None

    def num_epochs(self) -> int:
        return self.config.epochs

    def _epoch_order(self, batch: int) -> torch.Tensor:
        cfg, labels, gen = self.config, self.labels, self.generator
        n = len(labels)
        if cfg.class_sampler:
            return self._class_sampler_order(labels, gen)
        if cfg.balanced:
            weights = 1.0 / torch.bincount(labels).double()[labels]
            return torch.multinomial(weights, max(1, n // batch) * batch, replacement=True, generator=gen)
        return torch.randperm(n, generator=gen)[: max(1, n // batch) * batch]

    def train_epoch(self, epoch: int, ctx: TrialContext) -> dict[str, float]:
        cfg, net, opt, labels = self.config, self.net, self.optimizer, self.labels
        batch = min(cfg.batch_size, len(labels))
        net.train()
        order = self._epoch_order(batch)
        steps = max(1, len(order) // batch)  # drop_last: BatchNorm dislikes a batch of one
        total, correct, seen = 0.0, 0, 0
        for s in range(steps):
            for group in opt.param_groups:
                group["lr"] = cfg.lr * self._lr_factor(epoch, s, steps)
            idx = order[s * batch : (s + 1) * batch]
            xyz, rgb = self._train_batch(self.data, idx.numpy(), self.generator)
            y = labels[idx].to(self.device)
            feats, logits = net(xyz.to(self.device), rgb.to(self.device))
            loss = F.cross_entropy(logits, y)
            if self.circle is not None:
                loss = loss + self.circle(F.normalize(feats, dim=1), y) / len(y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(idx)
        metrics = {"loss": total / seen, "train_acc": correct / seen, "lr": opt.param_groups[0]["lr"]}
        if ctx.validation is not None and len(ctx.validation) and (ctx.validation.labels >= 0).any():
            metrics["val_acc"] = self._accuracy(ctx.validation)
            net.train()
        return metrics

    def _class_sampler_order(self, labels: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """One epoch of the release's ``--class N`` sampler (market3d.py lines 84-94, train_M.py
        590-612): ceil(images / (classes * N)) passes, each drawing N random clouds of every
        identity, shuffled."""
        n_per = self.config.class_sampler
        classes = torch.unique(labels)
        members = [torch.nonzero(labels == c).squeeze(1) for c in classes]
        passes = math.ceil(len(labels) / (len(classes) * n_per))
        order = []
        for _ in range(passes):
            draw = torch.cat([m[torch.randint(len(m), (n_per,), generator=gen)] for m in members])
            order.append(draw[torch.randperm(len(draw), generator=gen)])
        return torch.cat(order)

    @torch.no_grad()
    def _accuracy(self, split: SampleSet) -> float:
        self.net.eval()
        data = np.asarray(split.data, dtype=np.float32)[..., :6]
        logits = torch.cat([self.net(xyz, rgb)[1].cpu() for xyz, rgb in self._test_batches(data)])
        labels = torch.as_tensor(split.labels)
        keep = labels >= 0
        return float((logits.argmax(1)[keep] == labels[keep]).float().mean())

    # -- inference -------------------------------------------------------------------------------
    def embed_batches(self, samples: SampleSet):
        self.net.to(self.device)
        return self._test_batches(np.asarray(samples.data, dtype=np.float32)[..., :6])

    def features(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """The BN features summed over the test-time xyz scales, L2-normalised."""
        xyz, rgb = batch
        return F.normalize(sum(self.net.features(xyz * s, rgb) for s in self.config.tta_scales), dim=1)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.net.embedding_parameters())

    @classmethod
    def search_space(cls) -> dict[str, Any] | None:
        return {
            "lr": {"loguniform": [2e-4, 3e-3]},
            "weight_decay": {"loguniform": [1e-4, 2e-3]},
            "dropout": {"uniform": [0.3, 0.8]},
            "circle": {"choice": [False, True]},
        }


class OGNetSmall(OGNet):
    """OG-Net-Small: widths 48-96-192-384 (1.20M parameters)."""

    published_as = "OG-Net-Small"
    config_class = OGNetSmallConfig
    # README L110, L127 (its bare ``--class`` is refused by argparse: --class 1, as OG-Net on Duke), L170, L202
    protocol_overrides = _overrides(
        {"epochs": 1000, "lr": 1e-3, "balanced": True},
        {"epochs": 1000, "lr": 1e-3, "class_sampler": 1},
        {"epochs": 1000, "lr": 1e-3, "weight_decay": 1e-3, "class_sampler": 1},
        {"epochs": 600, "lr": 6e-4, "balanced": True},
    )
    description = "OG-Net-Small (widths 48-96-192-384), otherwise as OG-Net"


class OGNetDeep(OGNet):
    """OG-Net-Deep: 7 modules 48-96-96-192-192-384-384, two EdgeConvs (k=9) each, gated shortcuts
    (2.47M parameters)."""

    published_as = "OG-Net-Deep"
    config_class = OGNetDeepConfig
    protocol_overrides = _overrides(  # README L120 (Market: only the circle-loss command is given), L148, L180, L212
        {"epochs": 1000, "lr": 6e-4, "batch_size": 30, "balanced": True},
        {"epochs": 1000, "lr": 6e-4, "balanced": True},
        {"epochs": 1500, "lr": 6e-4, "class_sampler": 3},
        {"epochs": 600, "lr": 4e-4, "batch_size": 30, "balanced": True},
    )
    budget_overrides = {
        # Deep needs twice OG-Net's CPU budget to fit: at 8 epochs it reaches 32 % training accuracy
        # and 47.5 mAP on synth-market's validation split, at 16 epochs 86 % and 73.9 (OG-Net at 8:
        # 96 %, 80.0); its gated short-cuts are not the cause (without them: 32.3), the lr neither
        # (6e-4: 29.9, 4e-3: 69.3 at 8 epochs). Chosen on the validation split with
        # benchmarks/validation_grid.py, never on the test split.
        **dict.fromkeys(("synth-market", "synth-market-to-duke"), dict(_SYNTH, epochs=16)),
    }
    protocol_notes = dict.fromkeys(
        ("synth-market", "synth-market-to-duke"),
        "CPU budget: 256 points, 16 epochs (twice OG-Net's 8: at 8 it fits 32 % of the training set)")
    description = (
        "OG-Net-Deep (7 omni-scale modules 48-96-96-192-192-384-384, 2 EdgeConvs k=9 each, gated "
        "shortcuts), otherwise as OG-Net"
    )
