"""The plugin registry through the real entry-point machinery (fake installed distributions)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import make_fake_distribution, run_subprocess

GOOD_MODEL = '''
from dataclasses import dataclass
import numpy as np
from reid_bench.api import Model

@dataclass
class Cfg:
    scale: float = 1.0

class Echo(Model):
    modality = "skeleton"
    config_class = Cfg
    def fit(self, train, ctx):
        pass
    def embed(self, samples):
        return samples.data.reshape(len(samples), -1).astype(np.float32) * self.config.scale
'''


def test_list_reads_metadata_without_importing_torch():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from reid_bench.cli import app\n"
        "r = CliRunner().invoke(app, ['list', '--json'])\n"
        "assert r.exit_code == 0, r.output\n"
        "data = __import__('json').loads(r.stdout)\n"
        "assert 'd13' in [m['name'] for m in data['models']]\n"
        "heavy = [m for m in ('torch', 'ray', 'mlflow', 'reid_bench_handcrafted.d13') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_list_shows_first_party_plugins_with_distribution():
    proc = run_subprocess(["list", "--json"], check=True)
    data = json.loads(proc.stdout)
    names = {k: {e["name"]: e["distribution"] for e in v} for k, v in data.items()}
    assert {"d13", "cloud-hist"} <= set(names["models"])
    assert names["models"]["d13"].startswith("reid-bench-handcrafted ")  # each plugin folder its own distribution
    assert names["models"]["smsge"].startswith("reid-bench-smsge ")
    assert names["protocols"]["synth-gait"].startswith("reid-bench ")
    assert {"synth-gait", "synth-gait-retrieval", "synth-market", "synth-market-to-duke"} <= set(names["protocols"])
    assert "kinect-v1-20" in names["layouts"]
    proc = run_subprocess(["list", "protocols", "--json"], check=True)
    assert list(json.loads(proc.stdout)) == ["protocols"]


def test_read_only_commands_end_without_teardown_yet_keep_output_and_exit_code():
    """info and list leave through os._exit (see cli.READ_ONLY_COMMANDS): what they printed must
    all arrive, and their exit codes must be those of the command."""
    shown = run_subprocess(["info", "smsge", "--json"], check=True)
    info = json.loads(shown.stdout)  # the whole document, flushed before the process ended
    assert info["kind"] == "model" and "smsge" in json.dumps(info)
    unknown = run_subprocess(["info", "no-such-plugin"])
    assert unknown.returncode == 2 and "no-such-plugin" in unknown.stderr
    bad_kind = run_subprocess(["list", "no-such-kind"])
    assert bad_kind.returncode != 0 and "no-such-kind" in bad_kind.stderr + bad_kind.stdout


def test_broken_plugin_is_isolated(tmp_path):
    site = make_fake_distribution(
        tmp_path / "site", "broken-plugin",
        {"reid_bench.models": {"broken": "broken_mod:Model", "echo": "echo_mod:Echo"}},
        {"broken_mod": "raise ImportError('this plugin is broken on purpose')\n", "echo_mod": GOOD_MODEL},
    )
    listed = run_subprocess(["list", "models", "--json"], extra_path=[site], check=True)
    names = [m["name"] for m in json.loads(listed.stdout)["models"]]
    assert "broken" in names and "echo" in names and "d13" in names

    status = run_subprocess(["plugins", "--json"], extra_path=[site], check=True)
    by_name = {(s["kind"], s["name"]): s for s in json.loads(status.stdout)}
    broken = by_name[("models", "broken")]
    assert not broken["loaded"]
    assert "broken on purpose" in broken["error"] and "broken-plugin" in broken["error"]
    assert by_name[("models", "echo")]["loaded"]
    assert by_name[("models", "d13")]["loaded"]
    assert by_name[("protocols", "synth-gait")]["loaded"]

    info = run_subprocess(["info", "d13", "--json"], extra_path=[site], check=True)
    assert json.loads(info.stdout)["modality"] == "skeleton"
    failed = run_subprocess(["info", "broken"], extra_path=[site])
    assert failed.returncode != 0
    assert "broken on purpose" in failed.stderr


def test_duplicate_names_are_refused_naming_both_distributions(tmp_path):
    site = make_fake_distribution(
        tmp_path / "site", "dup-plugin", {"reid_bench.models": {"d13": "echo_mod:Echo"}}, {"echo_mod": GOOD_MODEL}
    )
    proc = run_subprocess(["info", "d13"], extra_path=[site])
    assert proc.returncode != 0
    assert "registered twice" in proc.stderr
    assert "reid-bench" in proc.stderr and "dup-plugin" in proc.stderr
    status = json.loads(run_subprocess(["plugins", "--json"], extra_path=[site], check=True).stdout)
    dup = [s for s in status if s["name"] == "d13" and not s["loaded"]]
    assert dup and "dup-plugin" in json.dumps(dup)


def test_plugin_failing_the_api_check_is_reported(tmp_path):
    site = make_fake_distribution(
        tmp_path / "site", "bad-api",
        {"reid_bench.models": {"notamodel": "bad_mod:Thing", "oldapi": "bad_mod:Old"},
         "reid_bench.layouts": {"badlayout": "bad_mod:LAYOUT"}},
        {"bad_mod": GOOD_MODEL + (
            "\nclass Thing:\n    pass\n"
            "\nclass Old(Echo):\n    api_version = '0.3'\n"
            "\nfrom reid_bench.api import Layout\n"
            "LAYOUT = Layout('bad', ('a', 'b', 'c'), ((0, 1),), ((0, 1, 2),), ((0, 1, 2),))\n"
        )},
    )
    status = {s["name"]: s for s in json.loads(run_subprocess(["plugins", "--json"], extra_path=[site], check=True).stdout)}
    assert "subclass of reid_bench.api.Model" in status["notamodel"]["error"]
    assert "plugin API 0.3" in status["oldapi"]["error"]
    assert "not connected" in status["badlayout"]["error"]


@pytest.mark.parametrize(
    "args, expected",
    [
        (["info", "synth-gaot"], "did you mean 'synth-gait'"),
        (["run", "--model", "posegiat", "--protocol", "synth-gait", "--no-ray"], "unknown model 'posegiat'; did you mean 'posegait'"),
        (["run", "--model", "d13", "--protocol", "synth-giat", "--no-ray"], "did you mean 'synth-gait'"),
        (["list", "modles"], "did you mean 'models'"),
    ],
)
def test_typos_get_suggestions(cli, args, expected):
    result = cli(*args)
    assert result.exit_code == 2
    assert expected in result.output


def test_info_pages(cli):
    model = json.loads(cli("info", "d13", "--json").stdout)
    assert model["kind"] == "model" and model["num_parameters"] == 0 and isinstance(model["config"], dict)
    learned = json.loads(cli("info", "gait-lstm", "--json").stdout)
    assert learned["num_parameters"] > 10_000
    dataset = json.loads(cli("info", "synth-skeletons", "--json").stdout)
    assert dataset["license"] and dataset["citation"] and dataset["obtain"] and dataset["options"]["identities"] > 0
    protocol = json.loads(cli("info", "synth-gait", "--json").stdout)
    assert protocol["mode"] == "closed-set" and protocol["folds"] == ["A", "B"] and protocol["main_score"] == "rank1"
    assert "nAUC" in protocol["metrics"]
    retrieval = json.loads(cli("info", "synth-market", "--json").stdout)
    assert retrieval["mode"] == "retrieval" and "mAP" in retrieval["metrics"]
    layout = json.loads(cli("info", "kinect-v1-20", "--json").stdout)
    assert layout["nodes_per_scale"] == {"hyper-joint": 39, "joint": 20, "part": 10, "body": 5}


def _info_text(name: str, columns: int) -> str:
    proc = subprocess.run([sys.executable, "-m", "reid_bench.cli", "info", name], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": str(columns)}, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_info_prints_spaces_and_mappings_as_text_within_the_terminal_width():
    text = _info_text("smsge", 100)
    assert "loguniform(0.0003, 0.005)" in text and "choice(1, 2)" in text  # the search space, one line each
    assert "lr=0.0025, batch_size=64, epochs=120" in text  # a protocol's overrides on its line
    assert "object at 0x" not in text and "{" not in text
    assert max(len(line) for line in text.splitlines()) <= 100
    assert "A: rank1=59.4, roc_auc_micro=86.7; B: rank1=69.8" in _info_text("ias", 100)


@pytest.mark.parametrize("command", [["run"], ["tune"], ["leaderboard"], ["list"], ["data", "list"]])
def test_flags_show_no_value_placeholder_in_help(cli, command):
    text = cli(*command, "--help").output
    assert "--json" in text or "--no-store" in text or "--help" in text
    assert "<bool>" not in text


def test_data_info_says_how_to_set_a_data_root(cli, monkeypatch):
    monkeypatch.delenv("REID_BENCH_DATA", raising=False)
    info = json.loads(cli("data", "info", "ias-lab", "--json").stdout)
    assert info["status"] == "no data root" and info["folder"] == "<data root>/ias-lab"
    assert "--data-root DIR" in info["data_root"] and "REID_BENCH_DATA" in info["data_root"]
    assert "REID_BENCH_DATA" in cli("data", "list").output


def test_list_long_gives_each_plugin_its_modality_and_a_line_of_description(cli):
    listed = json.loads(cli("list", "--long", "--json").stdout)
    models = {m["name"]: m for m in listed["models"]}
    assert models["smsge"]["modality"] == "skeleton" and models["ognet"]["modality"] == "pointcloud"
    assert models["smsge"]["description"].startswith("SM-SGE") and "\n" not in models["smsge"]["description"]
    layouts = {m["name"]: m for m in listed["layouts"]}
    assert layouts["coco-17"]["description"].startswith("COCO-17") and "e.g" not in layouts["coco-17"]["description"][-4:]
    assert all(row["description"] for rows in listed.values() for row in rows)
    plain = json.loads(cli("list", "--json").stdout)  # without --long: metadata only
    assert set(plain["models"][0]) == {"name", "distribution"}
