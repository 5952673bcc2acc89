"""The project's bad-input corpus: every case goes through the CLI and must end with the right
exit code, one line naming the key, file or line at fault, and nothing half-written (no store
created by a refused request, no run left RUNNING, no partial output file).

Cases are grouped by what they refuse, one parametrized test per group, with the case's name as
its test id (``test_bad_request_is_refused[negative_epochs]``). A case that needs nothing on disk
is a row of ``REQUESTS``; one that does is a function that prepares ``tmp_path`` and returns a
``Case``, listed in its group's list next to the group's test. Cases that need a process of their own (resource limits, timing) run the console entry
point as a subprocess; the rest run in-process through Typer's runner.
"""

from __future__ import annotations

import inspect
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from conftest import TINY_GAIT
from formats_kinect import write_ias_lab
from formats_shared import kinect_frames, write_generic_source

GAIT = ["--model", "gait-lstm", "--protocol", "synth-gait", "--no-ray", "--seeds", "1", "--fold", "A", *TINY_GAIT]
D13 = ["--model", "d13", "--protocol", "synth-gait", "--no-ray", "--seeds", "1", "--fold", "A", *TINY_GAIT]


@dataclass
class Case:
    args: list[str]
    code: int
    needle: str
    subprocess: bool = False
    limit_file_size: int | None = None
    env: dict[str, str] = field(default_factory=dict)
    max_seconds: float | None = None
    #: Files or folders that must not exist afterwards (besides the default store).
    absent: list[Path] = field(default_factory=list)
    #: A store that existed before: afterwards it holds no RUNNING run and no more runs than before.
    store: Path | None = None
    check: Callable[[], None] | None = None


def _store(tmp: Path) -> Path:
    return tmp / "mlflow.db"


def _uri(path: Path) -> str:
    return f"sqlite:///{path}"


def _ias(tmp: Path) -> Path:
    write_ias_lab(tmp / "data", persons=3, frames=8)
    return tmp / "data"


def _result_doc(root: Path) -> Path:
    from reid_bench.results import SCHEMA

    path = root / "synth-gait" / "v1" / "m" / "0123456789ab.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "schema": SCHEMA, "protocol": "synth-gait", "protocol_version": "1", "model": "m", "mode": "closed-set",
        "main_score": "rank1", "config_fingerprint": "0123456789ab", "config_diff": {}, "tuned": None, "config": {},
        "expected_trials": ["A/seed0"], "trials": [{"fold": "A", "seed": 0, "run_id": "r", "invocation": "i",
                                                    "end_time": 1, "metrics": {"rank1": 0.5}}]}))
    return path


def _request(case_id: str, args: list[str], code: int, needle: str, **expected) -> pytest.ParameterSet:
    return pytest.param(Case(args, code, needle, **expected), id=case_id)


def _case_name(prepare: Callable[..., Case]) -> str:
    return prepare.__name__


def _fail(message: str) -> None:
    raise AssertionError(message)


def _limit(size: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    return apply


def _assert_refused(case: Case, tmp_path: Path, cli) -> None:
    """The corpus's contract: the exit code, one ``error:`` line holding the needle, nothing written."""
    store_before = _runs(case.store) if case.store else None
    t0 = time.monotonic()
    if case.subprocess:
        env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"} | case.env
        proc = subprocess.run([sys.executable, "-m", "reid_bench.cli", *case.args], cwd=tmp_path, capture_output=True,
                              text=True, env=env, timeout=600,
                              preexec_fn=_limit(case.limit_file_size) if case.limit_file_size else None)
        code, stderr = proc.returncode, proc.stderr
    else:
        result = cli(*case.args)
        code, stderr = result.exit_code, result.stderr
    elapsed = time.monotonic() - t0
    lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith("warning: ")]
    assert code == case.code, f"exit {code}:\n{stderr[-3000:]}"
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr[-3000:]
    assert case.needle in lines[0], lines[0]
    if case.max_seconds is not None:
        assert elapsed < case.max_seconds, f"took {elapsed:.0f} s"
    assert not _store(tmp_path).exists(), "a refused request created the default store"
    for path in case.absent:
        assert not path.exists(), f"{path} was written"
    if case.store is not None:
        after = _runs(case.store)
        assert after == store_before, "the store changed"
    if case.check is not None:
        case.check()
    assert not list(tmp_path.rglob(".staging-*")) and not list(tmp_path.rglob("*.import-*"))


def _runs(db: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True) as con:
        return sorted(con.execute("SELECT run_uuid, status FROM runs").fetchall())


# ------------------------------------------------------------------------------ requests wrong on their face

REQUESTS = [
    # run: the model's and the harness's options
    _request("negative_epochs", ["run", *GAIT, "--set", "epochs=-5"], 2, "epochs=-5: must be >= 0"),
    _request("unknown_probe", ["run", *GAIT, "--set", "probe.kind=svm"], 2,
             "--set probe.kind='svm': expected one of mlp, knn, adaboost"),
    _request("nan_lr", ["run", *GAIT, "--set", "lr=nan"], 2, "lr=NaN: must be finite"),
    _request("dropout_one", ["run", *GAIT, "--set", "dropout=1.0"], 2, "dropout=1.0: must be >= 0 and < 1"),
    _request("zero_batch", ["run", *GAIT, "--set", "batch_size=0"], 2, "batch_size=0: must be >= 1"),
    _request("probe_hidden_zero", ["run", *D13, "--set", "probe.hidden=0"], 2, "probe.hidden=0: must be >= 1"),
    _request("bad_statistics", ["run", *D13, "--set", "statistics=mean+avg"], 2, "statistics='mean+avg'"),
    _request("bad_scales", ["run", "--model", "smsge", *GAIT[2:], "--set", "scales=hyper,elbow"], 2,
             "scales must be a comma list"),
    _request("unknown_key", ["run", *GAIT, "--set", "epoch=3"], 2,
             "unknown --set key 'epoch' for model 'gait-lstm'; did you mean 'epochs'?"),
    _request("ill_typed", ["run", *GAIT, "--set", "epochs=ten"], 2, "--set epochs='ten': expected an integer"),
    _request("no_equals", ["run", *GAIT, "--set", "epochs"], 2, "--set 'epochs': expected key=value"),
    _request("data_range", ["run", *GAIT, "--set", "data.identities=0"], 2, "data.identities=0: must be >= 1"),
    _request("data_cross_field", ["run", *GAIT, "--set", "data.min_frames=90"], 2, "min_frames (90) <= max_frames (80)"),
    _request("fixed_data", ["run", "--model", "d13", "--protocol", "synth-gait-dev", "--no-ray", "--set", "data.seed=3"],
             2, "--set data.seed: protocol 'synth-gait-dev' fixes this option"),
    _request("probe_on_retrieval", ["run", "--model", "d13", "--protocol", "synth-gait-retrieval", "--no-ray",
                                    "--set", "probe.hidden=8"], 2, "probe.* applies to closed-set protocols only"),
    # run: names, folds, seeds
    _request("unknown_model", ["run", "--model", "smgse", "--protocol", "synth-gait"], 2, "did you mean 'smsge'"),
    _request("unknown_protocol", ["run", "--model", "d13", "--protocol", "synth-giat"], 2, "did you mean 'synth-gait'"),
    _request("modality", ["run", "--model", "cloud-hist", "--protocol", "synth-gait", "--no-ray"], 2,
             "model 'cloud-hist' works on pointcloud data; protocol 'synth-gait' is skeleton"),
    _request("unknown_fold", ["run", *D13, "--fold", "Z"], 2, "protocol 'synth-gait' has no fold 'Z'"),
    _request("zero_seeds", ["run", "--model", "d13", "--protocol", "synth-gait", "--no-ray", "--seeds", "0"], 2,
             "--seeds must be at least 1"),
    _request("seeds_billion", ["run", "--model", "d13", "--protocol", "synth-gait", "--no-ray", "--seeds", "1000000000"],
             2, "--seeds 1000000000: at most 1000", max_seconds=60),
    # run: resources, devices, resuming
    _request("zero_cpus", ["run", *D13, "--cpus-per-trial", "0"], 2, "--cpus-per-trial 0: must be > 0"),
    _request("negative_cpus", ["run", *D13, "--cpus-per-trial", "-1"], 2, "--cpus-per-trial -1: must be > 0"),
    _request("negative_failures", ["run", *D13, "--max-failures", "-1"], 2, "--max-failures -1: must be from 0 to 100"),
    _request("gpus_no_ray", ["run", *D13, "--gpus-per-trial", "1"], 2, "--gpus-per-trial 1: this machine has 0 GPUs"),
    _request("gpus_on_ray", ["run", "--model", "d13", "--protocol", "synth-gait", "--seeds", "1", "--fold", "A",
                             *TINY_GAIT, "--gpus-per-trial", "1"], 2,
             "--gpus-per-trial 1 asks for more GPUs than the Ray cluster has (0)"),
    _request("cpus_beyond_cluster", ["run", "--model", "d13", "--protocol", "synth-gait", "--seeds", "1",
                                     "--fold", "A", *TINY_GAIT, "--cpus-per-trial", "512"], 2,
             "--cpus-per-trial 512 asks for more CPUs than the Ray cluster has"),
    _request("bad_device", ["run", *D13, "--device", "tpu"], 2, "--device 'tpu': expected auto, cpu, cuda or cuda:N"),
    _request("cuda_absent", ["run", *D13, "--device", "cuda:0"], 2, "--device cuda:0: this machine has 0 CUDA devices"),
    _request("resume_without_store", ["run", *D13, "--resume"], 2, "no tracking store at"),
    # data verify
    _request("verify_unknown_dataset", ["data", "verify", "ias-lba"], 2, "did you mean 'ias-lab'"),
    _request("verify_bad_option", ["data", "verify", "synth-skeletons", "--set", "identities=0"], 2,
             "data.identities=0: must be >= 1"),
    # tune
    _request("tune_zero_samples", ["tune", "--model", "gait-lstm", "--protocol", "synth-gait", "--samples", "0"], 2,
             "--samples 0: must be from 1 to 10000"),
    _request("tune_zero_concurrency", ["tune", "--model", "gait-lstm", "--protocol", "synth-gait",
                                       "--max-concurrent", "0"], 2, "--max-concurrent must be at least 1"),
    _request("tune_bad_range", ["tune", "--model", "gait-lstm", "--protocol", "synth-gait", "--set", "epochs=-1"], 2,
             "epochs=-1: must be >= 0"),
]


@pytest.mark.parametrize("case", REQUESTS)
def test_bad_request_is_refused(case, tmp_path, cli):
    _assert_refused(case, tmp_path, cli)


# ------------------------------------------------------------------------------ run: output folders and config files

def storage_under_file(tmp):
    (tmp / "file").write_text("x")
    return Case(["run", *D13, "--storage", str(tmp / "file" / "ray")], 2, "--storage")


def results_dir_under_file(tmp):
    (tmp / "file").write_text("x")
    return Case(["run", *D13, "--results-dir", str(tmp / "file" / "out")], 2, "--results-dir")


def config_seeds_billion(tmp):
    (tmp / "exp.toml").write_text('[[run]]\nmodel = "d13"\nprotocol = "synth-gait"\nseeds = 1000000000\n')
    return Case(["run", "--config", str(tmp / "exp.toml"), "--no-ray"], 2,
                "'seeds' must be an integer from 1 to 1000, got 1000000000", max_seconds=60)


def config_fifo(tmp):
    os.mkfifo(tmp / "exp.toml")
    return Case(["run", "--config", str(tmp / "exp.toml"), "--no-ray"], 2, "exp.toml: not a regular file",
                max_seconds=60)


def tune_bad_space(tmp):
    (tmp / "space.toml").write_text("lr = {loguniform = [1e-4]}\n")
    return Case(["tune", "--model", "gait-lstm", "--protocol", "synth-gait", "--space", str(tmp / "space.toml")], 2,
                f"--space {tmp / 'space.toml'}: 'lr' loguniform")


BAD_FOLDERS_AND_CONFIG_FILES = [
    storage_under_file,
    results_dir_under_file,
    config_seeds_billion,
    config_fifo,
    tune_bad_space,
]


@pytest.mark.parametrize("prepare", BAD_FOLDERS_AND_CONFIG_FILES, ids=_case_name)
def test_bad_folder_or_config_file_is_refused(prepare, tmp_path, cli):
    _assert_refused(prepare(tmp_path), tmp_path, cli)


# ------------------------------------------------------------------------------ run: data

def no_data_root(tmp):
    return Case(["run", "--model", "d13", "--protocol", "ias", "--no-ray"], 2, "pass --data-root")


def absent_data_root(tmp):
    return Case(["run", "--model", "d13", "--protocol", "ias", "--no-ray", "--data-root",
                 str(tmp / "nowhere")], 2, f"{tmp / 'nowhere' / 'ias-lab'} does not exist")


def empty_dataset_folder(tmp):
    (tmp / "data" / "ias-lab").mkdir(parents=True)
    return Case(["run", "--model", "d13", "--protocol", "ias", "--no-ray", "--data-root", str(tmp / "data")], 2,
                "no data files found under")


def folder_named_like_frame(tmp):
    root = _ias(tmp)
    (root / "ias-lab" / "Training" / "001" / "00005_skel.txt").unlink()
    (root / "ias-lab" / "Training" / "001" / "00005_skel.txt").mkdir()
    return Case(["run", "--model", "d13", "--protocol", "ias", "--no-ray", "--data-root", str(root)], 2,
                "Training/001/00005_skel.txt: named like an IAS-Lab frame file (*skel.txt), but it is a folder")


def dangling_frame_link(tmp):
    root = _ias(tmp)
    frame = root / "ias-lab" / "TestingA" / "002" / "00003_skel.txt"
    frame.unlink()
    frame.symlink_to(tmp / "gone.txt")
    return Case(["data", "verify", "ias-lab", "--data-root", str(root)], 1, "00003_skel.txt: named like an IAS-Lab "
                "frame file (*skel.txt), but it is a broken symbolic link")


def bad_frame_line(tmp):
    root = _ias(tmp)
    frame = root / "ias-lab" / "Training" / "002" / "00004_skel.txt"
    lines = frame.read_text().splitlines()
    fields = lines[1].split(",")
    lines[1] = ",".join([fields[0], "abc", *fields[2:]])
    frame.write_text("\n".join(lines) + "\n")
    return Case(["run", "--model", "d13", "--protocol", "ias", "--no-ray", "--data-root", str(root)], 2,
                "Training/002/00004_skel.txt:2: field 'x' is not a number: 'abc'")


def stale_cache_hides_nan(tmp):
    """Parsed once (cached); then a coordinate becomes NaN with size and times kept: the cache
    key is the content, so the run parses again and refuses the file."""
    root = _ias(tmp)
    from reid_bench.registry import get_registry
    from reid_bench.trial import HarnessData

    HarnessData(get_registry(), str(root), {}, cache_dir=tmp / "cache").load("ias-lab")
    frame = root / "ias-lab" / "Training" / "003" / "00002_skel.txt"
    stat, text = frame.stat(), frame.read_text()
    first, rest = text.split("\n", 1)
    fields = first.split(",")
    fields[2] = "nan".ljust(len(fields[2]))  # y of the first joint, same length
    frame.write_text(",".join(fields) + "\n" + rest)
    os.utime(frame, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert frame.stat().st_size == stat.st_size
    return Case(["run", "--model", "d13", "--protocol", "ias", "--no-ray", "--data-root", str(root),
                 "--cache-dir", str(tmp / "cache")], 2, "Training/003/00002_skel.txt")


def verify_never_trusts_the_cache(tmp):
    """As above, but `data verify` with the cache warm: it parses every file regardless."""
    root = _ias(tmp)
    from reid_bench.registry import get_registry
    from reid_bench.trial import HarnessData

    HarnessData(get_registry(), str(root), {}).load("ias-lab")  # the default (per-test) cache
    frame = root / "ias-lab" / "TestingB" / "001" / "00006_skel.txt"
    stat, text = frame.stat(), frame.read_text()
    first, rest = text.split("\n", 1)
    fields = first.split(",")
    fields[3] = "inf".ljust(len(fields[3]))
    frame.write_text(",".join(fields) + "\n" + rest)
    os.utime(frame, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    return Case(["data", "verify", "ias-lab", "--data-root", str(root)], 1,
                "TestingB/001/00006_skel.txt:1: non-finite joint coordinate")


def generic_dotdot(tmp):
    samples = [{"array": kinect_frames(1, 10), "person": 1, "split": "train"},
               {"array": kinect_frames(1, 10, seed=1), "person": 1, "split": "test"}]
    write_generic_source(tmp / "data" / "mine", samples, settings={"modality": "skeleton", "layout": "kinect-v1-20"})
    manifest = tmp / "data" / "mine" / "manifest.csv"
    manifest.write_text(manifest.read_text().replace("arrays/s001.npy", "../s001.npy"))
    return Case(["run", "--model", "d13", "--protocol", "generic-closed-set", "--no-ray", "--data-root",
                 str(tmp / "data"), "--set", "data.name=mine"], 2, "manifest.csv:3: path '../s001.npy' leaves the dataset folder")


def generic_link_out(tmp):
    samples = [{"array": kinect_frames(1, 10), "person": 1, "split": "train"},
               {"array": kinect_frames(1, 10, seed=1), "person": 1, "split": "test"}]
    folder = write_generic_source(tmp / "data" / "mine", samples, settings={"modality": "skeleton", "layout": "kinect-v1-20"})
    np.save(tmp / "secret.npy", kinect_frames(2, 10))
    (folder / "arrays" / "s001.npy").unlink()
    (folder / "arrays" / "s001.npy").symlink_to(tmp / "secret.npy")
    return Case(["run", "--model", "d13", "--protocol", "generic-closed-set", "--no-ray", "--data-root",
                 str(tmp / "data"), "--set", "data.name=mine"], 2, "manifest.csv:3: path 'arrays/s001.npy' is a link to")


def config_second_run_bad_data(tmp):
    """Every run's data is checked before the first run starts: nothing of run 1 is recorded."""
    root = _ias(tmp)
    frame = root / "ias-lab" / "Training" / "002" / "00004_skel.txt"
    lines = frame.read_text().splitlines()
    lines[1] = ",".join([lines[1].split(",")[0], "abc", *lines[1].split(",")[2:]])
    frame.write_text("\n".join(lines) + "\n")
    (tmp / "exp.toml").write_text('[[run]]\nmodel = "d13"\nprotocol = "synth-gait"\nseeds = 1\nfolds = ["A"]\n\n'
                                  '[[run]]\nmodel = "d13"\nprotocol = "ias"\nseeds = 1\n')
    return Case(["run", "--config", str(tmp / "exp.toml"), "--no-ray", "--data-root", str(root)], 2,
                "Training/002/00004_skel.txt:2: field 'x' is not a number")


BAD_DATA = [
    no_data_root,
    absent_data_root,
    empty_dataset_folder,
    folder_named_like_frame,
    dangling_frame_link,
    bad_frame_line,
    stale_cache_hides_nan,
    verify_never_trusts_the_cache,
    generic_dotdot,
    generic_link_out,
    config_second_run_bad_data,
]


@pytest.mark.parametrize("prepare", BAD_DATA, ids=_case_name)
def test_bad_data_is_refused(prepare, tmp_path, cli):
    _assert_refused(prepare(tmp_path), tmp_path, cli)


# ------------------------------------------------------------------------------ the tracking store

def relative_sqlite(tmp):
    return Case(["run", *D13, "--tracking-uri", "sqlite:///relative.db"], 2, "use an absolute path",
                absent=[tmp / "relative.db"])


def store_folder_missing(tmp):
    return Case(["run", *D13, "--tracking-uri", _uri(tmp / "nope" / "m.db")], 2,
                f"folder {tmp / 'nope'} does not exist")


def file_store(tmp):
    return Case(["run", *D13, "--tracking-uri", str(tmp / "mlruns")], 2, "the MLflow file store is not supported",
                absent=[tmp / "mlruns"])


def store_is_folder(tmp):
    (tmp / "store.db").mkdir()
    return Case(["run", *D13, "--tracking-uri", _uri(tmp / "store.db")], 2, "store.db is not a file")


def store_not_sqlite(tmp):
    (tmp / "store.db").write_bytes(b"this is not a database" * 100)
    return Case(["run", *D13, "--tracking-uri", _uri(tmp / "store.db")], 2, "is not a usable SQLite database",
                check=lambda: (tmp / "store.db").read_bytes() == b"this is not a database" * 100 or _fail("store changed"))


def unreachable_server(tmp):
    return Case(["run", *D13, "--tracking-uri", "http://127.0.0.1:9"], 2,
                "cannot reach tracking server 'http://127.0.0.1:9'", subprocess=True, max_seconds=60)


BAD_TRACKING_STORES = [
    relative_sqlite,
    store_folder_missing,
    file_store,
    store_is_folder,
    store_not_sqlite,
    unreachable_server,
]


@pytest.mark.parametrize("prepare", BAD_TRACKING_STORES, ids=_case_name)
def test_bad_tracking_store_is_refused(prepare, tmp_path, cli):
    _assert_refused(prepare(tmp_path), tmp_path, cli)


# ------------------------------------------------------------------------------ a store that exists stays as it was

def _existing_store(tmp: Path) -> Path:
    """A store with one finished invocation in it."""
    from reid_bench import tracking

    db = tmp / "existing.db"
    client, exp = tracking.connect(_uri(db))
    rec = tracking.Recorder(client, exp, _uri(db))
    rec.start_parent("x", {}, {"reid_bench.model": "d13", "reid_bench.protocol": "synth-gait"})
    rec.end_parent("FINISHED")
    return db


@pytest.fixture(scope="module")
def finished_store_template(tmp_path_factory) -> Path:
    """Creating an MLflow store takes seconds (its migrations), so the cases share one and copy it."""
    return _existing_store(tmp_path_factory.mktemp("template"))


@pytest.fixture
def existing_store(finished_store_template, tmp_path) -> Path:
    """The template store, copied into the case's own folder (the cases name that folder)."""
    db = tmp_path / "existing.db"
    shutil.copyfile(finished_store_template, db)
    return db


def resume_unknown_run(tmp, db):
    return Case(["run", *D13, "--resume-run", "0" * 32, "--tracking-uri", _uri(db)], 2, "no such MLflow run", store=db)


def store_disk_full(tmp, db):
    """The store's file system refuses writes past 1 MiB (the file-size limit of the process, as
    a full disk refuses them): refused at once, before any run is opened."""
    return Case(["run", *D13, "--tracking-uri", _uri(db)], 2, f"cannot write in {tmp}", subprocess=True,
                limit_file_size=1 << 20, store=db, max_seconds=120)


def board_out_under_file(tmp, db):
    _result_doc(tmp / "results")
    (tmp / "file").write_text("x")
    return Case(["leaderboard", "--tracking-uri", _uri(db), "--out", str(tmp / "file" / "lb"), "--results",
                 str(tmp / "results")], 1, f"{tmp / 'file'} is a file", store=db)


REFUSED_BESIDE_AN_EXISTING_STORE = [
    resume_unknown_run,
    store_disk_full,
    board_out_under_file,
]


@pytest.mark.parametrize("prepare", REFUSED_BESIDE_AN_EXISTING_STORE, ids=_case_name)
def test_refusal_leaves_an_existing_store_as_it_was(prepare, tmp_path, cli, existing_store):
    _assert_refused(prepare(tmp_path, existing_store), tmp_path, cli)


# ------------------------------------------------------------------------------ leaderboard

def board_typo_store(tmp):
    return Case(["leaderboard", "--tracking-uri", _uri(tmp / "typo" / "mlflow.db"), "--out",
                 str(tmp / "lb")], 1, "does not exist", absent=[tmp / "lb", tmp / "typo"])


def board_absent_store(tmp):
    return Case(["leaderboard", "--tracking-uri", _uri(tmp / "absent.db"), "--out",
                 str(tmp / "lb")], 1, "no tracking store at", absent=[tmp / "absent.db", tmp / "lb"])


def board_bad_json(tmp):
    path = tmp / "results" / "synth-gait" / "v1" / "m" / "f.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"schema":\n  nope}\n')
    return Case(["leaderboard", "--no-store", "--results", str(tmp / "results"), "--out", str(tmp / "lb")], 1,
                "f.json:2: not valid JSON", absent=[tmp / "lb"])


def board_missing_key(tmp):
    path = _result_doc(tmp / "results")
    doc = json.loads(path.read_text())
    del doc["trials"][0]["metrics"]
    path.write_text(json.dumps(doc))
    return Case(["leaderboard", "--no-store", "--results", str(tmp / "results"), "--out", str(tmp / "lb")], 1,
                "trials[0]: 'metrics' is a required property", absent=[tmp / "lb"])


def board_misplaced(tmp):
    path = _result_doc(tmp / "results")
    path.rename(path.with_name("other.json"))
    return Case(["leaderboard", "--no-store", "--results", str(tmp / "results"), "--out", str(tmp / "lb")], 1,
                "other.json: holds synth-gait/1/m/0123456789ab, which belongs in", absent=[tmp / "lb"])


def board_unknown_protocol(tmp):
    _result_doc(tmp / "results")
    return Case(["leaderboard", "--no-store", "--results", str(tmp / "results"), "--out", str(tmp / "lb"),
                 "--protocol", "synth-market"], 1, "no finished runs for protocol 'synth-market'", absent=[tmp / "lb"])


BAD_LEADERBOARD_INPUTS = [
    board_typo_store,
    board_absent_store,
    board_bad_json,
    board_missing_key,
    board_misplaced,
    board_unknown_protocol,
]


@pytest.mark.parametrize("prepare", BAD_LEADERBOARD_INPUTS, ids=_case_name)
def test_leaderboard_refuses_bad_results_or_paths(prepare, tmp_path, cli):
    _assert_refused(prepare(tmp_path), tmp_path, cli)


# ------------------------------------------------------------------------------ data import

def _import_source(tmp: Path) -> Path:
    samples = [{"array": kinect_frames(p, 12, seed=s), "person": p, "split": split}
               for p in (1, 2) for s, split in enumerate(("train", "test"))]
    return write_generic_source(tmp / "src", samples, settings={"modality": "skeleton", "layout": "kinect-v1-20"})


def import_link_out(tmp):
    src = _import_source(tmp)
    np.save(tmp / "outside.npy", kinect_frames(9, 12))
    (src / "arrays" / "s002.npy").unlink()
    (src / "arrays" / "s002.npy").symlink_to(tmp / "outside.npy")
    return Case(["data", "import", str(src), "--name", "mine", "--data-root", str(tmp / "root")], 1,
                "manifest.csv:4: path 'arrays/s002.npy' is a link to", absent=[tmp / "root" / "mine"])


def import_disk_full(tmp):
    src = _import_source(tmp)
    big = np.zeros((4000, 20, 3), dtype=np.float32)  # ~1 MB: past the limit below
    np.save(src / "arrays" / "s003.npy", big + kinect_frames(2, 1)[None, 0])
    return Case(["data", "import", str(src), "--name", "mine", "--data-root", str(tmp / "root")], 1,
                "File too large", subprocess=True, limit_file_size=512 << 10,
                check=lambda: not any((tmp / "root").iterdir()) or _fail(f"left behind: {list((tmp / 'root').iterdir())}"))


def import_root_under_file(tmp):
    src = _import_source(tmp)
    (tmp / "file").write_text("x")
    return Case(["data", "import", str(src), "--name", "mine", "--data-root", str(tmp / "file" / "root")], 1,
                str(tmp / "file"))


def import_no_manifest(tmp):
    (tmp / "src").mkdir()
    return Case(["data", "import", str(tmp / "src"), "--name", "mine", "--data-root", str(tmp / "root")], 1,
                "manifest.csv: missing", absent=[tmp / "root" / "mine"])


def import_plugin_name(tmp):
    src = _import_source(tmp)
    return Case(["data", "import", str(src), "--name", "ias-lab", "--data-root", str(tmp / "root")], 1,
                "is the folder of the installed dataset plugin 'ias-lab'", absent=[tmp / "root" / "ias-lab"])


def manifest_fifo(tmp):
    (tmp / "src").mkdir()
    os.mkfifo(tmp / "src" / "manifest.csv")  # reading it would block for ever
    return Case(["data", "import", str(tmp / "src"), "--name", "mine", "--data-root", str(tmp / "root")], 1,
                "manifest.csv: not a regular file", absent=[tmp / "root" / "mine"], max_seconds=60)


BAD_IMPORT_SOURCES = [
    import_link_out,
    import_disk_full,
    import_root_under_file,
    import_no_manifest,
    import_plugin_name,
    manifest_fifo,
]


@pytest.mark.parametrize("prepare", BAD_IMPORT_SOURCES, ids=_case_name)
def test_data_import_refuses_a_bad_source(prepare, tmp_path, cli):
    _assert_refused(prepare(tmp_path), tmp_path, cli)


# ------------------------------------------------------------------------------ the corpus as a whole

PREPARED_GROUPS = (BAD_FOLDERS_AND_CONFIG_FILES, BAD_DATA, BAD_TRACKING_STORES, REFUSED_BESIDE_AN_EXISTING_STORE,
                   BAD_LEADERBOARD_INPUTS, BAD_IMPORT_SOURCES)
CORPUS_SIZE = len(REQUESTS) + sum(len(group) for group in PREPARED_GROUPS)


def test_the_corpus_is_large():
    assert CORPUS_SIZE >= 40, CORPUS_SIZE


def test_every_case_function_is_in_a_group():
    """A case function left out of its group's list would never run."""
    grouped = {prepare for group in PREPARED_GROUPS for prepare in group}
    defined = {obj for name, obj in globals().items()
               if inspect.isfunction(obj) and obj.__module__ == __name__ and not name.startswith(("_", "test_"))}
    assert sorted(f.__name__ for f in defined - grouped) == []


def test_the_real_full_disk(tmp_path):
    """Where this machine lets the test mount a 2 MiB file system: a store on a disk that is full."""
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a small file system here")
    try:
        store = mount / "mlflow.db"
        filler = mount / "filler"
        with open(filler, "wb") as fh:  # fill the disk
            try:
                while True:
                    fh.write(b"\0" * 65536)
            except OSError:
                pass
        t0 = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "reid_bench.cli", "run", *D13, "--tracking-uri", _uri(store)],
                              cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 2 and "No space left on device" in proc.stderr, proc.stderr[-2000:]
        assert time.monotonic() - t0 < 120 and not store.exists()
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)
