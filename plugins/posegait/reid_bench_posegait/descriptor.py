"""D_PG: PoseGait's 81 pose features used directly as a descriptor (the survey's hand-crafted row).

The field's table (Kali-Hac/3D-skeleton-based-person-re-ID-survey ``README.md`` lines 210 and
231, commit cc5f202, from TranSG) lists "D_PG (Pattern Recognition 2020)" among the hand-crafted
methods, without a definition. This follows the reading its name gives: the 81 per-frame
features of ``features.py``, averaged over the window (as D13 and D16 are in the same tables),
z-scored with the training split's statistics because they mix units (normalised
coordinates, lengths, radians). Nothing is learned; closed-set protocols score it with the
harness's probe, retrieval protocols rank the descriptors by Euclidean distance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reid_bench.api import DataSpec, Model, SampleSet, TrialContext
from reid_bench_posegait.features import FEATURES_PER_FRAME, JOINTS, body_joints, pose_features


@dataclass
class PoseGaitDescriptorConfig:
    """``standardize``: z-score the 81 window means with the training split's statistics."""

    standardize: bool = True


class PoseGaitDescriptor(Model):
    """The 81 PoseGait pose features, window mean; no learning."""

    published_as = "D_PG"
    modality = "skeleton"
    config_class = PoseGaitDescriptorConfig
    description = "D_PG: PoseGait's 81 pose features (positions, limb lengths, joint angles, motion), window mean"
    citation = ("Liao, Yu, An, Huang: A model-based gait recognition method with body pose and human prior "
                "knowledge, Pattern Recognition 98 (2020); as a descriptor in the field's table (TranSG, CVPR 2023)")

    def __init__(self, config: PoseGaitDescriptorConfig, spec: DataSpec) -> None:
        super().__init__(config, spec)
        if spec.layout is None:
            raise ValueError("dpg needs a skeleton layout")
        self.layout = spec.layout
        self.layout.role_joints(JOINTS, "dpg")
        self._mean: np.ndarray | None = None
        self._std: np.ndarray | None = None

    def _raw(self, samples: SampleSet) -> np.ndarray:
        data = np.asarray(samples.data)
        if data.ndim != 4:
            raise ValueError(f"dpg expects windows [N, f, J, 3], got {data.shape}")
        return pose_features(body_joints(data, self.layout, "dpg")).mean(axis=1)

    def fit(self, train: SampleSet, ctx: TrialContext) -> None:
        raw = self._raw(train)
        self._mean = raw.mean(0)
        std = raw.std(0)
        self._std = np.where(std > 1e-12, std, 1.0)
        ctx.progress(1.0, "dpg: done")

    def embed(self, samples: SampleSet) -> np.ndarray:
        raw = self._raw(samples)
        if self.config.standardize:
            if self._mean is None or self._std is None:
                raise RuntimeError("dpg.embed called before fit")
            raw = (raw - self._mean) / self._std
        return raw.astype(np.float32)

    @property
    def dim(self) -> int:
        return FEATURES_PER_FRAME
