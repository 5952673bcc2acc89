"""D13: hand-crafted anthropometric skeleton descriptors (no learning).

In the spirit of the skeleton descriptors of Barbosa et al. (2012) and Munaro et al. (2014),
13 values per frame are measured on a Kinect v1 20-joint skeleton:

 1. head height        head above the lower foot (y up)
 2. neck height        ShoulderCenter above the lower foot
 3. neck-left-shoulder distance
 4. neck-right-shoulder distance
 5. torso length       HipCenter-Spine-ShoulderCenter
 6. left arm length    shoulder-elbow-wrist-hand
 7. right arm length
 8. left upper leg     HipLeft-KneeLeft
 9. right upper leg    HipRight-KneeRight
10. torso / left upper leg
11. torso / right upper leg
12. hip width         HipLeft-HipRight
13. torso / leg       torso length over the mean hip-knee-ankle length of both legs

Per window the frames' descriptors are summarised by statistics (mean and std by default),
then standardised with the training split's statistics. ``fit`` learns nothing else; the
harness's closed-set probe does the classification.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reid_bench.api import DataSpec, Model, SampleSet, TrialContext

# Kinect v1 20-joint indices (SDK order).
_HC, _SP, _SC, _HEAD = 0, 1, 2, 3
_SL, _EL, _WL, _HL = 4, 5, 6, 7
_SR, _ER, _WR, _HR = 8, 9, 10, 11
_HIPL, _KL, _AL, _FL = 12, 13, 14, 15
_HIPR, _KR, _AR, _FR = 16, 17, 18, 19

_STATISTICS = ("mean", "std", "median", "min", "max")
FEATURE_NAMES: tuple[str, ...] = (
    "head_height",
    "neck_height",
    "neck_left_shoulder",
    "neck_right_shoulder",
    "torso_length",
    "left_arm_length",
    "right_arm_length",
    "left_upper_leg",
    "right_upper_leg",
    "torso_over_left_upper_leg",
    "torso_over_right_upper_leg",
    "hip_width",
    "torso_over_leg",
)


@dataclass
class D13Config:
    """Configuration of the D13 descriptor.

    ``statistics``: per-window summaries of the 13 frame descriptors, joined by "+", from
    mean, std, median, min, max (e.g. "mean+std" gives 26 features).
    ``standardize``: z-score every feature with the training split's mean and std.
    ``eps``: floor for divisions (ratios and standardisation).
    """

    statistics: str = "mean+std"
    standardize: bool = True
    eps: float = 1e-6


def frame_descriptors(frames: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """The 13 descriptors of every frame: [..., 20, 3] -> [..., 13] (float64)."""
    x = np.asarray(frames, dtype=np.float64)
    if x.shape[-2:] != (20, 3):
        raise ValueError(f"D13 needs Kinect v1 20-joint skeletons [..., 20, 3], got {x.shape}")

    def dist(a: int, b: int) -> np.ndarray:
        return np.linalg.norm(x[..., a, :] - x[..., b, :], axis=-1)

    floor = np.minimum(x[..., _FL, 1], x[..., _FR, 1])
    torso = dist(_HC, _SP) + dist(_SP, _SC)
    arm_l = dist(_SL, _EL) + dist(_EL, _WL) + dist(_WL, _HL)
    arm_r = dist(_SR, _ER) + dist(_ER, _WR) + dist(_WR, _HR)
    thigh_l, thigh_r = dist(_HIPL, _KL), dist(_HIPR, _KR)
    leg = 0.5 * (thigh_l + dist(_KL, _AL) + thigh_r + dist(_KR, _AR))
    feats = [
        x[..., _HEAD, 1] - floor,
        x[..., _SC, 1] - floor,
        dist(_SC, _SL),
        dist(_SC, _SR),
        torso,
        arm_l,
        arm_r,
        thigh_l,
        thigh_r,
        torso / np.maximum(thigh_l, eps),
        torso / np.maximum(thigh_r, eps),
        dist(_HIPL, _HIPR),
        torso / np.maximum(leg, eps),
    ]
    return np.stack(feats, axis=-1)


def _parse_statistics(spec: str) -> tuple[str, ...]:
    names = tuple(s.strip().lower() for s in spec.split("+") if s.strip())
    bad = [s for s in names if s not in _STATISTICS]
    if not names or bad:
        raise ValueError(f"D13Config.statistics={spec!r}: use names from {_STATISTICS} joined by '+'")
    return names


class D13(Model):
    """Hand-crafted anthropometric descriptors (13 per frame, window statistics)."""

    modality = "skeleton"
    config_class = D13Config
    description = "13 anthropometric skeleton descriptors (heights, limb lengths, ratios), window mean/std; no learning"
    citation = (
        "Munaro, Fossati, Basso, Menegatti, Van Gool: One-shot person re-identification with a "
        "consumer depth camera, in Person Re-Identification (Springer) 2014; Barbosa, Cristani, "
        "Del Bue, Bazzani, Murino: Re-identification with RGB-D sensors, ECCV Workshops 2012"
    )

    def __init__(self, config: D13Config, spec: DataSpec) -> None:
        super().__init__(config, spec)
        if spec.layout is not None and spec.layout.num_joints != 20:
            raise ValueError(f"D13 needs the Kinect v1 20-joint layout, got {spec.layout.name!r}")
        self._stats = _parse_statistics(config.statistics)
        self._mean: np.ndarray | None = None
        self._std: np.ndarray | None = None

    def _raw(self, samples: SampleSet) -> np.ndarray:
        data = np.asarray(samples.data)
        if data.ndim != 4:
            raise ValueError(f"D13 expects windows [N, f, J, 3], got {data.shape}")
        d = frame_descriptors(data, self.config.eps)  # [N, f, 13]
        parts = {
            "mean": lambda: d.mean(1),
            "std": lambda: d.std(1),
            "median": lambda: np.median(d, axis=1),
            "min": lambda: d.min(1),
            "max": lambda: d.max(1),
        }
        return np.concatenate([parts[s]() for s in self._stats], axis=1)

    def fit(self, train: SampleSet, ctx: TrialContext) -> None:
        ctx.progress(0.0, "d13: descriptors")
        raw = self._raw(train)
        self._mean = raw.mean(0)
        std = raw.std(0)
        self._std = np.where(std > self.config.eps, std, 1.0)
        ctx.progress(1.0, "d13: done")

    def embed(self, samples: SampleSet) -> np.ndarray:
        raw = self._raw(samples)
        if self.config.standardize:
            if self._mean is None or self._std is None:
                raise RuntimeError("D13.embed called before fit")
            raw = (raw - self._mean) / self._std
        return raw.astype(np.float32)

    def num_parameters(self) -> int:
        return 0

    @property
    def feature_names(self) -> list[str]:
        return [f"{s}:{n}" for s in self._stats for n in FEATURE_NAMES]
