"""The plugin API: what a model, a dataset, a protocol and a layout must provide.

Third-party packages subclass these and register the classes (layouts: instances) under the
entry-point groups ``reid_bench.models|datasets|protocols|layouts``. The module imports numpy
only, so that reading plugin metadata never drags in torch.
"""

from __future__ import annotations

import abc
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Literal, Sequence

import numpy as np

from reid_bench import API_VERSION

Modality = Literal["skeleton", "pointcloud"]
MODALITIES: tuple[str, ...] = ("skeleton", "pointcloud")
EvaluationMode = Literal["closed-set", "retrieval"]


# --------------------------------------------------------------------------------------------
# Canonical records: what a dataset loader produces.
# --------------------------------------------------------------------------------------------


@dataclass
class SkeletonSequence:
    """One skeleton sequence as recorded; frames are float32 [T, J, 3] in metres (z = 0 for 2D)."""

    frames: np.ndarray
    layout: str
    person: int
    sequence: str
    view: str = ""
    condition: str = ""
    session: str = ""
    source: str = ""

    def __post_init__(self) -> None:
        frames = np.asarray(self.frames, dtype=np.float32)
        if frames.ndim != 3 or frames.shape[-1] != 3:
            raise ValueError(
                f"{self.source or self.sequence}: skeleton frames must be [T, J, 3], got {frames.shape}"
            )
        if frames.shape[0] == 0:
            raise ValueError(f"{self.source or self.sequence}: empty sequence (no frames)")
        if not np.isfinite(frames).all():
            raise ValueError(f"{self.source or self.sequence}: non-finite joint coordinates")
        self.frames = frames


@dataclass
class PointCloud:
    """One coloured cloud: points float32 [N, 6] = xyz + rgb in [0, 1].

    ``subset`` carries the release's own split (train / query / gallery) where it has one;
    ``domain`` tells cross-domain protocols apart (e.g. "market" vs "duke").
    """

    points: np.ndarray
    person: int
    camera: int
    source: str = ""
    subset: str = ""
    domain: str = ""

    def __post_init__(self) -> None:
        points = np.asarray(self.points, dtype=np.float32)
        if points.ndim != 2 or points.shape[1] != 6:
            raise ValueError(f"{self.source}: point cloud must be [N, 6], got {points.shape}")
        if points.shape[0] == 0:
            raise ValueError(f"{self.source}: empty point cloud")
        if not np.isfinite(points).all():
            raise ValueError(f"{self.source}: non-finite point coordinates or colours")
        self.points = points


Record = SkeletonSequence | PointCloud


# --------------------------------------------------------------------------------------------
# Layouts
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """Joint names, bones and SM-SGE's coarser scales (10 parts, 5 bodies) as joint groups."""

    name: str
    joints: tuple[str, ...]
    edges: tuple[tuple[int, int], ...]
    parts: tuple[tuple[int, ...], ...]
    bodies: tuple[tuple[int, ...], ...]
    dims: int = 3
    description: str = ""
    api_version: str = API_VERSION

    @property
    def num_joints(self) -> int:
        return len(self.joints)

    @property
    def num_hyper_joints(self) -> int:
        """Joints plus one node per bone (its midpoint): SM-SGE's finest scale."""
        return len(self.joints) + len(self.edges)

    def joint_index(self, name: str) -> int:
        try:
            return self.joints.index(name)
        except ValueError:
            raise KeyError(f"layout {self.name!r} has no joint {name!r}") from None

    def validate(self) -> None:
        """Raise ValueError on indices out of range, groups that miss joints, or a split graph."""
        n = self.num_joints
        if len(set(self.joints)) != n:
            raise ValueError(f"layout {self.name!r}: duplicate joint names")
        for a, b in self.edges:
            if not (0 <= a < n and 0 <= b < n) or a == b:
                raise ValueError(f"layout {self.name!r}: edge ({a}, {b}) out of range 0..{n - 1}")
        for label, groups in (("parts", self.parts), ("bodies", self.bodies)):
            seen: set[int] = set()
            for group in groups:
                if not group:
                    raise ValueError(f"layout {self.name!r}: empty group in {label}")
                for j in group:
                    if not 0 <= j < n:
                        raise ValueError(f"layout {self.name!r}: {label} index {j} out of range 0..{n - 1}")
                seen.update(group)
            if seen != set(range(n)):
                missing = sorted(set(range(n)) - seen)
                raise ValueError(f"layout {self.name!r}: {label} do not cover joints {missing}")
        # connectivity by union-find
        parent = list(range(n))

        def find(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for a, b in self.edges:
            parent[find(a)] = find(b)
        if len({find(i) for i in range(n)}) != 1:
            raise ValueError(f"layout {self.name!r}: the bone graph is not connected")

    def adjacency(self) -> np.ndarray:
        """Symmetric joint adjacency [J, J] without self loops."""
        adj = np.zeros((self.num_joints, self.num_joints), dtype=np.float32)
        for a, b in self.edges:
            adj[a, b] = adj[b, a] = 1.0
        return adj

    def bone_lengths(self, frames: np.ndarray) -> np.ndarray:
        """Bone lengths per frame, [..., E]."""
        edges = np.asarray(self.edges)
        return np.linalg.norm(frames[..., edges[:, 0], :] - frames[..., edges[:, 1], :], axis=-1)


# --------------------------------------------------------------------------------------------
# What models see
# --------------------------------------------------------------------------------------------


@dataclass
class SampleSet:
    """A batch-friendly split handed to a model.

    Skeletons: ``data`` is float32 [N, f, J, 3] (windows of f frames); ``group`` says which
    sequence each window came from. Point clouds: ``data`` is float32 [N, P, 6]; ``group`` is
    the sample index. ``labels`` are contiguous class indices (0..C-1) of the training split's
    identities; -1 marks an identity unseen in training (retrieval test sets).
    """

    modality: str
    data: np.ndarray
    person: np.ndarray
    labels: np.ndarray
    camera: np.ndarray
    group: np.ndarray
    layout: Layout | None = None
    meta: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.data)
        for name in ("person", "labels", "camera", "group"):
            arr = np.asarray(getattr(self, name), dtype=np.int64)
            if arr.shape != (n,):
                raise ValueError(f"SampleSet.{name} must have shape ({n},), got {arr.shape}")
            setattr(self, name, arr)

    def __len__(self) -> int:
        return len(self.data)

    @property
    def num_classes(self) -> int:
        return int(self.labels.max()) + 1 if len(self.labels) else 0

    def subset(self, index: np.ndarray) -> "SampleSet":
        return SampleSet(
            modality=self.modality,
            data=self.data[index],
            person=self.person[index],
            labels=self.labels[index],
            camera=self.camera[index],
            group=self.group[index],
            layout=self.layout,
            meta={k: v[index] for k, v in self.meta.items()},
        )


@dataclass(frozen=True)
class DataSpec:
    """Shape facts a model needs to build its network before seeing data."""

    modality: str
    num_classes: int
    layout: Layout | None = None
    window: int | None = None
    num_points: int | None = None


@dataclass
class TrialContext:
    """What the harness hands a model for one trial.

    ``report(epoch, **metrics)`` records per-epoch curves (MLflow, and ASHA in ``tune``);
    ``progress(fraction, message)`` drives the live table; ``validation`` is set only when the
    protocol carves a validation split (model selection must use it, never the test split).
    """

    device: str
    seed: int
    checkpoint_dir: Path
    report: Callable[..., None] = lambda epoch, **metrics: None
    progress: Callable[[float, str], None] = lambda fraction, message="": None
    validation: SampleSet | None = None


# --------------------------------------------------------------------------------------------
# Plugin base classes
# --------------------------------------------------------------------------------------------


class Model(abc.ABC):
    """A re-identification model: learns on a training split, then embeds samples.

    ``config_class`` is a dataclass whose defaults are the paper's hyper-parameters;
    ``protocol_overrides`` maps a protocol name to the per-dataset values the paper gives.
    """

    api_version: ClassVar[str] = API_VERSION
    modality: ClassVar[str]
    config_class: ClassVar[type]
    description: ClassVar[str] = ""
    citation: ClassVar[str] = ""
    protocol_overrides: ClassVar[dict[str, dict[str, Any]]] = {}

    def __init__(self, config: Any, spec: DataSpec) -> None:
        self.config = config
        self.spec = spec

    @classmethod
    def example_spec(cls) -> DataSpec:
        """The input a parameter count refers to in ``reid-bench info`` (override per paper)."""
        from reid_bench.layouts import KINECT_V1_20

        if cls.modality == "skeleton":
            return DataSpec("skeleton", num_classes=11, layout=KINECT_V1_20, window=6)
        return DataSpec("pointcloud", num_classes=751, num_points=4096)

    @abc.abstractmethod
    def fit(self, train: SampleSet, ctx: TrialContext) -> None: ...

    @abc.abstractmethod
    def embed(self, samples: SampleSet) -> np.ndarray:
        """float32 [N, D] features, one per sample (window or cloud)."""

    def num_parameters(self) -> int:
        """Learned parameters of the embedding network (identity classifiers excluded)."""
        return 0

    @classmethod
    def search_space(cls) -> dict[str, Any] | None:
        """Default Ray Tune search space for ``reid-bench tune`` (None: not tunable)."""
        return None


class Dataset(abc.ABC):
    """Reads one on-disk format (or generates data) into canonical records, and nothing else."""

    api_version: ClassVar[str] = API_VERSION
    modality: ClassVar[str]
    description: ClassVar[str] = ""
    data_format: ClassVar[str] = ""
    license: ClassVar[str] = ""
    citation: ClassVar[str] = ""
    obtain: ClassVar[str] = ""
    loader_version: ClassVar[str] = "1"
    options_class: ClassVar[type | None] = None

    def __init__(self, root: Path | None = None, options: Any = None) -> None:
        self.root = Path(root) if root is not None else None
        if options is None and self.options_class is not None:
            options = self.options_class()
        self.options = options

    @abc.abstractmethod
    def load(self) -> list[Record]: ...

    def verify(self) -> list[str]:
        """Problems found in the files (empty when all is well)."""
        return []

    def checksum(self) -> str:
        """Identifies the data a run used (logged as a tag)."""
        import hashlib
        import json

        opts = dataclasses.asdict(self.options) if dataclasses.is_dataclass(self.options) else {}
        payload = json.dumps({"name": type(self).__name__, "v": self.loader_version, "opts": opts}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass
class FoldData:
    """The splits of one fold. Closed-set folds fill ``test``; retrieval folds ``query``/``gallery``."""

    train: SampleSet
    test: SampleSet | None = None
    query: SampleSet | None = None
    gallery: SampleSet | None = None
    validation: SampleSet | None = None
    info: dict[str, Any] = field(default_factory=dict)


class Protocol(abc.ABC):
    """What is compared, decided in data and versioned.

    ``references`` holds the papers' numbers: {model: {fold: {metric: value}}} (percent).
    ``data_options`` are the default options of each dataset the protocol reads.
    """

    api_version: ClassVar[str] = API_VERSION
    version: ClassVar[str] = "1"
    modality: ClassVar[str]
    mode: ClassVar[str]
    description: ClassVar[str] = ""
    datasets: ClassVar[tuple[str, ...]] = ()
    folds: ClassVar[tuple[str, ...]] = ("all",)
    seeds: ClassVar[tuple[int, ...]] = (0, 1, 2)
    window: ClassVar[int | None] = None
    main_score: ClassVar[str] = "rank1"
    higher_is_better: ClassVar[bool] = True
    filter_same_camera: ClassVar[bool] = True
    max_rank: ClassVar[int] = 50
    references: ClassVar[dict[str, dict[str, dict[str, float]]]] = {}
    reference_source: ClassVar[str] = ""

    @property
    def metrics(self) -> tuple[str, ...]:
        if self.mode == "closed-set":
            return ("rank1", "rank5", "rank10", "nAUC", "roc_auc_micro", "sequence_accuracy")
        return ("rank1", "rank5", "rank10", "mAP", "mINP")

    def fixed_data_options(self) -> dict[str, Any]:
        """Dataset options this protocol sets itself (``--set data.*`` may not change them)."""
        fixed: dict[str, Any] = {}
        for attr in ("data_options", "train_options", "test_options"):
            fixed.update(getattr(self, attr, {}) or {})
        return fixed

    @abc.abstractmethod
    def build_fold(self, fold: str, seed: int, data: "DataAccess") -> FoldData: ...

    def validation_fold(self, fold: str, seed: int, data: "DataAccess") -> FoldData:
        """A fold for model selection, carved from ``fold``'s training data only (``tune`` uses it).

        Default: closed-set protocols hold out training sequences, retrieval protocols hold out
        training identities (see reid_bench.validation)."""
        from reid_bench.validation import carve_validation

        return carve_validation(self.build_fold(fold, seed, data), self.mode)


class DataAccess(abc.ABC):
    """How a protocol obtains records: by dataset name, with the run's data options applied."""

    @abc.abstractmethod
    def load(self, dataset: str, **options: Any) -> list[Record]:
        """Records of ``dataset``; ``options`` are the protocol's, the run's ``data.*`` win."""


def seeds_for(protocol: Protocol | type[Protocol], count: int | None) -> list[int]:
    """The first ``count`` seeds of a protocol, extended by counting upwards when more are asked."""
    base = list(protocol.seeds)
    if count is None:
        return base
    if count < 1:
        raise ValueError("--seeds must be at least 1")
    extra = [s for s in range(max(base, default=-1) + 1, max(base, default=-1) + 1 + count)]
    return (base + extra)[:count]


def check_modalities(names: Sequence[str]) -> None:
    for name in names:
        if name not in MODALITIES:
            raise ValueError(f"unknown modality {name!r}; expected one of {MODALITIES}")
