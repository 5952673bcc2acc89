"""Protocols whose splits are given as data: helpers shared by the shared-data protocols, and the
``generic-*`` protocols that take train/test/query/gallery from a generic dataset's manifest."""

from __future__ import annotations

import os
from typing import Any, ClassVar, Sequence

from reid_bench.api import DataAccess, FoldData, Protocol, SkeletonSequence
from reid_bench.protocols import CloudRetrievalProtocol
from reid_bench.protocols.splits import centred, check_disjoint, split_info, window_counts, window_splits


def skeleton_retrieval_fold(fold: str, train: list[SkeletonSequence], query: list[SkeletonSequence],
                            gallery: list[SkeletonSequence], window: int, center: Sequence[int] | None,
                            require_match: bool = True, extra_info: dict[str, Any] | None = None) -> FoldData:
    """Windows for a retrieval fold; refuses empty sides, a query sequence that is also in train or
    gallery, and (``require_match``) a query identity absent from the gallery."""
    sides = {"train": train, "query": query, "gallery": gallery}
    for name, recs in sides.items():
        if not recs:
            raise ValueError(f"fold {fold!r}: no {name} sequences")
    check_disjoint(sides, (("query", "train"), ("query", "gallery")), fold=fold)
    if require_match:
        orphans = sorted({r.person for r in query} - {r.person for r in gallery})
        if orphans:
            raise ValueError(f"fold {fold!r}: query identities without a gallery sequence: {orphans[:10]}")
    everything = train + query + gallery
    cut = window_splits({name: centred(recs, center) for name, recs in sides.items()}, window, everything, None)
    info = window_counts(cut["train"], {"query": cut["query"], "gallery": cut["gallery"]})
    info["query_identities_in_train"] = len({r.person for r in query} & {r.person for r in train})
    info.update(extra_info or {})
    info["split"] = split_info(sides)
    return FoldData(train=cut["train"], query=cut["query"], gallery=cut["gallery"], info=info)


def skeleton_closed_set_fold(fold: str, train: list[SkeletonSequence], test: list[SkeletonSequence], window: int,
                             center: Sequence[int] | None, extra_info: dict[str, Any] | None = None) -> FoldData:
    """Windows for a closed-set fold (SM-SGE: train stride f/2, test stride f); refuses a test
    sequence that is also in training and a test identity never seen in training."""
    sides = {"train": train, "test": test}
    for name, recs in sides.items():
        if not recs:
            raise ValueError(f"fold {fold!r}: no {name} sequences")
    check_disjoint(sides, (("test", "train"),), fold=fold)
    unseen = sorted({r.person for r in test} - {r.person for r in train})
    if unseen:
        raise ValueError(f"fold {fold!r}: closed-set test identities missing from training: {unseen[:10]}")
    cut = window_splits({name: centred(recs, center) for name, recs in sides.items()}, window, train + test, None)
    info = window_counts(cut["train"], {"test": cut["test"]})
    info.update(extra_info or {})
    info["split"] = split_info(sides)
    return FoldData(train=cut["train"], test=cut["test"], info=info)


# ------------------------------------------------------------------------ generic protocols


def _generic_dataset(data: DataAccess, name: str):
    factory = getattr(data, "dataset", None)
    if not callable(factory):
        raise TypeError("the generic protocols read the manifest's splits through the harness's data access "
                        "(a DataAccess with a dataset(name) method, like reid_bench.trial.HarnessData)")
    return factory(name)


class _GenericSkeletonProtocol(Protocol):
    modality: ClassVar[str] = "skeleton"
    dataset: ClassVar[str] = "generic"
    datasets: ClassVar[tuple[str, ...]] = ("generic",)
    folds: ClassVar[tuple[str, ...]] = ("all",)
    window: ClassVar[int] = 6
    uses: ClassVar[tuple[str, ...]] = ()

    def _sides(self, fold: str, data: DataAccess) -> tuple[dict[str, list[SkeletonSequence]], Any, dict[str, Any]]:
        records = data.load(self.dataset)
        ds = _generic_dataset(data, self.dataset)
        settings = ds.protocol_settings()
        splits = ds.splits()
        sides: dict[str, list[SkeletonSequence]] = {name: [] for name in self.uses}
        ignored: dict[str, int] = {}
        for rec in records:
            if rec.sequence not in splits:
                raise ValueError(f"sequence {rec.sequence!r} is not in the manifest of {ds.require_root()}")
            split = splits[rec.sequence]
            if split in sides:
                sides[split].append(rec)
            else:
                ignored[split or "(none)"] = ignored.get(split or "(none)", 0) + 1
        for name, recs in sides.items():
            if not recs:
                raise ValueError(f"{type(self).__name__}: the manifest of {ds.require_root()} has no rows with "
                                 f"split={name} (this protocol uses {', '.join(self.uses)})")
        # The folder's dataset.toml decides these (documented in docs/generic-format.md).
        self.window = settings.window
        info = {"window": settings.window, "center_joints": list(settings.center or ()),
                "ignored_rows": dict(sorted(ignored.items()))}
        return sides, settings, info


class GenericClosedSet(_GenericSkeletonProtocol):
    description = (
        "Closed-set re-id on a generic skeleton dataset (--set data.name=<folder>): train on the manifest's "
        "split=train rows, test on split=test rows (their identities must all be in training). Windows of "
        "protocol.window frames (default 6; train stride f/2, test stride f), centred as dataset.toml says."
    )
    version = "1"
    mode = "closed-set"
    main_score = "rank1"
    uses = ("train", "test")

    def cut_fold(self, fold: str, seed: int, data: DataAccess) -> FoldData:
        sides, settings, info = self._sides(fold, data)
        return skeleton_closed_set_fold(fold, sides["train"], sides["test"], settings.window, settings.center, info)


class GenericRetrieval(_GenericSkeletonProtocol):
    description = (
        "Sequence retrieval on a generic skeleton dataset (--set data.name=<folder>): the model learns on "
        "split=train rows; split=query sequences are ranked against split=gallery sequences (mean of window "
        "embeddings). Identities may or may not overlap with training, as the manifest says; "
        "protocol.filter_same_view = true makes same-person same-view gallery entries junk."
    )
    version = "1"
    mode = "retrieval"
    main_score = "mAP"
    filter_same_camera = False
    uses = ("train", "query", "gallery")

    def cut_fold(self, fold: str, seed: int, data: DataAccess) -> FoldData:
        sides, settings, info = self._sides(fold, data)
        self.filter_same_camera = settings.filter_same_view
        info["filter_same_view"] = settings.filter_same_view
        return skeleton_retrieval_fold(fold, sides["train"], sides["query"], sides["gallery"], settings.window,
                                       settings.center, require_match=False, extra_info=info)


class GenericCloudRetrieval(CloudRetrievalProtocol):
    description = (
        "Point-cloud retrieval on a generic point-cloud dataset (--set data.name=<folder>): train on split=train, "
        "rank split=query against split=gallery; person -1 is junk, same person + same camera is junk (Market-1501)."
    )
    version = "1"
    datasets = ("generic-clouds",)
    train_dataset = test_dataset = "generic-clouds"
    folds = ("all",)
    main_score = "mAP"

    def cut_fold(self, fold: str, seed: int, data: DataAccess) -> FoldData:
        out = super().cut_fold(fold, seed, data)
        records = data.load(self.train_dataset)
        # Paths relative to the dataset folder, so that the stored split reads the same on every machine.
        base = os.path.commonpath([r.source for r in records]) if len(records) > 1 else ""
        out.info["split"] = {s: sorted(os.path.relpath(r.source, base) if base else r.source
                                       for r in records if r.subset == s)
                             for s in ("train", "query", "gallery")}
        return out

