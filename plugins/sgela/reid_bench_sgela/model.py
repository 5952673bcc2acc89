"""AGE (Rao et al., IJCAI 2020) and SGELA (Rao et al., TPAMI 2021): self-supervised gait encodings.

Both train, per coordinate axis, an attention encoder-decoder (``network.py``) to reconstruct a
window in reverse order; SGELA adds a contrastive loss between adjacent windows. The encoding
of a window is, per decoder step, the attention context over the encoder's outputs of the three
axes (3 x 256 = 768 per frame, [A] 631-639, 93-95); the recognition network of the release (one
hidden layer of 256, N(0, 1) weights, Adam 0.0005, per-frame samples, logits averaged over the
window's frames, [A] 883-1016) is the closed-set probe (``probe_defaults``).

"[A]" is Kali-Hac/SGE-LA ``train.py`` at commit 742e691, "[C]" Kali-Hac/Locality-Awareness-SGE
``train.py`` at commit 27df99c. The plugin README lists every default with its line and every
place where this code departs from the release.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from reid_bench.api import (DataSpec, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, SampleSet,
                            TorchModel, TrialContext, later_setting, run_setting)
from reid_bench.torchutil import TrainPrecision, training_autocast
from reid_bench_sgela.network import HIDDEN, AxisEncoderDecoder, ProjectionHead, adjacent_nt_xent, locality_mask

_SYNTHETIC = ("synth-gait", "synth-gait-dev", "synth-gait-retrieval")
_KGBD = ("kgbd", "kgbd-retrieval")


@dataclass
class AGEConfig:
    """Hyper-parameters of AGE (defaults: the release, [A] lines in the plugin README).

    ``epochs``: encoder epochs (400). ``lr``: Adam (0.0005, constant). ``batch_size``: 128.
    ``clip``: element-wise gradient clipping (5). ``l2``: weight of 0.02 x sum of 0.5 ||v||^2
    over every trainable variable. ``locality``: the locality-aware attention term (weight 1;
    ``false`` is the release's "BA" variant). ``reverse``: reconstruct in reverse order.
    ``shuffle``: the training windows' order, "once" (AGE: one permutation, then fixed) or
    "none" (SGELA: as given, so that neighbours in a batch are consecutive windows) or
    "epoch" (reshuffled every epoch). ``drop_last``: skip the last partial batch, as the
    release's fixed-size placeholders do. ``probe_epochs``: epochs of the recognition network
    (300; the per-protocol values of the release in ``protocol_overrides``).
    ``train_precision``: "bfloat16" runs the encoder's training steps under bf16 autocast (not
    the release's float32: a named switch, measured in the plugin README). ``embed_batch``:
    windows per forward pass in ``embed`` (a run setting).
    """

    epochs: NonNegativeInt = 400
    lr: PositiveFloat = 5e-4
    batch_size: PositiveInt = 128
    clip: PositiveFloat = 5.0
    l2: NonNegativeFloat = 0.02
    locality: bool = True
    reverse: bool = True
    shuffle: Literal["once", "none", "epoch"] = "once"
    drop_last: bool = True
    probe_epochs: PositiveInt = 300
    train_precision: TrainPrecision = later_setting("float32")
    embed_batch: PositiveInt = run_setting(1024)


@dataclass
class SGELAConfig(AGEConfig):
    """AGE's settings plus the contrastive head: ``contrastive`` weight (1), ``temperature``
    (0.1; KGBD 0.5, [C] 120-123). SGELA does not shuffle ([C] 847-850)."""

    shuffle: Literal["once", "none", "epoch"] = "none"
    contrastive: NonNegativeFloat = 1.0
    temperature: PositiveFloat = 0.1


class AGE(TorchModel):
    """Attention-based gait encodings: per-axis LSTM encoder-decoders with locality-aware attention."""

    published_as = "AGE"
    modality = "skeleton"
    config_class: ClassVar[type] = AGEConfig
    description = "AGE: self-supervised reverse reconstruction with locality-aware attention, per-axis 2x256 LSTMs"
    citation = ("Rao, Wang, Hu, Leung, Miao: Self-supervised gait encoding with locality-aware attention for person "
                "re-identification, IJCAI 2020")
    protocol_overrides: ClassVar[dict[str, dict[str, Any]]] = {
        **dict.fromkeys(_KGBD, {"probe_epochs": 150}),  # [A] 885-887
    }
    budget_overrides: ClassVar[dict[str, dict[str, Any]]] = dict.fromkeys(_SYNTHETIC, {"epochs": 40})
    protocol_notes: ClassVar[dict[str, str]] = dict.fromkeys(
        _SYNTHETIC, "CPU budget: 40 encoder epochs (release: 400, about 14-16 min per trial on 2 idle threads here, by `make bench`)")

    def __init__(self, config: AGEConfig, spec: DataSpec) -> None:
        super().__init__(config, spec)
        if spec.layout is None:
            raise ValueError(f"{type(self).__name__} needs a skeleton layout in the data spec")
        self.joints = spec.layout.num_joints
        self.window = spec.window or 6
        self.axes = torch.nn.ModuleList(AxisEncoderDecoder(self.joints) for _ in range(3))
        self.heads = self._heads()

    def _heads(self) -> torch.nn.ModuleList | None:
        return None

    @classmethod
    def probe_defaults(cls, config: AGEConfig, protocol: Any) -> dict[str, Any]:
        """The release's recognition network ([A] 913-936): 768 -> 256 -> ReLU -> C per frame,
        N(0, 1) weights, Adam 0.0005 without weight decay, batches of 128 frames, raw features;
        a window's score is its frames' logits summed (the release averages them: the same
        ranking)."""
        window = protocol.window or 6
        return {"kind": "mlp", "hidden": HIDDEN, "init": "normal", "lr": 5e-4, "weight_decay": 0.0,
                "batch_size": max(1, 128 // window), "standardize": False, "chunks": window, "chunk_loss": "each",
                "scores": "logits", "epochs": config.probe_epochs}

    # ------------------------------------------------------------------------------ training
    model_attributes = ("axes", "heads")
    training_attributes = ("optimizer", "generator")

    def _rebuild(self) -> None:
        self.axes = torch.nn.ModuleList(AxisEncoderDecoder(self.joints) for _ in range(3))
        self.heads = self._heads()

    def _parameters(self) -> list[torch.nn.Parameter]:
        mods = [self.axes] + ([self.heads] if self.heads is not None else [])
        return [p for m in mods for p in m.parameters() if p.requires_grad]

    def start_fit(self, train: SampleSet, ctx: TrialContext) -> None:
        cfg = self.config
        self.generator = torch.Generator().manual_seed(ctx.seed)
        self._rebuild()
        self.axes.to(self.device)
        if self.heads is not None:
            self.heads.to(self.device)
        self.data = _windows(train.data)
        n = len(self.data)
        self.params = self._parameters()
        self.optimizer = torch.optim.Adam(self.params, lr=cfg.lr, foreach=True)
        self.mask = locality_mask(self.data.shape[1]).to(self.device)
        self.order = torch.randperm(n, generator=self.generator) if cfg.shuffle == "once" else torch.arange(n)

    def num_epochs(self) -> int:
        return self.config.epochs

    def train_epoch(self, epoch: int, ctx: TrialContext) -> dict[str, float]:
        cfg, data, params, opt = self.config, self.data, self.params, self.optimizer
        n = len(data)
        batch = min(cfg.batch_size, n)
        if cfg.shuffle == "epoch":
            self.order = torch.randperm(n, generator=self.generator)
        starts = range(0, n - batch + 1 if cfg.drop_last else n, batch)
        totals = {"loss": 0.0, "reconstruction": 0.0}
        steps = 0
        for s in starts:
            x = data[self.order[s : s + batch]].to(self.device)
            with training_autocast(cfg.train_precision, self.device):
                losses = self._losses(x, self.mask)
            loss = sum(losses.values())
            if cfg.l2 > 0:
                loss = loss + cfg.l2 * 0.5 * sum((p**2).sum() for p in params)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_value_(params, cfg.clip)
            opt.step()
            totals["loss"] += float(loss.detach())
            totals["reconstruction"] += float(losses["reconstruction"].detach())
            steps += 1
        return {k: v / max(1, steps) for k, v in totals.items()}

    def end_fit(self, ctx: TrialContext) -> None:
        self.axes.eval()

    def _losses(self, x: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-axis reverse reconstruction (TF's l2_loss: 0.5 x sum of squares over the batch)
        and the locality term 0.5 x sum (A (1 - M))^2 ([A] 389, 408)."""
        cfg = self.config
        rec = x.new_zeros(())
        local = x.new_zeros(())
        contexts = []
        for axis, net in enumerate(self.axes):
            inp = x[..., axis]
            target = inp.flip(1) if cfg.reverse else inp
            out, align, ctx_vec, _ = net(inp)
            rec = rec + 0.5 * ((out - target) ** 2).sum()
            if cfg.locality:
                m = mask if cfg.reverse else mask.flip(1)
                local = local + 0.5 * ((align * (1 - m)) ** 2).sum()
            contexts.append(ctx_vec)
        out = {"reconstruction": rec, "locality": local}
        extra = self._extra_loss(contexts)
        if extra is not None:
            out["contrastive"] = extra
        return out

    def _extra_loss(self, contexts: list[torch.Tensor]) -> torch.Tensor | None:
        return None

    # ------------------------------------------------------------------------------ encoding
    def embedding_dim(self, samples: SampleSet) -> int:
        """Per window the f attention contexts of the three axes: f * 768, frame-major."""
        data = np.asarray(samples.data)
        f = data.shape[1] if data.ndim == 4 else self.window
        return f * 3 * HIDDEN

    def embed_inputs(self, samples: SampleSet) -> torch.Tensor:
        return _windows(samples.data)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        per_axis = [net(x[..., axis])[2] for axis, net in enumerate(self.axes)]  # [B, f, H] each
        return torch.cat(per_axis, dim=2).flatten(1)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self._parameters())


class SGELA(AGE):
    """AGE plus a contrastive loss between consecutive windows (the TPAMI method, "CAGE" in its code)."""

    published_as = "SGELA"
    config_class = SGELAConfig
    description = "SGELA: AGE's reverse reconstruction with locality-aware attention + contrastive loss between adjacent windows"
    citation = ("Rao, Xu, Hu, Cheng, Hu: A self-supervised gait encoding approach with locality-awareness for 3D "
                "skeleton based person re-identification, IEEE TPAMI 2021")
    protocol_overrides = {
        **dict.fromkeys(_KGBD, {"probe_epochs": 200, "temperature": 0.5, "epochs": 150}),  # [C] 120-123, 619, 3926-3930
        **dict.fromkeys(("ks20", "ks20-retrieval"), {"probe_epochs": 800}),
    }

    def _heads(self) -> torch.nn.ModuleList | None:
        return torch.nn.ModuleList(ProjectionHead(self.window) for _ in range(3))

    def _extra_loss(self, contexts: list[torch.Tensor]) -> torch.Tensor | None:
        cfg = self.config
        if cfg.contrastive <= 0 or self.heads is None:
            return None
        loss = contexts[0].new_zeros(())
        for head, ctx_vec in zip(self.heads, contexts):
            loss = loss + adjacent_nt_xent(head(ctx_vec), cfg.temperature)
        return cfg.contrastive * loss


def _windows(data: Any) -> torch.Tensor:
    arr = np.asarray(data, dtype=np.float32)
    if arr.ndim != 4 or arr.shape[-1] not in (2, 3):
        raise ValueError(f"expected windows [N, f, J, 3], got {arr.shape}")
    if arr.shape[-1] == 2:
        arr = np.concatenate([arr, np.zeros_like(arr[..., :1])], axis=-1)
    return torch.from_numpy(arr)
