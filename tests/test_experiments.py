"""Experiment files: `reid-bench run --config` runs what a .toml file (or a folder of them) lists."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import mlflow_runs
from reid_bench.experiments import Experiment, ExperimentError, load

TINY = '''[run.set]
"data.identities" = 6
"data.train_sequences" = 2
"data.test_sequences" = 1
'''


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_a_file_of_runs_parses_to_the_command_lines_it_stands_for(tmp_path):
    f = _write(tmp_path / "exp" / "a.toml", '''
[[run]]
model = "smsge"
protocol = "synth-gait"
seeds = 3
folds = ["A"]
[run.set]
variant = "baseline"
epochs = 3
view_normalise = true
probe = { hidden = 128 }

[[run]]
model = "d13"
protocol = "synth-gait"
''')
    _write(tmp_path / "exp" / "b" / "c.toml", 'model = "d16"\nprotocol = "synth-gait-retrieval"\n[set]\n"data.identities" = 6\n')
    first, second = load(f)
    assert first == Experiment("smsge", "synth-gait", ("variant=baseline", "epochs=3", "view_normalise=true",
                                                       "probe.hidden=128"), 3, ("A",), f"{f} run 1")
    assert first.command() == ("reid-bench run --model smsge --protocol synth-gait --seeds 3 --fold A --set "
                               "variant=baseline --set epochs=3 --set view_normalise=true --set probe.hidden=128")
    assert second.sets == () and second.seeds is None and second.folds is None
    every = load(tmp_path / "exp")  # a folder: every file below it, sorted by path
    assert [e.model for e in every] == ["smsge", "d13", "d16"] and every[2].sets == ("data.identities=6",)


@pytest.mark.parametrize("text, message", [
    ('[[run]]\nmodel = "d13"\nprotocol = "synth-gait"\nseed = 3\n', "run 1: unknown key 'seed'"),
    ('[[run]]\nmodel = "d13"\n', "run 1: 'protocol' must be a non-empty string"),
    ('[[run]]\nmodel = "d13"\nprotocol = "synth-gait"\nseeds = 0\n', "'seeds' must be an integer from 1 to 1000"),
    ('[[run]]\nmodel = "d13"\nprotocol = "synth-gait"\nfolds = "A"\n', "'folds' must be a non-empty list"),
    ('[[run]]\nmodel = "d13"\nprotocol = "synth-gait"\n[run.set]\nx = [[1]]\n', "set.x: expected a number"),
    ('model = "d13"\nprotocol = [1\n', "exp.toml: "),
    ('title = "x"\n[[run]]\nmodel = "d13"\nprotocol = "synth-gait"\n', "key 'title' next to [[run]] tables"),
])
def test_a_broken_file_is_refused_naming_the_file_and_the_key(tmp_path, text, message):
    with pytest.raises(ExperimentError, match=message.replace("[", r"\[").replace("]", r"\]")) as info:
        load(_write(tmp_path / "exp.toml", text))
    assert str(tmp_path / "exp.toml") in str(info.value)


def test_run_config_runs_every_entry_then_skips_them(cli, tracking_uri, tmp_path):
    f = _write(tmp_path / "exp.toml", f'''
[[run]]
model = "d13"
protocol = "synth-gait"
seeds = 1
folds = ["A"]
{TINY}
[[run]]
model = "d16"
protocol = "synth-gait"
seeds = 1
folds = ["A"]
{TINY}''')
    result = cli("run", "--config", str(f), "--no-ray", "--tracking-uri", tracking_uri, "--json")
    assert result.exit_code == 0, result.output
    runs = json.loads(result.stdout)
    assert [(r["model"], r["ok"], r["skipped"]) for r in runs] == [("d13", True, []), ("d16", True, [])]
    assert runs[1]["source"] == f"{f} run 2"
    _, stored = mlflow_runs(tracking_uri)
    assert sum(r.data.tags.get("reid_bench.kind") == "trial" for r in stored) == 2
    again = cli("run", "--config", str(f), "--no-ray", "--tracking-uri", tracking_uri)
    assert again.exit_code == 0, again.output
    assert again.output.count("skipped all 1 of 1 trials") == 2 and "[2/2] reid-bench run --model d16" in again.output


def test_a_bad_run_anywhere_in_the_file_stops_it_before_anything_is_written(cli, tmp_path):
    f = _write(tmp_path / "exp.toml", f'''
[[run]]
model = "d13"
protocol = "synth-gait"
seeds = 1
{TINY}
[[run]]
model = "d13"
protocol = "synth-gait"
[run.set]
"probe.no_such_key" = 3
''')
    store = tmp_path / "store" / "mlflow.db"
    store.parent.mkdir()
    result = cli("run", "--config", str(f), "--no-ray", "--tracking-uri", f"sqlite:///{store}")
    assert result.exit_code == 2
    assert f"{f} run 2" in result.output and "no_such_key" in result.output
    assert not store.exists()  # the first run did not start either
    mixed = cli("run", "--config", str(f), "--model", "d13")
    assert mixed.exit_code == 2 and "--model belongs in the experiment file" in mixed.output
    neither = cli("run", "--protocol", "synth-gait")
    assert neither.exit_code == 2 and "--config" in neither.output


def test_committed_experiment_files_reproduce_the_committed_results_and_resolve():
    """experiments/ is what `make leaderboards` replays: exactly the configurations in results/."""
    from reid_bench.cli import _request
    from reid_bench.experiments import HEADER, from_results
    from reid_bench.runner import validate
    from reid_bench.registry import get_registry

    repo = Path(__file__).resolve().parent.parent
    docs = [json.loads(p.read_text()) for p in sorted((repo / "results").rglob("*.json"))]
    assert docs, "no committed results"
    registry = get_registry()
    folds = {name: list(registry.protocol(name).folds) for name in {d["protocol"] for d in docs}}
    expected = {rel: HEADER + text for rel, text in from_results(docs, folds).items()}
    on_disk = {str(p.relative_to(repo / "experiments")): p.read_text() for p in (repo / "experiments").rglob("*.toml")}
    assert on_disk == expected
    runs = load(repo / "experiments")
    configurations = {(d["protocol"], d["model"], json.dumps(d["config_label"], sort_keys=True),
                       tuple(sorted(d["expected_trials"]))) for d in docs}  # over protocol versions
    assert len(runs) == len(configurations)
    for run in runs:
        validate(_request(run, None))  # every configuration still resolves against today's plugins


def test_one_configuration_at_two_protocol_versions_is_one_replay():
    from reid_bench.experiments import from_results

    doc = {"protocol": "synth-gait-retrieval", "model": "d13", "config_label": {"model.statistics": "mean+std"},
           "expected_trials": ["A-B/seed0", "B-A/seed0"], "protocol_version": "1"}
    files = from_results([doc, {**doc, "protocol_version": "2"}, {**doc, "config_label": {}}],
                         {"synth-gait-retrieval": ["A-B", "B-A"]})
    assert list(files) == ["synth-gait-retrieval/d13.toml"]
    assert files["synth-gait-retrieval/d13.toml"].count("[[run]]") == 2  # the two configurations, once each
