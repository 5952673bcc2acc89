"""An invocation of ``reid-bench run``: folds x seeds as trials, dispatched by Ray Tune (or in
process), with the driver recording every event in MLflow and on a live table."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from reid_bench.api import seeds_for
from reid_bench.config import Overrides
from reid_bench.registry import get_registry
from reid_bench.tracking import StoreLost, Tag
from reid_bench.trial import TrialSpec, check_modality, format_failure, resolve_config


class RunError(RuntimeError):
    """A problem found before any trial started (bad resources, bad configuration)."""


@dataclass
class TrialState:
    spec: TrialSpec
    status: str = "PENDING"
    phase: str = ""
    epoch: int | None = None
    progress: float = 0.0
    result: dict[str, Any] | None = None
    error: str = ""
    started: float | None = None
    ended: float | None = None
    run_id: str = ""
    attempts: int = 0
    fit_started: float | None = None
    message: str = ""
    #: How progress lines name the trial when its fold and seed do not tell it apart (a search sample).
    label: str = ""
    #: The last validation score it reported (a search trial stopped early has no result).
    last_score: float | None = None


@dataclass
class InvocationResult:
    parent_run_id: str
    experiment_id: str
    tracking_uri: str
    trials: list[TrialState]
    summary: dict[str, dict[str, dict[str, float]]]
    wall_s: float
    overhead: dict[str, float] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(t.status == "FINISHED" for t in self.trials)

    def as_json(self) -> dict[str, Any]:
        return {
            "parent_run_id": self.parent_run_id,
            "experiment_id": self.experiment_id,
            "tracking_uri": self.tracking_uri,
            "ok": self.ok,
            "skipped": self.skipped,
            "wall_s": round(self.wall_s, 3),
            "overhead": {k: round(v, 3) for k, v in self.overhead.items()},
            "trials": [
                {
                    "fold": t.spec.fold,
                    "seed": t.spec.seed,
                    "status": t.status,
                    "run_id": t.run_id,
                    "metrics": (t.result or {}).get("metrics", {}),
                    "timings": (t.result or {}).get("timings", {}),
                    "torch_threads": (t.result or {}).get("torch_threads"),
                    "error": t.error.strip().splitlines()[-1] if t.error.strip() else "",
                }
                for t in self.trials
            ],
            "summary": self.summary,
        }


def summarise(trials: list[TrialState], metrics: tuple[str, ...]) -> dict[str, dict[str, dict[str, float]]]:
    """Mean, sample std and n over seeds for each fold (finished trials only)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    folds = list(dict.fromkeys(t.spec.fold for t in trials))
    for fold in folds:
        done = [t.result["metrics"] for t in trials if t.spec.fold == fold and t.status == "FINISHED" and t.result]
        out[fold] = {}
        for m in metrics:
            vals = [float(r[m]) for r in done if r.get(m) is not None]
            if vals:
                out[fold][m] = {
                    "mean": statistics.fmean(vals),
                    "std": statistics.stdev(vals) if len(vals) > 1 else 0.0,
                    "n": len(vals),
                }
    return out


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _eta(state: TrialState) -> str:
    """``  [37%, 2m10s in, ETA 3m40s]`` from the time spent fitting and the fraction done."""
    if state.fit_started is None:
        return ""
    spent = time.time() - state.fit_started
    text = f"  [{100 * state.progress:.0f}%, {_duration(spent)} in"
    if 0.0 < state.progress < 1.0:
        text += f", ETA {_duration(spent * (1.0 - state.progress) / state.progress)}"
    return text + "]"


def summary_metrics(summary: dict[str, dict[str, dict[str, float]]]) -> dict[str, float]:
    """The parent run's scores: ``<metric>/<fold>/mean`` and ``/std`` over seeds, on the trials'
    scale (fractions in [0, 1], as every metric reid-bench stores), so that MLflow's run table
    shows them without opening the children."""
    from reid_bench.tracking import metric_name

    out: dict[str, float] = {}
    for fold, values in summary.items():
        for metric, stats in values.items():
            for stat in ("mean", "std"):
                out[metric_name(f"{metric}/{fold}/{stat}")] = float(stats[stat])
    return out


class LiveView:
    """A rich table of trials on a terminal; one line per event elsewhere (CI logs)."""

    def __init__(self, title: str, trials: list[TrialState], main_score: str, enabled: bool = True):
        from rich.console import Console

        self.console = Console(stderr=True)
        self.title = title
        self.trials = trials
        self.main_score = main_score
        self.enabled = enabled
        self.live = None
        self._last_refresh = 0.0

    def __enter__(self) -> "LiveView":
        if self.enabled and self.console.is_terminal:
            from rich.live import Live

            self.live = Live(self._table(), console=self.console, refresh_per_second=4, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.update(self._table())
            self.live.__exit__(*exc)

    def update(self, state: TrialState, event: str) -> None:
        if not self.enabled:
            return
        if self.live is not None:
            now = time.monotonic()
            if event != "progress" or now - self._last_refresh > 0.25:
                self.live.update(self._table())
                self._last_refresh = now
            return
        if event == "progress":
            return
        name = state.label or state.spec.key
        if event == "message":
            self.console.print(f"[trial {name}] {state.message}{_eta(state)}", highlight=False, markup=False)
            return
        line = f"[trial {name}] {state.status.lower()}"
        score = self.score_of(state)
        if score is not None:
            line += f"  {self.main_score}={100 * score:.1f}%"
            if state.result:
                line += f"  ({state.result['timings']['trial_s']:.1f}s)"
            elif state.epoch is not None:
                line += f"  (after epoch {state.epoch + 1})"
        if state.error:
            line += "  " + state.error.strip().splitlines()[-1]
        self.console.print(line, highlight=False, markup=False)

    def score_of(self, state: TrialState) -> float | None:
        """The trial's main score: its result's, else (a search trial) the last one it reported."""
        if state.result:
            value = state.result["metrics"].get(self.main_score, state.result.get(self.main_score))
            if value is not None:
                return float(value)
        return state.last_score

    def _table(self):
        from rich.markup import escape
        from rich.table import Table

        table = Table(title=self.title, title_justify="left")
        named = any(t.label for t in self.trials)  # search samples: their values, not fold and seed
        for col in (("trial",) if named else ("fold", "seed")) + ("status", "phase", "epoch", "progress",
                                                                   self.main_score, "time"):
            table.add_column(col, justify="right" if col not in ("trial", "fold", "status", "phase") else "left")
        now = time.time()
        for t in self.trials:
            value = self.score_of(t)
            score = f"{100 * value:.1f}" if value is not None else ""
            elapsed = ""
            if t.started:
                elapsed = f"{(t.ended or now) - t.started:.0f}s"
            colour = {"FINISHED": "green", "FAILED": "red", "RUNNING": "yellow", "STOPPED": "blue"}.get(t.status, "")
            table.add_row(
                *((escape(t.label or t.spec.key),) if named else (t.spec.fold, str(t.spec.seed))),
                f"[{colour}]{t.status}[/]" if colour else t.status,
                t.phase,
                "" if t.epoch is None else str(t.epoch + 1),  # counted from 1, as the progress lines
                f"{100 * t.progress:.0f}%",
                score,
                elapsed,
            )
        return table


class Coordinator:
    """Turns trial events (from Ray callbacks or the in-process loop) into MLflow writes and UI.

    Keys are (fold, seed) pairs: a trial that fits once for several folds sends its progress and
    checkpoints to each of their keys, and one result per key."""

    trial_kind = "trial"

    def __init__(self, recorder, view: LiveView, trials: dict[str, TrialState], base_params: dict[str, str],
                 base_tags: dict[str, str], keep_checkpoints: bool = True, pending: Path | None = None):
        self.recorder = recorder
        self.view = view
        self.trials = trials
        self.base_params = base_params
        self.base_tags = base_tags
        self.keep_checkpoints = keep_checkpoints
        self.models: dict[str, Any] = {}  # key -> its fitted model's checkpoint (a folder or a Ray Checkpoint)
        self._holders: dict[str, set[str]] = {}  # local checkpoint folder -> keys still needing it
        #: Where results that the store could not take are kept for ``--resume`` (None: nowhere).
        self.pending = pending
        self.lost: StoreLost | None = None

    def _store(self, write: Any, *args: Any, **kwargs: Any) -> Any:
        """A write to the tracking store; any failure there ends the run (``StoreLost``)."""
        if self.lost is not None:
            raise self.lost
        try:
            return write(*args, **kwargs)
        except Exception as exc:
            self.lost = StoreLost(self.recorder.uri, exc, str(self.pending) if self.pending else "")
            raise self.lost from exc

    def keep(self, key: str, result: dict[str, Any]) -> Path | None:
        """A result the store could not take, written where ``--resume`` finds it."""
        if self.pending is None:
            return None
        self.pending.mkdir(parents=True, exist_ok=True)
        model = self.models.get(key)
        payload = {"key": key, "result": result, "model": model if isinstance(model, str) else None}
        path = self.pending / f"{key.replace('/', '_')}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(payload, default=str, sort_keys=True))
        os.replace(tmp, path)
        return path

    def started(self, key: str) -> None:
        state = self.trials[key]
        if state.status == "RUNNING":
            return
        state.status, state.started, state.phase = "RUNNING", time.time(), "start"
        params = dict(self.base_params, fold=state.spec.fold, seed=str(state.spec.seed), **self.trial_params(key))
        tags = dict(self.base_tags, **{Tag.FOLD: state.spec.fold, Tag.SEED: str(state.spec.seed)},
                    **self.trial_tags(key))
        state.run_id = self._store(self.recorder.start_trial, key, f"{state.spec.model}@{state.spec.protocol}/{key}",
                                   params, tags, kind=self.trial_kind)
        self.view.update(state, "start")

    def trial_params(self, key: str) -> dict[str, str]:
        return {}

    def trial_tags(self, key: str) -> dict[str, str]:
        spec = self.trials[key].spec
        tags = {}
        if spec.also:
            tags[Tag.FITTED_WITH] = json.dumps(spec.keys)
        if spec.resume_from:
            tags[Tag.RESUMED_FROM] = spec.resume_from
        return tags

    def reported(self, key: str, payload: dict[str, Any]) -> None:
        state = self.trials[key]
        if state.status in ("FINISHED", "FAILED", "STOPPED"):
            return  # a fold already scored, while another fold of its fit is evaluated
        if state.status != "RUNNING":
            self.started(key)
        state.phase = str(payload.get("phase", state.phase))
        if state.phase == "fit" and state.fit_started is None:
            state.fit_started = time.time()
        if "epoch" in payload:
            state.epoch = int(payload["epoch"])
        if "progress" in payload:
            state.progress = float(payload["progress"])
        if payload.get("val_score") is not None:
            state.last_score = float(payload["val_score"])
        self._store(self.recorder.log_progress, key, payload)
        if payload.get("message"):
            state.message = str(payload["message"])
            self.view.update(state, "message")
        else:
            self.view.update(state, "progress")

    def checkpointed(self, key: str, kind: str, location: str, epoch: int | None, handle: Any = None) -> None:
        """A trial kept a checkpoint: its run records where (``--resume`` continues from there)."""
        if self.trials[key].status in ("FINISHED", "FAILED", "STOPPED"):
            return
        if self.trials[key].status != "RUNNING":
            self.started(key)
        self._store(self.recorder.note_checkpoint, key, kind, location, epoch)
        if kind == "model":
            self.models[key] = handle if handle is not None else location
        if "://" not in location:
            self._holders.setdefault(location, set()).add(key)

    def finished(self, key: str, result: dict[str, Any]) -> None:
        state = self.trials[key]
        if state.status != "RUNNING":
            self.started(key)
        state.ended = time.time()
        result["wall_s"] = state.ended - (state.started or state.ended)
        try:
            self._store(self.recorder.finish_trial, key, result, model=self.models.get(key))
        except StoreLost:  # the result is kept where --resume finds it
            self.keep(key, result)
            raise
        state.result, state.status, state.phase, state.progress = result, "FINISHED", "done", 1.0
        self._release(key)
        self.view.update(state, "finish")

    def _release(self, key: str) -> None:
        """Remove local checkpoints once every fold that shares them has finished."""
        from reid_bench.checkpoints import prune

        for location, keys in list(self._holders.items()):
            keys.discard(key)
            if not keys:
                del self._holders[location]
                if not self.keep_checkpoints:
                    prune([location])

    def retried(self, key: str, error: str) -> None:
        state = self.trials[key]
        state.attempts += 1
        self._store(self.recorder.note_retry, key, state.attempts, error)
        self.view.update(state, "retry")

    def completed(self, key: str) -> None:
        """Ray ended a trial without an error. Without a final result it was stopped early (ASHA)."""
        state = self.trials.get(key)
        if state is None or state.status != "RUNNING":
            return
        state.ended = time.time()
        state.status, state.phase = "STOPPED", "stopped early"
        self._store(self.recorder.stop_trial, key, "stopped early by the scheduler")
        self.view.update(state, "finish")

    def failed(self, key: str, error: str) -> None:
        state = self.trials[key]
        if state.status == "FINISHED":
            return
        if state.status != "RUNNING":
            self.started(key)
        state.ended = time.time()
        state.status, state.error, state.phase = "FAILED", error, "failed"
        self._store(self.recorder.fail_trial, key, error)
        self.view.update(state, "fail")


# ---------------------------------------------------------------------------------- dispatchers


def group_by_training_set(specs: list[TrialSpec], protocol: Any, resolved: Any = None) -> list[TrialSpec]:
    """One trial per (training set, seed): folds whose training split is the same (IAS-A and -B,
    BIWI-S and -W, synth-gait's A and B) are fitted once and evaluated each, unless the release
    configures them differently (``resolved.model_for``). ``protocol`` says which folds share
    (``Protocol.training_set``); the trial checks that their data agree."""
    from reid_bench.config import config_dict, fingerprint

    def config_of(fold: str) -> str:
        return fingerprint(config_dict(resolved.model_for(fold))) if resolved is not None else ""

    groups: dict[tuple[str, int, str], list[TrialSpec]] = {}
    for spec in specs:
        groups.setdefault((protocol.training_set(spec.fold), spec.seed, config_of(spec.fold)), []).append(spec)
    merged = []
    for members in groups.values():
        head = members[0]
        resume = next((m.resume_from for m in members if m.resume_from), None)
        merged.append(dataclasses.replace(head, also=tuple(m.fold for m in members[1:]), resume_from=resume))
    return merged


def dispatch_in_process(specs: list[TrialSpec], events: Coordinator, max_failures: int = 0) -> None:
    """Debug/test path: the same ``execute_fit``, sequentially, in this process, with the same
    retry rule as Ray's FailureConfig (a trial is tried up to 1 + max_failures times, a retry
    continuing from the trial's last checkpoint)."""
    from reid_bench.trial import LocalSink, execute_fit, read_resume_point, trial_folder

    for spec in specs:
        keys = spec.keys
        for key in keys:
            events.started(key)

        def report(payload: dict[str, Any], keys: list[str] = keys, seed: int = spec.seed) -> None:
            for k in ([f"{payload['fold']}/seed{seed}"] if "fold" in payload else keys):
                events.reported(k, payload)

        def checkpointed(kind: str, path: str, keys: list[str] = keys) -> None:
            from reid_bench.checkpoints import read_meta

            for k in keys:
                events.checkpointed(k, kind, path, read_meta(Path(path)).get("epoch"))

        def finished(result: dict[str, Any]) -> None:
            result["node"] = "in-process"
            events.finished(f"{result['fold']}/seed{result['seed']}", result)

        sink = LocalSink(trial_folder(spec), spec.checkpoint_keep, report, checkpointed, finished)
        resume = None
        for attempt in range(max_failures + 1):
            try:
                execute_fit(spec, sink, resume=resume)
            except KeyboardInterrupt:
                raise
            except Exception as exc:
                if attempt < max_failures:
                    for key in keys:
                        events.retried(key, format_failure(exc))
                    latest = _latest_local(trial_folder(spec))
                    resume = read_resume_point(str(latest)) if latest else None
                    continue
                for key in keys:
                    events.failed(key, format_failure(exc))
            break


def _latest_local(folder: Path) -> Path | None:
    """The checkpoint a retried in-process trial continues from: its model, else its newest epoch."""
    from reid_bench.checkpoints import META_FILE, CheckpointFolder

    if (folder / "model" / META_FILE).is_file():
        return folder / "model"
    return CheckpointFolder(folder).latest()


class _RaySink:
    """A trial's events as Ray Tune reports; checkpoints through Ray Tune's checkpoints, so that
    they live in the run's storage and Ray restarts a lost trial from the last one."""

    def progress(self, payload: dict[str, Any]) -> None:
        from ray import tune

        tune.report({"reid_event": "progress", "payload": json.dumps(payload)})

    def checkpoint(self, state: dict[str, Any], meta: dict[str, Any]) -> str | None:
        import shutil
        import tempfile

        from ray import tune
        from ray.train import Checkpoint

        from reid_bench.checkpoints import write_checkpoint

        tmp = Path(tempfile.mkdtemp(prefix="reid-bench-ckpt-"))
        try:
            folder = write_checkpoint(tmp / "checkpoint", state, meta)
            note = {"kind": meta["kind"], "epoch": meta.get("epoch")}
            tune.report({"reid_event": "checkpoint", "payload": json.dumps(note)},
                        checkpoint=Checkpoint.from_directory(str(folder)))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return None

    def result(self, result: dict[str, Any]) -> None:
        import ray
        from ray import tune

        result["node"] = ray.get_runtime_context().get_node_id()
        tune.report({"reid_event": "final", "payload": json.dumps(result, default=str)})


def _ray_trainable(config: dict[str, Any]) -> None:
    """Runs on a Ray worker: rebuild the spec and execute it. A trial Ray restarts after a
    failure continues from its last checkpoint (``tune.get_checkpoint``); a trial of a resumed
    invocation from the checkpoint the earlier invocation recorded."""
    from ray import tune

    from reid_bench.checkpoints import read_checkpoint
    from reid_bench.trial import execute_fit

    trial = config["trial"]
    spec = TrialSpec(**config["spec"], fold=trial["fold"], seed=trial["seed"], also=tuple(trial["also"]),
                     resume_from=trial.get("resume_from"))
    resume = None
    restored = tune.get_checkpoint()
    if restored is not None:
        with restored.as_directory() as folder:
            state, meta = read_checkpoint(Path(folder))
        meta["location"] = restored.path
        resume = (state, meta)
    execute_fit(spec, _RaySink(), resume=resume)


def init_ray(address: str | None) -> None:
    """Join the cluster at ``address``, or start a private local instance.

    ``ray.init()`` without an address attaches to any cluster a ``ray start`` left on this host
    (another user's, or a test's), so a local run asks for ``address="local"``: always a new
    instance, ended with this process. Ray 2.60's servers listen on every interface, so a local
    instance keeps Ray's token authentication on, with a token of its own (drawn here, handed
    to its workers through the environment, never written to disk) unless the environment
    configures authentication itself. The harness never switches authentication off.
    """
    import ray

    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    if ray.is_initialized():
        return
    configured = any(os.environ.get(k) for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"))
    if not address and not configured:
        import secrets

        # Ray turns token mode on for a new local instance itself; the token is this instance's.
        os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    on_term = signal.getsignal(signal.SIGTERM)
    ray.init(address=address or "local", include_dashboard=False, log_to_driver=False, logging_level="ERROR",
             configure_logging=True, runtime_env={"env_vars": {"PYTHONWARNINGS": "ignore"}})
    if callable(on_term) and threading.current_thread() is threading.main_thread():
        # ray.init makes SIGTERM a bare sys.exit, which would leave the runs RUNNING; the command's
        # handler ends them KILLED first (Ray's own shutdown still runs at exit)
        signal.signal(signal.SIGTERM, on_term)


def dispatch_ray(specs: list[TrialSpec], events: Coordinator, options: "ExecutionOptions", storage_path: str,
                 name: str) -> None:
    from ray import tune

    from reid_bench.ray_bridge import COORDINATORS, TuneBridge

    base = specs[0]
    spec_dict = {"model": base.model, "protocol": base.protocol, "overrides": base.overrides,
                 "data_root": base.data_root, "device": base.device, "work_dir": base.work_dir, "threads": base.threads,
                 "cache_dir": base.cache_dir, "checkpoint_epochs": base.checkpoint_epochs,
                 "checkpoint_minutes": base.checkpoint_minutes, "checkpoint_keep": base.checkpoint_keep,
                 "save_model": base.save_model, "report_every": base.report_every}
    entries = [{"fold": s.fold, "seed": s.seed, "also": list(s.also), "resume_from": s.resume_from} for s in specs]
    token = name
    COORDINATORS[token] = events
    trainable = tune.with_resources(_ray_trainable, {"cpu": options.cpus_per_trial, "gpu": options.gpus_per_trial})
    tuner = tune.Tuner(
        trainable,
        param_space={"trial": tune.grid_search(entries), "spec": spec_dict},
        tune_config=tune.TuneConfig(num_samples=1),
        run_config=tune.RunConfig(
            name=name,
            storage_path=storage_path,
            verbose=0,
            callbacks=[TuneBridge(token)],
            failure_config=tune.FailureConfig(max_failures=options.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=base.checkpoint_keep + 1),
        ),
    )
    # Ray Tune would catch Ctrl-C itself and return as if the trials had failed; without its
    # handler the interrupt reaches the runner, which ends the invocation KILLED (--resume continues).
    sigint_handler = os.environ.get("TUNE_DISABLE_SIGINT_HANDLER")
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    try:
        tuner.fit()
    finally:
        COORDINATORS.pop(token, None)
        if sigint_handler is None:
            os.environ.pop("TUNE_DISABLE_SIGINT_HANDLER", None)
        else:
            os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = sigint_handler


# ---------------------------------------------------------------------------------- checks


def check_resources(cpus_per_trial: float, gpus_per_trial: float) -> None:
    """Refuse before anything is written when the cluster cannot host one trial: such a trial
    would wait PENDING for ever."""
    import ray

    resources = ray.cluster_resources()
    for flag, wanted, name in (("--cpus-per-trial", cpus_per_trial, "CPU"), ("--gpus-per-trial", gpus_per_trial, "GPU")):
        available = float(resources.get(name, 0.0))
        if wanted > 0 and available < wanted:
            raise RunError(f"{flag} {wanted:g} asks for more {name}s than the Ray cluster has ({available:g}); "
                           "no trial was started")


def seconds_since_process_start() -> float | None:
    """How long this process has lived, from the kernel's record of its start (Linux; 10 ms ticks):
    the fixed cost a user waits for includes the interpreter and every import, which no timer
    started inside the program sees."""
    try:
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


def check_trial_options(cpus_per_trial: float, gpus_per_trial: float, max_failures: int) -> None:
    if not cpus_per_trial > 0:
        raise RunError(f"--cpus-per-trial {cpus_per_trial:g}: must be > 0")
    if not gpus_per_trial >= 0:
        raise RunError(f"--gpus-per-trial {gpus_per_trial:g}: must be >= 0")
    if not 0 <= max_failures <= 100:
        raise RunError(f"--max-failures {max_failures}: must be from 0 to 100")


def check_device(device: str, use_ray: bool) -> None:
    """``--device``: auto, cpu, cuda or cuda:N; without Ray, a CUDA device must be visible here."""
    import re

    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", device):
        raise RunError(f"--device {device!r}: expected auto, cpu, cuda or cuda:N")
    if device.startswith("cuda") and not use_ray:
        import torch

        index = int(device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise RunError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA devices")


def check_local_gpus(gpus_per_trial: float) -> None:
    """``--no-ray``: the GPUs this machine has."""
    if gpus_per_trial <= 0:
        return
    import torch

    if torch.cuda.device_count() < gpus_per_trial:
        raise RunError(f"--gpus-per-trial {gpus_per_trial:g}: this machine has {torch.cuda.device_count()} GPUs; "
                       "no trial was started")


def check_data(protocol_cls: Any, resolved: Any, data_root: str | None,
               cache_dir: str | Path | None = "default") -> dict[str, str]:
    """Every on-disk dataset the protocol reads is where the run will look for it, and parses:
    a bad file is refused here, naming the file and line, before anything is written. The
    parse goes through the cache, so trials on this machine read the checked records. Returns
    each on-disk dataset's checksum (its files): part of what a finished request is."""
    from reid_bench.datasets import DataFormatError, DatasetNotFoundError, FileDataset
    from reid_bench.trial import HarnessData

    data = HarnessData(get_registry(), str(Path(data_root).resolve()) if data_root else None, resolved.data,
                       cache_dir=cache_dir)
    checksums: dict[str, str] = {}
    for name in protocol_cls.datasets:
        dataset = data.dataset(name)
        if not isinstance(dataset, FileDataset):
            continue
        try:
            if not dataset.source_files():
                raise DatasetNotFoundError(f"no data files found under {dataset.require_root()} (the layout it "
                                           f"expects: reid-bench data info {name}). Obtain the data from: {dataset.obtain}")
            data.load(name)
        except (DatasetNotFoundError, DataFormatError, ValueError) as exc:
            raise RunError(f"dataset {name!r}: {exc}") from None
        except OSError as exc:
            raise RunError(f"dataset {name!r}: {exc.filename or ''}: {exc.strerror or exc}") from None
        checksums[name] = dataset.checksum()
    return checksums


def check_checkpoint_options(options: "ExecutionOptions") -> None:
    for flag, value in (("--checkpoint-epochs", options.checkpoint_epochs),
                        ("--checkpoint-minutes", options.checkpoint_minutes),
                        ("--report-best-test-epoch", options.report_best_test_epoch)):
        if not (isinstance(value, (int, float)) and value >= 0 and value == value and value != float("inf")):
            raise RunError(f"{flag} {value}: must be a finite number >= 0 (0: that rule off)")


def check_storage(storage: str) -> str:
    """Ray's trial storage must be reachable by every node: a URI (s3://, gs://, ...) or a path
    shared by all of them. Checked before anything starts: it must exist or be creatable, and be
    writable."""
    if "://" in storage and not storage.startswith("file://"):
        try:
            import pyarrow.fs

            pyarrow.fs.FileSystem.from_uri(storage)
        except Exception as exc:
            raise RunError(f"--storage {storage!r}: {exc}") from None
        return storage
    path = Path(storage.removeprefix("file://")).expanduser().resolve()
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".reid-bench-write-test-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise RunError(f"--storage {storage!r}: not writable ({exc})") from None
    return str(path)


def check_folds(protocol: str, protocol_cls: Any, folds: Iterable[str] | None) -> list[str]:
    """The folds asked for (all of the protocol's when none are), each one the protocol has."""
    known = list(protocol_cls.folds)
    if not folds:
        return known
    unknown = [f for f in folds if f not in known]
    if unknown:
        raise RunError(f"protocol {protocol!r} has no fold {unknown[0]!r}; folds: {', '.join(known)}")
    return list(folds)


def results_root(results_dir: str | None) -> Path:
    """The folder for checkpoints and Ray state: ``--results-dir``, else ./reid-bench-results."""
    return check_folder(results_dir or Path.cwd() / "reid-bench-results", "--results-dir")


def check_folder(folder: str | Path, flag: str) -> Path:
    """A folder the run writes into (made if missing), or RunError naming it and the cause."""
    path = Path(folder).expanduser().resolve()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunError(f"{flag} {path}: cannot create the folder ({exc.strerror or exc})") from None
    if not os.access(path, os.W_OK):
        raise RunError(f"{flag} {path}: not writable")
    return path


# ---------------------------------------------------------------------------------- the store


def finished_earlier(uri: str, model: str, protocol: str, protocol_version: str, fingerprint: str,
                     keys: list[str], data_checksums: dict[str, str] | None = None) -> dict[str, Any]:
    """The trials of this exact request (model, protocol version, resolved configuration, the
    same data files, fold, seed) that already finished in the store, by key; the latest where
    there are several. A trial on data files that have changed since is not finished. Reads
    only: an absent store or experiment means nothing finished."""
    from reid_bench import tracking

    db = tracking.sqlite_path(uri)
    if db is not None and not db.exists():
        return {}
    tags = {Tag.KIND: "trial", Tag.MODEL: model, Tag.PROTOCOL: protocol,
            Tag.PROTOCOL_VERSION: protocol_version, Tag.CONFIG_FINGERPRINT: fingerprint}
    if db is not None:
        fast = tracking.finished_runs_in_sqlite(db, tags)
        if fast is not None:
            return _latest_per_key(_on_data(fast, data_checksums), keys)
    client, experiment_id = tracking.connect(uri, create=False)
    if experiment_id is None:
        return {}
    runs = client.search_runs(
        [experiment_id],
        filter_string=" and ".join([*(f"tags.`{k}` = '{v}'" for k, v in tags.items()), "attributes.status = 'FINISHED'"]),
        order_by=["attributes.start_time DESC"], max_results=10000,
    )
    return _latest_per_key(_on_data(runs, data_checksums), keys)


def _on_data(runs: list[Any], checksums: dict[str, str] | None) -> list[Any]:
    """The runs whose recorded dataset checksums are the data's now (for each on-disk dataset)."""
    if not checksums:
        return runs

    def same(run: Any) -> bool:
        tags = run.data.tags
        for name, checksum in checksums.items():
            recorded = [v for k, v in tags.items() if k == f"{Tag.DATASET_CHECKSUM}{name}"
                        or k.startswith(f"{Tag.DATASET_CHECKSUM}{name}/")]
            if not recorded or any(v != checksum for v in recorded):
                return False
        return True

    return [run for run in runs if same(run)]


def _latest_per_key(runs: list[Any], keys: list[str]) -> dict[str, Any]:
    """``runs`` newest first: the first one of each requested (fold, seed)."""
    found: dict[str, Any] = {}
    for run in runs:
        key = f"{run.data.tags.get(Tag.FOLD)}/seed{run.data.tags.get(Tag.SEED)}"
        if key in keys and key not in found:
            found[key] = run
    return found


def _earlier_state(state: TrialState, run: Any, metrics: tuple[str, ...]) -> None:
    """A trial that finished in an earlier invocation: its run and its scores, as if run now."""
    state.status, state.run_id, state.phase, state.progress = "FINISHED", run.info.run_id, "done (earlier)", 1.0
    state.result = {"metrics": {m: run.data.metrics[m] for m in metrics if m in run.data.metrics}, "timings": {}}


def find_resumable(client: Any, experiment_id: str | None, uri: str, kind: str, model: str, protocol: str,
                   fingerprint: str | None = None, run_id: str | None = None) -> Any:
    """The parent run ``--resume`` continues: the given one, or the latest of this ``kind``
    (``invocation`` for run, ``search`` for tune) and model and protocol that did not finish, of
    the same resolved configuration where ``fingerprint`` is given."""
    if experiment_id is None:
        raise RunError(f"--resume: no reid-bench runs in {uri}")
    if run_id:
        try:
            run = client.get_run(run_id)
        except Exception:
            raise RunError(f"--resume {run_id}: no such MLflow run") from None
        tags = run.data.tags
        if tags.get(Tag.KIND) != kind:
            raise RunError(f"--resume {run_id}: that run's kind is {tags.get(Tag.KIND)!r}, not {kind!r}")
        if (tags.get(Tag.MODEL), tags.get(Tag.PROTOCOL)) != (model, protocol):
            raise RunError(f"--resume {run_id}: that run is {tags.get(Tag.MODEL)} on {tags.get(Tag.PROTOCOL)}")
        if fingerprint is not None and tags.get(Tag.CONFIG_FINGERPRINT) != fingerprint:
            raise RunError(f"--resume {run_id}: the configuration differs from that run's (pass the same --set values)")
        return run
    same = f"tags.`{Tag.KIND}` = '{kind}' and tags.`{Tag.MODEL}` = '{model}' and tags.`{Tag.PROTOCOL}` = '{protocol}'"
    if fingerprint is not None:
        same += f" and tags.`{Tag.CONFIG_FINGERPRINT}` = '{fingerprint}'"
    runs = client.search_runs([experiment_id], filter_string=same, order_by=["attributes.start_time DESC"],
                              max_results=20)
    for run in runs:
        if run.info.status != "FINISHED":
            return run
    configuration = " with this configuration" if fingerprint is not None else ""
    raise RunError(f"--resume: no unfinished {kind} of {model} on {protocol}{configuration}")


def resume_points(client: Any, experiment_id: str, previous: Any, plan: "Plan", roots: list[Path]) -> dict[str, str]:
    """Per (fold, seed) of an earlier invocation, the newest checkpoint its trials left: the ones
    their runs recorded, and any found on disk under ``roots`` (its results folder, its Ray
    storage), since a driver killed just after a checkpoint was written never recorded it. A
    model checkpoint (the fit was complete) wins over training checkpoints, a later epoch over
    an earlier one; a recorded local folder that is gone is skipped (that trial starts over)."""
    from reid_bench.checkpoints import CheckpointError, read_meta

    best: dict[str, tuple[tuple[int, int], str]] = {}

    def offer(key: str, kind: str, epoch: Any, location: str) -> None:
        rank = (kind == "model", int(epoch) if str(epoch).lstrip("-").isdigit() else -1)
        if key not in best or rank > best[key][0]:
            best[key] = (rank, location)

    for child in client.search_runs([experiment_id], filter_string=f"tags.`{Tag.PARENT}` = '{previous.info.run_id}'",
                                    max_results=10000):
        tags = child.data.tags
        location = tags.get(Tag.CHECKPOINT)
        if location and ("://" in location or Path(location).is_dir()):
            offer(f"{tags.get(Tag.FOLD)}/seed{tags.get(Tag.SEED)}",
                  tags.get(Tag.CHECKPOINT_KIND, "training"), tags.get(Tag.CHECKPOINT_EPOCH), location)
    for root in roots:
        for record in (root.rglob("checkpoint.json") if root.is_dir() else ()):
            try:
                meta = read_meta(record.parent)
            except CheckpointError:
                continue
            if (meta.get("model"), meta.get("protocol"), meta.get("config_fingerprint"), meta.get("split")) != \
                    (plan.request.model, plan.request.protocol, plan.fingerprint, "test"):
                continue
            for fold in meta.get("folds", []):
                offer(f"{fold}/seed{meta.get('seed')}", meta["kind"], meta.get("epoch"), str(record.parent))
    return {key: location for key, (_, location) in best.items()}


# ---------------------------------------------------------------------------------- the invocation


@dataclass(frozen=True)
class RunRequest:
    """What to run: a model on a protocol with a configuration, over folds and seeds. Its
    resolved configuration is the identity of the results (a leaderboard row)."""

    model: str
    protocol: str
    overrides: Overrides = field(default_factory=Overrides)
    seeds: int | None = None
    folds: tuple[str, ...] | None = None
    data_root: str | None = None


@dataclass(frozen=True)
class ExecutionOptions:
    """Where and how to run a request: none of these changes a result."""

    tracking_uri: str | None = None
    address: str | None = None
    use_ray: bool = True
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    device: str = "auto"
    results_dir: str | None = None
    storage: str | None = None
    cache_dir: str | None = "default"
    max_failures: int = 0
    #: True or a parent run id: continue an earlier invocation (its checkpoints included).
    resume: bool | str = False
    rerun: bool = False
    show_progress: bool = True
    checkpoint_epochs: int = 10
    checkpoint_minutes: float = 10.0
    checkpoint_keep: int = 2
    #: Keep the training checkpoints of finished trials (default: removed once the result is in).
    keep_checkpoints: bool = False
    save_model: bool = True
    #: Also score the test split every N epochs and record each fold's best epoch, test-selected (0: off).
    report_best_test_epoch: int = 0
    extra_tags: dict[str, str] = field(default_factory=dict)


@dataclass
class Plan:
    """A validated request: what ``run_benchmark`` checks before anything is written."""

    request: RunRequest
    model_cls: Any
    protocol_cls: Any
    resolved: Any
    config_diff: dict[str, str]
    folds: list[str]
    seeds: list[int]
    cache_dir: str | None
    #: Each on-disk dataset's checksum, once ``check_data`` has read the files.
    data_checksums: dict[str, str] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        return self.resolved.fingerprint

    @property
    def keys(self) -> list[str]:
        return [f"{f}/seed{s}" for f in self.folds for s in self.seeds]

    @property
    def metrics(self) -> tuple[str, ...]:
        return self.protocol_cls().metrics


def validate(request: RunRequest, options: ExecutionOptions | None = None) -> Plan:
    """Check a request (and its options) whole, reading nothing but the registry: RunError or
    ConfigError naming what is wrong. The CLI checks every run of an experiment file with it
    before the first one starts; the runner and the tuner start with it."""
    options = options or ExecutionOptions()
    registry = get_registry()
    model_cls = registry.model(request.model)
    protocol_cls = registry.protocol(request.protocol)
    check_modality(request.model, model_cls, request.protocol, protocol_cls)
    check_trial_options(options.cpus_per_trial, options.gpus_per_trial, options.max_failures)
    check_device(options.device, options.use_ray)
    check_checkpoint_options(options)
    resolved = resolve_config(request.model, request.protocol, request.overrides, registry)
    config_diff = resolved.difference(resolve_config(request.model, request.protocol, Overrides(), registry))
    fold_list = check_folds(request.protocol, protocol_cls, request.folds)
    try:
        seed_list = seeds_for(protocol_cls, request.seeds)
    except ValueError as exc:
        raise RunError(str(exc)) from None
    cache_dir = options.cache_dir if options.cache_dir in (None, "default") else str(Path(options.cache_dir).resolve())
    return Plan(request, model_cls, protocol_cls, resolved, config_diff, fold_list, seed_list, cache_dir)


def check_plan_data(plan: Plan) -> Plan:
    """The plan's data: every on-disk dataset present and parsing, its checksum kept in the plan."""
    plan.data_checksums = check_data(plan.protocol_cls, plan.resolved, plan.request.data_root, plan.cache_dir)
    return plan


def check_request(request: RunRequest, options: ExecutionOptions | None = None) -> Plan:
    """``validate``, then the data: all that ``run`` refuses, found before anything is written
    (the CLI calls it for every run of an experiment file before the first one starts)."""
    return check_plan_data(validate(request, options))


def _skipped_result(plan: Plan, earlier: dict[str, Any], uri: str, t_start: float) -> InvocationResult:
    """Every requested trial finished before: their results, nothing started or written."""
    states = []
    for key in plan.keys:
        fold, seed = key.rsplit("/seed", 1)
        state = TrialState(TrialSpec(model=plan.request.model, protocol=plan.request.protocol, fold=fold, seed=int(seed)))
        _earlier_state(state, earlier[key], plan.metrics)
        states.append(state)
    parents = {r.data.tags.get(Tag.PARENT, "") for r in earlier.values()}
    wall = time.perf_counter() - t_start
    return InvocationResult(", ".join(sorted(parents)), next(iter(earlier.values())).info.experiment_id, uri, states,
                            summarise(states, plan.metrics), wall,
                            {"ray_start_s": 0.0, "mlflow_setup_s": 0.0, "dispatch_s": 0.0, "trial_compute_s": 0.0,
                             "wall_s": wall}, skipped=list(plan.keys))


def _tags(plan: Plan) -> dict[str, str]:
    from reid_bench import tracking

    request, overrides = plan.request, plan.request.overrides
    return {
        Tag.MODEL: request.model,
        Tag.PROTOCOL: request.protocol,
        Tag.PROTOCOL_VERSION: str(plan.protocol_cls.version),
        Tag.CONFIG_FINGERPRINT: plan.fingerprint,
        Tag.MODE: plan.protocol_cls.mode,
        Tag.MAIN_SCORE: plan.protocol_cls.main_score,
        Tag.OVERRIDES: json.dumps(overrides.as_flat(), sort_keys=True),
        Tag.CONFIG_DIFF: json.dumps(plan.config_diff, sort_keys=True),
        # what was typed, unless it amounts to the defaults (then the row is "default")
        Tag.CONFIG_LABEL: json.dumps(overrides.as_flat() if plan.config_diff else {}, sort_keys=True),
        # every setting that differs from the model's release on this protocol (budget, recipe, switches)
        Tag.RELEASE_DIFF: json.dumps(plan.resolved.release_diff, sort_keys=True),
        **tracking.environment_tags(),
    }


def _specs(plan: Plan, options: ExecutionOptions, work_dir: Path, points: dict[str, str]) -> list[TrialSpec]:
    overrides = plan.request.overrides
    data_root = plan.request.data_root
    return [
        TrialSpec(model=plan.request.model, protocol=plan.request.protocol, fold=f, seed=s,
                  overrides=overrides.as_scopes(),
                  data_root=str(Path(data_root).resolve()) if data_root else None, device=options.device,
                  work_dir=str(work_dir), threads=max(1, int(options.cpus_per_trial)), cache_dir=plan.cache_dir,
                  resume_from=points.get(f"{f}/seed{s}"), checkpoint_epochs=int(options.checkpoint_epochs),
                  checkpoint_minutes=float(options.checkpoint_minutes), checkpoint_keep=options.checkpoint_keep,
                  save_model=options.save_model, report_every=int(options.report_best_test_epoch))
        for f in plan.folds for s in plan.seeds
    ]


@dataclass
class _Store:
    """The opened tracking store of an invocation: its parent run and the trials' states."""

    client: Any
    experiment_id: str
    recorder: Any
    parent_id: str
    invocation: str
    previous: Any
    trials: dict[str, TrialState]
    specs: list[TrialSpec]
    base_params: dict[str, str]
    base_tags: dict[str, str]
    work_dir: Path
    earlier: dict[str, Any]


def _open_store(plan: Plan, options: ExecutionOptions, uri: str, earlier: dict[str, Any], work_root: Path,
                storage_root: str | None) -> _Store:
    """Connect, end the runs of drivers that died, find what ``--resume`` continues, and open the
    parent run (or reopen the resumed one)."""
    from reid_bench import tracking

    client, experiment_id = tracking.connect(uri, create=not options.resume)
    recorder = tracking.Recorder(client, experiment_id, uri)
    if experiment_id is not None:
        recorder.end_orphans()
    previous, points = None, {}
    if options.resume:
        previous = find_resumable(client, experiment_id, uri, "invocation", plan.request.model, plan.request.protocol,
                                  plan.fingerprint, options.resume if isinstance(options.resume, str) else None)
        expected = json.loads(previous.data.tags.get(Tag.EXPECTED_TRIALS, "[]"))
        plan.folds = list(dict.fromkeys(k.rsplit("/seed", 1)[0] for k in expected))
        plan.seeds = sorted({int(k.rsplit("/seed", 1)[1]) for k in expected})
        storage = previous.data.tags.get(Tag.STORAGE)
        roots = [work_root / previous.data.tags.get(Tag.INVOCATION, "-")]
        roots += [Path(storage)] if storage and "://" not in storage else []
        points = resume_points(client, experiment_id, previous, plan, roots)
        if not options.rerun:  # trials of this request that finished in any invocation are not run again
            earlier = finished_earlier(uri, plan.request.model, plan.request.protocol, str(plan.protocol_cls.version),
                                       plan.fingerprint, plan.keys, plan.data_checksums)
    invocation = (previous.data.tags.get(Tag.INVOCATION) if previous else None) or \
        f"{plan.request.model}-{plan.request.protocol}-{time.strftime('%Y%m%d-%H%M%S')}"
    work_dir = work_root / invocation
    work_dir.mkdir(parents=True, exist_ok=True)
    all_specs = _specs(plan, options, work_dir, points)
    trials = {s.key: TrialState(s) for s in all_specs}
    base_params = {"model": plan.request.model, "protocol": plan.request.protocol,
                   "protocol_version": str(plan.protocol_cls.version), **tracking.flatten("", plan.resolved.as_dict()),
                   **tracking.flatten("run", plan.resolved.run_settings)}
    base_tags = _tags(plan)
    if previous is not None:
        parent_id = previous.info.run_id
        recorder.reopen_parent(parent_id)
        for child in client.search_runs([experiment_id], filter_string=f"tags.`{Tag.PARENT}` = '{parent_id}'",
                                        max_results=10000):
            key = f"{child.data.tags.get(Tag.FOLD)}/seed{child.data.tags.get(Tag.SEED)}"
            if child.info.status == "FINISHED" and key in trials:
                _earlier_state(trials[key], child, plan.metrics)
    else:
        parent_id = recorder.start_parent(
            f"{plan.request.model}@{plan.request.protocol}",
            dict(base_params, folds=json.dumps(plan.folds), seeds=json.dumps(plan.seeds),
                 dispatcher="ray" if options.use_ray else "in-process"),
            dict(base_tags, **{Tag.EXPECTED_TRIALS: json.dumps([s.key for s in all_specs]),
                               Tag.FOLDS: json.dumps(plan.folds), Tag.INVOCATION: invocation,
                               Tag.DRIVER: json.dumps(tracking.driver_identity()),
                               **({Tag.STORAGE: storage_root} if storage_root else {})},
                 **options.extra_tags),
        )
    for key, run in earlier.items():
        if key in trials:
            _earlier_state(trials[key], run, plan.metrics)
    specs = group_by_training_set([s for s in all_specs if trials[s.key].status != "FINISHED"], plan.protocol_cls(),
                                  plan.resolved)
    return _Store(client, experiment_id, recorder, parent_id, invocation, previous, trials, specs, base_params,
                  base_tags, work_dir, earlier)


def run_benchmark(request: RunRequest, options: ExecutionOptions | None = None) -> InvocationResult:
    """Validate, open the store, dispatch, summarise. Raises RunError/ConfigError/TrackingError
    before anything is written when the request itself is wrong.

    ``options.resume`` (True or a parent run id) continues an earlier invocation: only its trials
    that are missing or failed run again, under the same parent run, each from the last
    checkpoint its earlier run recorded; orphaned RUNNING trials of a killed driver are marked
    KILLED first (so is any invocation whose driver is gone, at every run).

    Without ``rerun``, a (fold, seed) whose identical request already finished in the store is
    not run again: its earlier result counts (``skipped`` lists them); when every one finished,
    nothing is started or written and the earlier results are returned at once."""
    from reid_bench import tracking

    options = options or ExecutionOptions()
    t_start = time.perf_counter()
    age = seconds_since_process_start()
    process_started = None if age is None else time.time() - age
    plan = check_request(request, options)
    uri = options.tracking_uri or tracking.default_tracking_uri()
    tracking.check_uri(uri, must_exist=bool(options.resume))
    earlier = {} if options.rerun else finished_earlier(uri, request.model, request.protocol,
                                                        str(plan.protocol_cls.version), plan.fingerprint, plan.keys,
                                                        plan.data_checksums)
    if not options.resume and plan.keys and len(earlier) == len(plan.keys):
        return _skipped_result(plan, earlier, uri, t_start)

    t_ray = time.perf_counter()
    if options.use_ray:
        init_ray(options.address)
        check_resources(options.cpus_per_trial, options.gpus_per_trial)
    else:
        check_local_gpus(options.gpus_per_trial)
    ray_start_s = time.perf_counter() - t_ray
    work_root = results_root(options.results_dir)
    storage_root = check_storage(options.storage) if options.storage else None

    # Everything about the request is checked; from here on the store is written.
    t_mlflow = time.perf_counter()
    store = _open_store(plan, options, uri, earlier, work_root, storage_root)
    mlflow_setup_s = time.perf_counter() - t_mlflow
    view = LiveView(f"{request.model} on {request.protocol}  (MLflow run {store.parent_id[:8]})",
                    list(store.trials.values()), plan.protocol_cls.main_score, enabled=options.show_progress)
    events = Coordinator(store.recorder, view, store.trials, store.base_params, store.base_tags,
                         keep_checkpoints=options.keep_checkpoints, pending=store.work_dir / "pending")
    timing = {"ray_start_s": ray_start_s, "mlflow_setup_s": mlflow_setup_s, "t_dispatch": time.perf_counter(),
              "t_start": t_start, "process_started": process_started}
    status = "FAILED"
    try:
        if store.previous is not None:
            record_pending(events, store, plan)
        _dispatch(store, events, view, options, storage_root)
        status = "FINISHED" if all(t.status == "FINISHED" for t in store.trials.values()) else "FAILED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    except StoreLost:
        status = "LOST"  # nothing more can be written; what was not recorded is kept locally
        raise
    finally:
        overhead = _close(store, plan, status, timing) if status != "LOST" else {}
    return InvocationResult(store.parent_id, store.experiment_id, uri, list(store.trials.values()),
                            summarise(list(store.trials.values()), plan.metrics), overhead["wall_s"], overhead,
                            skipped=sorted(k for k in store.earlier if k in store.trials))


def record_pending(events: Coordinator, store: _Store, plan: Plan) -> None:
    """Results that an earlier run of this invocation finished but could not record (its store
    stopped answering): recorded now as those trials' runs, with their model, and not run again."""
    folder = events.pending
    if folder is None or not folder.is_dir():
        return
    for path in sorted(folder.glob("*.json")):
        payload = json.loads(path.read_text())
        key = payload["key"]
        if key not in store.trials or store.trials[key].status == "FINISHED":
            path.unlink()
            continue
        events.started(key)
        if payload.get("model") and Path(payload["model"]).is_dir():
            events.checkpointed(key, "model", payload["model"], None)
        result = dict(payload["result"], recorded_late=True)
        events.finished(key, result)
        path.unlink()
    unfinished = [t.spec for t in store.trials.values() if t.status != "FINISHED"]
    store.specs = group_by_training_set(unfinished, plan.protocol_cls(), plan.resolved)


def _dispatch(store: _Store, events: Coordinator, view: LiveView, options: ExecutionOptions,
              storage_root: str | None) -> None:
    with view:
        if store.specs and options.use_ray:
            name = store.invocation if not store.previous else f"{store.invocation}-resume-{int(time.time())}"
            dispatch_ray(store.specs, events, options, storage_root or str(store.work_dir / "ray"), name)
        elif store.specs:
            dispatch_in_process(store.specs, events, options.max_failures)
    for state in store.trials.values():  # a trial Ray never started is a failure, not a silent gap
        if state.status in ("PENDING", "RUNNING"):
            events.failed(state.spec.key, state.error or "trial did not complete")


def _close(store: _Store, plan: Plan, status: str, timing: dict[str, Any]) -> dict[str, float]:
    """End the parent run with the summary, the timings and the CMC plot; close what is still open."""
    trials = store.trials
    summary = summarise(list(trials.values()), plan.metrics)
    compute, fits = 0.0, set()
    for t in trials.values():  # a fit shared by several folds counts once
        timings = (t.result or {}).get("timings", {})
        fit = (tuple((t.result or {}).get("folds_fitted_together") or [t.spec.fold]), t.spec.seed)
        compute += timings.get("eval_s", 0.0) + (0.0 if fit in fits else timings.get("data_s", 0.0) +
                                                 timings.get("fit_s", 0.0))
        fits.add(fit)
    overhead = {
        "ray_start_s": timing["ray_start_s"],
        "mlflow_setup_s": timing["mlflow_setup_s"],
        "dispatch_s": time.perf_counter() - timing["t_dispatch"],
        "trial_compute_s": compute,
        "wall_s": time.perf_counter() - timing["t_start"],
    }
    began = [trials[k].started for s in store.specs for k in s.keys if trials[k].started]
    if began and timing["process_started"] is not None:
        # the fixed cost before any compute: interpreter, imports, checks, Ray, MLflow
        overhead["first_trial_s"] = min(began) - timing["process_started"]
    try:
        curves: dict[str, list[list[float]]] = {}
        for state in trials.values():
            if state.result and state.result.get("cmc"):
                curves.setdefault(f"fold {state.spec.fold}", []).append(state.result["cmc"])
        store.recorder.end_parent(status, summary, {**summary_metrics(summary),
                                                    **{f"time/{k}": v for k, v in overhead.items()}},
                                  cmc_curves=curves, title=f"{plan.request.model} on {plan.request.protocol}")
    finally:
        store.recorder.terminate_open("KILLED" if status == "KILLED" else "FAILED")
    return overhead
