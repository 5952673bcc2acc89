"""A tiny skeleton model: statistics of joint motion per window, no learning.

It shows the minimum a model plugin provides: a config dataclass, fit, embed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reid_bench.api import Model, PositiveFloat, SampleSet, TrialContext


@dataclass
class JointMotionConfig:
    # Use joint speeds (frame differences) as well as mean joint positions.
    use_speed: bool = True
    # Small constant that keeps standardisation finite for constant features.
    eps: PositiveFloat = 1e-6


class JointMotion(Model):
    modality = "skeleton"
    config_class = JointMotionConfig
    description = "Mean joint positions and mean joint speeds per window (plugin-template example)."

    def fit(self, train: SampleSet, ctx: TrialContext) -> None:
        feats = self._raw(train)
        self.mean = feats.mean(axis=0)
        self.std = feats.std(axis=0) + self.config.eps

    def embed(self, samples: SampleSet) -> np.ndarray:
        return ((self._raw(samples) - self.mean) / self.std).astype(np.float32)

    def _raw(self, samples: SampleSet) -> np.ndarray:
        windows = samples.data  # [N, f, J, 3], centred on the hip by the protocol
        parts = [windows.mean(axis=1).reshape(len(windows), -1)]
        if self.config.use_speed:
            speed = np.linalg.norm(np.diff(windows, axis=1), axis=-1)  # [N, f-1, J]
            parts.append(speed.mean(axis=1))
        return np.concatenate(parts, axis=1)
