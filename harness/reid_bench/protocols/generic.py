"""Protocols whose splits are given as data: helpers shared by the shared-data protocols, and the
``generic-*`` protocols that take train/test/query/gallery from a generic dataset's manifest."""

from __future__ import annotations

import os
from typing import Any, ClassVar, Sequence

from reid_bench.api import DataAccess, FoldData, Protocol, SkeletonSequence
from reid_bench.protocols import CloudRetrievalProtocol, _layout_of, _skeleton_info
from reid_bench.samples import code_map, label_map, windows_from_sequences


def centred(records: Sequence[SkeletonSequence], joints: Sequence[int] | None) -> list[SkeletonSequence]:
    """Records with the mean of ``joints`` subtracted per frame (a hip midpoint where the layout
    has no pelvis joint); None leaves them as they are."""
    if joints is None:
        return list(records)
    idx = list(joints)
    return [
        SkeletonSequence(r.frames - r.frames[:, idx, :].mean(axis=1, keepdims=True), r.layout, r.person, r.sequence,
                         r.view, r.condition, r.session, r.source)
        for r in records
    ]


def _check_disjoint(fold: str, sides: dict[str, list[SkeletonSequence]], pairs: Sequence[tuple[str, str]]) -> None:
    for a, b in pairs:
        shared = sorted({r.sequence for r in sides[a]} & {r.sequence for r in sides[b]})
        if shared:
            raise ValueError(f"fold {fold!r}: sequences in both {a} and {b}: {shared[:5]}")


def _split_info(sides: dict[str, list[SkeletonSequence]]) -> dict[str, list[str]]:
    return {name: sorted(r.sequence for r in recs) for name, recs in sides.items()}


def skeleton_retrieval_fold(fold: str, train: list[SkeletonSequence], query: list[SkeletonSequence],
                            gallery: list[SkeletonSequence], window: int, center: Sequence[int] | None,
                            require_match: bool = True, extra_info: dict[str, Any] | None = None) -> FoldData:
    """Windows for a retrieval fold; refuses empty sides, a query sequence that is also in train or
    gallery, and (``require_match``) a query identity absent from the gallery."""
    sides = {"train": train, "query": query, "gallery": gallery}
    for name, recs in sides.items():
        if not recs:
            raise ValueError(f"fold {fold!r}: no {name} sequences")
    _check_disjoint(fold, sides, (("query", "train"), ("query", "gallery")))
    if require_match:
        orphans = sorted({r.person for r in query} - {r.person for r in gallery})
        if orphans:
            raise ValueError(f"fold {fold!r}: query identities without a gallery sequence: {orphans[:10]}")
    everything = train + query + gallery
    layout = _layout_of(everything)
    labels = label_map(r.person for r in train)
    cameras = code_map(r.view for r in everything)
    train_s, query_s, gallery_s = (centred(x, center) for x in (train, query, gallery))
    stride = max(1, window // 2)
    tr = windows_from_sequences(train_s, window, stride, layout, labels, cameras, None)
    q = windows_from_sequences(query_s, window, window, layout, labels, cameras, None)
    g = windows_from_sequences(gallery_s, window, window, layout, labels, cameras, None)
    info = _skeleton_info(tr, {"query": q, "gallery": g})
    info["query_identities_in_train"] = len({r.person for r in query} & {r.person for r in train})
    info.update(extra_info or {})
    info["split"] = _split_info(sides)
    return FoldData(train=tr, query=q, gallery=g, info=info)


def skeleton_closed_set_fold(fold: str, train: list[SkeletonSequence], test: list[SkeletonSequence], window: int,
                             center: Sequence[int] | None, extra_info: dict[str, Any] | None = None) -> FoldData:
    """Windows for a closed-set fold (SM-SGE: train stride f/2, test stride f); refuses a test
    sequence that is also in training and a test identity never seen in training."""
    sides = {"train": train, "test": test}
    for name, recs in sides.items():
        if not recs:
            raise ValueError(f"fold {fold!r}: no {name} sequences")
    _check_disjoint(fold, sides, (("test", "train"),))
    unseen = sorted({r.person for r in test} - {r.person for r in train})
    if unseen:
        raise ValueError(f"fold {fold!r}: closed-set test identities missing from training: {unseen[:10]}")
    layout = _layout_of(train + test)
    labels = label_map(r.person for r in train)
    cameras = code_map(r.view for r in train + test)
    tr = windows_from_sequences(centred(train, center), window, max(1, window // 2), layout, labels, cameras, None)
    te = windows_from_sequences(centred(test, center), window, window, layout, labels, cameras, None)
    info = _skeleton_info(tr, {"test": te})
    info.update(extra_info or {})
    info["split"] = _split_info(sides)
    return FoldData(train=tr, test=te, info=info)


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
        if fold not in self.folds:
            raise ValueError(f"protocol has no fold {fold!r}; folds: {', '.join(self.folds)}")
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

    def build_fold(self, fold: str, seed: int, data: DataAccess) -> FoldData:
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

    def build_fold(self, fold: str, seed: int, data: DataAccess) -> FoldData:
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

    def build_fold(self, fold: str, seed: int, data: DataAccess) -> FoldData:
        if fold not in self.folds:
            raise ValueError(f"protocol has no fold {fold!r}; folds: {', '.join(self.folds)}")
        out = super().build_fold(fold, seed, data)
        records = data.load(self.train_dataset)
        # Paths relative to the dataset folder, so that the stored split reads the same on every machine.
        base = os.path.commonpath([r.source for r in records]) if len(records) > 1 else ""
        out.info["split"] = {s: sorted(os.path.relpath(r.source, base) if base else r.source
                                       for r in records if r.subset == s)
                             for s in ("train", "query", "gallery")}
        return out

