"""The plugin API: what a model, a dataset, a protocol and a layout must provide.

Third-party packages subclass these and register the classes (layouts: instances) under the
entry-point groups ``reid_bench.models|datasets|protocols|layouts``. The data types a plugin
handles are defined next to the code that builds them (``records``, ``layouts``, ``samples``)
and re-exported here, so a plugin imports everything from ``reid_bench.api``. The module
imports numpy only, so that reading plugin metadata never drags in torch.
"""

from __future__ import annotations

import abc
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Literal, Sequence

import numpy as np

from reid_bench import API_VERSION
from reid_bench.config import (Fraction, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, Probability,
                               Range, later_setting, require_order, run_setting)
from reid_bench.layouts import KINECT_V1_20, Layout
from reid_bench.modes import metrics_of
from reid_bench.published import Published, PublishedSource
from reid_bench.records import PointCloud, Record, SkeletonSequence
from reid_bench.samples import DataSpec, FoldData, SampleSet
from reid_bench.scoring import RetrievalScoring
from reid_bench.validation import carve_validation

__all__ = [
    "API_VERSION", "MODALITIES", "DataAccess", "DataSpec", "Dataset", "EvaluationMode", "FoldData", "Fraction", "Layout",
    "Modality", "Model", "NonNegativeFloat", "NonNegativeInt", "PointCloud", "PositiveFloat", "PositiveInt",
    "Probability", "Protocol", "Published", "PublishedSource", "Range", "Record", "RetrievalScoring", "SampleSet", "SkeletonSequence", "TorchModel", "TrialContext",
    "check_modalities", "later_setting", "require_order", "run_setting", "seeds_for",
]

Modality = Literal["skeleton", "pointcloud"]
MODALITIES: tuple[str, ...] = ("skeleton", "pointcloud")
EvaluationMode = Literal["closed-set", "retrieval"]  # reid_bench.modes.MODES


# --------------------------------------------------------------------------------------------
# What models see
# --------------------------------------------------------------------------------------------


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
    #: A training checkpoint (``Model.training_state``) to continue from, or None: a fresh fit.
    resume: dict[str, Any] | None = None
    #: ``epoch_done(model, epoch, epochs)`` after each epoch: the harness checkpoints there
    #: when its policy says so (every N epochs or M minutes, and after the last).
    epoch_done: Callable[["Model", int, int], None] = lambda model, epoch, epochs: None


# --------------------------------------------------------------------------------------------
# Plugin base classes
# --------------------------------------------------------------------------------------------


class Model(abc.ABC):
    """A re-identification model: learns on a training split, then embeds samples.

    ``config_class`` is a dataclass whose defaults are the paper's hyper-parameters;
    ``protocol_overrides`` maps a protocol name to the per-dataset values the paper gives,
    ``fold_overrides`` its per-fold values, ``budget_overrides`` what this benchmark chose.
    ``published_as`` names the published method this model implements, as the protocols'
    published numbers key it (the literature's name, e.g. "SM-SGE"): the boards put those
    numbers on this model's rows whatever name its entry point has; None: no published method.
    """

    api_version: ClassVar[str] = API_VERSION
    #: The implementation's version: bump it when a change alters results, so that a leaderboard
    #: row (model, configuration, protocol version) never mixes trials of two implementations.
    version: ClassVar[str] = "1"
    modality: ClassVar[str]
    config_class: ClassVar[type]
    description: ClassVar[str] = ""
    citation: ClassVar[str] = ""
    protocol_overrides: ClassVar[dict[str, dict[str, Any]]] = {}
    #: The release's values for one fold of a protocol: {protocol: {fold: {field: value}}}
    #: (SimMC's MIC weight is 0.75 on IAS-A, 0.5 on IAS-B). A run fits such folds separately.
    fold_overrides: ClassVar[dict[str, dict[str, dict[str, Any]]]] = {}
    #: Values this benchmark chose where the release's cannot run (a CPU budget, the harness
    #: recipe on synthetic data): {protocol: {field: value}}. Applied after the release's, and
    #: named on every leaderboard row, which is never "default" while they differ.
    budget_overrides: ClassVar[dict[str, dict[str, Any]]] = {}
    #: What a leaderboard row of this model on a protocol should say (a CPU budget, a recipe).
    protocol_notes: ClassVar[dict[str, str]] = {}
    #: The published method this model implements, spelled as the protocols' ``published``
    #: entries key it ("SM-SGE", "OG-Net-Small"); a variant the papers report separately declares
    #: its own. None: the papers' tables have no entry for it.
    published_as: ClassVar[str | None] = None

    def __init__(self, config: Any, spec: DataSpec) -> None:
        self.config = config
        self.spec = spec

    @classmethod
    def example_spec(cls) -> DataSpec:
        """The input a parameter count refers to in ``reid-bench info`` (override per paper)."""
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

    #: True when ``fit`` continues from ``ctx.resume`` and calls ``ctx.epoch_done`` after each
    #: epoch (``TorchModel`` does both). Other models run each trial whole: an interrupted
    #: trial starts again from the beginning.
    resumable: ClassVar[bool] = False

    def model_state(self) -> dict[str, Any] | None:
        """The fitted model as tensors and plain values (what ``embed`` needs), for a saved model
        that ``reid-bench eval`` scores later; None: this model cannot be saved."""
        return None

    def load_model_state(self, state: dict[str, Any]) -> None:
        """Put a ``model_state`` back; raise ``ValueError`` (one line) when it does not fit."""
        raise NotImplementedError(f"{type(self).__name__} cannot load a saved model")

    def training_state(self, epoch: int) -> dict[str, Any]:
        """Everything a fit needs to continue after ``epoch`` (resumable models only)."""
        raise NotImplementedError(f"{type(self).__name__} does not checkpoint its training")

    @classmethod
    def finalize_config(cls, config: Any, protocol: "Protocol") -> Any:
        """The configuration a trial runs, from the one asked for: fill in what a recipe or a
        named variant decides, so that two spellings of one configuration are one leaderboard
        row. Default: unchanged."""
        return config

    @classmethod
    def probe_defaults(cls, config: Any, protocol: "Protocol") -> dict[str, Any]:
        """The closed-set probe this model's recipe uses (``ProbeConfig`` fields); ``--set
        probe.*`` still wins. Default: the harness's probe."""
        return {}

    @classmethod
    def search_space(cls) -> dict[str, dict[str, Any]] | None:
        """The default space of ``reid-bench tune``, as data (None: not tunable):
        ``{field: {distribution: arguments}}`` with the distributions of a ``--space`` file
        (uniform, loguniform, choice, randint, qrandint, grid), e.g.
        ``{"lr": {"loguniform": [1e-4, 1e-2]}}``. Declared as data, it prints readably and
        costs nothing to import (no Ray)."""
        return None


class TorchModel(Model):
    """A model trained epoch by epoch with torch; the harness owns the loop around the epochs.

    A plugin says what its network, one epoch and its features are; this class seeds torch from
    the trial's seed, runs the epochs, reports each epoch's metrics, hands the harness a
    checkpoint of the whole training state when it asks (so that a killed trial continues from
    its last epoch bit for bit), restores one, and embeds in batches without gradients. Threads
    are the trial's (``--cpus-per-trial``), not the model's.

    Implement ``start_fit`` (build the fresh network from the seeded RNG, its optimisers,
    generators and prepared data), ``num_epochs``, ``train_epoch`` (returns the epoch's metrics,
    or None to report nothing) and ``features`` (a batch of ``embed_batches`` -> embeddings);
    optionally ``end_fit``, ``embed_inputs`` and ``embedding_dim``. List in
    ``model_attributes`` what ``embed`` needs (default the network ``net``) and in
    ``training_attributes`` the rest of the training state: optimisers, schedulers, torch or
    numpy generators, arrays, plain values (anything else is refused when it is saved).
    """

    resumable: ClassVar[bool] = True
    model_attributes: ClassVar[tuple[str, ...]] = ("net",)
    training_attributes: ClassVar[tuple[str, ...]] = ()
    #: Samples per forward pass in ``embed`` when the config has no ``embed_batch``.
    embed_batch: ClassVar[int] = 512

    def __init__(self, config: Any, spec: DataSpec) -> None:
        super().__init__(config, spec)
        self.device = "cpu"

    # -- what a plugin implements -------------------------------------------------------------
    @abc.abstractmethod
    def start_fit(self, train: SampleSet, ctx: TrialContext) -> None:
        """Build the fresh network (torch is seeded from ``ctx.seed`` just before), optimisers,
        generators and the prepared training data. Must draw the same numbers on every call with
        the same seed: a resumed fit calls it, then restores the saved state over it."""

    @abc.abstractmethod
    def num_epochs(self) -> int: ...

    @abc.abstractmethod
    def train_epoch(self, epoch: int, ctx: TrialContext) -> dict[str, float] | None: ...

    @abc.abstractmethod
    def features(self, batch: Any) -> Any:
        """Embeddings [B, D] (a torch tensor) of one batch from ``embed_batches``."""

    def end_fit(self, ctx: TrialContext) -> None:
        """After the last epoch (also when a resumed fit had none left)."""
        self.eval_mode()

    def eval_mode(self) -> None:
        """Every module among ``model_attributes`` in eval mode (dropout off, BatchNorm frozen)."""
        for name in self.model_attributes:
            module = getattr(self, name, None)
            if hasattr(module, "eval"):
                module.eval()

    def embed_inputs(self, samples: SampleSet) -> Any:
        """The whole set as the network's input (a tensor indexed by sample)."""
        import torch

        return torch.as_tensor(np.asarray(samples.data, dtype=np.float32))

    def embed_batches(self, samples: SampleSet) -> Any:
        """Batches of the set for ``features``, in order, on the model's device."""
        x = self.embed_inputs(samples)
        step = int(getattr(self.config, "embed_batch", self.embed_batch))
        for start in range(0, len(x), step):
            yield x[start : start + step].to(self.device)

    def embedding_dim(self, samples: SampleSet) -> int:
        """The width of an embedding, for an empty set: the config's ``embed_dim`` or ``hidden``."""
        return int(getattr(self.config, "embed_dim", getattr(self.config, "hidden", 0)))

    # -- what the harness runs ----------------------------------------------------------------
    def fit(self, train: SampleSet, ctx: TrialContext) -> None:
        import torch

        torch.manual_seed(ctx.seed)
        self.device = ctx.device
        self.start_fit(train, ctx)
        first = 0 if ctx.resume is None else self.load_training_state(ctx.resume)
        total = self.num_epochs()
        for epoch in range(first, total):
            metrics = self.train_epoch(epoch, ctx)
            if metrics is not None:
                ctx.report(epoch=epoch, **metrics)
            ctx.progress((epoch + 1) / max(1, total), _epoch_message(epoch, total, metrics))
            ctx.epoch_done(self, epoch, total)
        self.end_fit(ctx)

    def embed(self, samples: SampleSet) -> np.ndarray:
        import torch

        if len(samples) == 0:
            return np.zeros((0, self.embedding_dim(samples)), dtype=np.float32)
        self.eval_mode()
        with torch.no_grad():
            out = [self.features(batch).detach().cpu() for batch in self.embed_batches(samples)]
        return torch.cat(out).numpy().astype(np.float32)

    def model_state(self) -> dict[str, Any]:
        from reid_bench.checkpoints import capture

        return {name: capture(getattr(self, name), name) for name in self.model_attributes}

    def load_model_state(self, state: dict[str, Any]) -> None:
        from reid_bench.checkpoints import CheckpointError, restore

        missing = [name for name in self.model_attributes if name not in state]
        unexpected = sorted(set(state) - set(self.model_attributes))
        if missing or unexpected:
            raise CheckpointError(f"model state: missing {missing or 'nothing'}, unexpected {unexpected or 'nothing'}")
        for name in self.model_attributes:
            setattr(self, name, restore(getattr(self, name, None), state[name], name))
            if hasattr(getattr(self, name), "to"):
                getattr(self, name).to(self.device)

    def training_state(self, epoch: int) -> dict[str, Any]:
        from reid_bench.checkpoints import capture, rng_state

        return {"epoch": int(epoch), "model": self.model_state(),
                "training": {name: capture(getattr(self, name), name) for name in self.training_attributes},
                "rng": rng_state()}

    def load_training_state(self, state: dict[str, Any]) -> int:
        """Restore a training checkpoint over a started fit; the first epoch still to run."""
        from reid_bench.checkpoints import restore, set_rng_state

        self.load_model_state(state["model"])
        for name, saved in (state.get("training") or {}).items():
            setattr(self, name, restore(getattr(self, name, None), saved, name))
        if state.get("rng"):
            set_rng_state(state["rng"])
        return int(state["epoch"]) + 1


def _epoch_message(epoch: int, total: int, metrics: dict[str, float] | None) -> str:
    text = f"epoch {epoch + 1}/{total}"
    if metrics and "loss" in metrics:
        text += f" loss {float(metrics['loss']):.4g}"
    return text


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
    #: The skeleton layout of its records, known before reading them (``reid-bench info MODEL
    #: --protocol P`` builds the model for it); None where the files decide.
    layout: ClassVar[str | None] = None

    def __init__(self, root: Path | None = None, options: Any = None) -> None:
        self.root = Path(root) if root is not None else None
        if options is None and self.options_class is not None:
            options = self.options_class()
        self.options = options

    @abc.abstractmethod
    def load(self) -> list[Record]: ...

    def skeleton_layout(self) -> str | None:
        """The layout its records will have with these options (default: ``layout``)."""
        return self.layout

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


class Protocol(abc.ABC):
    """What is compared, decided in data and versioned.

    ``references`` holds the papers' numbers: {method: {fold: {metric: value}}} (percent), the
    Paper column's value, one per published method and fold, keyed by the method's name in the
    literature ("SM-SGE"), never by a plugin's entry-point name: a model's rows get them through
    its ``Model.published_as``. ``published`` says where each published number comes from and
    what kind of number it is (``reid_bench.published``): one entry per (method, source), naming
    one of ``published_sources``; ``references`` are each method's first entry
    (``paper_references(published)``), and further sources are listed beside it.
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
    #: Every published number with its source and kind (``reid_bench.published.Published``);
    #: empty: ``references`` stand alone, their source ``reference_source``, their kind not stated.
    published: ClassVar[tuple[Published, ...]] = ()
    published_sources: ClassVar[tuple[PublishedSource, ...]] = ()
    #: The boards' name for each published method that no first-party model implements
    #: ({method: name}); a method without one is shown by its key, a declared one by its model.
    unimplemented_names: ClassVar[dict[str, str]] = {}
    #: The metric the published numbers give for the main score, when it is not the main score
    #: itself (OG-Net's mAPs are its trapezoid AP, ``map_trapz``).
    reference_score: ClassVar[str | None] = None
    #: How a retrieval protocol ranks (distance, item, Rank-k denominator), as its papers'
    #: released code does; ``--set eval.*`` changes it for a run, and the row says so.
    scoring: ClassVar[RetrievalScoring] = RetrievalScoring()

    @property
    def metrics(self) -> tuple[str, ...]:
        """What its mode reports (``reid_bench.modes``)."""
        return metrics_of(self.mode)

    #: Dataset options this protocol starts from, which ``--set data.*`` may still change (a
    #: release's reading of the files, with the harness's as a switch).
    data_defaults: ClassVar[dict[str, Any]] = {}

    def fixed_data_options(self) -> dict[str, Any]:
        """Dataset options this protocol sets itself (``--set data.*`` may not change them)."""
        fixed: dict[str, Any] = {}
        for attr in ("data_options", "train_options", "test_options"):
            fixed.update(getattr(self, attr, {}) or {})
        return fixed

    def build_fold(self, fold: str, seed: int, data: "DataAccess") -> FoldData:
        """The splits of ``fold``: refuses a fold the protocol does not declare, then
        ``cut_fold`` cuts it. A protocol implements ``cut_fold``; one that overrides this method
        whole (as plugins written before the template do) still works."""
        self.require_fold(fold)
        return self.cut_fold(fold, seed, data)

    def cut_fold(self, fold: str, seed: int, data: "DataAccess") -> FoldData:
        """The splits of a declared fold (``build_fold`` has checked the name)."""
        raise NotImplementedError(f"{type(self).__name__} implements neither cut_fold nor build_fold")

    def require_fold(self, fold: str) -> None:
        """One wording for an unknown fold, wherever a protocol meets one."""
        if fold not in self.folds:
            raise ValueError(f"protocol has no fold {fold!r}; folds: {', '.join(self.folds)}")

    @classmethod
    def cuts_folds(cls) -> bool:
        """Whether the class implements ``cut_fold`` or ``build_fold`` (the registry refuses
        a protocol that does neither, as it refuses any unimplemented abstract method)."""
        return cls.cut_fold is not Protocol.cut_fold or cls.build_fold is not Protocol.build_fold

    def training_set(self, fold: str) -> str:
        """Names the training split of ``fold``: folds with the same name learn on the same data
        (IAS-A and IAS-B on IAS-Lab's Training session), so a run fits one model per (training
        set, seed) and scores it on each. Default: every fold its own. The trial checks that the
        folds' training splits are indeed equal and refuses the run when they are not."""
        return fold

    def validation_fold(self, fold: str, seed: int, data: "DataAccess") -> FoldData:
        """A fold for model selection, carved from ``fold``'s training data only (``tune`` uses it).

        Default: closed-set protocols hold out training sequences, retrieval protocols hold out
        training identities (see reid_bench.validation)."""
        return carve_validation(self.build_fold(fold, seed, data), self.mode)


class DataAccess(abc.ABC):
    """How a protocol obtains records: by dataset name, with the run's data options applied."""

    @abc.abstractmethod
    def load(self, dataset: str, **options: Any) -> list[Record]:
        """Records of ``dataset``; ``options`` are the protocol's, the run's ``data.*`` win."""


#: The most seeds a request may ask for (each is a trial per fold: a typo of 1000000000 must not
#: build a billion of them before anything starts).
MAX_SEEDS = 1000


def seeds_for(protocol: Protocol | type[Protocol], count: int | None) -> list[int]:
    """The first ``count`` seeds of a protocol, extended by counting upwards when more are asked."""
    base = list(protocol.seeds)
    if count is None:
        return base
    if count < 1:
        raise ValueError("--seeds must be at least 1")
    if count > MAX_SEEDS:
        raise ValueError(f"--seeds {count}: at most {MAX_SEEDS}")
    extra = [s for s in range(max(base, default=-1) + 1, max(base, default=-1) + 1 + count)]
    return (base + extra)[:count]


def check_modalities(names: Sequence[str]) -> None:
    for name in names:
        if name not in MODALITIES:
            raise ValueError(f"unknown modality {name!r}; expected one of {MODALITIES}")
