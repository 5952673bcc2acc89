"""Re-identification protocols on image datasets lifted to 3D point clouds, as OG-Net (Zheng et
al., TNNLS 2022) released them.

Retrieval in the Market-1501 mode on the 3D releases: the model learns on ``train_all`` (OG-Net's
README trains every reported model with ``--train_all``), query clouds are ranked against the
gallery, a gallery cloud of the query's person from the query's camera does not count, junk
(person -1) is removed from the gallery and distractors (person 0) stay. Direct-transfer
protocols train on one dataset's ``train_all`` and test on another's query/gallery.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from reid_bench.api import DataAccess, FoldData
from reid_bench.protocols import CloudRetrievalProtocol
from reid_bench.published import Published, PublishedSource, paper_references
from reid_bench.samples import clouds_to_sampleset, label_map

_README = "layumi/person-reid-3d"
_README_COMMIT = "5a0bda93931258e70c3aa8db6cd6c30b608781f7"
REFERENCE_SOURCE = (
    f"{_README} README.md at commit {_README_COMMIT} ('Training' section: Rank-1 (mAP) of each released model, "
    "the TNNLS 2022 version; '-circle' keys are the '+ Circle' rows, trained with circle loss). Those mAPs are "
    "the release's trapezoid AP (evaluate_gpu.py lines 50-57), compared here with map_trapz. No baseline "
    "(PointNet++, DGCNN) or direct-transfer numbers are given there."
)


OGNET_README = PublishedSource(
    key="ognet-readme",
    name="OG-Net (Zheng and Yang, TNNLS 2022): its repository's README",
    citation=f"github.com/{_README} README.md ('Training' section, lines 95-218), commit {_README_COMMIT}",
    holds=("Rank-1 and mAP (%) of each released OG-Net model on 3D Market-1501, DukeMTMC-reID, CUHK03-NP and MSMT17, "
           "each beside its training command; no baseline or direct-transfer numbers"),
    note="Its mAP is the release's trapezoid AP (evaluate_gpu.py lines 50-57), compared here with map_trapz.",
)
_OGNET_KIND = ("one-run",)
_OGNET_NOTE = ("one trained model per row, its training command beside it (fixed epochs, no test-set selection); the "
               "README's evaluation (lines 221-240) runs test_M.py, which scores the model saved after the last epoch "
               "(--which-epoch, default 'last', line 29)")

_LEADERBOARD = "layumi/Person_reID_baseline_pytorch"
_LEADERBOARD_COMMIT = "82ff40fb11b7353400dc8670dcec620d97285096"
LEADERBOARD_3D = PublishedSource(
    key="reid-3d-leaderboard",
    name="3D person re-ID leaderboard of layumi/Person_reID_baseline_pytorch",
    citation=(f"github.com/{_LEADERBOARD} leaderboard-3D/README.md lines 12-20 ('3D Supervised Learning (Market-1501 "
              f"Point Cloud Input)'; last changed in 7497812), commit {_LEADERBOARD_COMMIT}"),
    holds=("Rank@1 and mAP (%) on 3D Market-1501 only, with parameter counts: PointReIDNet and PointReIDNet-efficient "
           "(Wang, Ning, Li, Bai and Gao, '3D person re-identification based on global semantic guidance and local "
           "feature aggregation', IEEE TCSVT 2023) and three OG-Net rows"),
    note=("Its rows 'OG-Net-Small', 'OG-Net' and 'OG-Net-Deep' carry the numbers OG-Net's README gives for the "
          "'+ Circle' models (ognet-small-circle, ognet-circle, ognet-deep-circle): the same numbers, other names. "
          "PointReIDNet's code is not public: its mAP is stored as map_trapz because the leaderboard lists it in one "
          "mAP column with OG-Net's trapezoid APs, not because its AP formula could be checked."),
)
_POINTREIDNET_NOTE = ("IEEE TCSVT 2023, as the leaderboard gives it (the paper was not read here; no public code): "
                      "how the number was obtained is not stated there")


def _ref(rank1: float, map_trapz: float) -> dict[str, dict[str, float]]:
    return {"all": {"rank1": rank1, "map_trapz": map_trapz}}


def _ognet(refs: dict[str, dict[str, dict[str, float]]]) -> tuple[Published, ...]:
    """OG-Net's README rows, keyed by the method as the README names it ("OG-Net-Small + Circle")."""
    return tuple(Published(method, OGNET_README.key, _OGNET_KIND, values, note=_OGNET_NOTE)
                 for method, values in refs.items())


#: The boards' names for the published methods no first-party plugin implements (the '+ Circle'
#: models are OG-Net trained with circle loss, reported as methods of their own; PointReIDNet has
#: no public code): the names these boards have always shown them by.
UNIMPLEMENTED_NAMES: dict[str, str] = {
    "OG-Net + Circle": "ognet-circle",
    "OG-Net-Small + Circle": "ognet-small-circle",
    "OG-Net-Deep + Circle": "ognet-deep-circle",
    "PointReIDNet": "pointreidnet",
    "PointReIDNet-efficient": "pointreidnet-efficient",
}


def _unimplemented(published: tuple[Published, ...]) -> dict[str, str]:
    methods = {entry.method for entry in published}
    return {method: name for method, name in UNIMPLEMENTED_NAMES.items() if method in methods}


class OGNetRetrievalProtocol(CloudRetrievalProtocol):
    """Cloud retrieval on OG-Net's release folders: ``train_subset`` of ``train_dataset`` for
    learning, ``query`` / ``gallery`` of ``test_dataset`` for testing."""

    version = "1"
    folds = ("all",)
    main_score = "mAP"
    reference_score = "map_trapz"
    filter_same_camera = True
    train_subset: ClassVar[str] = "train_all"
    reference_source = REFERENCE_SOURCE

    @property
    def same_dataset(self) -> bool:
        return self.train_dataset == self.test_dataset

    def cut_fold(self, fold: str, seed: int, data: DataAccess) -> FoldData:
        train_all = data.load(self.train_dataset, **self.train_options)
        test_all = data.load(self.test_dataset, **self.test_options)
        train_recs = [r for r in train_all if r.subset == self.train_subset]
        query_all = [r for r in test_all if r.subset == "query"]
        gallery_all = [r for r in test_all if r.subset == "gallery"]
        query_recs = [r for r in query_all if r.person != self.junk_person]
        gallery_recs = [r for r in gallery_all if r.person != self.junk_person]
        for label, recs, where in (("train", train_recs, f"{self.train_dataset}/{self.train_subset}"),
                                   ("query", query_recs, f"{self.test_dataset}/query"),
                                   ("gallery", gallery_recs, f"{self.test_dataset}/gallery")):
            if not recs:
                raise ValueError(f"protocol {type(self).__name__}: no {label} clouds in {where}")
        train_people = {r.person for r in train_recs}
        if self.same_dataset:
            shared = sorted(train_people & ({r.person for r in query_recs} | {r.person for r in gallery_recs}))
            if shared:
                raise ValueError(f"protocol {type(self).__name__}: identities {shared[:10]} occur in both "
                                 f"{self.train_subset} and query/gallery of {self.test_dataset}")
        labels = label_map(train_people)
        unseen: dict[int, int] = {}  # test people are never training classes
        train = clouds_to_sampleset(train_recs, labels, seed=seed)
        query = clouds_to_sampleset(query_recs, unseen, num_points=train.data.shape[1], seed=seed)
        gallery = clouds_to_sampleset(gallery_recs, unseen, num_points=train.data.shape[1], seed=seed)
        info: dict[str, Any] = {
            "train_clouds": len(train),
            "train_identities": len(train_people),
            "query_clouds": len(query),
            "query_identities": int(len(np.unique(query.person))),
            "gallery_clouds": len(gallery),
            "gallery_distractors": int((gallery.person == 0).sum()),
            "query_junk_dropped": len(query_all) - len(query_recs),
            "gallery_junk_dropped": len(gallery_all) - len(gallery_recs),
            "split": {
                "train": f"{self.train_dataset}/{self.train_subset}",
                "query": f"{self.test_dataset}/query",
                "gallery": f"{self.test_dataset}/gallery",
            },
        }
        return FoldData(train=train, query=query, gallery=gallery, info=info)


# Same-dataset protocols read train_all, query and gallery in one pass (one cache entry);
# transfer protocols read only the folders each side needs.
_ALL = {"subsets": ("train_all", "query", "gallery")}
_TRAIN = {"subsets": ("train_all",)}
_TEST = {"subsets": ("query", "gallery")}


class Market3D(OGNetRetrievalProtocol):
    description = ("OG-Net on 3D Market-1501: train on train_all (751 identities), 3368 queries against 15913 "
                   "gallery clouds (junk removed, distractors kept), same-camera matches ignored.")
    datasets = ("market1501-3d",)
    train_dataset = test_dataset = "market1501-3d"
    train_options = test_options = _ALL
    published = _ognet({
        "OG-Net": _ref(86.82, 69.02),
        "OG-Net + Circle": _ref(87.80, 70.56),
        "OG-Net-Small": _ref(86.79, 67.92),
        "OG-Net-Small + Circle": _ref(87.38, 70.48),
        "OG-Net-Deep + Circle": _ref(88.81, 72.91),
    }) + (
        Published("PointReIDNet", LEADERBOARD_3D.key, ("unstated",), _ref(90.56, 75.31),
                  note="PointReIDNet, 2.30M parameters; " + _POINTREIDNET_NOTE),
        Published("PointReIDNet-efficient", LEADERBOARD_3D.key, ("unstated",), _ref(87.77, 70.71),
                  note="'PointReIDNet-efficent' (sic), 0.35M parameters; " + _POINTREIDNET_NOTE),
        Published("OG-Net-Small + Circle", LEADERBOARD_3D.key, _OGNET_KIND, _ref(87.38, 70.48),
                  note="the leaderboard's 'OG-Net-Small' (1.20M parameters)"),
        Published("OG-Net + Circle", LEADERBOARD_3D.key, _OGNET_KIND, _ref(87.80, 70.56),
                  note="the leaderboard's 'OG-Net' (1.95M parameters)"),
        Published("OG-Net-Deep + Circle", LEADERBOARD_3D.key, _OGNET_KIND, _ref(88.81, 72.91),
                  note="the leaderboard's 'OG-Net-Deep' (2.47M parameters)"),
    )
    published_sources = (OGNET_README, LEADERBOARD_3D)
    references = paper_references(published)
    unimplemented_names = _unimplemented(published)
    reference_source = REFERENCE_SOURCE + (
        f" PointReIDNet (IEEE TCSVT 2023): github.com/{_LEADERBOARD} leaderboard-3D/README.md lines 17 and 20 (commit "
        f"{_LEADERBOARD_COMMIT[:7]}), whose OG-Net rows are OG-Net's '+ Circle' numbers.")


class Duke3D(OGNetRetrievalProtocol):
    description = ("OG-Net on 3D DukeMTMC-reID: train on train_all (702 identities), 2228 queries against 17661 "
                   "gallery clouds (with 408 distractor identities), same-camera matches ignored.")
    datasets = ("dukemtmc-3d",)
    train_dataset = test_dataset = "dukemtmc-3d"
    train_options = test_options = _ALL
    published = _ognet({
        "OG-Net": _ref(76.53, 57.92),
        "OG-Net + Circle": _ref(78.37, 60.07),
        "OG-Net-Small": _ref(77.33, 57.74),
        "OG-Net-Small + Circle": _ref(77.15, 58.51),
        "OG-Net-Deep": _ref(76.97, 59.23),
        "OG-Net-Deep + Circle": _ref(78.50, 60.7),
    })
    published_sources = (OGNET_README,)
    references = paper_references(published)
    unimplemented_names = _unimplemented(published)


class MSMT3D(OGNetRetrievalProtocol):
    description = ("OG-Net on 3D MSMT17: train on train_all (train + val lists, 1041 identities), 11659 queries "
                   "against 82161 gallery clouds, same-camera matches ignored.")
    datasets = ("msmt17-3d",)
    train_dataset = test_dataset = "msmt17-3d"
    train_options = test_options = _ALL
    published = _ognet({
        "OG-Net": _ref(44.27, 21.57),
        "OG-Net + Circle": _ref(45.28, 22.81),
        "OG-Net-Small": _ref(43.84, 21.79),
        "OG-Net-Small + Circle": _ref(42.44, 20.31),
        "OG-Net-Deep": _ref(44.56, 21.41),
        "OG-Net-Deep + Circle": _ref(47.32, 24.07),
    })
    published_sources = (OGNET_README,)
    references = paper_references(published)
    unimplemented_names = _unimplemented(published)


class CUHK03NP3D(OGNetRetrievalProtocol):
    description = ("OG-Net on 3D CUHK03-NP: train on train_all (767 identities), 1400 queries against the 700-"
                   "identity gallery, same-view matches ignored.")
    datasets = ("cuhk03np-3d",)
    train_dataset = test_dataset = "cuhk03np-3d"
    train_options = test_options = _ALL
    published = _ognet({
        "OG-Net": _ref(44.00, 39.28),
        "OG-Net + Circle": _ref(48.29, 43.73),
        "OG-Net-Small": _ref(43.07, 38.06),
        "OG-Net-Small + Circle": _ref(46.43, 41.79),
        "OG-Net-Deep": _ref(45.71, 41.15),
        "OG-Net-Deep + Circle": _ref(49.43, 45.71),
    })
    published_sources = (OGNET_README,)
    references = paper_references(published)
    unimplemented_names = _unimplemented(published)


class Market3DToDuke3D(OGNetRetrievalProtocol):
    description = "Direct transfer: train on 3D Market-1501 train_all, test on 3D DukeMTMC-reID query/gallery."
    datasets = ("market1501-3d", "dukemtmc-3d")
    train_dataset = "market1501-3d"
    test_dataset = "dukemtmc-3d"
    train_options = _TRAIN
    test_options = _TEST


class Duke3DToMarket3D(OGNetRetrievalProtocol):
    description = "Direct transfer: train on 3D DukeMTMC-reID train_all, test on 3D Market-1501 query/gallery."
    datasets = ("dukemtmc-3d", "market1501-3d")
    train_dataset = "dukemtmc-3d"
    test_dataset = "market1501-3d"
    train_options = _TRAIN
    test_options = _TEST


class Market3DToMSMT3D(OGNetRetrievalProtocol):
    description = "Direct transfer: train on 3D Market-1501 train_all, test on 3D MSMT17 query/gallery."
    datasets = ("market1501-3d", "msmt17-3d")
    train_dataset = "market1501-3d"
    test_dataset = "msmt17-3d"
    train_options = _TRAIN
    test_options = _TEST
