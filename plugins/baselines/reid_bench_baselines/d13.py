"""D13: hand-crafted anthropometric skeleton descriptors (no learning).

In the spirit of the skeleton descriptors of Barbosa et al. (2012) and Munaro et al. (2014),
13 values per frame are measured on a Kinect v1 20-joint skeleton (other built-in layouts map
their joints onto the same roles, see ``ROLES``):

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

from reid_bench.api import DataSpec, Model, PositiveFloat, SampleSet, TrialContext

# The joints each descriptor measures, per layout. A role is the mean of the listed joints,
# so layouts without a joint get the nearest stand-in (a hand is the wrist when the layout has
# no hand, the hip centre is the mean of both hips, the neck of COCO is between the shoulders).
ROLES: dict[str, dict[str, tuple[int, ...]]] = {
    "kinect-v1-20": dict(head=(3,), neck=(2,), hipc=(0,), spine=(1,), sl=(4,), el=(5,), wl=(6,), hl=(7,),
                         sr=(8,), er=(9,), wr=(10,), hr=(11,), hipl=(12,), kl=(13,), al=(14,), fl=(15,),
                         hipr=(16,), kr=(17,), ar=(18,), fr=(19,)),
    # Kinect v2: SpineShoulder (20) plays the part of v1's ShoulderCenter.
    "kinect-v2-25": dict(head=(3,), neck=(20,), hipc=(0,), spine=(1,), sl=(4,), el=(5,), wl=(6,), hl=(7,),
                         sr=(8,), er=(9,), wr=(10,), hr=(11,), hipl=(12,), kl=(13,), al=(14,), fl=(15,),
                         hipr=(16,), kr=(17,), ar=(18,), fr=(19,)),
    "casia-14": dict(head=(0,), neck=(1,), hipc=(8, 11), spine=(1, 8, 11), sr=(2,), er=(3,), wr=(4,), hr=(4,),
                     sl=(5,), el=(6,), wl=(7,), hl=(7,), hipr=(8,), kr=(9,), ar=(10,), fr=(10,),
                     hipl=(11,), kl=(12,), al=(13,), fl=(13,)),
    # 2D image keypoints: y grows downwards, so "heights" are negative; standardisation absorbs it.
    "coco-17": dict(head=(0,), neck=(5, 6), hipc=(11, 12), spine=(5, 6, 11, 12), sl=(5,), el=(7,), wl=(9,), hl=(9,),
                    sr=(6,), er=(8,), wr=(10,), hr=(10,), hipl=(11,), kl=(13,), al=(15,), fl=(15,),
                    hipr=(12,), kr=(14,), ar=(16,), fr=(16,)),
}

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
    eps: PositiveFloat = 1e-6

    def __post_init__(self) -> None:
        _parse_statistics(self.statistics)


def frame_descriptors(frames: np.ndarray, eps: float = 1e-6, layout: str = "kinect-v1-20") -> np.ndarray:
    """The 13 descriptors of every frame: [..., J, 3] -> [..., 13] (float64)."""
    if layout not in ROLES:
        raise ValueError(f"D13 has no joint roles for layout {layout!r}; supported: {', '.join(sorted(ROLES))}")
    roles = ROLES[layout]
    x = np.asarray(frames, dtype=np.float64)
    needed = max(max(v) for v in roles.values()) + 1
    if x.shape[-1] != 3 or x.shape[-2] < needed:
        raise ValueError(f"D13 on {layout!r} needs skeletons [..., {needed}, 3], got {x.shape}")
    p = {name: x[..., list(idx), :].mean(axis=-2) for name, idx in roles.items()}

    def dist(a: str, b: str) -> np.ndarray:
        return np.linalg.norm(p[a] - p[b], axis=-1)

    floor = np.minimum(p["fl"][..., 1], p["fr"][..., 1])
    torso = dist("hipc", "spine") + dist("spine", "neck")
    arm_l = dist("sl", "el") + dist("el", "wl") + dist("wl", "hl")
    arm_r = dist("sr", "er") + dist("er", "wr") + dist("wr", "hr")
    thigh_l, thigh_r = dist("hipl", "kl"), dist("hipr", "kr")
    leg = 0.5 * (thigh_l + dist("kl", "al") + thigh_r + dist("kr", "ar"))
    feats = [
        p["head"][..., 1] - floor,
        p["neck"][..., 1] - floor,
        dist("neck", "sl"),
        dist("neck", "sr"),
        torso,
        arm_l,
        arm_r,
        thigh_l,
        thigh_r,
        torso / np.maximum(thigh_l, eps),
        torso / np.maximum(thigh_r, eps),
        dist("hipl", "hipr"),
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
        self._layout = spec.layout.name if spec.layout is not None else "kinect-v1-20"
        if self._layout not in ROLES:
            raise ValueError(f"D13 has no joint roles for layout {self._layout!r}; supported: {', '.join(sorted(ROLES))}")
        self._stats = _parse_statistics(config.statistics)
        self._mean: np.ndarray | None = None
        self._std: np.ndarray | None = None

    def _raw(self, samples: SampleSet) -> np.ndarray:
        data = np.asarray(samples.data)
        if data.ndim != 4:
            raise ValueError(f"D13 expects windows [N, f, J, 3], got {data.shape}")
        d = frame_descriptors(data, self.config.eps, self._layout)  # [N, f, 13]
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
