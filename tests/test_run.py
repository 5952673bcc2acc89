"""`reid-bench run` end to end (in process and through Ray) and what it records in MLflow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import TINY_GAIT, mlflow_runs

TINY_MARKET = ["--set", "data.train_identities=8", "--set", "data.test_identities=6", "--set", "data.num_points=512"]


def _no_running(uri: str) -> None:
    _, runs = mlflow_runs(uri)
    assert all(r.info.status != "RUNNING" for r in runs), [(r.info.run_name, r.info.status) for r in runs]


def test_run_in_process_records_parent_and_children(cli, tracking_uri, tmp_path):
    result = cli("run", "--model", "d13", "--protocol", "synth-gait", "--seeds", "2", "--no-ray",
                 "--tracking-uri", tracking_uri, "--json", *TINY_GAIT)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["ok"] and len(payload["trials"]) == 4
    assert {(t["fold"], t["seed"]) for t in payload["trials"]} == {("A", 0), ("A", 1), ("B", 0), ("B", 1)}
    for fold in ("A", "B"):
        stats = payload["summary"][fold]["rank1"]
        assert stats["n"] == 2 and 0.0 <= stats["mean"] <= 1.0

    client, runs = mlflow_runs(tracking_uri)
    parents = [r for r in runs if r.data.tags.get("reid_bench.kind") == "invocation"]
    children = [r for r in runs if r.data.tags.get("reid_bench.kind") == "trial"]
    assert len(parents) == 1 and len(children) == 4
    # MLflow's UI opens a model-training experiment on its runs table, not the GenAI overview
    experiment = client.get_experiment(parents[0].info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    parent = parents[0]
    assert parent.info.run_id == payload["parent_run_id"] and parent.info.status == "FINISHED"
    for fold in ("A", "B"):  # the scores on the parent itself, as fractions like the children's
        scores = [c.data.metrics["rank1"] for c in children if c.data.params["fold"] == fold]
        assert parent.data.metrics[f"rank1/{fold}/mean"] == pytest.approx(sum(scores) / 2)
        assert parent.data.metrics[f"rank1/{fold}/std"] == pytest.approx(payload["summary"][fold]["rank1"]["std"])
        assert 0.0 <= parent.data.metrics[f"nAUC/{fold}/mean"] <= 1.0
    assert {"cmc.svg", "summary.json"} <= {a.path for a in client.list_artifacts(parent.info.run_id)}
    for tag in ("reid_bench.git_commit", "reid_bench.version", "reid_bench.torch_version",
                "reid_bench.ray_version", "reid_bench.mlflow_version"):
        assert parent.data.tags[tag]
    for child in children:
        assert child.info.status == "FINISHED"
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        params = child.data.params
        assert params["model"] == "d13" and params["protocol"] == "synth-gait" and params["protocol_version"] == "1"
        assert params["fold"] in ("A", "B") and params["seed"] in ("0", "1")
        assert params["data.synth-skeletons.identities"] == "6"
        assert "probe.hidden" in params
        metrics = child.data.metrics
        for m in ("rank1", "rank5", "rank10", "nAUC", "roc_auc_micro", "sequence_accuracy", "num_parameters", "wall_time_s"):
            assert m in metrics
        assert any(k.startswith("reid_bench.dataset_checksum.") for k in child.data.tags)
        artifacts = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert {"cmc.csv", "cmc.svg", "config.json", "result.json"} <= artifacts
    # same seed, same numbers: trials are deterministic on CPU
    again = cli("run", "--model", "d13", "--protocol", "synth-gait", "--seeds", "1", "--fold", "A", "--no-ray",
                "--tracking-uri", tracking_uri, "--json", "--rerun", *TINY_GAIT)
    first = [t for t in payload["trials"] if (t["fold"], t["seed"]) == ("A", 0)][0]
    assert json.loads(again.stdout)["trials"][0]["metrics"] == first["metrics"]


def test_in_process_trials_take_the_thread_count_ray_would_give_them(cli, tracking_uri, monkeypatch):
    """--no-ray used torch's default threads (one eval took 268.9 s against 23.8 s under Ray);
    now a trial runs with --cpus-per-trial threads in process too, and the caller's are restored."""
    import torch

    import reid_bench.trial as trial_module

    seen: list[int] = []
    real = trial_module.execute_fit

    def watched(spec, sink, registry=None, resume=None):
        report = sink.progress

        def report_and_look(payload):
            seen.append(torch.get_num_threads())
            report(payload)

        sink.progress = report_and_look
        return real(spec, sink, registry, resume)

    monkeypatch.setattr(trial_module, "execute_fit", watched)
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        result = cli("run", "--model", "d13", "--protocol", "synth-gait", "--seeds", "1", "--fold", "A", "--no-ray",
                     "--cpus-per-trial", "1", "--tracking-uri", tracking_uri, "--json", *TINY_GAIT)
        assert result.exit_code == 0, result.output
        assert seen and set(seen) == {1}
        assert json.loads(result.stdout)["trials"][0]["torch_threads"] == 1  # recorded with the result
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


def test_cmc_plots_have_integer_ranks_and_a_thick_mean_per_fold():
    import xml.etree.ElementTree as ET

    import numpy as np

    from reid_bench.plots import cmc_svg, rank_ticks

    seeds_a = [[0.2, 0.5, 0.7, 0.9, 1.0], [0.4, 0.5, 0.9, 1.0, 1.0]]
    root = ET.fromstring(cmc_svg({"fold A": seeds_a, "fold B": [[0.1, 0.3, 0.6, 0.6, 0.8]]}, "a <title> & more"))
    ns = {"s": "http://www.w3.org/2000/svg"}
    assert root.find("s:text[@class='title']", ns).text == "a <title> & more"
    # the axes' own tick labels give the mapping back from pixels to (rank, percent)
    xt = {int(t.text): float(t.get("x")) for t in root.findall("s:text[@class='xtick']", ns)}
    yt = {int(t.text): float(t.get("y")) - 3.5 for t in root.findall("s:text[@class='ytick']", ns)}
    assert sorted(xt) == [1, 2, 3, 4, 5] and sorted(yt) == [0, 20, 40, 60, 80, 100]
    means = root.findall("s:polyline[@class='mean']", ns)
    assert [m.get("data-label") for m in means] == ["fold A: mean of 2", "fold B"]
    assert all(m.get("stroke-width") == "2" for m in means)
    assert len(root.findall("s:polyline[@class='seed']", ns)) == 2  # fold A's two seeds, thin
    pts = np.array([p.split(",") for p in means[0].get("points").split()], dtype=float)
    ranks = 1 + (pts[:, 0] - xt[1]) / (xt[2] - xt[1])
    percent = (pts[:, 1] - yt[0]) / (yt[100] - yt[0]) * 100
    np.testing.assert_allclose(ranks, [1, 2, 3, 4, 5], atol=1e-3)
    np.testing.assert_allclose(percent, [30, 50, 80, 95, 100], atol=0.05)  # mean over seeds, in percent
    assert rank_ticks(50) == [1, 10, 20, 30, 40, 50] and rank_ticks(12) == [1, 2, 4, 6, 8, 10, 12]


def test_a_finished_configuration_is_skipped_unless_rerun(cli, tracking_uri, monkeypatch):
    """As in MTEB and lm-eval: asking again for what the store already holds costs nothing."""
    args = ("run", "--model", "d13", "--protocol", "synth-gait", "--seeds", "1", "--no-ray",
            "--tracking-uri", tracking_uri, *TINY_GAIT)
    first = json.loads(cli(*args, "--fold", "A", "--json").stdout)
    assert first["skipped"] == [] and first["ok"]

    both = json.loads(cli(*args, "--json").stdout)  # fold A finished earlier; only B runs
    assert both["skipped"] == ["A/seed0"] and both["ok"]
    by_fold = {t["fold"]: t for t in both["trials"]}
    assert by_fold["A"]["run_id"] == first["trials"][0]["run_id"]
    assert by_fold["A"]["metrics"]["rank1"] == first["trials"][0]["metrics"]["rank1"]
    client, runs = mlflow_runs(tracking_uri)
    assert sum(r.data.tags.get("reid_bench.kind") == "trial" for r in runs) == 2

    again = cli(*args)  # everything finished: nothing starts, nothing is written
    assert again.exit_code == 0, again.output
    assert "skipped all 2 of 2 trials" in again.output and "--rerun" in again.output
    _, runs_after = mlflow_runs(tracking_uri)
    assert len(runs_after) == len(runs)

    rerun = json.loads(cli(*args, "--rerun", "--json").stdout)
    assert rerun["skipped"] == [] and {t["run_id"] for t in rerun["trials"]}.isdisjoint(
        {t["run_id"] for t in both["trials"]})
    other = json.loads(cli(*args, "--set", "data.identities=5", "--json").stdout)  # another configuration
    assert other["skipped"] == []
    _no_running(tracking_uri)

    # the lookup reads the sqlite file directly (no MLflow import); it finds what MLflow finds
    from reid_bench import tracking

    want = {"reid_bench.kind": "trial", "reid_bench.model": "d13", "reid_bench.protocol": "synth-gait"}
    fast = tracking.finished_runs_in_sqlite(tracking.sqlite_path(tracking_uri), want)
    slow = client.search_runs([client.get_experiment_by_name(tracking.EXPERIMENT).experiment_id],
                              filter_string=" and ".join(f"tags.`{k}` = '{v}'" for k, v in want.items())
                              + " and attributes.status = 'FINISHED'", order_by=["attributes.start_time DESC"])
    assert [r.info.run_id for r in fast] == [r.info.run_id for r in slow] and len(fast) == 6
    assert [r.data.metrics["rank1"] for r in fast] == [r.data.metrics["rank1"] for r in slow]
    assert fast[0].data.tags == slow[0].data.tags

    # the runner's lookup by fingerprint, through the sqlite fast path and through MLflow's search
    from reid_bench import runner

    tags = fast[0].data.tags
    lookup = ("d13", "synth-gait", tags["reid_bench.protocol_version"], tags["reid_bench.config_fingerprint"],
              ["A/seed0", "B/seed0", "C/seed0"])
    direct = runner.finished_earlier(tracking_uri, *lookup)
    monkeypatch.setattr(tracking, "finished_runs_in_sqlite", lambda *a: None)
    searched = runner.finished_earlier(tracking_uri, *lookup)
    assert sorted(direct) == sorted(searched) == ["A/seed0", "B/seed0"]
    assert {k: r.info.run_id for k, r in direct.items()} == {k: r.info.run_id for k, r in searched.items()}


def test_learned_model_reports_training_curves(cli, tracking_uri):
    result = cli("run", "--model", "gait-lstm", "--protocol", "synth-gait", "--seeds", "1", "--fold", "A", "--no-ray",
                 "--tracking-uri", tracking_uri, "--json", "--set", "epochs=2", *TINY_GAIT)
    assert result.exit_code == 0, result.output
    client, runs = mlflow_runs(tracking_uri)
    child = [r for r in runs if r.data.tags.get("reid_bench.kind") == "trial"][0]
    history = client.get_metric_history(child.info.run_id, "train/loss")
    assert [m.step for m in history] == [0, 1] or [m.step for m in history] == [1, 2]
    assert child.data.metrics["num_parameters"] > 0


def test_log_mode_prints_a_line_per_epoch_with_an_eta(cli, tracking_uri):
    """Without a terminal (CI, nohup) each trial says where it is once an epoch, with an ETA."""
    import re

    result = cli("run", "--model", "gait-lstm", "--protocol", "synth-gait", "--seeds", "1", "--fold", "A", "--no-ray",
                 "--tracking-uri", tracking_uri, "--set", "epochs=3", *TINY_GAIT)
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("[trial A/seed0] epoch")]
    assert len(lines) == 3, result.stderr
    for n, line in enumerate(lines, 1):
        assert re.fullmatch(rf"\[trial A/seed0\] epoch {n}/3 loss \d+\.\d{{3}}  \[{round(100 * n / 3)}%, \d+s in"
                            r"(, ETA \d+s)?\]", line), line
    assert "ETA" in lines[0] and "ETA" not in lines[-1]  # nothing left to wait for after the last epoch
    assert result.stderr.index(lines[-1]) < result.stderr.index("[trial A/seed0] finished")


def test_point_cloud_run(cli, tracking_uri):
    result = cli("run", "--model", "cloud-hist", "--protocol", "synth-market", "--seeds", "1", "--no-ray",
                 "--tracking-uri", tracking_uri, "--json", *TINY_MARKET)
    assert result.exit_code == 0, result.output
    trial = json.loads(result.stdout)["trials"][0]
    assert set(trial["metrics"]) >= {"rank1", "mAP", "mINP"}


def test_failing_trial_is_recorded_failed_with_traceback(cli, tracking_uri):
    # No sequences in the test sessions: the fold cannot be built, the trial fails at run time.
    result = cli("run", "--model", "d13", "--protocol", "synth-gait", "--seeds", "1", "--fold", "A", "--no-ray",
                 "--tracking-uri", tracking_uri, "--set", "data.identities=4", "--set", "data.test_sequences=0")
    assert result.exit_code == 1
    client, runs = mlflow_runs(tracking_uri)
    child = [r for r in runs if r.data.tags.get("reid_bench.kind") == "trial"][0]
    parent = [r for r in runs if r.data.tags.get("reid_bench.kind") == "invocation"][0]
    assert child.info.status == "FAILED" and parent.info.status == "FAILED"
    local = client.download_artifacts(child.info.run_id, "traceback.txt")
    assert "Traceback" in Path(local).read_text()
    _no_running(tracking_uri)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--set", "hiden=3"], "unknown --set key 'hiden'"),
        (["--set", "probe.epochs=many"], "expected an integer"),
        (["--set", "data.identitis=3"], "unknown --set key 'data.identitis'"),
        (["--gpus-per-trial", "1"], "no trial was started"),
        (["--fold", "Z"], "has no fold 'Z'"),
        (["--seeds", "0"], "at least 1"),
    ],
)
def test_bad_requests_fail_before_anything_is_written(cli, tracking_uri, extra, message):
    result = cli("run", "--model", "d13", "--protocol", "synth-gait", "--no-ray", "--tracking-uri", tracking_uri, *extra)
    assert result.exit_code == 2, result.output
    assert message in result.output
    _, runs = mlflow_runs(tracking_uri)
    assert runs == []


def test_model_and_protocol_modalities_must_match(cli, tracking_uri):
    result = cli("run", "--model", "d13", "--protocol", "synth-market", "--no-ray", "--tracking-uri", tracking_uri)
    assert result.exit_code == 2 and "works on skeleton data" in result.output


@pytest.mark.parametrize("uri_kind", ["missing-folder", "file-store", "relative"])
def test_unusable_tracking_uri(cli, tmp_path, uri_kind):
    uri = {"missing-folder": f"sqlite:///{tmp_path}/nope/mlflow.db", "file-store": f"file://{tmp_path}/mlruns",
           "relative": "sqlite:///relative.db"}[uri_kind]
    result = cli("run", "--model", "d13", "--protocol", "synth-gait", "--no-ray", "--tracking-uri", uri)
    assert result.exit_code == 2
    assert "tracking URI" in result.output
    assert not (tmp_path / "nope").exists()


@pytest.mark.ray
def test_run_through_ray_and_refuse_gpus(cli, tracking_uri):
    result = cli("run", "--model", "d13", "--protocol", "synth-gait", "--seeds", "2", "--fold", "A",
                 "--tracking-uri", tracking_uri, "--json", *TINY_GAIT)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["ok"] and len(payload["trials"]) == 2
    _, runs = mlflow_runs(tracking_uri)
    children = [r for r in runs if r.data.tags.get("reid_bench.kind") == "trial"]
    assert sorted(r.data.tags["reid_bench.seed"] for r in children) == ["0", "1"]
    assert all(r.info.status == "FINISHED" for r in runs)
    assert all(r.data.params.get("dispatcher") in (None, "ray") for r in runs)

    # The local Ray instance has no GPU: refused before any trial or MLflow run starts.
    before = len(runs)
    refused = cli("run", "--model", "d13", "--protocol", "synth-gait", "--gpus-per-trial", "0.5",
                  "--tracking-uri", tracking_uri, *TINY_GAIT)
    assert refused.exit_code == 2 and "no trial was started" in refused.output
    assert len(mlflow_runs(tracking_uri)[1]) == before
