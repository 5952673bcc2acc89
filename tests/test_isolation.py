"""A run keeps to its own Ray instance and shares a tracking store safely."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import TINY_GAIT, mlflow_runs, ray_start_head


def _cli(args, cwd, env=None, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reid_bench.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=timeout)


@pytest.mark.ray
def test_plain_run_ignores_a_foreign_cluster_on_the_host(tmp_path):
    """Someone's `ray start --head` with no CPUs is on this host; a run without --address must not
    join it (it would wait for ever) but start and use an instance of its own."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
    foreign_env = dict(env, RAY_AUTH_MODE="disabled")  # a stranger's cluster, open to anyone
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["run", "--model", "d13", "--protocol", "synth-gait", "--fold", "A", "--seeds", "1", "--json",
            "--tracking-uri", uri, *TINY_GAIT]
    with ray_start_head(foreign_env, num_cpus=0) as address:
        joined = _cli([*args, "--address", address], tmp_path, env=foreign_env)  # asked to join: refused up front
        assert joined.returncode == 2 and "more CPUs than the Ray cluster has (0)" in joined.stderr
        assert not (tmp_path / "mlflow.db").exists()
        own = _cli(args, tmp_path, env=env)
    assert own.returncode == 0, own.stderr[-2000:]
    payload = json.loads(own.stdout)
    assert [t["status"] for t in payload["trials"]] == ["FINISHED"]
    assert all(r.info.status == "FINISHED" for r in mlflow_runs(uri)[1])


def test_local_instance_keeps_token_authentication(tmp_path):
    """Ray's servers listen on every interface: the run's own instance must require a token, and
    the token must not be written to the user's home."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
    env["HOME"] = str(tmp_path / "home")
    probe = ("import os, ray\n"
             "from reid_bench.runner import init_ray\n"
             "from ray._private.authentication.authentication_utils import is_token_auth_enabled\n"
             "init_ray(None)\n"
             "print(os.environ.get('RAY_AUTH_MODE'), is_token_auth_enabled(), len(os.environ.get('RAY_AUTH_TOKEN', '')))\n")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split()[-3:] == ["token", "True", "64"]
    assert not (tmp_path / "home" / ".ray" / "auth_token").exists()
    refused = dict(env, RAY_AUTH_MODE="disabled")  # the user's explicit choice is theirs to make
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=refused, timeout=300)
    assert proc.returncode == 0 and proc.stdout.split()[-3:-1] == ["disabled", "False"], proc.stderr[-2000:]


def test_three_drivers_on_a_fresh_store(tmp_path):
    """Three invocations start together on a store that does not exist yet: the store is created
    once, every trial of every driver is recorded exactly once, nothing is left RUNNING."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    runs = [["--model", "d13", "--protocol", "synth-gait"],
            ["--model", "d13", "--protocol", "synth-gait", "--set", "statistics=mean+std"],
            ["--model", "cloud-hist", "--protocol", "synth-market", "--set", "data.train_identities=6",
             "--set", "data.test_identities=6", "--set", "data.distractors=2", "--set", "data.junk=2"]]
    procs = []
    for extra in runs:
        tiny = TINY_GAIT if "synth-gait" in extra else []
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "reid_bench.cli", "run", *extra, "--seeds", "2", "--no-ray", "--json",
             "--tracking-uri", uri, *tiny], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [p.communicate(timeout=600) for p in procs]
    for proc, (stdout, stderr) in zip(procs, outputs):
        assert proc.returncode == 0, stderr[-2000:]
    _, recorded = mlflow_runs(uri)
    parents = [r for r in recorded if r.data.tags["reid_bench.kind"] == "invocation"]
    trials = [r for r in recorded if r.data.tags["reid_bench.kind"] == "trial"]
    assert len(parents) == 3 and all(r.info.status == "FINISHED" for r in recorded)
    expected = sorted((json.loads(out)["parent_run_id"], t["fold"], t["seed"]) for out, _ in outputs
                      for t in json.loads(out)["trials"])
    got = sorted((r.data.tags["mlflow.parentRunId"], r.data.tags["reid_bench.fold"], int(r.data.tags["reid_bench.seed"]))
                 for r in trials)
    assert got == expected and len(got) == 2 * 2 + 2 * 2 + 2
