"""D13: the 13 skeleton descriptors of Munaro et al. (2014), as the field computes them.

Munaro, Fossati, Basso, Menegatti, Van Gool: One-shot person re-identification with a consumer
depth camera, in Person Re-Identification (Springer) 2014. No code was released with the paper;
the field's tables (SimMC, SPC-MGR, TranSG, the survey) build D13 with
Kali-Hac/SimMC ``utils/process_L3.py`` lines 46-76 (commit c325ad5), which this follows: per
frame, in this order,

 1. head height            head y over the mean y of both feet
 2. neck height            neck (Kinect v1 ShoulderCenter) y over the feet
 3. neck - left shoulder
 4. neck - right shoulder
 5. spine - right shoulder ("torso to right shoulder")
 6. right arm              right shoulder - right wrist, one straight distance
 7. left arm               left shoulder - left wrist
 8. right upper leg        right hip - right knee
 9. left upper leg         left hip - left knee
10. torso                  neck - spine
11. hip width              right hip - left hip
12. torso / right upper leg, the denominator floored at 0.1 (lines 63-66)
13. torso / left upper leg

then the mean over the window's frames (lines 70-76), nothing normalised. SM-SGE's and AGE's
tables classify it with a KNN ("D13 descriptors + KNN"), k not given: the default closed-set
classifier is the 1-nearest neighbour by Euclidean distance on the raw descriptors
(``classifier=knn``), as in Munaro et al.'s own experiments; ``classifier=probe`` uses the
harness's MLP probe instead. On retrieval protocols the descriptors are ranked directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from reid_bench.api import PositiveFloat
from reid_bench_handcrafted.descriptors import WindowDescriptor, distance, height_above_feet, parse_statistics

ROLES = ("head", "neck", "spine", "shoulder_left", "shoulder_right", "wrist_left", "wrist_right",
         "hip_left", "hip_right", "knee_left", "knee_right", "foot_left", "foot_right")
FEATURE_NAMES: tuple[str, ...] = (
    "head_height", "neck_height", "neck_left_shoulder", "neck_right_shoulder", "spine_right_shoulder",
    "right_arm", "left_arm", "right_upper_leg", "left_upper_leg", "torso", "hip_width",
    "torso_over_right_upper_leg", "torso_over_left_upper_leg",
)


@dataclass
class D13Config:
    """Configuration of D13.

    ``statistics``: window summaries of the frame descriptors joined by "+" (mean, std, median,
    min, max); the field's code takes the mean. ``standardize``: z-score with the training
    split (the field's code does not). ``ratio_floor``: the floor of the ratios' denominators,
    in the data's length unit (0.1 m in the field's code). ``classifier``: the closed-set
    classifier, "knn" (1-NN, Euclidean, raw descriptors: the tables' "+ KNN") or "probe" (the
    harness's MLP probe, as every learned model).
    """

    statistics: str = "mean"
    standardize: bool = False
    ratio_floor: PositiveFloat = 0.1
    classifier: Literal["knn", "probe"] = "knn"

    def __post_init__(self) -> None:
        parse_statistics(self.statistics, "D13Config")


class D13(WindowDescriptor):
    """Munaro et al.'s 13 anthropometric descriptors, averaged over the window; no learning."""

    published_as = "D13"
    version = "2"
    config_class = D13Config
    roles = ROLES
    feature_names = FEATURE_NAMES
    probe_settings = {"knn": {"kind": "knn", "k": 1, "metric": "euclidean", "standardize": False}}
    description = "D13: Munaro et al.'s 13 skeleton descriptors (heights, limb lengths, ratios), window mean; + 1-NN"
    citation = (
        "Munaro, Fossati, Basso, Menegatti, Van Gool: One-shot person re-identification with a "
        "consumer depth camera, in Person Re-Identification (Springer) 2014"
    )

    def measure(self, p: dict[str, np.ndarray]) -> np.ndarray:
        torso = distance(p["neck"], p["spine"])
        upper_leg_right = distance(p["hip_right"], p["knee_right"])
        upper_leg_left = distance(p["hip_left"], p["knee_left"])
        floor = self.config.ratio_floor
        return np.stack([
            height_above_feet(p, "head"),
            height_above_feet(p, "neck"),
            distance(p["neck"], p["shoulder_left"]),
            distance(p["neck"], p["shoulder_right"]),
            distance(p["spine"], p["shoulder_right"]),
            distance(p["shoulder_right"], p["wrist_right"]),
            distance(p["shoulder_left"], p["wrist_left"]),
            upper_leg_right,
            upper_leg_left,
            torso,
            distance(p["hip_right"], p["hip_left"]),
            torso / np.maximum(upper_leg_right, floor),
            torso / np.maximum(upper_leg_left, floor),
        ], axis=-1)
