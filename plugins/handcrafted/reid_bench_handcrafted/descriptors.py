"""What D13 and D16 share: per-frame measurements on named joints, pooled over a window.

The field's code (Kali-Hac/SimMC ``utils/process_L3.py`` ``cal_features_ave``, lines 44-98,
commit c325ad5; the same function in TranSG, SPC-MGR and Hi-MPC) measures each frame of an
f-frame window and averages the frames; it neither normalises the descriptors nor learns
anything. Joints are read through the layout's roles, so every layout that names them works.
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar

import numpy as np

from reid_bench.api import DataSpec, Model, SampleSet, TrialContext

_STATISTICS = ("mean", "std", "median", "min", "max")
VERTICAL_AXIS = 1  # y is up in Kinect camera space (image y, downwards, for 2D layouts)


def parse_statistics(spec: str, owner: str) -> tuple[str, ...]:
    names = tuple(s.strip().lower() for s in spec.split("+") if s.strip())
    bad = [s for s in names if s not in _STATISTICS]
    if not names or bad:
        raise ValueError(f"{owner}.statistics={spec!r}: use names from {_STATISTICS} joined by '+'")
    return names


def distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.linalg.norm(a - b, axis=-1)


def height_above_feet(p: dict[str, np.ndarray], role: str) -> np.ndarray:
    """A joint's height over the mean of both feet, as the field's code measures it (no ground plane)."""
    feet = 0.5 * (p["foot_left"][..., VERTICAL_AXIS] + p["foot_right"][..., VERTICAL_AXIS])
    return p[role][..., VERTICAL_AXIS] - feet


class WindowDescriptor(Model):
    """Per-frame descriptors through joint roles, pooled by window statistics; no learning.

    Subclasses set ``roles``, ``feature_names`` and ``measure`` (role positions -> [..., F]).
    ``config.standardize`` z-scores features with the training split's statistics;
    ``config.classifier`` names the closed-set classifier of the paper's table row
    (``probe_settings``) or "probe", the harness's MLP probe.
    """

    modality = "skeleton"
    roles: ClassVar[tuple[str, ...]] = ()
    feature_names: ClassVar[tuple[str, ...]] = ()
    #: ProbeConfig fields per ``classifier`` value ("probe" maps to the harness's probe).
    probe_settings: ClassVar[dict[str, dict[str, Any]]] = {}

    def __init__(self, config: Any, spec: DataSpec) -> None:
        super().__init__(config, spec)
        name = type(self).__name__
        if spec.layout is None:
            raise ValueError(f"{name} needs a skeleton layout")
        self._layout = spec.layout
        self._layout.role_joints(self.roles, name)  # refuse a layout without the joints now
        self._stats = parse_statistics(config.statistics, f"{name}Config")
        self._mean: np.ndarray | None = None
        self._std: np.ndarray | None = None

    def measure(self, p: dict[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def frame_descriptors(self, frames: np.ndarray) -> np.ndarray:
        """[..., J, 3] -> [..., F] (float64)."""
        return self.measure(self._layout.role_positions(frames, self.roles, type(self).__name__))

    def _raw(self, samples: SampleSet) -> np.ndarray:
        data = np.asarray(samples.data)
        if data.ndim != 4:
            raise ValueError(f"{type(self).__name__} expects windows [N, f, J, 3], got {data.shape}")
        d = self.frame_descriptors(data)  # [N, f, F]
        pool: dict[str, Callable[[], np.ndarray]] = {
            "mean": lambda: d.mean(1),
            "std": lambda: d.std(1),
            "median": lambda: np.median(d, axis=1),
            "min": lambda: d.min(1),
            "max": lambda: d.max(1),
        }
        return np.concatenate([pool[s]() for s in self._stats], axis=1)

    def fit(self, train: SampleSet, ctx: TrialContext) -> None:
        ctx.progress(0.0, f"{type(self).__name__.lower()}: descriptors")
        raw = self._raw(train)
        self._mean = raw.mean(0)
        std = raw.std(0)
        self._std = np.where(std > 1e-12, std, 1.0)
        ctx.progress(1.0, "done")

    def embed(self, samples: SampleSet) -> np.ndarray:
        raw = self._raw(samples)
        if self.config.standardize:
            if self._mean is None or self._std is None:
                raise RuntimeError(f"{type(self).__name__}.embed called before fit")
            raw = (raw - self._mean) / self._std
        return raw.astype(np.float32)

    def num_parameters(self) -> int:
        return 0

    @classmethod
    def probe_defaults(cls, config: Any, protocol: Any) -> dict[str, Any]:
        return dict(cls.probe_settings.get(config.classifier, {}))

    @property
    def pooled_feature_names(self) -> list[str]:
        return [f"{s}:{n}" for s in self._stats for n in self.feature_names]
