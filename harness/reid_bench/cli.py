"""The ``reid-bench`` command line. Heavy libraries are imported inside commands so that
``reid-bench list`` stays fast and never imports torch."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any, NoReturn, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from reid_bench.registry import KINDS, PluginError, get_registry

class _Command(typer.core.TyperCommand):
    """A flag takes no value, so its help line shows none (Typer prints ``<bool>`` by default)."""

    def get_params(self, ctx):
        params = super().get_params(ctx)
        for param in params:
            if getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = ""
        return params


app = typer.Typer(add_completion=False, no_args_is_help=True, help="Benchmark harness for 3D person re-identification.")
# A terminal or an explicit COLUMNS sets the width; a pipe or a log gets 160 columns.
out = Console(width=None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 160)
err = Console(stderr=True)


def _plain_warnings() -> None:
    """The harness's warnings (``logging`` under ``reid_bench``) as one plain line each on stderr."""
    import logging

    log = logging.getLogger("reid_bench")
    if not any(getattr(h, "reid_bench_plain", False) for h in log.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("warning: %(message)s"))
        handler.reid_bench_plain = True  # type: ignore[attr-defined]
        log.addHandler(handler)
        log.propagate = False


_plain_warnings()


def fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def os_error(exc: OSError) -> str:
    """One line: the path and the cause, without the errno noise of ``str(OSError)``."""
    where = exc.filename if exc.filename is not None else ""
    return f"{where}: {exc.strerror or exc}" if where else str(exc.strerror or exc)


def print_json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


class _StdoutToStderr:
    """With --json, stdout carries the JSON alone: what else is printed meanwhile (Ray's driver
    prints its workers' errors to ``sys.stdout``) goes to stderr."""

    def __init__(self, active: bool):
        self.active = active
        self.saved = None

    def __enter__(self) -> "_StdoutToStderr":
        if self.active:
            self.saved, sys.stdout = sys.stdout, sys.stderr
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.saved is not None:
            sys.stdout = self.saved


# ----------------------------------------------------------------------------------------- list


@app.command("list", cls=_Command)
def list_cmd(
    kind: Optional[str] = typer.Argument(None, help="models, datasets, protocols or layouts (default: all)"),
    long: bool = typer.Option(False, "--long", "-l", help="also each plugin's modality and one-line description (imports the plugins)"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """List registered plugins. Plain, it reads entry-point metadata only (nothing is imported,
    so it answers at once); --long loads each plugin for its modality and description."""
    registry = get_registry()
    kinds = list(KINDS)
    if kind is not None:
        if kind not in KINDS:
            singular = {k[:-1]: k for k in KINDS}
            if kind in singular:
                kind = singular[kind]
            else:
                try:
                    registry.entries(kind)
                except PluginError as exc:
                    fail(str(exc))
        kinds = [kind]
    data = {k: {name: {"name": name, "distribution": e.label} for name, e in registry.entries(k).items()} for k in kinds}
    if long:
        for k in kinds:
            for name, row in data[k].items():
                row.update(_described(registry, k, name))
    if as_json:
        print_json({k: list(v.values()) for k, v in data.items()})
        return
    for k in kinds:
        table = Table(title=k, title_justify="left")
        columns = ["name", "distribution"] + (["modality", "description"] if long else [])
        for col in columns:
            table.add_column(col, overflow="fold")
        for row in data[k].values():
            table.add_row(*[escape(str(row.get(col) or "")) for col in columns])
        out.print(table)


def _described(registry: Any, kind: str, name: str) -> dict[str, str]:
    """Modality and the first sentence of the description (a plugin that fails to load says why)."""
    try:
        obj = registry.load(kind, name)
    except PluginError as exc:
        return {"modality": "?", "description": f"cannot load: {str(exc).splitlines()[0]}"}
    import re

    text = " ".join(str(getattr(obj, "description", "") or (obj.__doc__ or "")).split())
    first = re.split(r"(?<=[a-z0-9)])\. (?=[A-Z])", text)[0].rstrip(".")  # not at "e.g. pixels"
    modality = getattr(obj, "modality", None) or ("skeleton" if kind == "layouts" else "")
    return {"modality": str(modality), "description": first[:160]}


@app.command("plugins", cls=_Command)
def plugins_cmd(as_json: bool = typer.Option(False, "--json")) -> None:
    """Load every plugin and show each entry point: kind, distribution, loaded or the error."""
    statuses = get_registry().status()
    if as_json:
        print_json([{"kind": s.entry.kind, "name": s.entry.name, "value": s.entry.value,
                     "distribution": s.entry.distribution, "version": s.entry.version,
                     "loaded": s.loaded, "error": s.error} for s in statuses])
        return
    table = Table(title="entry points", title_justify="left")
    for col in ("kind", "name", "distribution", "status"):
        table.add_column(col, overflow="fold")
    for s in statuses:
        status = "[green]loaded[/]" if s.loaded else f"[red]error:[/] {escape(s.error)}"
        table.add_row(s.entry.kind, s.entry.name, s.entry.label, status)
    out.print(table)


# ----------------------------------------------------------------------------------------- info


def _model_info(name: str, cls: Any) -> dict[str, Any]:
    from reid_bench.config import config_dict, run_settings_of

    info: dict[str, Any] = {
        "kind": "model", "name": name, "modality": cls.modality, "description": cls.description,
        "citation": cls.citation, "config": config_dict(cls.config_class()),
        "run_settings": run_settings_of(cls.config_class()),
        "resumable": bool(getattr(cls, "resumable", False)),
        "protocol_overrides": cls.protocol_overrides, "fold_overrides": cls.fold_overrides,
        "budget_overrides": cls.budget_overrides, "search_space": None,
    }
    info["search_space"] = cls.search_space()
    spec = cls.example_spec()
    try:
        info["num_parameters"] = int(cls(cls.config_class(), spec).num_parameters())
        info["parameters_for"] = {"modality": spec.modality, "num_classes": spec.num_classes,
                                  "layout": spec.layout.name if spec.layout else None,
                                  "window": spec.window, "num_points": spec.num_points}
    except Exception as exc:  # a model that cannot build without data still gets an info page
        info["num_parameters"] = None
        info["parameters_error"] = f"{type(exc).__name__}: {exc}"
    return info


def _resolved_on(model: str, protocol: str) -> dict[str, Any]:
    """What a run of ``model`` on ``protocol`` uses with no --set: the resolved defaults (recipe
    and per-protocol values applied), the probe, the data options, and the fingerprint."""
    from reid_bench.config import ConfigError, Overrides
    from reid_bench.trial import resolve_config

    try:
        resolved = resolve_config(model, protocol, Overrides())
    except (PluginError, ConfigError) as exc:
        fail(str(exc))
    return {"protocol": protocol, **resolved.as_dict(), "config_fingerprint": resolved.fingerprint,
            "differs_from_release": resolved.release_diff or "nothing (the release's configuration)",
            **_parameters_on(model, protocol, resolved)}


def _parameters_on(model: str, protocol: str, resolved: Any) -> dict[str, Any]:
    """The model's parameter count as built for the protocol: its resolved configuration, the
    layout of the protocol's data and its window (the number of identities from the model's own
    example input: identity classifiers are not counted)."""
    from reid_bench.samples import DataSpec

    registry = get_registry()
    model_cls, protocol_cls = registry.model(model), registry.protocol(protocol)
    example = model_cls.example_spec()
    layout = None
    for name in protocol_cls.datasets:
        ds_cls = registry.dataset(name)
        options = ds_cls.options_class(**resolved.data.get(name, {})) if ds_cls.options_class else None
        layout = layout or ds_cls(None, options).skeleton_layout()
    try:
        spec = DataSpec(protocol_cls.modality, example.num_classes, registry.layout(layout) if layout else example.layout,
                        protocol_cls.window or example.window, example.num_points)
        counts = {"num_parameters": int(model_cls(resolved.model, spec).num_parameters())}
        for fold, cfg in sorted(resolved.per_fold.items()):
            counts[f"num_parameters/{fold}"] = int(model_cls(cfg, spec).num_parameters())
    except Exception as exc:  # a model that cannot build without data still gets its configuration shown
        return {"num_parameters": None, "parameters_error": f"{type(exc).__name__}: {exc}"}
    return {**counts, "parameters_for": {"layout": spec.layout.name if spec.layout else None, "window": spec.window}}


def _dataset_info(name: str, cls: Any) -> dict[str, Any]:
    from reid_bench.config import config_dict

    return {"kind": "dataset", "name": name, "modality": cls.modality, "description": cls.description,
            "format": cls.data_format, "license": cls.license, "citation": cls.citation, "obtain": cls.obtain,
            "loader_version": cls.loader_version,
            "options": config_dict(cls.options_class()) if cls.options_class else {}}


def _protocol_info(name: str, cls: Any) -> dict[str, Any]:
    published = _published_info(cls)
    return {"kind": "protocol", "name": name, "version": cls.version, "modality": cls.modality, "mode": cls.mode,
            "description": cls.description, "datasets": list(cls.datasets), "folds": list(cls.folds),
            "seeds": list(cls.seeds), "window": cls.window, "metrics": list(cls().metrics),
            "main_score": cls.main_score, "higher_is_better": cls.higher_is_better,
            "filter_same_camera": cls.filter_same_camera if cls.mode == "retrieval" else None,
            "scoring": ({"distance": cls.scoring.distance, "item": cls.scoring.item, "rank_over": cls.scoring.rank_over,
                         "means": cls.scoring.describe()} if cls.mode == "retrieval" else None),
            "references": published.pop("references"), "reference_source": cls.reference_source, **published}


def _published_info(cls: Any) -> dict[str, Any]:
    """Where each published number comes from and what kind it is (``reid_bench.published``),
    each method under the name of the installed model that declares it, as on the boards."""
    from reid_bench.published import KINDS, board_published, disagreements, paper_entry, paper_references

    sources, entries, _ = board_published(cls, get_registry().published_methods())
    references = paper_references(entries)
    kinds = sorted({k for e in entries for k in e.kind}, key=list(KINDS).index)
    paper = {model: {fold: {"source": e.source, "kind": list(e.kind), "kind_text": e.kind_text}
                     for fold in folds if (e := paper_entry(entries, model, fold)) is not None}
             for model, folds in references.items()}
    return {"references": references, "reference_kinds": paper,
            "published_sources": {s.key: {k: v for k, v in s.as_json().items() if k != "key"} for s in sources},
            "published": [e.as_json() for e in entries],
            "published_kinds": {k: {"mark": KINDS[k][0], "label": KINDS[k][1], "meaning": KINDS[k][2]} for k in kinds},
            "published_disagreements": disagreements(entries)}


def _layout_info(name: str, layout: Any) -> dict[str, Any]:
    return {"kind": "layout", "name": name, "description": layout.description, "dims": layout.dims,
            "joints": list(layout.joints), "edges": [list(e) for e in layout.edges],
            "parts": [list(p) for p in layout.parts], "bodies": [list(b) for b in layout.bodies],
            "roles": {role: list(group) for role, group in layout.roles},
            "nodes_per_scale": {"hyper-joint": layout.num_hyper_joints, "joint": layout.num_joints,
                                "part": len(layout.parts), "body": len(layout.bodies)}}


@app.command("info", cls=_Command)
def info_cmd(name: str = typer.Argument(..., help="a model, dataset, protocol or layout name"),
             protocol: Optional[str] = typer.Option(None, "--protocol", "-p",
                                                    help="a model's configuration as it runs on this protocol"),
             as_json: bool = typer.Option(False, "--json")) -> None:
    """Describe one plugin: a model's config and parameter count, a dataset's license, a protocol's folds."""
    registry = get_registry()
    kinds = registry.kind_of(name)
    if not kinds:
        import difflib

        every = [n for k in KINDS for n in registry.names(k)]

        close = difflib.get_close_matches(name, every, n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        fail(f"unknown plugin {name!r}{hint}")
    infos = []
    builders = {"models": _model_info, "datasets": _dataset_info, "protocols": _protocol_info, "layouts": _layout_info}
    for kind in kinds:
        try:
            obj = registry.load(kind, name)
        except PluginError as exc:
            fail(str(exc), 1)
        infos.append(builders[kind](name, obj))
        if kind == "models" and protocol:
            infos[-1]["on_protocol"] = _resolved_on(name, protocol)
    if protocol and "models" not in kinds:
        fail(f"--protocol applies to models; {name!r} is a {', '.join(k.rstrip('s') for k in kinds)}")
    if as_json:
        print_json(infos[0] if len(infos) == 1 else infos)
        return
    for info in infos:
        table = Table(title=f"{info['kind']} {name}", title_justify="left", show_header=False)
        table.add_column("key", style="bold")
        table.add_column("value", overflow="fold")
        for key, value in info.items():
            if key in ("kind", "name"):
                continue
            if key == "published" and isinstance(value, list):  # one line per (model, source); --json has all
                value = {f"{e['model']} [{e['source']}]": f"{e['marks']} {e['kind_text']}; " + "; ".join(
                    f"{fold}: " + ", ".join(f"{m}={v}" for m, v in vals.items()) for fold, vals in e["values"].items())
                    for e in value}
            elif key == "reference_kinds" and isinstance(value, dict):
                continue  # the same as "published" says, per model and fold (kept in --json)
            table.add_row(key, escape(readable(value)))
        out.print(table)


def _scalar(value: Any) -> str:
    return "none" if value is None else str(value)


def _compact(value: Any) -> str:
    """One line: a search distribution as ``name(args)``, a mapping as ``k=v, ...``, a list as ``a, b``."""
    if isinstance(value, dict):
        if len(value) == 1 and isinstance(next(iter(value.values())), list):
            (dist, args), = value.items()
            return f"{dist}({', '.join(_compact(a) for a in args)})"
        if any(isinstance(v, dict) for v in value.values()):  # e.g. references per fold
            return "; ".join(f"{k}: {_compact(v)}" for k, v in value.items())
        return ", ".join(f"{k}={_compact(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(_compact(v) for v in value)
    return _scalar(value)


def readable(value: Any) -> str:
    """How ``info`` prints a value: one ``key: value`` line per entry of a mapping (nested ones
    compacted onto their line), lists comma-separated; ``--json`` keeps the structure."""
    if isinstance(value, dict):
        if not value:
            return "-"
        width = max(len(str(k)) for k in value)
        return "\n".join(f"{str(k) + ':':<{width + 1}} {_compact(v)}" for k, v in value.items())
    return _compact(value)


# ----------------------------------------------------------------------------------------- run


def _fmt_summary(result: Any, metrics: tuple[str, ...]) -> Table:
    from reid_bench.modes import label

    table = Table(title="summary (percent, mean ± std over seeds)", title_justify="left")
    table.add_column("fold", no_wrap=True)
    table.add_column("n", justify="right")
    for m in metrics:
        table.add_column(label(m), justify="right", no_wrap=True)
    for fold, values in result.summary.items():
        n = max((v["n"] for v in values.values()), default=0)
        table.add_row(fold, str(n), *[
            f"{100 * values[m]['mean']:.1f} ± {100 * values[m]['std']:.1f}" if m in values else "—" for m in metrics
        ])
    return table


def _stopped(exc: KeyboardInterrupt, what_now: str) -> NoReturn:
    """Ctrl-C exits 130 and SIGTERM 143 (128 + the signal, as a shell reports a killed job), each
    after the runs were ended KILLED: a scheduler's stop is as safe as a user's."""
    from reid_bench.tracking import was_terminated

    terminated = was_terminated(exc)
    err.print(f"[bold red]{'terminated' if terminated else 'interrupted'}[/]: {what_now}")
    raise typer.Exit(143 if terminated else 130)


@app.command("run", cls=_Command)
def run_cmd(
    model: Optional[str] = typer.Option(None, "--model", "-m", help="model plugin name"),
    protocol: Optional[str] = typer.Option(None, "--protocol", "-p", help="protocol plugin name"),
    sets: Optional[list[str]] = typer.Option(None, "--set", "-s", help="override: key=value (model), probe.key=value, data.key=value"),
    seeds: Optional[int] = typer.Option(None, "--seeds", help="number of seeds (default: the protocol's)"),
    folds: Optional[list[str]] = typer.Option(None, "--fold", help="run only these folds (default: all)"),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="an experiment file (.toml) or a folder of them, instead of --model/--protocol/--set/--seeds/--fold"),
    tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="MLflow URI (default: MLFLOW_TRACKING_URI or sqlite:///$PWD/mlflow.db)"),
    address: Optional[str] = typer.Option(None, "--address", envvar="RAY_ADDRESS", help="join this Ray cluster"),
    gpus_per_trial: float = typer.Option(0.0, "--gpus-per-trial", help="GPUs per trial (fractions allowed)"),
    cpus_per_trial: float = typer.Option(1.0, "--cpus-per-trial", help="CPUs per trial, and its torch threads"),
    no_ray: bool = typer.Option(False, "--no-ray", help="run trials in this process, one after another, with --cpus-per-trial torch threads (debugging)"),
    data_root: Optional[str] = typer.Option(None, "--data-root", envvar="REID_BENCH_DATA", help="folder with one sub-folder per dataset"),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda[:N]"),
    results_dir: Optional[str] = typer.Option(None, "--results-dir", help="checkpoints and Ray state (default ./reid-bench-results)"),
    max_failures: int = typer.Option(0, "--max-failures", help="retries of a failing trial (Ray only)"),
    cache_dir: Optional[str] = typer.Option(None, "--cache-dir", envvar="REID_BENCH_CACHE", help="parsed-data cache (default ~/.cache/reid-bench)"),
    no_cache: bool = typer.Option(False, "--no-cache", help="parse dataset files every time"),
    resume: bool = typer.Option(False, "--resume", help="continue the latest unfinished invocation of this model, protocol and config: re-run only its missing or failed trials"),
    resume_run: Optional[str] = typer.Option(None, "--resume-run", help="continue this MLflow parent run id"),
    storage: Optional[str] = typer.Option(None, "--storage", help="Ray trial storage shared by all nodes (path or URI); default: under --results-dir"),
    rerun: bool = typer.Option(False, "--rerun", help="run every trial again, even those whose identical configuration already finished in the store"),
    checkpoint_epochs: int = typer.Option(10, "--checkpoint-epochs", help="a training checkpoint every N epochs (0: off) ..."),
    checkpoint_minutes: float = typer.Option(10.0, "--checkpoint-minutes", help="... or every M minutes, whichever comes first (0: off); always after the last epoch"),
    keep_checkpoints: bool = typer.Option(False, "--keep-checkpoints", help="keep the training checkpoints of finished trials (default: removed once the result is recorded)"),
    no_save_model: bool = typer.Option(False, "--no-save-model", help="do not keep the fitted model as an MLflow artifact (reid-bench eval scores it later)"),
    report_best_test_epoch: int = typer.Option(0, "--report-best-test-epoch", help="also score the test split every N epochs and record each fold's best epoch, the releases' way of reporting: test-selected, kept apart from the result and shown in its own column (0: off)"),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON on stdout"),
) -> None:
    """Run a model on a protocol: folds x seeds as trials; results to MLflow. A (fold, seed)
    whose identical configuration already finished in the store is skipped unless --rerun.
    Folds that share a training set are fitted once per seed; long fits keep checkpoints, so
    --resume continues an interrupted trial from its last one."""
    from reid_bench.runner import ExecutionOptions
    from reid_bench.tracking import terminate_as_interrupt

    terminate_as_interrupt()

    experiments = _experiments(config, model, protocol, sets, seeds, folds)
    options = ExecutionOptions(
        tracking_uri=tracking_uri, address=address, use_ray=not no_ray, cpus_per_trial=cpus_per_trial,
        gpus_per_trial=gpus_per_trial, device=device, results_dir=results_dir, storage=storage,
        cache_dir=None if no_cache else (cache_dir or "default"), max_failures=max_failures, resume=resume_run or resume,
        rerun=rerun, show_progress=not as_json, checkpoint_epochs=checkpoint_epochs,
        checkpoint_minutes=checkpoint_minutes, keep_checkpoints=keep_checkpoints, save_model=not no_save_model,
        report_best_test_epoch=report_best_test_epoch)
    _check_experiments(experiments, options, data_root)
    results = _run_experiments(experiments, options, data_root, as_json)
    if as_json:
        print_json(results[0].as_json() if config is None else
                   [dict(r.as_json(), model=e.model, protocol=e.protocol, source=e.source)
                    for e, r in zip(experiments, results)])
    if not all(r.ok for r in results):
        raise typer.Exit(1)


def _experiments(config: Path | None, model: str | None, protocol: str | None, sets: list[str] | None,
                 seeds: int | None, folds: list[str] | None) -> list[Any]:
    """The runs asked for: those of an experiment file (or folder), or the one on the command line."""
    from reid_bench.experiments import Experiment, ExperimentError, load

    if config is not None:
        given = [flag for flag, value in (("--model", model), ("--protocol", protocol), ("--set", sets),
                                          ("--seeds", seeds), ("--fold", folds)) if value]
        if given:
            fail(f"--config {config}: {given[0]} belongs in the experiment file, not on the command line")
        try:
            return load(config)
        except ExperimentError as exc:
            fail(str(exc))
    if not model or not protocol:
        fail("give --model and --protocol, or --config with an experiment file")
    return [Experiment(model, protocol, tuple(sets or ()), seeds, tuple(folds) if folds else None)]


def _request(exp: Any, data_root: str | None) -> Any:
    from reid_bench.config import parse_sets
    from reid_bench.runner import RunRequest

    return RunRequest(exp.model, exp.protocol, parse_sets(list(exp.sets)), exp.seeds,
                      tuple(exp.folds) if exp.folds else None, data_root)


def _check_experiments(experiments: list[Any], options: Any, data_root: str | None) -> None:
    """What run_benchmark would refuse (the request and its data), found for every run of a file
    before the first one starts: a broken second run refuses the whole file."""
    from reid_bench.config import ConfigError
    from reid_bench.runner import RunError, check_request

    for exp in experiments:
        try:
            check_request(_request(exp, data_root), options)
        except (PluginError, ConfigError, RunError, ValueError) as exc:
            fail(f"{exp.source}: {exc}" if exp.source else str(exc))


def _run_experiments(experiments: list[Any], options: Any, data_root: str | None, as_json: bool) -> list[Any]:
    """Each run in turn, its summary printed as it ends (unless --json); their results."""
    from reid_bench.config import ConfigError
    from reid_bench.runner import RunError, run_benchmark
    from reid_bench.tracking import StoreLost, TrackingError

    results = []
    for i, exp in enumerate(experiments, 1):
        if len(experiments) > 1 and not as_json:
            out.print(f"[{i}/{len(experiments)}] {exp.command()}  ({exp.source})", highlight=False, markup=False,
                      soft_wrap=True)
        try:
            with _StdoutToStderr(as_json):
                result = run_benchmark(_request(exp, data_root), options)
        except (PluginError, ConfigError, RunError, TrackingError, ValueError) as exc:
            fail(f"{exp.source}: {exc}" if exp.source else str(exc))
        except StoreLost as exc:
            fail(exc.message(), 1)
        except KeyboardInterrupt as exc:
            _stopped(exc, "runs marked KILLED in MLflow; --resume continues them")
        results.append(result)
        if not as_json:
            _print_run(result, exp.protocol)
    return results


def _print_run(result: Any, protocol: str) -> None:
    protocol_cls = get_registry().protocol(protocol)
    if result.skipped:
        every = len(result.skipped) == len(result.trials)
        out.print(f"skipped {'all ' if every else ''}{len(result.skipped)} of {len(result.trials)} trials: the same "
                  f"configuration already finished in the store ({', '.join(result.skipped)}); --rerun runs them again",
                  highlight=False, markup=False, soft_wrap=True)
    out.print(_fmt_summary(result, protocol_cls().metrics))
    o = result.overhead
    out.print(f"MLflow parent run {result.parent_run_id} in {result.tracking_uri}", highlight=False, markup=False, soft_wrap=True)
    first = f", first trial {o['first_trial_s']:.1f}s after the process started" if "first_trial_s" in o else ""
    out.print(f"wall {o['wall_s']:.1f}s: trial compute {o['trial_compute_s']:.1f}s, Ray start {o['ray_start_s']:.1f}s, "
              f"MLflow setup {o['mlflow_setup_s']:.2f}s{first}", highlight=False)
    for t in result.trials:
        if t.status != "FINISHED":
            last = t.error.strip().splitlines()[-1] if t.error.strip() else "no result"
            err.print(f"[red]trial {t.spec.key} {t.status}[/]: {last}", highlight=False, soft_wrap=True)


# ----------------------------------------------------------------------------------------- tune


@app.command("tune", cls=_Command)
def tune_cmd(
    model: str = typer.Option(..., "--model", "-m"),
    protocol: str = typer.Option(..., "--protocol", "-p"),
    samples: int = typer.Option(8, "--samples", help="configurations to try"),
    scheduler: str = typer.Option("asha", "--scheduler", help="asha (stop weak trials early) or fifo"),
    search: str = typer.Option("random", "--search", help="random or optuna (optional extra)"),
    space: Optional[str] = typer.Option(None, "--space", help="search space file (TOML/JSON); default: the model's"),
    max_concurrent: Optional[int] = typer.Option(None, "--max-concurrent", help="trials at once (default: as resources allow)"),
    sets: Optional[list[str]] = typer.Option(None, "--set", "-s", help="fixed overrides, as for run"),
    seeds: Optional[int] = typer.Option(None, "--seeds", help="seeds for the final run of the best config"),
    gpus_per_trial: float = typer.Option(0.0, "--gpus-per-trial"),
    cpus_per_trial: float = typer.Option(1.0, "--cpus-per-trial"),
    address: Optional[str] = typer.Option(None, "--address", envvar="RAY_ADDRESS"),
    tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri"),
    data_root: Optional[str] = typer.Option(None, "--data-root", envvar="REID_BENCH_DATA"),
    device: str = typer.Option("auto", "--device"),
    results_dir: Optional[str] = typer.Option(None, "--results-dir"),
    storage: Optional[str] = typer.Option(None, "--storage", help="Ray trial storage shared by all nodes"),
    resume: bool = typer.Option(False, "--resume", help="continue the latest interrupted search of this model and protocol"),
    no_final: bool = typer.Option(False, "--no-final-run", help="search only; do not run the best config on the test folds"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Search a model's space on a validation split (ASHA), then run the best config on the test folds."""
    from reid_bench.config import ConfigError, parse_sets
    from reid_bench.runner import ExecutionOptions, RunError, RunRequest
    from reid_bench.tracking import TrackingError, terminate_as_interrupt
    from reid_bench.tuning import SearchRequest, run_search

    terminate_as_interrupt()

    options = ExecutionOptions(tracking_uri=tracking_uri, address=address, cpus_per_trial=cpus_per_trial,
                               gpus_per_trial=gpus_per_trial, device=device, results_dir=results_dir, storage=storage,
                               resume=resume, show_progress=not as_json)
    try:
        request = SearchRequest(RunRequest(model, protocol, parse_sets(sets), seeds=seeds, data_root=data_root),
                                samples=samples, scheduler=scheduler, search=search, space_file=space,
                                max_concurrent=max_concurrent, evaluate_best=not no_final)
        with _StdoutToStderr(as_json):
            res = run_search(request, options)
    except (PluginError, ConfigError, RunError, TrackingError, ValueError) as exc:
        fail(str(exc))
    except KeyboardInterrupt as exc:
        _stopped(exc, "continue with --resume")
    payload = {"search_run_id": res.search_run_id, "best_params": res.best_params, "best_val_score": res.best_score,
               "trials": res.trials, "samples": res.samples,
               "final_run": res.invocation.as_json() if res.invocation else None}
    if as_json:
        print_json(payload)
    else:
        out.print(_search_table(res.samples))
        out.print(f"search run {res.search_run_id}: {res.trials} trials, best validation score {res.best_score:.4f}",
                  highlight=False, markup=False)
        out.print(f"best config: {json.dumps(res.best_params, default=str)}", highlight=False, markup=False)
        if res.invocation:
            out.print(_fmt_summary(res.invocation, get_registry().protocol(protocol)().metrics))
    if res.invocation is not None and not res.invocation.ok:
        raise typer.Exit(1)


def _search_table(samples: list[dict[str, Any]]) -> Table:
    """The samples of a search, best first, with their values rounded for reading (the exact
    ones are in the search's MLflow runs and in ``--json``)."""
    from reid_bench.config import readable_value

    names = sorted({k for row in samples for k in row["params"]})
    table = Table(title="search samples, best validation score first", title_justify="left")
    for col in ("", *names, "status", "epochs", "val_score"):
        table.add_column(col, justify="left" if col in ("", "status") else "right")
    for row in samples:
        score = row["val_score"]
        table.add_row(row["trial"], *[escape(readable_value(json.dumps(row["params"][k]) if isinstance(
            row["params"].get(k), (list, tuple)) else str(row["params"].get(k, "")))) for k in names],
            row["status"].lower(), "" if row["epochs"] is None else str(row["epochs"]),
            "" if score is None else f"{100 * score:.1f}")
    return table


# ----------------------------------------------------------------------------------------- eval


@app.command("eval", cls=_Command)
def eval_cmd(
    checkpoint: str = typer.Option(..., "--checkpoint", help="a saved model: a checkpoint folder from run, or runs:/<run id>[/model] in the MLflow store"),
    protocol: str = typer.Option(..., "--protocol", "-p", help="protocol to score it on (another one with the same layout: cross-dataset)"),
    folds: Optional[list[str]] = typer.Option(None, "--fold", help="only these folds (default: all)"),
    tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="MLflow URI (default: as run)"),
    data_root: Optional[str] = typer.Option(None, "--data-root", envvar="REID_BENCH_DATA"),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda[:N]"),
    cache_dir: Optional[str] = typer.Option(None, "--cache-dir", envvar="REID_BENCH_CACHE"),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON on stdout"),
) -> None:
    """Score a saved model on a protocol without training it. Loading is strict: a missing or
    unexpected key, a shape, a layout or a window that differs from the model's is refused in
    one line. The scores are recorded as an evaluation-only run; their board row names the
    checkpoint and what it was trained on."""
    from reid_bench.checkpoints import CheckpointError
    from reid_bench.config import ConfigError
    from reid_bench.evaluation import EvalRequest, evaluate_checkpoint
    from reid_bench.runner import RunError
    from reid_bench.tracking import TrackingError, terminate_as_interrupt

    terminate_as_interrupt()

    request = EvalRequest(checkpoint, protocol, tuple(folds) if folds else None, data_root, tracking_uri, device,
                          cache_dir or "default")
    try:
        result = evaluate_checkpoint(request, show_progress=not as_json)
    except (CheckpointError, PluginError, ConfigError, RunError, TrackingError, ValueError) as exc:
        fail(str(exc))
    except KeyboardInterrupt as exc:
        _stopped(exc, "runs marked KILLED in MLflow")
    if as_json:
        print_json(result.as_json())
    else:
        out.print(_fmt_summary(result, get_registry().protocol(protocol)().metrics))
        out.print(f"MLflow parent run {result.parent_run_id} in {result.tracking_uri} (evaluation only)",
                  highlight=False, markup=False, soft_wrap=True)
    if not result.ok:
        raise typer.Exit(1)


# ----------------------------------------------------------------------------------------- leaderboard


@app.command("leaderboard", cls=_Command)
def leaderboard_cmd(
    tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="MLflow store to export (default: as run; skipped when the default sqlite file does not exist)"),
    results_dir: str = typer.Option("results", "--results", help="results folder: one JSON per (protocol, model, config)"),
    out_dir: str = typer.Option("leaderboards", "--out", help="output folder"),
    protocols: Optional[list[str]] = typer.Option(None, "--protocol", "-p", help="only these protocols' Markdown"),
    no_store: bool = typer.Option(False, "--no-store", help="build from the results folder alone"),
) -> None:
    """Export finished runs into the results folder, then build the leaderboards from it
    (Markdown per protocol, leaderboard.json, index.html)."""
    import os

    from reid_bench.leaderboard import build_leaderboards
    from reid_bench.results import ResultsError
    from reid_bench.tracking import TrackingError, default_tracking_uri, sqlite_path

    uri = None if no_store else (tracking_uri or default_tracking_uri())
    if uri and not tracking_uri and not os.environ.get("MLFLOW_TRACKING_URI"):
        default_db = sqlite_path(uri)
        if default_db is not None and not default_db.exists():
            uri = None  # no store here: build from the results folder
    try:
        written = build_leaderboards(out_dir, results_dir, uri, protocols)
    except (TrackingError, LookupError, ResultsError) as exc:
        fail(str(exc), 1)
    except OSError as exc:
        fail(str(exc) if exc.filename is None else os_error(exc), 1)
    source = f"{uri} and {results_dir}" if uri else results_dir
    out.print(f"{written['documents']} results ({written['new_trials']} new trials) from {source}; "
              f"{len(written['written'])} files written under {written['results']} and {written['out']}",
              highlight=False, markup=False, soft_wrap=True)


# ----------------------------------------------------------------------------------------- data

data_app = typer.Typer(no_args_is_help=True, help="Datasets on disk: list, describe, verify, import.")
app.add_typer(data_app, name="data")

DataRootOption = typer.Option(None, "--data-root", envvar="REID_BENCH_DATA", help="folder with one sub-folder per dataset")


NO_DATA_ROOT = "not set: pass --data-root DIR or set REID_BENCH_DATA=DIR (one sub-folder per dataset)"


def _dataset_status(name: str, cls: Any, data_root: Optional[str]) -> dict[str, Any]:
    from reid_bench.datasets import FileDataset

    from reid_bench.trial import dataset_root

    if not issubclass(cls, FileDataset):
        return {"name": name, "modality": cls.modality, "status": "generated", "folder": None}
    fields = {f.name for f in dataclasses.fields(cls.options_class)} if cls.options_class else set()
    if "name" in fields:  # generic datasets: one folder per imported dataset, chosen with data.name
        return {"name": name, "modality": cls.modality, "status": "folder chosen with --set data.name", "folder": None}
    if not data_root:
        return {"name": name, "modality": cls.modality, "status": "no data root", "folder": f"<data root>/{name}",
                "obtain": cls.obtain, "data_root": NO_DATA_ROOT}
    folder = dataset_root(cls, Path(data_root).resolve(), name)
    present = bool(folder and folder.is_dir())
    return {"name": name, "modality": cls.modality, "status": "present" if present else "missing",
            "folder": str(folder) if folder else None, "obtain": cls.obtain}


@data_app.command("list", cls=_Command)
def data_list(data_root: Optional[str] = DataRootOption, as_json: bool = typer.Option(False, "--json")) -> None:
    """Every dataset plugin and whether its folder exists under the data root."""
    registry = get_registry()
    rows = []
    for name in registry.names("datasets"):
        try:
            rows.append(_dataset_status(name, registry.dataset(name), data_root))
        except PluginError as exc:
            rows.append({"name": name, "modality": "?", "status": f"error: {exc}", "folder": None})
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"datasets (data root: {data_root or NO_DATA_ROOT})", title_justify="left")
    for col in ("name", "modality", "status", "folder"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["name"], r["modality"], r["status"], r["folder"] or "")
    out.print(table)


@data_app.command("info", cls=_Command)
def data_info(name: str, data_root: Optional[str] = DataRootOption, as_json: bool = typer.Option(False, "--json")) -> None:
    """Format, license, citation, where to obtain, and the folder reid-bench expects."""
    registry = get_registry()
    try:
        cls = registry.dataset(name)
    except PluginError as exc:
        fail(str(exc))
    info = _dataset_info(name, cls)
    info.update({k: v for k, v in _dataset_status(name, cls, data_root).items() if k not in info})
    if as_json:
        print_json(info)
        return
    table = Table(title=f"dataset {name}", title_justify="left", show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in info.items():
        if key not in ("kind", "name"):
            table.add_row(key, escape(readable(value)))
    out.print(table)


@data_app.command("verify", cls=_Command)
def data_verify(
    name: str,
    data_root: Optional[str] = DataRootOption,
    sets: Optional[list[str]] = typer.Option(None, "--set", "-s", help="dataset option: key=value"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Parse every file of a dataset (never from the cache), check counts and content, report
    drops; exit 1 on problems."""
    import time

    from reid_bench.config import ConfigError, apply_overrides, config_dict, parse_sets
    from reid_bench.datasets import DataFormatError, DatasetNotFoundError
    from reid_bench.trial import HarnessData

    registry = get_registry()
    try:
        cls = registry.dataset(name)
        options = {}
        if cls.options_class is not None:
            raw = {k.removeprefix("data."): v for k, v in parse_sets([f"data.{x}" for x in sets or []]).data.items()}
            options = config_dict(apply_overrides(cls.options_class(), raw, f"dataset {name!r}", prefix="data."))
        elif sets:
            raise ConfigError(f"dataset {name!r} has no options")
    except (PluginError, ConfigError) as exc:
        fail(str(exc))
    data = HarnessData(registry, str(Path(data_root).resolve()) if data_root else None, {name: options},
                       cache_dir=None)
    t0 = time.perf_counter()
    try:
        records = data.load(name)
        problems = data.dataset(name).verify()
    except (DataFormatError, DatasetNotFoundError, ValueError) as exc:
        fail(str(exc), 1)
    except OSError as exc:
        fail(os_error(exc), 1)
    seconds = time.perf_counter() - t0
    report: dict[str, Any] = {
        "dataset": name, "records": len(records), "persons": len({r.person for r in records}),
        "seconds": round(seconds, 3),
        "checksum": next(iter(data.checksums.values()), ""), "dropped": next(iter(data.drops.values()), {}),
        "problems": problems,
    }
    if records and hasattr(records[0], "frames"):
        report["frames"] = int(sum(len(r.frames) for r in records))
        report["sessions"] = dict(sorted(Counter(r.session for r in records).items()))
        report["views"] = len({r.view for r in records})
    elif records:
        report["points"] = int(sum(len(r.points) for r in records))
        report["subsets"] = dict(sorted(Counter(r.subset for r in records).items()))
        report["cameras"] = len({r.camera for r in records})
    if as_json:
        print_json(report)
    else:
        for key, value in report.items():
            out.print(f"{key}: {value}", highlight=False, markup=False)
        out.print("[green]ok[/]" if not problems else f"[red]{len(problems)} problem(s)[/]")
    if problems:
        raise typer.Exit(1)


@data_app.command("import", cls=_Command)
def data_import(
    source: str = typer.Argument(..., help="a folder with manifest.csv (and dataset.toml), or the manifest itself"),
    name: str = typer.Option(..., "--name", help="the new dataset's folder name under the data root"),
    data_root: Optional[str] = DataRootOption,
    modality: Optional[str] = typer.Option(None, "--modality", help="skeleton or pointcloud (else from dataset.toml)"),
    layout: Optional[str] = typer.Option(None, "--layout", help="a built-in layout name or a layout TOML/JSON file"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing dataset of that name"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Bring any skeleton or point-cloud dataset into the generic format (docs/generic-format.md);
    then run it with --protocol generic-closed-set|generic-retrieval --set data.name=NAME."""
    from reid_bench.datasets import DataFormatError
    from reid_bench.datasets.generic import import_dataset

    if not data_root:
        fail("data import needs --data-root (or REID_BENCH_DATA): the folder the dataset is written into")
    try:
        summary = import_dataset(source, data_root, name, modality=modality, layout=layout, overwrite=overwrite)
    except (DataFormatError, ValueError, FileExistsError, FileNotFoundError) as exc:
        fail(str(exc), 1)
    except OSError as exc:  # a full disk, a data root under a file: nothing was left behind
        fail(os_error(exc), 1)
    if as_json:
        print_json(summary)
    else:
        for key, value in summary.items():
            out.print(f"{key}: {value}", highlight=False, markup=False)


# Commands that only read and print. Their process ends without the interpreter's teardown, which
# for torch and the plugins' modules costs 0.3-0.5 s of CPU, more than the command's own work;
# nothing they do needs it (no store, no Ray, no files written; output is flushed first).
READ_ONLY_COMMANDS = frozenset({"info", "list"})


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in READ_ONLY_COMMANDS:
        app()
        return
    try:
        app()
        code = 0
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
