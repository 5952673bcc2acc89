"""Published numbers say where they come from and what kind of number each is: a best test epoch,
an average over runs, read from a figure. The two surveys of the skeleton field (the first
repository's table and 3D-SRID-Survey's leaderboard figure) both stand on the field protocols,
with their sources; where they disagree both numbers stay and the page says so; the 3D Market-1501
protocol carries PointReIDNet's numbers beside OG-Net's."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from reid_bench.protocols import kinect as K
from reid_bench.protocols import lifted_images as P
from reid_bench.protocols.field import FIELD_TABLE, SRID_FIGURE, SRID_SURVEY, SURVEY_TABLE
from reid_bench.published import (KINDS, Published, PublishedSource, check, disagreements, for_boards,
                                  paper_references)
from reid_bench.results import SCHEMA

SRID_COMMIT = "5dc1373448a224eefa149ff4ef84c63860a0fb14"
SURVEY_COMMIT = "cc5f2021e1bd59c824162ce31fc4c59226d98fdf"


def _info(cli, name: str) -> dict:
    done = cli("info", name, "--json")
    assert done.exit_code == 0, done.output
    info = json.loads(done.output)
    if isinstance(info, list):  # a dataset of the same name (kgbd, ks20) comes with it
        (info,) = [i for i in info if i["kind"] == "protocol"]
    return info


def test_info_shows_mocos_published_numbers_with_their_source_and_kind(cli):
    info = _info(cli, "ias-retrieval")
    # IAS-A is fold A-B, IAS-B fold B-A: MoCos's Rank-1 in the 3D-SRID-Survey figure
    assert info["references"]["mocos"] == {"A-B": {"rank1": 51.9}, "B-A": {"rank1": 61.5}}
    (mocos,) = [e for e in info["published"] if e["model"] == "mocos"]
    assert mocos["values"] == {"A-B": {"rank1": 51.9}, "B-A": {"rank1": 61.5}}
    assert mocos["source"] == "3d-srid-survey"
    # read off the survey's figure; the MoCos README says the paper reports an average, and its
    # release keeps the best test epoch
    assert mocos["kind"] == ["figure", "average-of-runs", "best-test-epoch"] and mocos["runs"] is None
    assert "read from a figure" in mocos["kind_text"] and "MoCos.py" in mocos["note"]
    source = info["published_sources"]["3d-srid-survey"]
    assert "Kali-Hac/3D-SRID-Survey" in source["citation"] and "overview/Leaderboard.jpg" in source["citation"]
    assert SRID_COMMIT in source["citation"] and "Rank-1 only" in source["holds"]
    assert info["reference_kinds"]["mocos"]["B-A"]["source"] == "3d-srid-survey"
    # the first survey's table stays the Paper value of the twelve methods it has, with its source
    assert info["references"]["transg"]["A-B"] == {"mAP": 32.8, "rank1": 49.2, "rank5": 68.5, "rank10": 76.2}
    assert info["reference_kinds"]["transg"]["A-B"]["source"] == "skeleton-reid-survey"
    assert SURVEY_COMMIT in info["published_sources"]["skeleton-reid-survey"]["citation"]
    assert info["published_kinds"]["figure"]["mark"] == KINDS["figure"][0]
    # the gait models the survey ran itself appear under their own names
    assert {"gpgait", "gaittr", "skeletongait", "stgcn", "ctrgcn"} <= set(info["references"])
    assert info["published_disagreements"] == []


def test_every_reference_names_a_source_with_a_kind():
    """Every installed protocol's published data passes the check, and every shipped protocol
    with references states where they come from (none falls back to an unsourced reference_source)."""
    from reid_bench.registry import get_registry

    registry = get_registry()
    seen = 0
    for name in registry.names("protocols"):
        cls = registry.protocol(name)
        assert check(cls) == [], name
        if cls.references:
            seen += 1
            assert cls.published, f"{name}: references without published entries"
            keys = {s.key for s in cls.published_sources}
            for entry in cls.published:
                assert entry.source in keys and entry.kind and set(entry.kind) <= set(KINDS), (name, entry.method)
                assert set(entry.values) <= set(cls.folds), (name, entry.method)
    assert seen >= 12


class _Bad(K.IASRetrieval):
    published_sources = (PublishedSource("s", "a table", "somewhere, commit 0"), PublishedSource("s", "twice", "x"))
    published = (
        Published("m", "s", ("best-test-epoch",), {"A-B": {"rank1": 50.0}, "IAS-C": {"rank1": 40.0}}),
        Published("n", "nowhere", ("best-test-epoch",), {"A-B": {"rank1": 50.0}}),
        Published("o", "s", (), {"A-B": {"rank1": 50.0}}),
        Published("p", "s", ("guessed",), {"A-B": {"rank1": 50.0}}),
        Published("q", "s", ("one-run",), {"A-B": {"rank1": 150.0, "top-1": 3.0}}, runs=5),
    )
    references = {"m": {"A-B": {"rank1": 49.0}}}


def test_the_check_catches_bad_reference_data():
    problems = "\n".join(check(_Bad))
    assert "a source key is listed twice" in problems
    assert "fold 'IAS-C' is not one of the protocol's folds" in problems
    assert "n from 'nowhere': the source is not one of the protocol's published_sources" in problems
    assert "o from 's': no kind" in problems
    assert "unknown kind 'guessed'" in problems
    assert "A-B/rank1 = 150.0 is not a percentage" in problems
    assert "metric 'top-1' is not one of the protocol's metrics" in problems
    assert "runs given for a number that is not an average over runs" in problems
    assert "references are not the first published entry of each method and fold" in problems
    # inherited from IASRetrieval: names of methods this protocol publishes nothing for
    assert "unimplemented_names names 'SkeletonGait', which has no published entry" in problems


def test_the_surveys_figure_as_read():
    """The figure's numbers as read off the image: Rank-1 only, on five datasets (no KGBD), and
    every number it shares with the first survey's table is the same."""
    assert SRID_FIGURE["MoCos"] == {"BIWI-S": 72.0, "BIWI-W": 36.0, "IAS-A": 51.9, "IAS-B": 61.5, "KS20": 76.0}
    assert SRID_FIGURE["GPGait"] == {"BIWI-S": 54.1, "BIWI-W": 29.0, "IAS-A": 50.9, "IAS-B": 60.1, "KS20": 71.4}
    assert len(SRID_FIGURE) == 20 and not ({"D_PG", "SPC-MGR"} & set(SRID_FIGURE))
    assert all(set(rows) <= {"BIWI-S", "BIWI-W", "IAS-A", "IAS-B", "KS20"} for rows in SRID_FIGURE.values())
    shared = [(m, d) for m, rows in SRID_FIGURE.items() if m in FIELD_TABLE for d in rows]
    assert len(shared) == 50 and all(FIELD_TABLE[m][d][1] == SRID_FIGURE[m][d] for m, d in shared)
    # KGBD is not in the figure: only the first table there
    assert [s.key for s in K.KGBDRetrieval.published_sources] == [SURVEY_TABLE.key]
    assert "MoCos" not in K.KGBDRetrieval.references


@pytest.mark.parametrize("cls", [K.IASRetrieval, K.BIWIRetrieval, K.KS20Retrieval], ids=lambda cls: cls.__name__)
def test_the_figures_protocols_carry_both_surveys_in_agreement(cls):
    assert disagreements(cls.published) == []
    assert [s.key for s in cls.published_sources] == [SURVEY_TABLE.key, SRID_SURVEY.key]
    assert all(e.kind[0] == "figure" for e in cls.published if e.source == SRID_SURVEY.key)


def _ias_retrieval_doc(model: str, fingerprint: str) -> dict:
    return {"schema": SCHEMA, "protocol": "ias-retrieval", "protocol_version": str(K.IASRetrieval.version),
            "model": model, "mode": "retrieval", "main_score": "mAP", "config_fingerprint": fingerprint,
            "config_diff": {}, "config_label": {}, "tuned": None, "config": {}, "expected_trials": ["A-B/seed0"],
            "trials": [{"fold": "A-B", "seed": 0, "run_id": fingerprint * 2, "invocation": fingerprint * 3,
                        "end_time": 1, "date": "2026-12-06",
                        "metrics": {"mAP": 0.15, "rank1": 0.4, "rank5": 0.6, "rank10": 0.7}}]}


def _write(root: Path, doc: dict) -> None:
    path = root / doc["protocol"] / f"v{doc['protocol_version']}" / doc["model"] / f"{doc['config_fingerprint']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))


def _page_data(html: str) -> dict:
    return json.loads(re.search(r'<script id="board-data" type="application/json">(.*?)</script>', html, re.S).group(1))


def test_the_board_shows_each_references_source_and_kind(cli, tmp_path):
    _write(tmp_path / "results", _ias_retrieval_doc("simmc", "aaaaaaaaaaaa"))
    _write(tmp_path / "results", _ias_retrieval_doc("mocos", "bbbbbbbbbbbb"))
    done = cli("leaderboard", "--no-store", "--results", str(tmp_path / "results"), "--out", str(tmp_path / "lb"))
    assert done.exit_code == 0, done.output
    md = (tmp_path / "lb" / "ias-retrieval.md").read_text()
    fold = md.split("## Fold A-B", 1)[1].split("\n## ", 1)[0]
    simmc = next(line for line in fold.splitlines() if "| simmc |" in line)
    # SimMC's mAP on IAS-A in the first table: an average over runs of best test epochs
    assert "| 18.7 ‡† | -3.7 |" in simmc and "paper config" in simmc
    assert "Paper: the published value, from [1]" in fold and "† best test epoch" in fold and "‡ average over runs" in fold
    mocos = next(line for line in fold.splitlines() if "| mocos |" in line)
    assert "| — | — |" in mocos  # the figure gives no mAP: no paper value for the mAP column
    published = md.split("## Published", 1)[1]
    assert "1. 3D skeleton re-ID survey" in published and SURVEY_COMMIT in published
    assert "2. 3D-SRID-Survey" in published and SRID_COMMIT in published
    assert "Where the sources give a number for the same method, they agree." in published
    section = published.split("### Fold A-B", 1)[1].split("###", 1)[0]
    row = lambda model: next(line for line in section.splitlines() if line.startswith(f"| {model} |"))  # noqa: E731
    assert row("transg").endswith("| [1]; the same in [2] |") and "‡† average over runs" in row("transg")
    assert row("mocos") == ("| mocos | — | 51.9 | — | — | §‡† read from a figure, average over runs (how many: not "
                            "stated), best test epoch | [2] |")
    assert row("gpgait").startswith("| gpgait | — | 50.9 | — | — | §? read from a figure, selection not stated |")
    assert row("spc-mgr").endswith("| [1] |")  # not in the figure
    board = json.loads((tmp_path / "lb" / "leaderboard.json").read_text())["protocols"]["ias-retrieval"]
    (simmc_row,) = [r for r in board["versions"]["3"]["A-B"] if r["model"] == "simmc"]
    assert simmc_row["paper"] == 18.7 and simmc_row["paper_kind"] == ["average-of-runs", "best-test-epoch"]
    assert simmc_row["paper_source"] == "skeleton-reid-survey"
    assert [s["key"] for s in board["published_sources"]] == ["skeleton-reid-survey", "3d-srid-survey"]
    mocos_pub = next(r for r in board["published"]["B-A"] if r["model"] == "mocos")
    assert mocos_pub["metrics"] == {"rank1": 61.5} and mocos_pub["source"] == "3d-srid-survey"
    assert board["published_disagreements"] == []
    page = (tmp_path / "lb" / "ias-retrieval.html").read_text()
    data = _page_data(page)
    (simmc_site,) = [r for s in data["sections"] if s["fold"] == "A-B" for r in s["rows"] if r["model"] == "simmc"]
    assert simmc_site["paper_marks"] == "‡†" and "best test epoch" in simmc_site["paper_kind"]
    assert "best test epoch" in data["paper_legend"]
    assert 'data-source="3d-srid-survey"' in page and SRID_COMMIT in page
    assert re.search(r'<tr data-source="3d-srid-survey"><td>mocos</td>.*?read from a figure.*?\[2\]</td></tr>', page)


def test_a_disagreement_between_the_surveys_is_shown_with_both_sources(cli, tmp_path, monkeypatch):
    """As read, the surveys agree; were the figure to give TranSG another IAS-A Rank-1, the page
    keeps both numbers, each with its source, says that they disagree, and the Paper column keeps
    the first table's."""
    changed = tuple(Published(e.method, e.source, e.kind, {**e.values, "A-B": {"rank1": 50.2}}, e.runs, e.note)
                    if (e.method, e.source) == ("TranSG", SRID_SURVEY.key) else e for e in K.IASRetrieval.published)
    monkeypatch.setattr(K.IASRetrieval, "published", changed)
    monkeypatch.setattr(K.IASRetrieval, "references", paper_references(changed))
    assert check(K.IASRetrieval) == []
    _write(tmp_path / "results", _ias_retrieval_doc("transg", "cccccccccccc"))
    done = cli("leaderboard", "--no-store", "--results", str(tmp_path / "results"), "--out", str(tmp_path / "lb"))
    assert done.exit_code == 0, done.output
    md = (tmp_path / "lb" / "ias-retrieval.md").read_text()
    published = md.split("## Published", 1)[1]
    assert "The sources disagree on 1 number" in published
    section = published.split("### Fold A-B", 1)[1].split("###", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| transg |")]
    assert len(rows) == 2
    assert "| 32.8 | 49.2 | 68.5 | 76.2 |" in rows[0] and rows[0].endswith("| [1]; differs from [2] |")
    assert "| — | 50.2 | — | — |" in rows[1] and rows[1].endswith("| [2]; differs from [1] |")
    assert ("- transg, Rank-1: the sources disagree: 49.2 in [1], 50.2 in [2]. Both are kept, each on its own row; "
            "the Paper column uses the first.") in section
    # fold B-A: the two still agree, one row
    other = published.split("### Fold B-A", 1)[1]
    assert sum(line.startswith("| transg |") for line in other.splitlines()) == 1
    transg = next(line for line in md.split("## Fold A-B", 1)[1].splitlines() if "| transg |" in line)
    assert "| 32.8 ‡† |" in transg  # the Paper column: the first source's mAP
    page = (tmp_path / "lb" / "ias-retrieval.html").read_text()
    assert "The sources disagree on 1 number" in page
    assert "transg, Rank-1: the sources disagree: 49.2 in [1], 50.2 in [2]" in page
    assert SURVEY_COMMIT in page and SRID_COMMIT in page
    board = json.loads((tmp_path / "lb" / "leaderboard.json").read_text())["protocols"]["ias-retrieval"]
    assert board["published_disagreements"] == [{"model": "transg", "fold": "A-B", "metric": "rank1",
                                                 "values": {"skeleton-reid-survey": 49.2, "3d-srid-survey": 50.2}}]
    info = _info(cli, "ias-retrieval")
    assert info["published_disagreements"] == board["published_disagreements"]


def test_market3d_carries_pointreidnet_with_its_source(cli):
    assert P.Market3D.references["PointReIDNet"]["all"] == {"rank1": 90.56, "map_trapz": 75.31}
    assert P.Market3D.references["PointReIDNet-efficient"]["all"] == {"rank1": 87.77, "map_trapz": 70.71}
    assert P.Market3D.references["OG-Net"]["all"] == {"rank1": 86.82, "map_trapz": 69.02}  # OG-Net's stay
    info = _info(cli, "market3d")
    (entry,) = [e for e in info["published"] if e["model"] == "pointreidnet"]
    assert entry["source"] == "reid-3d-leaderboard" and entry["kind"] == ["unstated"]
    source = info["published_sources"]["reid-3d-leaderboard"]
    assert "layumi/Person_reID_baseline_pytorch" in source["citation"]
    assert "leaderboard-3D/README.md" in source["citation"] and "82ff40fb11b7353400dc8670dcec620d97285096" in source["citation"]
    assert "TCSVT 2023" in source["holds"]
    # the leaderboard's OG-Net rows are OG-Net's '+ Circle' numbers: listed, and in agreement
    assert info["published_disagreements"] == []
    assert {e["model"] for e in info["published"] if e["source"] == "reid-3d-leaderboard"} == {
        "pointreidnet", "pointreidnet-efficient", "ognet-small-circle", "ognet-circle", "ognet-deep-circle"}
    assert info["reference_kinds"]["ognet"]["all"]["kind"] == ["one-run"]
    # the transfer protocols publish nothing: no numbers are given for them
    for name in ("market3d-to-duke3d", "duke3d-to-market3d", "market3d-to-msmt3d"):
        assert _info(cli, name)["published"] == []


@pytest.mark.parametrize("name", ["ias", "kgbd", "ks20", "casia-b"])
def test_smsge_tables_are_read_from_its_results_image(cli, name):
    info = _info(cli, name)
    smsge = next(e for e in info["published"] if e["model"] == "smsge")
    assert smsge["kind"] == ["figure", "best-test-epoch"] and smsge["source"] == "smsge-results"
    assert "SM-SGE-results.png" in info["published_sources"]["smsge-results"]["citation"]


# ------------------------------------------------------------------ methods declared by models

#: Published methods no first-party plugin implements: their numbers stand on the boards under the
#: protocol's name for them, with no measured row. A new published key needs a plugin declaring
#: it (``Model.published_as``) or a place here.
UNIMPLEMENTED = {"SkeletonGait", "Gharghabi et al. 2015", "Munaro et al. 2014a", "Elaoud et al. 2017",
                 "PM (Elaoud et al. 2021)", "OG-Net + Circle", "OG-Net-Small + Circle", "OG-Net-Deep + Circle",
                 "PointReIDNet", "PointReIDNet-efficient"}


def _installed_protocols():
    from reid_bench.registry import get_registry

    registry = get_registry()
    return [registry.protocol(name) for name in registry.names("protocols")]


def test_every_declared_method_has_published_numbers_and_one_model():
    from reid_bench.registry import get_registry

    registry = get_registry()
    published = {entry.method for cls in _installed_protocols() for entry in cls.published}
    declared = registry.published_methods()
    for method, models in declared.items():
        assert method in published, f"{models} declare {method!r}, which no installed protocol publishes"
        assert len(models) == 1, f"{models} all declare {method!r} (a variant needs a declaration of its own)"
    # the variants the tables list separately each have their own
    assert declared["OG-Net"] == ["ognet"] and declared["OG-Net-Small"] == ["ognet-small"]
    assert declared["OG-Net-Deep"] == ["ognet-deep"]
    assert declared["D13"] == ["d13"] and declared["D16"] == ["d16"] and declared["SM-SGE"] == ["smsge"]
    for name in ("pointnet2-ssg", "pointnet2-msg", "lstm-1", "lstm-m"):
        assert registry.model(name).published_as is None, name


def test_a_published_method_no_model_declares_is_a_listed_unimplemented_one():
    from reid_bench.registry import get_registry

    declared = get_registry().published_methods()
    undeclared = {entry.method for cls in _installed_protocols() for entry in cls.published} - set(declared)
    assert undeclared == UNIMPLEMENTED
    named = {method for cls in _installed_protocols() for method in cls.unimplemented_names}
    assert named == UNIMPLEMENTED  # each has its board name
    # no published key is a model's entry-point name
    models = set(get_registry().names("models"))
    assert not models & {entry.method for cls in _installed_protocols() for entry in cls.published}


def test_boards_name_each_method_by_the_models_that_declare_it():
    entries = (Published("M-One", "s", ("one-run",), {"all": {"rank1": 50.0}}),
               Published("Unimplemented 2020", "s", ("unstated",), {"all": {"rank1": 40.0}}),
               Published("Other", "s", ("unstated",), {"all": {"rank1": 30.0}}))
    named = for_boards(entries, {"M-One": ["m1", "m1-again"]}, {"Unimplemented 2020": "unimplemented-2020"})
    assert [e.method for e in named] == ["m1", "m1-again", "unimplemented-2020", "Other"]
    assert named[0].values == named[1].values == entries[0].values


def test_the_same_class_under_another_entry_point_name_keeps_its_paper_values(tmp_path, monkeypatch):
    """D13 registered as "munaro-descriptors" (and not as "d13"): its rows on `ias` still get SM-SGE's
    table's D13 value (Rank-1 33.8 on fold A), and the Published section names it so."""
    from reid_bench import registry as registry_module
    from reid_bench.leaderboard import build_leaderboards
    from reid_bench.registry import PluginEntry, Registry

    d13 = registry_module.get_registry().model("d13")
    registry = Registry()
    registry._scan()
    del registry._entries["models"]["d13"]
    registry._entries["models"]["munaro-descriptors"] = PluginEntry(
        "models", "munaro-descriptors", f"{d13.__module__}:{d13.__name__}", "reid-bench-handcrafted", "test")
    registry._loaded[("models", "munaro-descriptors")] = d13
    monkeypatch.setattr(registry_module, "_default", registry)
    doc = {"schema": SCHEMA, "protocol": "ias", "protocol_version": str(K.IASClosedSet.version),
           "model": "munaro-descriptors", "mode": "closed-set", "main_score": "rank1",
           "config_fingerprint": "aaaaaaaaaaaa", "config_diff": {}, "tuned": None, "config": {},
           "expected_trials": ["A/seed0"],
           "trials": [{"fold": "A", "seed": 0, "run_id": "a" * 24, "invocation": "a" * 36, "end_time": 1,
                       "metrics": {"rank1": 0.3, "rank5": 0.6, "nAUC": 0.7}}]}
    _write(tmp_path / "results", doc)
    build_leaderboards(tmp_path / "lb", tmp_path / "results")
    md = (tmp_path / "lb" / "ias.md").read_text()
    row = next(line for line in md.split("## Fold A", 1)[1].splitlines() if "| munaro-descriptors |" in line)
    assert "| 33.8 §° | -3.8 | paper config |" in row
    section = md.split("## Published", 1)[1].split("### Fold A", 1)[1].split("###", 1)[0]
    assert any(line.startswith("| munaro-descriptors | 33.8 |") for line in section.splitlines())
    assert not any(line.startswith(("| d13 |", "| D13 |")) for line in section.splitlines())


def test_a_model_must_declare_a_method_name_or_none():
    from reid_bench.registry import PluginAPIError, check_plugin, get_registry

    d13 = get_registry().model("d13")
    bad = type("BadDeclaration", (d13,), {"published_as": ""})
    with pytest.raises(PluginAPIError, match="published_as=''"):
        check_plugin("models", "bad", bad)
    check_plugin("models", "fine", type("NoDeclaration", (d13,), {"published_as": None}))
