"""The field's published tables of skeleton-based person re-identification, as data.

Two surveys by the same authors (Rao and Miao), both keyed here by each method's name in the
literature ("SM-SGE", "TranSG"; an unnamed method by its citation, "Gharghabi et al. 2015"), never
by a plugin's name: a model plugin reaches these numbers by declaring the method it implements
(``Model.published_as``):

- The first survey's leaderboard, Kali-Hac/3D-skeleton-based-person-re-ID-survey README.md lines
  204-244 at commit cc5f2021e1bd59c824162ce31fc4c59226d98fdf ("mainly from" TranSG, CVPR 2023;
  the repository's table stops there): mAP, Rank-1, Rank-5 and Rank-10 (percent) of twelve
  methods on BIWI-S, BIWI-W, KS20, IAS-A, IAS-B and KGBD, all as retrieval (probe windows against
  gallery windows) (:data:`FIELD_TABLE`).
- The maintained survey, Kali-Hac/3D-SRID-Survey, whose leaderboard is a figure,
  overview/Leaderboard.jpg at commit 5dc1373448a224eefa149ff4ef84c63860a0fb14 (README.md line 89):
  Rank-1 only, on BIWI-S, BIWI-W, IAS-A, IAS-B and KS20 (no KGBD), read off the image by eye
  (:data:`SRID_FIGURE`). It adds MoCos (AAAI 2025) and five gait recognition models that the
  survey ran itself "following the same person re-ID evaluation protocol" (GPGait, GaitTR,
  SkeletonGait, ST-GCN, CTR-GCN), and four hand-crafted methods the first table does not have;
  it leaves out D_PG and SPC-MGR. Every Rank-1 both give for a method agrees (50 numbers).

What kind each number is (:mod:`reid_bench.published`): the releases of SimMC, SPC-MGR, Hi-MPC,
TranSG and MoCos score the test set every epoch and keep the best test Rank-1 (SimMC.py lines
649-656, SPC-MGR.py 664-691, Hi-MPC.py 849-876, TranSG.py 863-869, MoCos.py 1012-1039), and
their READMEs say the papers "report the average performance" (how many runs: not stated): an
average over runs of best test epochs. The harness never selects on test data.
"""

from __future__ import annotations

from reid_bench.published import Published, PublishedSource, paper_references

SOURCE = (
    "Two surveys of the field, by the same authors. [1] github.com/Kali-Hac/3D-skeleton-based-person-re-ID-survey "
    "README.md lines 204-244 (commit cc5f202; from TranSG, CVPR 2023): mAP and Rank-1/5/10 (%) of D_PG (dpg), D13, "
    "D16, PoseGait, AGE, SGELA, SimMC, Hi-MPC, MG-SCR, SM-SGE (smsge), SPC-MGR and TranSG. [2] "
    "github.com/Kali-Hac/3D-SRID-Survey overview/Leaderboard.jpg (commit 5dc1373; a figure, read by eye): Rank-1 "
    "only, no KGBD; adds MoCos (AAAI 2025), the gait models GPGait, GaitTR, SkeletonGait, ST-GCN and CTR-GCN run by "
    "the survey under the re-ID protocol, and four hand-crafted methods. Where both give a number they agree. "
    "The released code behind the learned methods selects its reported epoch on the probe set; the harness does not."
)

SURVEY_TABLE = PublishedSource(
    key="skeleton-reid-survey",
    name="3D skeleton re-ID survey, first repository: its leaderboard table",
    citation=("github.com/Kali-Hac/3D-skeleton-based-person-re-ID-survey README.md lines 204-244, "
              "commit cc5f2021e1bd59c824162ce31fc4c59226d98fdf"),
    holds=("mAP, Rank-1, Rank-5 and Rank-10 (%) of twelve methods (D_PG, D13, D16, PoseGait, AGE, SGELA, SimMC, "
           "Hi-MPC, MG-SCR, SM-SGE, SPC-MGR, TranSG) on BIWI-S, BIWI-W, KS20, IAS-A, IAS-B and KGBD; 'mainly from' "
           "TranSG (CVPR 2023), where the table stops"),
)

SRID_SURVEY = PublishedSource(
    key="3d-srid-survey",
    name="3D-SRID-Survey (the maintained survey): its leaderboard figure",
    citation=("github.com/Kali-Hac/3D-SRID-Survey overview/Leaderboard.jpg (shown by README.md line 89; the image "
              "added in commit 1ba4454), commit 5dc1373448a224eefa149ff4ef84c63860a0fb14"),
    holds=("Rank-1 only (%), no mAP, Rank-5 or Rank-10, of 20 methods on BIWI-S, BIWI-W, IAS-A, IAS-B and KS20 (no "
           "KGBD). Adds MoCos (Rao and Miao, AAAI 2025) and five gait recognition models the survey evaluated itself "
           "'following the same person re-ID evaluation protocol' (GPGait, GaitTR, SkeletonGait, ST-GCN, CTR-GCN), "
           "and four hand-crafted methods not in the first table (Gharghabi et al. 2015, Munaro et al. 2014a, Elaoud "
           "et al. 2017, PM of Elaoud et al. 2021); leaves out D_PG and SPC-MGR"),
    note=("A figure: every number was read off the image (1293 x 1153 px) by eye. It cites D13 as Munaro et al. "
          "2014b (ICRA) where the first table says Person Re-Identification 2014, and CTR-GCN as CVPR where the "
          "README's list says ICCV 2021; those are citations, not numbers."),
)

#: method -> dataset -> (mAP, Rank-1, Rank-5, Rank-10), percent, as printed.
FIELD_TABLE: dict[str, dict[str, tuple[float, float, float, float]]] = {
    "D_PG": {
        "BIWI-S": (6.7, 18.5, 45.4, 63.8),
        "BIWI-W": (8.7, 6.5, 15.5, 20.3),
        "KS20": (11.3, 35.2, 61.5, 70.5),
        "IAS-A": (11.0, 16.4, 39.5, 53.4),
        "IAS-B": (10.6, 16.0, 41.2, 57.3),
        "KGBD": (2.1, 30.0, 49.1, 58.1),
    },
    "D13": {
        "BIWI-S": (13.1, 28.3, 53.1, 65.9),
        "BIWI-W": (17.2, 14.2, 20.6, 23.7),
        "KS20": (18.9, 39.4, 71.7, 81.7),
        "IAS-A": (24.5, 40.0, 58.7, 67.6),
        "IAS-B": (23.7, 43.7, 68.6, 76.7),
        "KGBD": (1.9, 17.0, 34.4, 44.2),
    },
    "D16": {
        "BIWI-S": (16.7, 32.6, 55.7, 68.3),
        "BIWI-W": (18.8, 17.0, 25.3, 29.6),
        "KS20": (24.0, 51.7, 77.1, 86.9),
        "IAS-A": (25.2, 42.7, 62.9, 70.7),
        "IAS-B": (24.5, 44.5, 69.1, 80.2),
        "KGBD": (4.0, 31.2, 50.9, 59.8),
    },
    "PoseGait": {
        "BIWI-S": (9.9, 14.0, 40.7, 56.7),
        "BIWI-W": (11.1, 8.8, 23.0, 31.2),
        "KS20": (23.5, 49.4, 80.9, 90.2),
        "IAS-A": (17.5, 28.4, 55.7, 69.2),
        "IAS-B": (20.8, 28.9, 51.6, 62.9),
        "KGBD": (13.9, 50.6, 67.0, 72.6),
    },
    "AGE": {
        "BIWI-S": (8.9, 25.1, 43.1, 61.6),
        "BIWI-W": (12.6, 11.7, 21.4, 27.3),
        "KS20": (8.9, 43.2, 70.1, 80.0),
        "IAS-A": (13.4, 31.1, 54.8, 67.4),
        "IAS-B": (12.8, 31.1, 52.3, 64.2),
        "KGBD": (0.9, 2.9, 5.6, 7.5),
    },
    "SGELA": {
        "BIWI-S": (15.1, 25.8, 51.8, 64.4),
        "BIWI-W": (19.0, 11.7, 14.0, 14.7),
        "KS20": (21.2, 45.0, 65.0, 75.1),
        "IAS-A": (13.2, 16.7, 30.2, 44.0),
        "IAS-B": (14.0, 22.2, 40.8, 50.2),
        "KGBD": (4.5, 38.1, 53.5, 60.0),
    },
    "SimMC": {
        "BIWI-S": (12.3, 41.7, 66.6, 76.8),
        "BIWI-W": (19.9, 24.5, 36.7, 44.5),
        "KS20": (22.3, 66.4, 80.7, 87.0),
        "IAS-A": (18.7, 44.8, 65.3, 72.9),
        "IAS-B": (22.9, 46.3, 68.1, 77.0),
        "KGBD": (11.7, 54.9, 66.2, 70.6),
    },
    "Hi-MPC": {
        "BIWI-S": (17.4, 47.5, 70.3, 78.6),
        "BIWI-W": (22.6, 27.3, 40.3, 48.8),
        "KS20": (22.0, 69.6, 83.5, 87.1),
        "IAS-A": (23.2, 45.6, 67.3, 75.4),
        "IAS-B": (25.3, 48.2, 70.2, 77.8),
        "KGBD": (10.2, 56.9, 70.2, 75.1),
    },
    "MG-SCR": {
        "BIWI-S": (7.6, 20.1, 46.9, 64.1),
        "BIWI-W": (11.9, 10.8, 20.3, 29.4),
        "KS20": (10.4, 46.3, 75.4, 84.0),
        "IAS-A": (14.1, 36.4, 59.6, 69.5),
        "IAS-B": (12.9, 32.4, 56.5, 69.4),
        "KGBD": (6.9, 44.0, 58.7, 64.6),
    },
    "SM-SGE": {
        "BIWI-S": (10.1, 31.3, 56.3, 69.1),
        "BIWI-W": (15.2, 13.2, 25.8, 33.5),
        "KS20": (9.5, 45.9, 71.9, 81.2),
        "IAS-A": (13.6, 34.0, 60.5, 71.6),
        "IAS-B": (13.3, 38.9, 64.1, 75.8),
        "KGBD": (4.4, 38.2, 54.2, 60.7),
    },
    "SPC-MGR": {
        "BIWI-S": (16.0, 34.1, 57.3, 69.8),
        "BIWI-W": (19.4, 18.9, 31.5, 40.5),
        "KS20": (21.7, 59.0, 79.0, 86.2),
        "IAS-A": (24.2, 41.9, 66.3, 75.6),
        "IAS-B": (24.1, 43.3, 68.4, 79.4),
        "KGBD": (6.9, 40.8, 57.5, 65.0),
    },
    "TranSG": {
        "BIWI-S": (30.1, 68.7, 86.5, 91.8),
        "BIWI-W": (26.9, 32.7, 44.9, 52.2),
        "KS20": (46.2, 73.6, 86.3, 90.2),
        "IAS-A": (32.8, 49.2, 68.5, 76.2),
        "IAS-B": (39.4, 59.1, 77.0, 87.0),
        "KGBD": (20.2, 59.0, 73.1, 78.2),
    },
}


#: method -> dataset -> Rank-1 (percent) in 3D-SRID-Survey's leaderboard figure, read off the
#: image (rows top to bottom; a dash in the figure: no entry).
SRID_FIGURE: dict[str, dict[str, float]] = {
    "Gharghabi et al. 2015": {"BIWI-S": 10.7, "BIWI-W": 10.7},
    "Munaro et al. 2014a": {"BIWI-S": 32.1, "BIWI-W": 39.3},
    "D13": {"BIWI-S": 28.3, "BIWI-W": 14.2, "IAS-A": 40.0, "IAS-B": 43.7, "KS20": 39.4},
    "D16": {"BIWI-S": 32.6, "BIWI-W": 17.0, "IAS-A": 42.7, "IAS-B": 44.5, "KS20": 51.7},
    "Elaoud et al. 2017": {"BIWI-S": 28.6, "BIWI-W": 10.7, "IAS-A": 45.5, "IAS-B": 63.6},
    "PM (Elaoud et al. 2021)": {"BIWI-S": 39.3, "BIWI-W": 39.3, "IAS-A": 36.4, "IAS-B": 81.8},
    "PoseGait": {"BIWI-S": 14.0, "BIWI-W": 8.8, "IAS-A": 28.4, "IAS-B": 28.9, "KS20": 49.4},
    "AGE": {"BIWI-S": 25.1, "BIWI-W": 11.7, "IAS-A": 31.1, "IAS-B": 31.1, "KS20": 43.2},
    "SGELA": {"BIWI-S": 25.8, "BIWI-W": 11.7, "IAS-A": 16.7, "IAS-B": 22.2, "KS20": 45.0},
    "GaitTR": {"BIWI-S": 43.2, "BIWI-W": 16.3, "IAS-A": 43.7, "IAS-B": 47.8, "KS20": 52.3},
    "SimMC": {"BIWI-S": 41.7, "BIWI-W": 24.5, "IAS-A": 44.8, "IAS-B": 46.3, "KS20": 66.4},
    "Hi-MPC": {"BIWI-S": 47.5, "BIWI-W": 27.3, "IAS-A": 45.6, "IAS-B": 48.2, "KS20": 69.6},
    "SkeletonGait": {"BIWI-S": 15.1, "BIWI-W": 10.8, "IAS-A": 31.4, "IAS-B": 31.5, "KS20": 22.2},
    "MG-SCR": {"BIWI-S": 20.1, "BIWI-W": 10.8, "IAS-A": 36.4, "IAS-B": 32.4, "KS20": 46.3},
    "SM-SGE": {"BIWI-S": 31.3, "BIWI-W": 13.2, "IAS-A": 34.0, "IAS-B": 38.9, "KS20": 45.9},
    "CTR-GCN": {"BIWI-S": 59.1, "BIWI-W": 20.5, "IAS-A": 47.7, "IAS-B": 48.3, "KS20": 57.4},
    "ST-GCN": {"BIWI-S": 56.8, "BIWI-W": 21.3, "IAS-A": 47.9, "IAS-B": 50.1, "KS20": 65.9},
    "GPGait": {"BIWI-S": 54.1, "BIWI-W": 29.0, "IAS-A": 50.9, "IAS-B": 60.1, "KS20": 71.4},
    "TranSG": {"BIWI-S": 68.7, "BIWI-W": 32.7, "IAS-A": 49.2, "IAS-B": 59.1, "KS20": 73.6},
    "MoCos": {"BIWI-S": 72.0, "BIWI-W": 36.0, "IAS-A": 51.9, "IAS-B": 61.5, "KS20": 76.0},
}

#: The boards' names for the methods no first-party plugin implements (a declared method is shown
#: under its model's name): the names these boards have always shown them by.
UNIMPLEMENTED_NAMES: dict[str, str] = {
    "SkeletonGait": "skeletongait",
    "Gharghabi et al. 2015": "gharghabi-2015",
    "Munaro et al. 2014a": "munaro-2014a",
    "Elaoud et al. 2017": "elaoud-2017",
    "PM (Elaoud et al. 2021)": "elaoud-pm-2021",
}

_AVERAGED = ("average-of-runs", "best-test-epoch")
_RERUN = ("evaluated under the retrieval protocol for the table (the method's own paper reports closed-set "
          "results); its release keeps its best test checkpoint ({}), but the source does not say how these "
          "retrieval numbers were selected")
_GAIT = ("a gait recognition model the survey evaluated itself under the re-ID protocol (figure caption); how its "
         "epoch was selected is not stated")
_HANDCRAFTED_EXTRA = ("not in the first survey's table; the figure does not say it was evaluated under this protocol "
                      "(its caption says so of the gait models only), so compare with care")

#: method -> (kind, note) of its numbers: how the method's release or paper obtains them.
METHOD_KINDS: dict[str, tuple[tuple[str, ...], str]] = {
    "D_PG": (("no-training",), "PoseGait's hand-crafted pose descriptor, D_PG: nothing trained"),
    "D13": (("no-training",), "13 hand-crafted skeleton descriptors: nothing trained"),
    "D16": (("no-training",), "16 hand-crafted skeleton descriptors: nothing trained"),
    "PoseGait": (("unstated",), "PoseGait (Pattern Recognition 2020), a gait recognition model, evaluated for "
                 "re-ID for the table; how its epoch was selected is not stated"),
    "AGE": (("unstated",), _RERUN.format("Kali-Hac/SGE-LA train.py lines 965, 1034-1037 at 742e691")),
    "SGELA": (("unstated",), _RERUN.format("Kali-Hac/Locality-Awareness-SGE train.py at 27df99c")),
    "MG-SCR": (("unstated",), _RERUN.format("Kali-Hac/MG-SCR train.py lines 511-552 at cf9e1c9")),
    "SM-SGE": (("unstated",), _RERUN.format("Kali-Hac/SM-SGE SM-SGE.py lines 1234-1279 at e30b994")),
    "SimMC": (_AVERAGED, "Kali-Hac/SimMC at c325ad5: README.md line 36 'we report the average performance of our "
              "approach on all datasets' (how many runs: not stated); SimMC.py lines 649-656 keep the best test Rank-1"),
    "SPC-MGR": (_AVERAGED, "Kali-Hac/SPC-MGR at e0ea7da: README.md line 36 (average performance, how many runs: not "
                "stated); SPC-MGR.py lines 664-691 keep the best test Rank-1"),
    "Hi-MPC": (_AVERAGED, "Kali-Hac/Hi-MPC at 20b2c74: README.md line 35 (average performance, how many runs: not "
               "stated); Hi-MPC.py lines 849-876 keep the best test Rank-1"),
    "TranSG": (_AVERAGED, "Kali-Hac/TranSG at 7176262: README.md line 36 (average performance, how many runs: not "
               "stated); TranSG.py lines 863-869 keep the best test Rank-1"),
    "MoCos": (_AVERAGED, "Kali-Hac/MoCos at 64fe918: README.md line 38 (average performance, how many runs: not "
              "stated); MoCos.py lines 1012-1039 keep the best test Rank-1, 1052-1054 stop after `patience` epochs "
              "without a gain. Its README has no results table and its paper's table (with mAP and Rank-5/10) "
              "was not read here: only the survey figure's Rank-1"),
    "GPGait": (("unstated",), "GPGait (ICCV 2023): " + _GAIT),
    "GaitTR": (("unstated",), "GaitTR (Expert Systems 2023): " + _GAIT),
    "SkeletonGait": (("unstated",), "SkeletonGait (AAAI 2024): " + _GAIT),
    "ST-GCN": (("unstated",), "ST-GCN (AAAI 2018): " + _GAIT),
    "CTR-GCN": (("unstated",), "CTR-GCN (ICCV 2021; the figure says CVPR): " + _GAIT),
    "Gharghabi et al. 2015": (("unstated",), "Gharghabi et al. 2015 (ICIEV): " + _HANDCRAFTED_EXTRA +
                       "; it gives the same number for BIWI-S and BIWI-W"),
    "Munaro et al. 2014a": (("unstated",), "Munaro et al. 2014a (Person Re-Identification): " + _HANDCRAFTED_EXTRA),
    "Elaoud et al. 2017": (("unstated",), "Elaoud et al. 2017 (ACIVS): " + _HANDCRAFTED_EXTRA),
    "PM (Elaoud et al. 2021)": (("unstated",), "PM, Elaoud et al. 2021 (Multimedia Tools and Applications): " +
                       _HANDCRAFTED_EXTRA + "; it gives the same number for BIWI-S and BIWI-W"),
}


def field_published(folds: dict[str, str]) -> tuple[Published, ...]:
    """Every published entry for a protocol whose folds map to the tables' dataset columns
    (e.g. ``{"A-B": "IAS-A"}``): the first survey's table first (the Paper value of its twelve
    methods), then the 3D-SRID-Survey figure's Rank-1 of every method with a number there."""
    out = []
    for method, rows in FIELD_TABLE.items():
        kind, note = METHOD_KINDS[method]
        values = {fold: dict(zip(("mAP", "rank1", "rank5", "rank10"), rows[column])) for fold, column in folds.items()}
        out.append(Published(method, SURVEY_TABLE.key, kind, values, note=note))
    for method, rows in SRID_FIGURE.items():
        values = {fold: {"rank1": rows[column]} for fold, column in folds.items() if column in rows}
        if values:
            kind, note = METHOD_KINDS[method]
            out.append(Published(method, SRID_SURVEY.key, ("figure", *kind), values, note=note))
    return tuple(out)


def field_sources(folds: dict[str, str]) -> tuple[PublishedSource, ...]:
    """The sources with a number for at least one of these columns."""
    columns = set(folds.values())
    return (SURVEY_TABLE,) + ((SRID_SURVEY,) if any(columns & set(rows) for rows in SRID_FIGURE.values()) else ())


def field_unimplemented_names(folds: dict[str, str]) -> dict[str, str]:
    """The boards' names of the unimplemented methods with a number for at least one of these columns."""
    methods = {entry.method for entry in field_published(folds)}
    return {method: name for method, name in UNIMPLEMENTED_NAMES.items() if method in methods}


def field_references(folds: dict[str, str]) -> dict[str, dict[str, dict[str, float]]]:
    """The Paper column's values: per method and fold, its first published entry's."""
    return paper_references(field_published(folds))
