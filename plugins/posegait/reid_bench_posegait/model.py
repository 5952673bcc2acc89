"""PoseGait: a CNN over a window's per-frame pose features (Liao et al., Pattern Recognition 2020).

The network follows the release, RijunLiao/PoseGait ``network.py`` (commit ffe74ed), read for
facts: the input is one channel, features x frames (17 frames, ``Loader.py`` line 15); 3x3
convolutions without bias, each followed by BatchNorm and ReLU (lines 7-42): 1->32 and 32->64
unpadded, 2x2 max-pool, one 64->64 padded convolution applied twice with a residual add,
64->128 unpadded, 2x2 max-pool, two 128->128 padded convolutions with a residual add (lines
98-118); flatten, dropout 0.5 in training, a fully connected layer to the 512-d embedding, an
identity classifier on top (lines 75-79, 126-129). Training (``pose_train.py``): cross-entropy,
Adam at 1e-6, batch 8, 200 epochs (lines 24-32, 57-59). A window shorter than 17 frames is
zero-padded at the end (``Loader.py`` line 33); a longer one gives a random 17-frame run in
training (lines 80-81) and its centre run when embedded.

``input`` chooses the rows: "features" (default) the paper's 81 pose features
(``features.py``); "release" what the released loader builds, 126 rows with the normalised x of
each joint in rows 0-13 and y in rows 42-55 (``Loader.py`` lines 45-72).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from reid_bench.api import (DataSpec, Fraction, NonNegativeInt, PositiveFloat, PositiveInt, SampleSet, TorchModel,
                            TrialContext, later_setting, run_setting)
from reid_bench.torchutil import ClassifierLoop, Dropout, TrainPrecision
from reid_bench_posegait.features import FEATURES_PER_FRAME, JOINTS, body_joints, normalise, pose_features

RELEASE_ROWS = 126
_SYNTHETIC = ("synth-gait", "synth-gait-dev", "synth-gait-retrieval")


@dataclass
class PoseGaitConfig:
    """Hyper-parameters (defaults: the release, see the module docstring).

    ``frames``: the CNN's time extent (17). ``input``: "features" (81 rows) or "release" (126
    rows of normalised 2D joints). ``embed_dim``: the embedding (512). ``dropout``: before the
    embedding layer (0.5). ``epochs`` / ``lr`` / ``batch_size``: Adam with cross-entropy.
    ``train_precision``: "bfloat16" trains under bf16 autocast (not the release's float32: a
    named switch, measured in the plugin README). ``embed_batch``: windows per forward pass in
    ``embed`` (a run setting).
    """

    frames: PositiveInt = 17
    input: Literal["features", "release"] = "features"
    embed_dim: PositiveInt = 512
    dropout: Fraction = 0.5
    epochs: NonNegativeInt = 200
    lr: PositiveFloat = 1e-6
    batch_size: PositiveInt = 8
    train_precision: TrainPrecision = later_setting("float32")
    embed_batch: PositiveInt = run_setting(512)


def _conv(cin: int, cout: int, pad: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=pad, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def _out_size(rows: int, frames: int) -> tuple[int, int]:
    def shrink(n: int) -> int:
        n = n - 4  # two unpadded 3x3 convolutions
        n = n // 2  # pool
        n = n - 2  # unpadded 3x3
        return n // 2  # pool

    return shrink(rows), shrink(frames)


class PoseGaitNet(nn.Module):
    def __init__(self, rows: int, frames: int, embed_dim: int, dropout: float, num_classes: int) -> None:
        super().__init__()
        h, w = _out_size(rows, frames)
        if h < 1 or w < 1:
            raise ValueError(f"PoseGait's CNN needs at least 10 rows and 10 frames; got {rows} x {frames}")
        self.conv1, self.conv2 = _conv(1, 32, 0), _conv(32, 64, 0)
        self.conv2_1 = _conv(64, 64, 1)  # applied twice, shared weights
        self.conv3 = _conv(64, 128, 0)
        self.conv4, self.conv4_1 = _conv(128, 128, 1), _conv(128, 128, 1)
        self.pool = nn.MaxPool2d(2, 2)
        self.drop = Dropout(dropout)
        self.fc = nn.Linear(128 * h * w, embed_dim)
        self.classifier = nn.Linear(embed_dim, max(1, num_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.conv2(self.conv1(x.unsqueeze(1))))
        x = x + self.conv2_1(self.conv2_1(x))
        x = self.pool(self.conv3(x))
        x = x + self.conv4_1(self.conv4(x))
        return self.fc(self.drop(x.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))

    def embedding_parameters(self) -> int:
        return sum(p.numel() for name, p in self.named_parameters() if not name.startswith("classifier"))


class PoseGait(TorchModel):
    """PoseGait's CNN over pose features x frames; the 512-d layer is the embedding."""

    published_as = "PoseGait"
    modality = "skeleton"
    config_class = PoseGaitConfig
    description = "PoseGait: CNN over 81 pose features x 17 frames, 512-d embedding; supervised (cross-entropy)"
    citation = ("Liao, Yu, An, Huang: A model-based gait recognition method with body pose and human prior "
                "knowledge, Pattern Recognition 98 (2020)")
    budget_overrides = dict.fromkeys(_SYNTHETIC, {"epochs": 20, "lr": 1e-4, "batch_size": 64})
    protocol_notes = dict.fromkeys(
        _SYNTHETIC, "CPU budget: 20 epochs at lr 1e-4, batch 64 (release: 200 epochs at 1e-6, batch 8)")

    def __init__(self, config: PoseGaitConfig, spec: DataSpec) -> None:
        super().__init__(config, spec)
        if spec.layout is None:
            raise ValueError("posegait needs a skeleton layout")
        self.layout = spec.layout
        self.layout.role_joints(JOINTS, "posegait")
        self.rows = FEATURES_PER_FRAME if config.input == "features" else RELEASE_ROWS
        self.net = PoseGaitNet(self.rows, config.frames, config.embed_dim, config.dropout, spec.num_classes)
        self._mean: torch.Tensor | None = None
        self._std: torch.Tensor | None = None

    @classmethod
    def example_spec(cls) -> DataSpec:
        from reid_bench.layouts import CASIA_14

        return DataSpec("skeleton", num_classes=74, layout=CASIA_14, window=17)  # CASIA-B's 74 training subjects

    # ------------------------------------------------------------------------------ inputs
    def _matrices(self, data: Any) -> torch.Tensor:
        """Windows [N, f, J, d] -> inputs [N, rows, f] (float32)."""
        arr = np.asarray(data, dtype=np.float64)
        if arr.ndim != 4:
            raise ValueError(f"posegait expects windows [N, f, J, 3], got {arr.shape}")
        joints = body_joints(arr, self.layout, "posegait")  # [N, f, 14, 3]
        if self.config.input == "features":
            rows = pose_features(joints)  # [N, f, 81]
        else:
            norm = normalise(joints)
            rows = np.zeros((*norm.shape[:2], RELEASE_ROWS))
            rows[..., 0:14] = norm[..., 0]
            rows[..., 42:56] = norm[..., 1]
        return torch.from_numpy(rows.transpose(0, 2, 1).astype(np.float32))

    def _crop(self, x: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
        """[N, rows, f] -> [N, rows, frames]: zero-padded at the end, or a (random / centre) run."""
        f, t = x.shape[2], self.config.frames
        if f <= t:
            return nn.functional.pad(x, (0, t - f))
        if gen is None:
            start = (f - t) // 2
            return x[:, :, start : start + t]
        starts = torch.randint(0, f - t + 1, (x.shape[0],), generator=gen)
        idx = starts[:, None] + torch.arange(t)[None, :]
        return torch.gather(x, 2, idx[:, None, :].expand(-1, x.shape[1], -1))

    # ------------------------------------------------------------------------------ training
    training_attributes = ("loop",)

    def start_fit(self, train: SampleSet, ctx: TrialContext) -> None:
        cfg = self.config
        gen = torch.Generator().manual_seed(ctx.seed)
        self.net = PoseGaitNet(self.rows, cfg.frames, cfg.embed_dim, cfg.dropout, train.num_classes).to(self.device)
        inputs = self._matrices(train.data)
        self.loop = ClassifierLoop(self.net, inputs, train.labels, batch_size=cfg.batch_size,
                                   optimizer=torch.optim.Adam(self.net.parameters(), lr=cfg.lr, foreach=True), generator=gen,
                                   batch_inputs=lambda idx: self._crop(inputs[idx], gen),
                                   precision=cfg.train_precision)

    def num_epochs(self) -> int:
        return self.config.epochs

    def train_epoch(self, epoch: int, ctx: TrialContext) -> dict[str, float]:
        return self.loop.epoch(self.device)

    def embed_inputs(self, samples: SampleSet) -> torch.Tensor:
        return self._matrices(samples.data)

    def features(self, batch: torch.Tensor) -> torch.Tensor:
        return self.net.features(self._crop(batch, None))

    def num_parameters(self) -> int:
        return self.net.embedding_parameters()

    @classmethod
    def search_space(cls) -> dict[str, Any] | None:
        return {"lr": {"loguniform": [1e-6, 1e-3]}, "batch_size": {"choice": [8, 32, 64]}}
