"""D16: the 16 skeleton descriptors of Pala et al. (2019), as the field computes them.

Pala, Seidenari, Berretti, Del Bimbo: Enhanced skeleton and face 3D data for person
re-identification from depth cameras, Computers & Graphics 2019. No code was released with the
paper; the field's tables build D16 with Kali-Hac/SimMC ``utils/process_L3.py`` lines 78-93
(commit c325ad5, the "2019" block), which this follows: per frame the 15 segment lengths of a
16-joint tree and the height,

 1. head - neck             6. right forearm (elbow - wrist)   11. right thigh (hip - knee)
 2. spine - neck            7. neck - left shoulder            12. right knee - right foot
 3. spine - pelvis          8. left upper arm                  13. left hip - pelvis
 4. right shoulder - neck   9. left forearm                    14. left thigh
 5. right upper arm        10. right hip - pelvis              15. left knee - left foot
16. head height (head y over the mean y of both feet, as D13's first descriptor)

(the knee-foot lengths skip the ankle, as the code does), then the mean over the window's
frames. SM-SGE's and AGE's tables classify it with AdaBoost ("D16 descriptors + Adaboost"),
settings not given: the default closed-set classifier is scikit-learn's AdaBoost (SAMME, 50
depth-1 trees; ``classifier=adaboost``); ``classifier=probe`` uses the harness's MLP probe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from reid_bench.api import PositiveInt
from reid_bench_handcrafted.descriptors import WindowDescriptor, distance, height_above_feet, parse_statistics

ROLES = ("head", "neck", "spine", "pelvis", "shoulder_left", "shoulder_right", "elbow_left", "elbow_right",
         "wrist_left", "wrist_right", "hip_left", "hip_right", "knee_left", "knee_right", "foot_left", "foot_right")
SEGMENTS: tuple[tuple[str, str], ...] = (
    ("head", "neck"), ("spine", "neck"), ("spine", "pelvis"),
    ("shoulder_right", "neck"), ("shoulder_right", "elbow_right"), ("elbow_right", "wrist_right"),
    ("neck", "shoulder_left"), ("shoulder_left", "elbow_left"), ("elbow_left", "wrist_left"),
    ("hip_right", "pelvis"), ("hip_right", "knee_right"), ("knee_right", "foot_right"),
    ("hip_left", "pelvis"), ("hip_left", "knee_left"), ("knee_left", "foot_left"),
)
FEATURE_NAMES: tuple[str, ...] = tuple(f"{a}-{b}" for a, b in SEGMENTS) + ("head_height",)


@dataclass
class D16Config:
    """Configuration of D16.

    ``statistics`` / ``standardize``: as D13's (the field's code: the mean, not normalised).
    ``classifier``: the closed-set classifier, "adaboost" (the tables' "+ Adaboost") or "probe"
    (the harness's MLP probe). ``estimators``: AdaBoost's number of stumps.
    """

    statistics: str = "mean"
    standardize: bool = False
    classifier: Literal["adaboost", "probe"] = "adaboost"
    estimators: PositiveInt = 50

    def __post_init__(self) -> None:
        parse_statistics(self.statistics, "D16Config")


class D16(WindowDescriptor):
    """Pala et al.'s 15 segment lengths and height, averaged over the window; no learning."""

    published_as = "D16"
    version = "1"
    config_class = D16Config
    roles = ROLES
    feature_names = FEATURE_NAMES
    description = "D16: Pala et al.'s 16 skeleton descriptors (15 segment lengths, height), window mean; + AdaBoost"
    citation = (
        "Pala, Seidenari, Berretti, Del Bimbo: Enhanced skeleton and face 3D data for person "
        "re-identification from depth cameras, Computers & Graphics 83 (2019)"
    )

    @classmethod
    def probe_defaults(cls, config: D16Config, protocol: object) -> dict[str, object]:
        if config.classifier != "adaboost":
            return {}
        return {"kind": "adaboost", "estimators": config.estimators, "standardize": False}

    def measure(self, p: dict[str, np.ndarray]) -> np.ndarray:
        lengths = [distance(p[a], p[b]) for a, b in SEGMENTS]
        return np.stack([*lengths, height_above_feet(p, "head")], axis=-1)
