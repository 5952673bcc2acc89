"""Leaderboards from MLflow: aggregation, incomplete rows, determinism, all-or-nothing output."""

from __future__ import annotations

import json

import pytest

from conftest import TINY_GAIT
from reid_bench import tracking
from reid_bench.leaderboard import build_leaderboards


def _record_invocation(uri, model, fingerprint, results, expected, overrides="{}"):
    """Write an invocation the way the runner does: parent + one child per (fold, seed, metrics)."""
    client, exp = tracking.connect(uri)
    rec = tracking.Recorder(client, exp, uri)
    tags = {"reid_bench.model": model, "reid_bench.protocol": "synth-gait", "reid_bench.protocol_version": "1",
            "reid_bench.config_fingerprint": fingerprint, "reid_bench.overrides": overrides,
            "reid_bench.git_commit": "abc123"}
    rec.start_parent(f"{model}@synth-gait", {"model": model},
                     dict(tags, **{"reid_bench.expected_trials": json.dumps(expected)}))
    for fold, seed, rank1 in results:
        key = f"{fold}/seed{seed}"
        rec.start_trial(key, key, {"fold": fold, "seed": str(seed)},
                        dict(tags, **{"reid_bench.fold": fold, "reid_bench.seed": str(seed)}))
        rec.finish_trial(key, {"model": model, "protocol": "synth-gait", "fold": fold, "seed": seed,
                               "metrics": {"rank1": rank1, "rank5": min(1.0, rank1 + 0.2), "nAUC": 0.8},
                               "cmc": [rank1, 1.0], "num_parameters": 1234, "timings": {"trial_s": 1.0},
                               "config": {}, "fold_info": {}})
    rec.end_parent("FINISHED")
    return rec.parent_id


def test_mean_std_ranking_and_incomplete_rows(tmp_path, tracking_uri):
    expected = ["A/seed0", "A/seed1", "A/seed2", "B/seed0", "B/seed1", "B/seed2"]
    strong = _record_invocation(tracking_uri, "strong", "f1",
                                [("A", 0, 0.60), ("A", 1, 0.70), ("A", 2, 0.80), ("B", 0, 0.5), ("B", 1, 0.5), ("B", 2, 0.5)], expected)
    _record_invocation(tracking_uri, "weak", "f2",
                       [("A", 0, 0.30), ("A", 1, 0.30), ("A", 2, 0.30), ("B", 0, 0.9), ("B", 1, 0.9)], expected,
                       overrides=json.dumps({"model.lr": "0.1"}))
    out = tmp_path / "lb"
    build_leaderboards(tracking_uri, out)
    md = (out / "synth-gait.md").read_text()
    fold_a = md.split("## Fold A")[1].split("## Fold B")[0]
    fold_b = md.split("## Fold B")[1]
    # mean 70.0, sample std 10.0 over 3 seeds; strong ranks first on A
    assert f"| 1 | strong | default | 70.0 ± 10.0 |" in fold_a
    assert "| 2 | weak | lr=0.1 | 30.0 ± 0.0 |" in fold_a
    assert strong[:8] in fold_a and "abc123" in fold_a
    # weak has 2 of 3 seeds on B: marked, not averaged, not ranked above a complete row
    weak_b = [line for line in fold_b.splitlines() if "| weak |" in line][0]
    assert "2/3 incomplete" in weak_b and "| — | weak |" in weak_b and "90.0" not in weak_b
    assert fold_b.index("| strong |") < fold_b.index("| weak |")
    data = json.loads((out / "leaderboard.json").read_text())
    rows = data["protocols"]["synth-gait"]["folds"]["B"]
    assert [r["complete"] for r in rows] == [True, False]
    assert rows[1]["metrics"]["rank1"]["mean"] is None
    assert "<table>" in (out / "index.html").read_text()


def test_latest_invocation_wins_and_output_is_deterministic(tmp_path, tracking_uri):
    expected = ["A/seed0", "B/seed0"]
    _record_invocation(tracking_uri, "m", "f1", [("A", 0, 0.1), ("B", 0, 0.1)], expected)
    _record_invocation(tracking_uri, "m", "f1", [("A", 0, 0.4), ("B", 0, 0.4)], expected)
    out1, out2 = tmp_path / "one", tmp_path / "two"
    build_leaderboards(tracking_uri, out1)
    build_leaderboards(tracking_uri, out2)
    for name in ("synth-gait.md", "leaderboard.json", "index.html"):
        assert (out1 / name).read_bytes() == (out2 / name).read_bytes()
    md = (out1 / "synth-gait.md").read_text()
    assert md.count("| m |") == 2 and "40.0 ± 0.0" in md and "10.0" not in md


def test_errors_write_nothing(tmp_path, tracking_uri, cli):
    out = tmp_path / "lb"
    result = cli("leaderboard", "--tracking-uri", tracking_uri, "--out", str(out))
    assert result.exit_code == 1 and "no reid-bench runs" in result.output
    assert not out.exists() or not any(out.iterdir())
    _record_invocation(tracking_uri, "m", "f1", [("A", 0, 0.1)], ["A/seed0"])
    result = cli("leaderboard", "--tracking-uri", tracking_uri, "--out", str(out), "--protocol", "synth-market")
    assert result.exit_code == 1 and "no finished runs for protocol 'synth-market'" in result.output
    assert not out.exists() or not any(p.name.endswith(".md") for p in out.iterdir())


def test_run_then_leaderboard_cli(cli, tracking_uri, tmp_path):
    assert cli("run", "--model", "d13", "--protocol", "synth-gait", "--seeds", "2", "--no-ray",
               "--tracking-uri", tracking_uri, *TINY_GAIT).exit_code == 0
    result = cli("leaderboard", "--tracking-uri", tracking_uri, "--out", str(tmp_path / "lb"))
    assert result.exit_code == 0, result.output
    md = (tmp_path / "lb" / "synth-gait.md").read_text()
    row = [line for line in md.split("## Fold A")[1].splitlines() if "| d13 |" in line][0]
    assert "| 1 | d13 | data.identities=6" in row and "2/2" in row and " ± " in row
