"""results/*.json are data other people send in: every file is checked against the declared schema
(reid_bench/result.schema.json) before anything is built, bad ones are refused in one line naming
the file, the key and why, and nothing in one can break or script the site."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest

from reid_bench.leaderboard import build_leaderboards
from reid_bench.results import SCHEMA, ResultsError, result_path

FINGERPRINT = "0123456789ab"


def _doc(**changes) -> dict:
    doc = {"schema": SCHEMA, "protocol": "synth-gait", "protocol_version": "1", "model": "d13", "mode": "closed-set",
           "main_score": "rank1", "config_fingerprint": FINGERPRINT, "config_diff": {}, "config_label": {},
           "tuned": None, "config": {}, "expected_trials": ["A/seed0"],
           "trials": [{"fold": "A", "seed": 0, "run_id": "run0", "invocation": "inv0", "end_time": 1,
                       "date": "2026-12-06", "metrics": {"rank1": 0.5, "rank5": 0.7, "nAUC": 0.6},
                       "cmc": [0.5, 0.7, 1.0]}]}
    for path, value in changes.items():
        target = doc
        *parts, last = path.split(".")
        for part in parts:
            target = target[int(part)] if part.isdigit() else target[part]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value
    return doc


def _write(root: Path, doc: dict, text: str | None = None) -> Path:
    path = root / doc["protocol"] / f"v{doc['protocol_version']}" / doc["model"] / f"{doc['config_fingerprint']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text if text is not None else json.dumps(doc))
    return path


BAD = {
    "a number for the model name": ({"model": 7}, "model: 7 is not of type 'string'"),
    "a string for a seed": ({"trials.0.seed": "0"}, "trials[0].seed: '0' is not of type 'integer'"),
    "a string for the end time": ({"trials.0.end_time": "yesterday"}, "trials[0].end_time: 'yesterday' is not of type"),
    "a config label that is not a mapping": ({"config_label": ["epochs=3"]}, "config_label: ['epochs=3'] is not of type 'object'"),
    "non-numeric CMC values": ({"trials.0.cmc": [0.5, "high"]}, "trials[0].cmc[1]: 'high' is not of type 'number'"),
    "a negative Rank-1": ({"trials.0.metrics": {"rank1": -5}}, "trials[0].metrics.rank1: -5 is less than the minimum of 0"),
    "a huge Rank-1": ({"trials.0.metrics": {"rank1": 1e308}}, "trials[0].metrics.rank1: 1e+308 is greater than the maximum of 1"),
    "an unknown metric": ({"trials.0.metrics": {"rank2": 0.5}}, "trials[0].metrics: 'rank2' is not one of"),
    "a script link": ({"trials.0.mlflow_url": "javascript:alert(document.domain)"}, "trials[0].mlflow_url: 'javascript:alert(document.domain)' does not match"),
    "an unknown fold": ({"trials.0.fold": "Z", "expected_trials": ["Z/seed0"]}, "trials[0].fold: protocol 'synth-gait' has no fold 'Z'"),
    "an unknown protocol": ({"protocol": "made-up"}, "protocol: unknown protocol 'made-up'"),
    "an unknown key": ({"surprise": 1}, "(the document): Additional properties are not allowed ('surprise' was unexpected)"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_a_bad_results_file_is_refused_naming_file_key_and_reason(cli, tmp_path, name):
    changes, needle = BAD[name]
    doc = _doc(**changes)
    model = doc["model"] if isinstance(doc["model"], str) else "d13"
    path = tmp_path / "results" / str(doc["protocol"]) / "v1" / model / f"{FINGERPRINT}.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(doc))
    done = cli("leaderboard", "--no-store", "--results", str(tmp_path / "results"), "--out", str(tmp_path / "lb"))
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.exit_code == 1 and len(lines) == 1, done.output
    assert str(path) in lines[0] and needle in lines[0], lines[0]
    assert not (tmp_path / "lb").exists()


def test_nan_metrics_are_refused(cli, tmp_path):
    path = _write(tmp_path / "results", _doc(), json.dumps(_doc()).replace('"rank1": 0.5', '"rank1": NaN'))
    done = cli("leaderboard", "--no-store", "--results", str(tmp_path / "results"), "--out", str(tmp_path / "lb"))
    assert done.exit_code == 1 and f"{path}: NaN is not a number JSON allows" in done.stderr


def test_names_are_checked_before_a_path_is_built(tmp_path):
    with pytest.raises(ResultsError, match="model '../../etc': not a name"):
        result_path(tmp_path, ("synth-gait", "1", "../../etc", FINGERPRINT))
    with pytest.raises(ResultsError, match="model 'a/b'"):
        result_path(tmp_path, ("synth-gait", "1", "a/b", FINGERPRINT))


def test_results_and_pages_are_written_with_the_users_umask(tmp_path):
    _write(tmp_path / "results", _doc())
    old = os.umask(0o022)
    try:
        build_leaderboards(tmp_path / "lb", tmp_path / "results")
    finally:
        os.umask(old)
    for path in [*(tmp_path / "lb").iterdir(), *(tmp_path / "results").rglob("*.json")]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


HOSTILE = ["<!--<script>", "</script><script>alert(1)</script>", "a\u2028b\u2029c", "&lt;&amp;", "<!--"]


def test_strings_cannot_end_or_change_the_pages_data_block(tmp_path):
    _write(tmp_path / "results", _doc(config_label={f"note{i}": s for i, s in enumerate(HOSTILE)}))
    build_leaderboards(tmp_path / "lb", tmp_path / "results")
    page = (tmp_path / "lb" / "synth-gait.html").read_text()
    block = re.search(r'<script id="board-data" type="application/json">(.*?)</script>', page, re.S).group(1)
    assert "<" not in block and ">" not in block and "&" not in block and "\u2028" not in block
    assert all(s in json.loads(block)["sections"][0]["rows"][0]["config"] for s in HOSTILE)


@pytest.mark.skipif(os.environ.get("REID_BENCH_NO_BROWSER") == "1", reason="CI could not install Chromium")
def test_hostile_strings_leave_the_page_working_in_chromium(tmp_path):
    from test_site import _browser, _dom

    browser = _browser()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing: .ci/run installs it (apt-get install chromium)")
        pytest.skip("no Chromium on this machine (.ci/run installs it)")
    for i, text in enumerate(HOSTILE):
        out = tmp_path / f"lb{i}"
        results = tmp_path / f"results{i}"
        _write(results, _doc(config_label={"note": text}))
        build_leaderboards(out, results)
        dom = _dom(browser, (out / "synth-gait.html").as_uri(), tmp_path)
        assert '<tr data-model="d13"' in dom, text  # the script ran and drew the table
