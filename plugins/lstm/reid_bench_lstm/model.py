"""The LSTM baselines of the field's tables: ``lstm-1`` (single-layer) and ``lstm-m`` (multi-layer).

SM-SGE's, AGE's and SGELA's tables list "Single-layer LSTM" (Haque, Alahi, Fei-Fei: Recurrent
attention models for depth-based person identification, CVPR 2016) and "Multi-layer LSTM"
(Zheng et al. 2019, reference [33] of SM-SGE) with Rank-1 and nAUC on BIWI, IAS-A/B, KGBD and
KS20. No code for either was released, and the tables do not say how they were run. This
plugin therefore states its recipe as its own choice, kept close to the lab's own settings so
that the rows compare like with like:

- input: the window's joint coordinates per frame, flattened (J x 3 values), as the data come
  (the protocols centre the skeletons); the same f-frame windows as every other method;
- network: an LSTM (1 layer; ``lstm-m``: 2 layers, as the gait encoder of AGE, SGE-LA
  ``train.py`` lines 16-18, commit 742e691), 256 units, the last time step's hidden state of
  the top layer is the embedding; a linear identity classifier over it during training;
- training: cross-entropy, Adam at 0.0005, batch 128 (AGE's, ``train.py`` lines 14 and 24),
  a fixed number of epochs, no model selection;
- closed-set scoring: the harness's probe on the frozen embeddings, as for every model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from reid_bench.api import (DataSpec, NonNegativeInt, PositiveFloat, PositiveInt, SampleSet, TorchModel, TrialContext,
                            later_setting, run_setting)
from reid_bench.torchutil import ClassifierLoop, TrainPrecision

_SYNTHETIC = ("synth-gait", "synth-gait-dev", "synth-gait-retrieval")


@dataclass
class LSTMConfig:
    """Hyper-parameters of the LSTM baselines (none is published; see the module docstring).

    ``hidden``: units per layer. ``layers``: stacked layers. ``epochs`` / ``lr`` /
    ``batch_size``: Adam training with cross-entropy on the identity classifier.
    ``train_precision``: "bfloat16" trains under bf16 autocast (not the float32 recipe: a named
    switch; its measured speed and scores are in the plugin README). ``embed_batch``: windows
    per forward pass in ``embed`` (a run setting).
    """

    hidden: PositiveInt = 256
    layers: PositiveInt = 1
    epochs: NonNegativeInt = 100
    lr: PositiveFloat = 5e-4
    batch_size: PositiveInt = 128
    train_precision: TrainPrecision = later_setting("float32")
    embed_batch: PositiveInt = run_setting(2048)


@dataclass
class MultiLayerLSTMConfig(LSTMConfig):
    layers: PositiveInt = 2


class _Net(nn.Module):
    def __init__(self, in_dim: int, hidden: int, layers: int, num_classes: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(in_dim, hidden, num_layers=layers, batch_first=True)
        self.classifier = nn.Linear(hidden, max(1, num_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        _, (h, _) = self.lstm(x)
        return h[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class SingleLayerLSTM(TorchModel):
    """One LSTM layer over per-frame joint coordinates; the last hidden state is the embedding."""

    published_as = None  # no published table has a number for it
    modality = "skeleton"
    config_class = LSTMConfig
    description = "Single-layer LSTM over per-frame joint coordinates, last hidden state (256-d); supervised"
    citation = ("Haque, Alahi, Fei-Fei: Recurrent attention models for depth-based person identification, CVPR 2016 "
                "(the tables' 'Single-layer LSTM')")
    budget_overrides = dict.fromkeys(_SYNTHETIC, {"epochs": 30})
    protocol_notes = dict.fromkeys(_SYNTHETIC, "CPU budget: 30 epochs (default 100)")
    training_attributes = ("loop",)

    def __init__(self, config: LSTMConfig, spec: DataSpec) -> None:
        super().__init__(config, spec)
        if spec.layout is None:
            raise ValueError(f"{type(self).__name__} needs a skeleton layout in the data spec")
        self.in_dim = spec.layout.num_joints * 3
        self.net = _Net(self.in_dim, config.hidden, config.layers, spec.num_classes)

    def start_fit(self, train: SampleSet, ctx: TrialContext) -> None:
        cfg = self.config
        gen = torch.Generator().manual_seed(ctx.seed)
        self.net = _Net(self.in_dim, cfg.hidden, cfg.layers, train.num_classes).to(self.device)
        self.loop = ClassifierLoop(self.net, _flatten(train.data), train.labels, batch_size=cfg.batch_size,
                                   optimizer=torch.optim.Adam(self.net.parameters(), lr=cfg.lr, foreach=True), generator=gen,
                                   precision=cfg.train_precision)

    def num_epochs(self) -> int:
        return self.config.epochs

    def train_epoch(self, epoch: int, ctx: TrialContext) -> dict[str, float]:
        return self.loop.epoch(ctx.device)

    def embed_inputs(self, samples: SampleSet) -> torch.Tensor:
        return _flatten(samples.data)

    def features(self, batch: torch.Tensor) -> torch.Tensor:
        return self.net.features(batch)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.net.lstm.parameters())

    @classmethod
    def search_space(cls) -> dict[str, Any] | None:
        return {"lr": {"loguniform": [1e-4, 5e-3]}, "hidden": {"choice": [128, 256, 512]}}


class MultiLayerLSTM(SingleLayerLSTM):
    """Two stacked LSTM layers (the tables' "Multi-layer LSTM")."""

    published_as = None  # no published table has a number for it
    config_class = MultiLayerLSTMConfig
    description = "Multi-layer (2 x 256) LSTM over per-frame joint coordinates, last hidden state; supervised"
    citation = "Zheng et al. 2019, as cited by SM-SGE's table (reference [33], 'Multi-layer LSTM')"


def _flatten(data: Any) -> torch.Tensor:
    """Windows [N, f, J, 3] -> [N, f, J*3] float32."""
    arr = np.asarray(data, dtype=np.float32)
    if arr.ndim != 4:
        raise ValueError(f"expected windows [N, f, J, 3], got {arr.shape}")
    return torch.from_numpy(arr.reshape(arr.shape[0], arr.shape[1], -1))
