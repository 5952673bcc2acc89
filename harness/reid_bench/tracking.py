"""MLflow records, written by the driver alone (workers need no tracking access).

One parent run per invocation (tag ``reid_bench.kind=invocation``), one child run per trial
(``reid_bench.kind=trial``, ``mlflow.parentRunId``). Runs are always terminated: FINISHED,
FAILED or KILLED, never left RUNNING.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import functools
import json
import os
import signal
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterable

from reid_bench.plots import cmc_svg

EXPERIMENT = "reid-bench"


class Tag:
    """Every MLflow tag name reid-bench writes or reads, spelled once. Stores hold these names,
    and old stores must keep working: a value here never changes."""

    # what a run is
    KIND = "reid_bench.kind"
    PARENT = "mlflow.parentRunId"
    MODEL = "reid_bench.model"
    PROTOCOL = "reid_bench.protocol"
    PROTOCOL_VERSION = "reid_bench.protocol_version"
    CONFIG_FINGERPRINT = "reid_bench.config_fingerprint"
    MODE = "reid_bench.mode"
    MAIN_SCORE = "reid_bench.main_score"
    OVERRIDES = "reid_bench.overrides"
    CONFIG_DIFF = "reid_bench.config_diff"
    CONFIG_LABEL = "reid_bench.config_label"
    RELEASE_DIFF = "reid_bench.release_diff"
    # an invocation (parent run)
    EXPECTED_TRIALS = "reid_bench.expected_trials"
    FOLDS = "reid_bench.folds"
    INVOCATION = "reid_bench.invocation"
    DRIVER = "reid_bench.driver"
    STORAGE = "reid_bench.storage"
    STATUS = "reid_bench.status"
    RESUMED = "reid_bench.resumed"
    TUNED = "reid_bench.tuned"
    EVALUATION_ONLY = "reid_bench.evaluation_only"
    EVALUATED_FROM = "reid_bench.evaluated_from"
    # a trial (child run)
    FOLD = "reid_bench.fold"
    SEED = "reid_bench.seed"
    FITTED_WITH = "reid_bench.fitted_with"
    RESUMED_FROM = "reid_bench.resumed_from"
    RESUMED_EPOCH = "reid_bench.resumed_epoch"
    RESUMED_KIND = "reid_bench.resumed_kind"
    CHECKPOINT = "reid_bench.checkpoint"
    CHECKPOINT_KIND = "reid_bench.checkpoint_kind"
    CHECKPOINT_EPOCH = "reid_bench.checkpoint_epoch"
    MODEL_ARTIFACT = "reid_bench.model_artifact"
    DEVICE = "reid_bench.device"
    NODE = "reid_bench.node"
    ERROR = "reid_bench.error"
    EARLY_STOPPED = "reid_bench.early_stopped"
    RETRIES = "reid_bench.retries"
    #: Followed by the dataset's name (and "/<part>" for a dataset read in parts).
    DATASET_CHECKSUM = "reid_bench.dataset_checksum."
    # the environment
    GIT_COMMIT = "reid_bench.git_commit"
    VERSION = "reid_bench.version"
    #: The versions recorded besides reid-bench's own, by package.
    VERSIONS = {"torch": "reid_bench.torch_version", "ray": "reid_bench.ray_version",
                "mlflow": "reid_bench.mlflow_version"}
    # a search (``reid-bench tune``)
    SEARCH_NAME = "reid_bench.search_name"
    SEARCH_STORAGE = "reid_bench.search_storage"
    SEARCH_RUN_ID = "reid_bench.search_run_id"
    BEST_CONFIG = "reid_bench.best_config"



class TrackingError(RuntimeError):
    pass


class StoreLost(BaseException):
    """The tracking store stopped answering in the middle of a run (a server gone, a full disk).

    A BaseException, like KeyboardInterrupt, so that no handler that turns an ordinary error into
    a failed trial (and writes that to the store, which fails again) catches it: the run ends at
    once with one line, keeping locally what it could not record."""

    def __init__(self, uri: str, cause: BaseException, kept: str = ""):
        self.uri, self.cause, self.kept = uri, cause, kept
        super().__init__(self.message())

    def message(self) -> str:
        what = "tracking server" if self.uri.startswith(("http://", "https://")) else "tracking store"
        reason = _reason(self.cause)
        kept = f"; results not recorded yet are kept in {self.kept}" if self.kept else ""
        return (f"{what} {self.uri} stopped answering during the run: {reason}{kept}; when it is back, "
                "`reid-bench run ... --resume` records them and continues the unfinished trials from their checkpoints")


def _reason(exc: BaseException) -> str:
    """The root cause of a store error, one line (MLflow wraps the connection error it retried)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    for marker in ("Connection refused", "No space left on device", "database or disk is full", "disk I/O error",
                   "Read timed out", "Max retries exceeded"):
        if marker in str(exc):
            return marker
    return text[:300]


#: How an HTTP store is asked, unless the environment says otherwise: MLflow's defaults (7 retries,
#: 120 s timeouts, doubling back-off) keep a run silent for minutes when its server is gone.
HTTP_RETRIES = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


def default_tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else an absolute sqlite file in the working directory
    (the ./mlruns file store is refused by MLflow 3)."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{Path.cwd().resolve() / 'mlflow.db'}"


def _artifact_root(uri: str) -> str | None:
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///"):])
        return (db.parent / "mlartifacts").resolve().as_uri()
    return None


def _quiet_mlflow() -> None:
    import logging

    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    for name in ("mlflow", "alembic", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # It logs a store error with its traceback before raising it; the run reports it in one line.
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)


#: Room a store needs to take one more invocation (runs, params, metrics, a few artifacts).
STORE_HEADROOM_BYTES = 4 << 20
#: How long a tracking server may take to answer the pre-flight check.
SERVER_TIMEOUT_S = 5.0


def sqlite_path(uri: str) -> Path | None:
    return Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None


def check_uri(uri: str, must_exist: bool = False) -> None:
    """Refuse, within seconds and writing nothing, a tracking URI that cannot be used.

    MLflow itself retries a broken store for minutes (an unopenable sqlite file, a full disk,
    an unreachable server) and leaves runs RUNNING when it gives up mid-invocation, so every
    invocation checks first. ``must_exist``: a read-only command, which must not create a store.
    """
    db = sqlite_path(uri)
    if db is not None:
        _check_sqlite(uri, db, must_exist)
    elif uri.startswith(("http://", "https://")):
        _check_server(uri)
    elif uri.startswith("file:") or (uri and "://" not in uri):
        raise TrackingError(
            f"tracking URI {uri!r}: the MLflow file store is not supported; use sqlite:////abs/path/mlflow.db "
            "or an MLflow server (http://host:5000)"
        )


def _check_sqlite(uri: str, db: Path, must_exist: bool) -> None:
    import sqlite3

    if not db.is_absolute():
        raise TrackingError(f"tracking URI {uri!r}: use an absolute path (sqlite:////abs/path/mlflow.db)")
    if not db.parent.is_dir():
        raise TrackingError(f"tracking URI {uri!r}: folder {db.parent} does not exist")
    if db.exists():
        if not db.is_file():
            raise TrackingError(f"tracking URI {uri!r}: {db} is not a file")
        try:
            con = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True, timeout=SERVER_TIMEOUT_S)
            try:
                con.execute("SELECT count(*) FROM sqlite_master").fetchone()
            finally:
                con.close()
        except sqlite3.Error as exc:
            raise TrackingError(f"tracking URI {uri!r}: {db} is not a usable SQLite database ({exc})") from None
    elif must_exist:
        raise TrackingError(f"tracking URI {uri!r}: no tracking store at {db}")
    if must_exist:
        return
    target = db if db.exists() else db.parent
    if not os.access(target, os.W_OK) or not os.access(db.parent, os.W_OK):
        raise TrackingError(f"tracking URI {uri!r}: {target} is not writable")
    _check_room(uri, db.parent)


def _check_room(uri: str, folder: Path) -> None:
    """Write (then remove) a few MiB next to the store: a full disk or a file-size limit shows
    here, before any run is opened, instead of as SQLAlchemy retries mid-invocation."""
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".reid-bench-space-") as probe:
            probe.write(b"\0" * STORE_HEADROOM_BYTES)
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as exc:
        raise TrackingError(f"tracking URI {uri!r}: cannot write in {folder}: {exc.strerror or exc}") from None


def _check_server(uri: str) -> None:
    import urllib.error
    import urllib.request

    url = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=SERVER_TIMEOUT_S) as response:
            response.read(64)
    except urllib.error.HTTPError as exc:
        raise TrackingError(f"tracking server {uri!r} answered {url} with HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingError(f"cannot reach tracking server {uri!r}: {reason}") from None


@contextlib.contextmanager
def _store_lock(uri: str):
    """Serialise the first connection to a sqlite store across processes: MLflow creates its
    schema on first use, and drivers doing that at once corrupt the file."""
    db = sqlite_path(uri)
    if db is None:
        yield
        return
    fd = os.open(db.parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def finished_runs_in_sqlite(db: Path, tags: dict[str, str], experiment: str = EXPERIMENT) -> list[Any] | None:
    """FINISHED, active runs of the experiment carrying every tag in ``tags``, newest first, read
    from MLflow's sqlite file with the standard library: what ``run`` needs to skip finished trials,
    without MLflow's import and store set-up (seconds). Each run has ``info.run_id``,
    ``info.experiment_id``, ``data.tags`` and ``data.metrics`` like MLflow's. None when the file
    does not have the schema expected (another MLflow version): the caller then asks MLflow."""
    import sqlite3
    from types import SimpleNamespace

    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    except sqlite3.Error:
        return None
    try:
        row = con.execute("SELECT experiment_id FROM experiments WHERE name = ? AND lifecycle_stage = 'active'",
                          (experiment,)).fetchone()
        if row is None:
            return []
        where = " ".join("AND r.run_uuid IN (SELECT run_uuid FROM tags WHERE key = ? AND value = ?)" for _ in tags)
        params = [row[0]] + [x for kv in tags.items() for x in kv]
        runs = con.execute(f"SELECT r.run_uuid, r.experiment_id FROM runs r WHERE r.experiment_id = ? AND "
                           f"r.status = 'FINISHED' AND r.lifecycle_stage = 'active' {where} "
                           f"ORDER BY r.start_time DESC, r.run_uuid DESC", params).fetchall()
        out = []
        for run_id, experiment_id in runs:
            run_tags = dict(con.execute("SELECT key, value FROM tags WHERE run_uuid = ?", (run_id,)).fetchall())
            metrics = dict(con.execute("SELECT key, value FROM latest_metrics WHERE run_uuid = ?", (run_id,)).fetchall())
            out.append(SimpleNamespace(info=SimpleNamespace(run_id=run_id, experiment_id=str(experiment_id)),
                                       data=SimpleNamespace(tags=run_tags, metrics=metrics)))
        return out
    except sqlite3.Error:
        return None
    finally:
        con.close()


@contextlib.contextmanager
def sigint_deferred():
    """Hold Ctrl-C until the block has ended, then raise it there.

    A KeyboardInterrupt between an INSERT and its COMMIT leaves MLflow's SQLAlchemy session
    neither committed nor rolled back (it only handles ``Exception``), still holding SQLite's
    write lock; the writes that then end the runs KILLED fail with "database is locked" and the
    command exits 1 instead of 130 (tests/test_interrupt.py failed so in about one run in four).
    Only the main thread receives signals, so other threads run the block as it is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    held = {sig: handler for sig, handler in held.items() if callable(handler)}  # an ignored signal stays so
    received: list[int] = []
    for sig in held:
        signal.signal(sig, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        for sig, handler in held.items():
            signal.signal(sig, handler)
    if received:
        held[received[0]](received[0], None)  # the handler it would have met: raises its interrupt


class InterruptSafeClient:
    """An MlflowClient whose calls Ctrl-C cannot cut in half (see ``sigint_deferred``)."""

    def __init__(self, client: Any):
        self._client = client

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        @functools.wraps(attr)
        def whole(*args: Any, **kwargs: Any) -> Any:
            with sigint_deferred():
                return attr(*args, **kwargs)

        return whole


#: MLflow 3's UI opens an experiment by its kind: without this tag it guesses, and an experiment
#: with no trace opens on the GenAI overview, whose runs table has no metric column. A store
#: written before the tag existed gets it at its next run.
EXPERIMENT_KIND = "mlflow.experimentKind"
EXPERIMENT_TAGS = {EXPERIMENT_KIND: "custom_model_development",
                   "mlflow.note.content": "reid-bench: one parent run per invocation (model on protocol), a child "
                                          "run per trial (fold, seed). Add the parent's metric columns "
                                          "<metric>/<fold>/mean in the runs table; docs/running-and-tuning.md."}


def connect(uri: str, experiment: str = EXPERIMENT, create: bool = True):
    """A client and the experiment id, or TrackingError saying why the URI is unusable.

    ``create=False`` (read-only commands) never creates a store or an experiment. Creating the
    experiment here, in the driver, before any trial starts avoids the race of several workers
    creating it at once.
    """
    _quiet_mlflow()
    check_uri(uri, must_exist=not create)
    from mlflow.tracking import MlflowClient

    server = uri.startswith(("http://", "https://"))
    if server:
        for name, value in HTTP_RETRIES.items():
            os.environ.setdefault(name, value)
    try:
        with _store_lock(uri):
            # A server's write is one request: Ctrl-C may cut it. A sqlite write must not be cut
            # between INSERT and COMMIT (``sigint_deferred``).
            client = MlflowClient(tracking_uri=uri) if server else InterruptSafeClient(MlflowClient(tracking_uri=uri))
            exp = client.get_experiment_by_name(experiment)
            if exp is None:
                if not create:
                    return client, None
                exp_id = client.create_experiment(experiment, artifact_location=_artifact_root(uri),
                                                  tags=EXPERIMENT_TAGS)
            else:
                exp_id = exp.experiment_id
                if create and exp.tags.get(EXPERIMENT_KIND) != EXPERIMENT_TAGS[EXPERIMENT_KIND]:
                    client.set_experiment_tag(exp_id, EXPERIMENT_KIND, EXPERIMENT_TAGS[EXPERIMENT_KIND])
    except TrackingError:
        raise
    except Exception as exc:  # MLflow raises many kinds; the user needs the URI and the cause
        raise TrackingError(f"cannot use tracking URI {uri!r}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from exc
    return client, exp_id


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
        return out.stdout.strip() if out.returncode == 0 else "unknown"
    except Exception:
        return "unknown"


def environment_tags() -> dict[str, str]:
    from importlib.metadata import version

    import mlflow
    import torch

    import reid_bench

    return {
        Tag.GIT_COMMIT: git_commit(),
        Tag.VERSION: reid_bench.__version__,
        Tag.VERSIONS["torch"]: torch.__version__,
        Tag.VERSIONS["ray"]: version("ray"),  # an --no-ray run need not import Ray (0.3 s)
        Tag.VERSIONS["mlflow"]: mlflow.__version__,
    }


def driver_identity(pid: int | None = None) -> dict[str, Any]:
    """Who drives an invocation: host, boot and process (with its start time, so that a reused
    pid is not mistaken for it). Recorded on the parent run to tell later whether it still runs."""
    import socket

    pid = os.getpid() if pid is None else pid
    return {"host": socket.gethostname(), "boot": _boot_id(), "pid": pid, "start": _process_start(pid)}


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _process_start(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def driver_is_gone(identity: dict[str, Any]) -> bool:
    """True only when the recorded driver provably no longer runs: same host and boot, and its
    process is gone (or the pid now belongs to a process started at another time). A driver on
    another host cannot be checked from here and counts as alive."""
    import socket

    if not identity or identity.get("host") != socket.gethostname() or identity.get("boot") != _boot_id():
        return False
    pid = identity.get("pid")
    if not isinstance(pid, int):
        return False
    now = _process_start(pid)
    return now is None or (identity.get("start") is not None and now != identity.get("start"))


def metric_name(text: str) -> str:
    """MLflow accepts only [A-Za-z0-9_-. :/] in names; anything else becomes '_'."""
    import re

    return re.sub(r"[^A-Za-z0-9_\-. :/]", "_", text)[:250]


def flatten(prefix: str, value: Any) -> dict[str, str]:
    if isinstance(value, dict):
        out: dict[str, str] = {}
        for k, v in value.items():
            out.update(flatten(f"{prefix}.{k}" if prefix else str(k), v))
        return out
    return {prefix: json.dumps(value) if isinstance(value, (list, tuple)) else str(value)}


class Recorder:
    """Writes one invocation: the parent run and its trials' child runs."""

    def __init__(self, client, experiment_id: str, uri: str):
        self.client = client
        self.experiment_id = experiment_id
        self.uri = uri
        self.parent_id: str | None = None
        self.children: dict[str, str] = {}  # trial key -> run id
        self._steps: dict[str, int] = {}

    # ------------------------------------------------------------------ parent
    def start_parent(self, name: str, params: dict[str, str], tags: dict[str, str], kind: str = "invocation") -> str:
        run = self.client.create_run(self.experiment_id, run_name=name, tags={Tag.KIND: kind, **tags})
        self.parent_id = run.info.run_id
        self._log_params(self.parent_id, params)
        return self.parent_id

    def reopen_parent(self, run_id: str) -> None:
        """Continue an earlier invocation (``--resume``): its orphaned RUNNING children (a killed
        driver) become KILLED, the parent runs again."""
        self.parent_id = run_id
        for child in self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.`{Tag.PARENT}` = '{run_id}'", max_results=10000
        ):
            if child.info.status == "RUNNING":
                self.client.set_tag(child.info.run_id, Tag.ERROR, "driver stopped before the trial ended")
                self.client.set_terminated(child.info.run_id, status="KILLED")
        self.client.update_run(run_id, status="RUNNING")
        self.client.set_tag(run_id, Tag.RESUMED, "true")
        self.client.set_tag(run_id, Tag.DRIVER, json.dumps(driver_identity()))

    def end_orphans(self) -> list[str]:
        """End the invocations left RUNNING by a driver that died (SIGKILL, a lost machine): their
        RUNNING trials and the parent become KILLED, so no run stays RUNNING for ever and
        ``--resume`` finds them. Only drivers provably gone are touched (``driver_is_gone``)."""
        ended = []
        runs = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.`{Tag.KIND}` = 'invocation' and attributes.status = 'RUNNING'",
            max_results=1000)
        for run in runs:
            try:
                identity = json.loads(run.data.tags.get(Tag.DRIVER, "{}"))
            except ValueError:
                continue
            if not driver_is_gone(identity):
                continue
            reason = f"driver (pid {identity.get('pid')} on {identity.get('host')}) stopped before the trial ended"
            for child in self.client.search_runs(
                    [self.experiment_id], filter_string=f"tags.`{Tag.PARENT}` = '{run.info.run_id}'",
                    max_results=10000):
                if child.info.status == "RUNNING":
                    self.client.set_tag(child.info.run_id, Tag.ERROR, reason)
                    self.client.set_terminated(child.info.run_id, status="KILLED")
            self.client.set_tag(run.info.run_id, Tag.STATUS, "KILLED")
            self.client.set_terminated(run.info.run_id, status="KILLED")
            ended.append(run.info.run_id)
        return ended

    def end_parent(self, status: str, summary: dict[str, Any] | None = None, metrics: dict[str, float] | None = None,
                   cmc_curves: dict[str, list[list[float]]] | None = None, title: str = "") -> None:
        """Close the invocation's run with its scores, its summary and, given the finished trials'
        CMC curves per fold, one plot of them all (each fold's mean over seeds drawn thick)."""
        if self.parent_id is None:
            return
        for k, v in (metrics or {}).items():
            self.client.log_metric(self.parent_id, k, float(v))
        if summary is not None:
            self._log_json(self.parent_id, "summary.json", summary)
        if cmc_curves:
            with tempfile.TemporaryDirectory() as tmp:
                (Path(tmp) / "cmc.svg").write_text(cmc_svg(cmc_curves, title))
                self.client.log_artifacts(self.parent_id, tmp)
        self.client.set_tag(self.parent_id, Tag.STATUS, status)
        self.client.set_terminated(self.parent_id, status=status)

    # ------------------------------------------------------------------ trials
    def start_trial(self, key: str, name: str, params: dict[str, str], tags: dict[str, str], kind: str = "trial") -> str:
        assert self.parent_id is not None
        run = self.client.create_run(
            self.experiment_id,
            run_name=name,
            tags={Tag.KIND: kind, Tag.PARENT: self.parent_id, **tags},
        )
        self.children[key] = run.info.run_id
        self._log_params(run.info.run_id, params)
        return run.info.run_id

    def log_progress(self, key: str, payload: dict[str, Any]) -> None:
        run_id = self.children.get(key)
        if run_id is None or "epoch" not in payload:
            return
        from mlflow.entities import Metric
        import time

        step = int(payload["epoch"])
        now = int(time.time() * 1000)
        metrics = [
            Metric(f"train/{k}", float(v), now, step)
            for k, v in payload.items()
            if k not in ("epoch", "phase", "progress") and isinstance(v, (int, float))
        ]
        if metrics:
            self.client.log_batch(run_id, metrics=metrics)

    def note_checkpoint(self, key: str, kind: str, location: str, epoch: int | None) -> None:
        """Where the trial's newest checkpoint is (``--resume`` reads it back)."""
        run_id = self.children.get(key)
        if run_id is None:
            return
        self.client.set_tag(run_id, Tag.CHECKPOINT, location)
        self.client.set_tag(run_id, Tag.CHECKPOINT_KIND, kind)
        if epoch is not None:
            self.client.set_tag(run_id, Tag.CHECKPOINT_EPOCH, str(epoch))

    def finish_trial(self, key: str, result: dict[str, Any], model: Any = None) -> None:
        """Record a result; ``model`` (a checkpoint folder, or a Ray Checkpoint) becomes the run's
        ``model`` artifact, which ``reid-bench eval --checkpoint runs:/<run id>/model`` scores."""
        run_id = self.children[key]
        if model is not None:
            self._log_model(run_id, model)
        from mlflow.entities import Metric
        import time

        now = int(time.time() * 1000)
        values = dict(result["metrics"])
        values["num_parameters"] = result["num_parameters"]
        if result.get("val_score") is not None:
            values["val_score"] = result["val_score"]
        if result.get("test_selected"):  # the releases' best test epoch: apart from the scores
            values.update({f"test_selected/{k}": v for k, v in result["test_selected"]["metrics"].items()})
            values["test_selected/epoch"] = result["test_selected"]["epoch"]
        for k, v in result["timings"].items():
            values[f"time/{k}"] = v
        if "wall_s" in result:
            values["wall_time_s"] = result["wall_s"]
        metrics = [Metric(k, float(v), now, 0) for k, v in values.items() if v is not None]
        self.client.log_batch(run_id, metrics=metrics)
        tags = {f"{Tag.DATASET_CHECKSUM}{k}": v for k, v in result.get("dataset_checksums", {}).items()}
        tags[Tag.DEVICE] = result.get("device", "")
        tags[Tag.NODE] = str(result.get("node", ""))
        if result.get("resumed_from"):  # the fit continued from a checkpoint (after this epoch)
            tags[Tag.RESUMED_EPOCH] = str(result["resumed_from"].get("epoch"))
            tags[Tag.RESUMED_KIND] = str(result["resumed_from"].get("kind"))
        for k, v in tags.items():
            self.client.set_tag(run_id, k, v)
        fold_info = dict(result.get("fold_info", {}))
        split = fold_info.pop("split", None)
        self._log_params(run_id, flatten("fold_info", fold_info))
        for label, drops in result.get("dataset_drops", {}).items():
            for reason, count in drops.items():
                self.client.log_metric(run_id, metric_name(f"data/dropped/{label}/{reason}"), float(count))
        with tempfile.TemporaryDirectory() as tmp:
            if split is not None:  # which sequences/samples formed each side of the fold
                (Path(tmp) / "split.json").write_text(json.dumps(split, indent=1, sort_keys=True, default=str))
            write_cmc(Path(tmp), result["cmc"], f"{result['model']} on {result['protocol']} fold {result['fold']} seed {result['seed']}")
            (Path(tmp) / "config.json").write_text(json.dumps(result["config"], indent=2, sort_keys=True))
            (Path(tmp) / "result.json").write_text(json.dumps(result, indent=2, sort_keys=True, default=str))
            self.client.log_artifacts(run_id, tmp)
        self.client.set_terminated(run_id, status="FINISHED")

    def stop_trial(self, key: str, reason: str) -> None:
        run_id = self.children.get(key)
        if run_id is None:
            return
        self.client.set_tag(run_id, Tag.EARLY_STOPPED, reason)
        self.client.set_terminated(run_id, status="FINISHED")

    def note_retry(self, key: str, attempt: int, error: str) -> None:
        run_id = self.children.get(key)
        if run_id is None:
            return
        self.client.set_tag(run_id, Tag.RETRIES, str(attempt))
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / f"traceback-attempt{attempt}.txt").write_text(error)
            self.client.log_artifacts(run_id, tmp)

    def fail_trial(self, key: str, error: str, status: str = "FAILED") -> None:
        run_id = self.children.get(key)
        if run_id is None:
            return
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "traceback.txt").write_text(error)
            try:
                self.client.log_artifacts(run_id, tmp)
            finally:
                self.client.set_tag(run_id, Tag.ERROR, (error.strip().splitlines() or [""])[-1][:500])
                self.client.set_terminated(run_id, status=status)

    def terminate_open(self, status: str) -> None:
        """Close every run this recorder opened that is still RUNNING (Ctrl-C, crashes)."""
        for run_id in list(self.children.values()) + ([self.parent_id] if self.parent_id else []):
            try:
                if self.client.get_run(run_id).info.status == "RUNNING":
                    self.client.set_terminated(run_id, status=status)
            except Exception:
                pass

    def _log_model(self, run_id: str, model: Any) -> None:
        if isinstance(model, (str, Path)):
            self.client.log_artifacts(run_id, str(model), "model")
            self.client.set_tag(run_id, Tag.MODEL_ARTIFACT, "model")
            return
        with model.as_directory() as folder:  # a Ray Checkpoint, maybe in remote storage
            self.client.log_artifacts(run_id, str(folder), "model")
        self.client.set_tag(run_id, Tag.MODEL_ARTIFACT, "model")

    # ------------------------------------------------------------------ helpers
    def _log_params(self, run_id: str, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(k[:250], str(v)[:6000]) for k, v in sorted(params.items())]
        for i in range(0, len(items), 100):
            self.client.log_batch(run_id, params=items[i : i + 100])

    def _log_json(self, run_id: str, name: str, payload: Any) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / name).write_text(json.dumps(payload, indent=2, sort_keys=True, default=str))
            self.client.log_artifacts(run_id, tmp)


def write_cmc(folder: Path, cmc: Iterable[float], title: str) -> None:
    """CMC curve as CSV (rank, rate) and SVG."""
    cmc = list(cmc)
    with open(folder / "cmc.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["rank", "rate"])
        for i, v in enumerate(cmc, start=1):
            writer.writerow([i, f"{v:.6f}"])
    (folder / "cmc.svg").write_text(cmc_svg({"": [cmc]}, title))


class Terminated(KeyboardInterrupt):
    """SIGTERM (a batch scheduler or container runtime stopping the job), handled as Ctrl-C is:
    the runs end KILLED, checkpoints stay for ``--resume``; the command exits with 143."""


_TERMINATED: list[int] = []


def was_terminated(exc: BaseException) -> bool:
    """Whether an interrupt came from SIGTERM. Ray's C++ waits check the signal handlers
    themselves and raise a bare KeyboardInterrupt in place of the handler's ``Terminated``, so
    the handler also leaves a mark here."""
    return isinstance(exc, Terminated) or bool(_TERMINATED)


def terminate_as_interrupt() -> None:
    """Turn SIGTERM into ``Terminated`` in the main thread (SIGINT keeps whatever the shell gave:
    a job started with ``&`` ignores it, by the shell's convention)."""
    def handler(signum: int, frame: Any) -> None:
        _TERMINATED.append(signum)
        raise Terminated()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)
