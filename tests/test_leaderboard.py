"""Leaderboards: results exported from MLflow as data, rows aggregated across invocations,
incomplete rows, paper references, determinism, all-or-nothing output."""

from __future__ import annotations

import json
import os
import re

from conftest import REPO, TINY_GAIT
from reid_bench import tracking
from reid_bench.leaderboard import build_leaderboards
from reid_bench.results import SCHEMA, load_results


def _record_invocation(uri, model, fingerprint, results, expected, overrides="{}", protocol="synth-gait"):
    """Write an invocation the way the runner does: parent + one child per (fold, seed, metrics)."""
    client, exp = tracking.connect(uri)
    rec = tracking.Recorder(client, exp, uri)
    tags = {"reid_bench.model": model, "reid_bench.protocol": protocol, "reid_bench.protocol_version": "1",
            "reid_bench.config_fingerprint": fingerprint, "reid_bench.overrides": overrides,
            "reid_bench.mode": "closed-set", "reid_bench.main_score": "rank1", "reid_bench.git_commit": "abc123"}
    rec.start_parent(f"{model}@{protocol}", {"model": model},
                     dict(tags, **{"reid_bench.expected_trials": json.dumps(expected)}))
    for fold, seed, rank1 in results:
        key = f"{fold}/seed{seed}"
        rec.start_trial(key, key, {"fold": fold, "seed": str(seed)},
                        dict(tags, **{"reid_bench.fold": fold, "reid_bench.seed": str(seed)}))
        rec.finish_trial(key, {"model": model, "protocol": protocol, "fold": fold, "seed": seed,
                               "metrics": {"rank1": rank1, "rank5": min(1.0, rank1 + 0.2), "nAUC": 0.8},
                               "cmc": [rank1, 1.0], "per_query": {"true_class_rank": [1, 2]},
                               "num_parameters": 1234, "timings": {"trial_s": 1.0}, "config": {"model": {"k": 1}},
                               "fold_info": {}})
    rec.end_parent("FINISHED")
    return rec.parent_id


def _fold(md: str, fold: str, last: bool = False) -> str:
    part = md.split(f"## Fold {fold}")[1]
    return part if last else part.split("## Fold")[0]


def test_mean_std_ranking_and_incomplete_rows(tmp_path, tracking_uri):
    expected = ["A/seed0", "A/seed1", "A/seed2", "B/seed0", "B/seed1", "B/seed2"]
    strong = _record_invocation(tracking_uri, "strong", "f1" * 6,
                                [("A", 0, 0.60), ("A", 1, 0.70), ("A", 2, 0.80), ("B", 0, 0.5), ("B", 1, 0.5), ("B", 2, 0.5)], expected)
    _record_invocation(tracking_uri, "weak", "f2" * 6,
                       [("A", 0, 0.30), ("A", 1, 0.30), ("A", 2, 0.30), ("B", 0, 0.9), ("B", 1, 0.9)], expected,
                       overrides=json.dumps({"model.lr": "0.1"}))
    out = tmp_path / "lb"
    build_leaderboards(out, tmp_path / "results", tracking_uri)
    md = (out / "synth-gait.md").read_text()
    fold_a, fold_b = _fold(md, "A"), _fold(md, "B", last=True)
    # mean 70.0, sample std 10.0 over 3 seeds; strong ranks first on A
    assert "| 1 | strong | default | 70.0 ± 10.0 |" in fold_a
    assert "| 2 | weak | lr=0.1 | 30.0 ± 0.0 |" in fold_a
    assert strong[:8] in fold_a and "abc123" in fold_a
    # weak has 2 of 3 seeds on B: marked, not averaged, not ranked above a complete row
    weak_b = [line for line in fold_b.splitlines() if "| weak |" in line][0]
    assert "2/3 incomplete" in weak_b and "| — | weak |" in weak_b and "90.0" not in weak_b
    assert fold_b.index("| strong |") < fold_b.index("| weak |")
    data = json.loads((out / "leaderboard.json").read_text())
    rows = data["protocols"]["synth-gait"]["versions"]["1"]["B"]
    assert [r["complete"] for r in rows] == [True, False]
    assert rows[1]["metrics"]["rank1"]["mean"] is None
    assert rows[0]["per_seed"]["1"]["rank1"] == 50.0  # per-seed values, percent
    # the bootstrap resamples the recorded per-query outcomes (the same two queries for both rows
    # here, so weak ties with strong on them); an incomplete row gets none
    rows_a = data["protocols"]["synth-gait"]["versions"]["1"]["A"]
    assert rows_a[1]["bootstrap"]["vs_top"] == {"difference": 0.0, "ci95": [0.0, 0.0], "tied": True}
    assert rows[1]["bootstrap"] is None
    assert "| 2 | weak | lr=0.1 | 30.0 ± 0.0 | 50.0 ± 0.0 | 80.0 ± 0.0 | +0.0 [+0.0, +0.0] tied |" in fold_a
    assert "synth-gait.html" in (out / "index.html").read_text() and (out / "synth-gait.html").exists()


def test_a_row_aggregates_every_invocation_of_its_config(tmp_path, tracking_uri):
    """A 1-seed smoke run after a 3-seed run adds nothing new; a run of the missing seeds completes a row."""
    three = ["A/seed0", "A/seed1", "A/seed2"]
    _record_invocation(tracking_uri, "m", "f1" * 6, [("A", 0, 0.40), ("A", 1, 0.50), ("A", 2, 0.60)], three)
    _record_invocation(tracking_uri, "m", "f1" * 6, [("A", 0, 0.40)], ["A/seed0"])          # the smoke run
    _record_invocation(tracking_uri, "one", "f9" * 6, [("A", 0, 0.42)], ["A/seed0"])        # a 1-seed row
    _record_invocation(tracking_uri, "split", "f3" * 6, [("A", 0, 0.2)], three)             # seeds 1, 2 failed...
    _record_invocation(tracking_uri, "split", "f3" * 6, [("A", 1, 0.3), ("A", 2, 0.4)], ["A/seed1", "A/seed2"])  # ...rerun
    out = tmp_path / "lb"
    build_leaderboards(out, tmp_path / "results", tracking_uri)
    md = _fold((out / "synth-gait.md").read_text(), "A", last=True)
    row = lambda model: next(line for line in md.splitlines() if f"| {model} |" in line)  # noqa: E731
    # the seeds come first, before the rank; a row run with fewer seeds than the protocol's is marked
    assert row("m").startswith("| 3/3 | 1 | m |") and "50.0 ± 10.0" in row("m")
    assert row("one").startswith("| 1/1, protocol 3 | 2 | one |")
    assert "| 42.0 |" in row("one") and "±" not in row("one").split("|")[5]
    assert row("split").startswith("| 3/3 | 3 | split |") and "30.0 ± 10.0" in row("split")
    site = json.loads(re.search(r'<script id="board-data" type="application/json">(.*?)</script>',
                                (out / "synth-gait.html").read_text(), re.S).group(1))
    marked = {r["model"]: r["fewer_seeds"] for s in site["sections"] for r in s["rows"]}
    assert marked == {"m": False, "one": True, "split": False}


def test_results_are_data_and_boards_rebuild_from_them_alone(tmp_path, tracking_uri):
    expected = ["A/seed0", "A/seed1"]
    _record_invocation(tracking_uri, "m", "f1" * 6, [("A", 0, 0.40), ("A", 1, 0.50)], expected)
    results, first, second = tmp_path / "results", tmp_path / "one", tmp_path / "two"
    report = build_leaderboards(first, results, tracking_uri)
    assert report["new_trials"] == 2
    doc_path = results / "synth-gait" / "v1" / "m" / "f1f1f1f1f1f1.json"
    doc = json.loads(doc_path.read_text())
    assert doc["schema"] == SCHEMA and doc["config"] == {"model": {"k": 1}}
    assert [(t["fold"], t["seed"], t["metrics"]["rank1"], t["commit"]) for t in doc["trials"]] == [
        ("A", 0, 0.4, "abc123"), ("A", 1, 0.5, "abc123")]
    assert doc["trials"][0]["cmc"] == [0.4, 1.0] and doc["trials"][0]["per_query"] == {"true_class_rank": [1, 2]}
    build_leaderboards(second, results, None)  # the results alone
    for name in ("synth-gait.md", "leaderboard.json", "index.html", "synth-gait.html", "site.js"):
        assert (first / name).read_bytes() == (second / name).read_bytes()
    before = {p: p.stat().st_mtime_ns for p in results.rglob("*.json")}
    again = build_leaderboards(first, results, tracking_uri)  # nothing new: nothing rewritten
    assert again["new_trials"] == 0 and again["written"] == []
    assert {p: p.stat().st_mtime_ns for p in results.rglob("*.json")} == before


def test_paper_value_only_on_the_paper_configuration(tmp_path):
    """`ias` carries SM-SGE's table (d13: Rank-1 33.8 on fold A); results written by hand."""
    def write(fingerprint, overrides):
        doc = {"schema": SCHEMA, "protocol": "ias", "protocol_version": "1", "model": "d13", "mode": "closed-set",
               "main_score": "rank1", "config_fingerprint": fingerprint, "config_diff": overrides, "tuned": None,
               "config": {}, "expected_trials": ["A/seed0"],
               "trials": [{"fold": "A", "seed": 0, "run_id": fingerprint * 2, "invocation": fingerprint * 3,
                           "end_time": 1, "metrics": {"rank1": 0.3, "rank5": 0.6, "nAUC": 0.7}}]}
        path = tmp_path / "results" / "ias" / "v1" / "d13" / f"{fingerprint}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc))
    write("aaaaaaaaaaaa", {})
    write("bbbbbbbbbbbb", {"model.statistics": "mean"})
    build_leaderboards(tmp_path / "lb", tmp_path / "results")
    md = _fold((tmp_path / "lb" / "ias.md").read_text(), "A", last=True)
    paper_row = md.split("| default |")[1].splitlines()[0]
    # measured 30.0 against the published 33.8, marked as read from a figure (SM-SGE's results
    # image) and a number with no training (D13 + KNN), the marks explained under the table
    assert "| 33.8 §° | -3.8 | paper config |" in paper_row
    legend = md.split("| statistics=mean |")[1].split("\n\n")[1]
    assert legend.startswith("Paper: the published value, from [1]") and "§ read from a figure" in legend
    assert "° no training" in legend and "†" not in legend
    other = md.split("| statistics=mean |")[1].splitlines()[0]
    assert "| — | — | config differs: statistics |" in other


def test_errors_write_nothing(tmp_path, tracking_uri, cli):
    out, results = tmp_path / "lb", tmp_path / "results"
    missing = f"sqlite:///{tmp_path / 'typo' / 'mlflow.db'}"
    result = cli("leaderboard", "--tracking-uri", missing, "--out", str(out), "--results", str(results))
    assert result.exit_code == 1 and "does not exist" in result.output
    absent = tmp_path / "absent.db"
    result = cli("leaderboard", "--tracking-uri", f"sqlite:///{absent}", "--out", str(out), "--results", str(results))
    assert result.exit_code == 1 and "no tracking store" in result.output and not absent.exists()
    _record_invocation(tracking_uri, "m", "f1" * 6, [("A", 0, 0.1)], ["A/seed0"])
    result = cli("leaderboard", "--tracking-uri", tracking_uri, "--out", str(out), "--results", str(results),
                 "--protocol", "synth-market")
    assert result.exit_code == 1 and "no finished runs for protocol 'synth-market'" in result.output
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = cli("leaderboard", "--tracking-uri", tracking_uri, "--out", str(blocker / "lb"), "--results", str(results))
    assert result.exit_code == 1 and "is a file" in result.output and len(result.output.strip().splitlines()) == 1
    assert not out.exists() and not results.exists()
    (results / "synth-gait" / "v1" / "m").mkdir(parents=True)
    (results / "synth-gait" / "v1" / "m" / "f1f1f1f1f1f1.json").write_text('{"schema": \n')
    result = cli("leaderboard", "--tracking-uri", tracking_uri, "--out", str(out), "--results", str(results))
    assert result.exit_code == 1 and "f1f1f1f1f1f1.json:2: not valid JSON" in result.output
    assert not out.exists()


def test_run_then_leaderboard_cli(cli, tracking_uri, tmp_path):
    assert cli("run", "--model", "d13", "--protocol", "synth-gait", "--seeds", "2", "--no-ray",
               "--tracking-uri", tracking_uri, *TINY_GAIT).exit_code == 0
    result = cli("leaderboard", "--tracking-uri", tracking_uri, "--out", str(tmp_path / "lb"),
                 "--results", str(tmp_path / "results"))
    assert result.exit_code == 0, result.output
    md = (tmp_path / "lb" / "synth-gait.md").read_text()
    row = [line for line in _fold(md, "A").splitlines() if "| d13 |" in line][0]
    assert "| 1 | d13 | data.identities=6" in row and "2/2" in row and " ± " in row
    (doc,) = load_results(tmp_path / "results").values()
    trial = doc["trials"][0]
    assert len(trial["per_query"]["true_class_rank"]) > 0 and trial["cmc"][-1] == 1.0
    assert trial["versions"]["torch"] and trial["dataset_checksums"] and doc["config"]["model"]["statistics"]


def test_committed_boards_regenerate_from_committed_results(tmp_path):
    out = tmp_path / "boards"
    build_leaderboards(out, REPO / "results")
    committed = REPO / "leaderboards"
    names = sorted(p.name for p in committed.iterdir() if p.is_file())
    assert names == sorted(p.name for p in out.iterdir())
    for name in names:
        assert (out / name).read_bytes() == (committed / name).read_bytes(), name


def test_leaderboard_without_a_store_reads_results_only(cli, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    result = cli("leaderboard", "--results", str(REPO / "results"), "--out", str(tmp_path / "lb"))
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "mlflow.db").exists()  # the default store was not created
    assert os.listdir(tmp_path / "lb")


def test_rows_link_to_their_mlflow_runs_when_the_store_is_a_server(tmp_path, tracking_uri):
    from reid_bench.leaderboard import collect, site_data
    from reid_bench.results import export_store
    from reid_bench.site import render_site

    _record_invocation(tracking_uri, "m", "f1" * 6, [("A", 0, 0.40)], ["A/seed0"])
    client, exp = tracking.connect(tracking_uri, create=False)
    docs = export_store(client, exp, {}, server_url="http://mlflow.lab:5000/").documents
    trial = next(iter(docs.values()))["trials"][0]
    assert trial["mlflow_url"] == f"http://mlflow.lab:5000/#/experiments/{exp}/runs/{trial['run_id']}"
    page = render_site({name: site_data(board) for name, board in collect(docs).items()})["synth-gait.html"]
    assert json.dumps(trial["mlflow_url"]) in page  # the row's seed 0 links there
    plain = export_store(client, exp, {}).documents  # a sqlite store has no pages to link to
    assert "mlflow_url" not in next(iter(plain.values()))["trials"][0]
