"""Validation splits carved from a fold's training data, for ``reid-bench tune``.

Tuning must never see the test split. Closed-set protocols hold out sequences (the identities
stay, as in the test setting); retrieval protocols hold out identities, whose samples become a
small query/gallery problem of their own. A protocol may override ``Protocol.validation_fold``;
this is the default every protocol gets.
"""

from __future__ import annotations

import numpy as np

from reid_bench.samples import FoldData, SampleSet

#: The split is fixed (not the trial seed) so that every trial of a search sees the same one.
VALIDATION_SEED = 20211020


def _relabel(split: SampleSet) -> SampleSet:
    persons = np.unique(split.person)
    mapping = {int(p): i for i, p in enumerate(persons)}
    out = split.subset(np.arange(len(split)))
    out.labels = np.asarray([mapping[int(p)] for p in split.person], dtype=np.int64)
    return out


def carve_validation(fold: FoldData, mode: str, fraction: float = 0.2, seed: int = VALIDATION_SEED) -> FoldData:
    train = fold.train
    rng = np.random.default_rng(seed)
    if mode == "closed-set":
        # By sequence: each identity with at least two sequences gives up ceil(fraction * n) of them.
        held = np.zeros(len(train), dtype=bool)
        for person in np.unique(train.person):
            groups = np.unique(train.group[train.person == person])
            if len(groups) < 2:
                continue
            n_held = min(len(groups) - 1, max(1, int(np.ceil(fraction * len(groups)))))
            chosen = rng.choice(groups, size=n_held, replace=False)
            held |= np.isin(train.group, chosen)
        if not held.any():
            raise ValueError("cannot carve a validation split: no identity has two training sequences")
        return FoldData(train=train.subset(~held), test=train.subset(held),
                        info={"validation": "closed-set, held-out training sequences",
                              "validation_windows": int(held.sum())})

    # Retrieval: by identity. Held-out identities form query (one camera/sequence) and gallery (the rest).
    persons = np.unique(train.person)
    if len(persons) < 4:
        raise ValueError("cannot carve a validation split: fewer than 4 training identities")
    n_held = max(2, int(round(fraction * len(persons))))
    held_ids = rng.choice(persons, size=n_held, replace=False)
    held = np.isin(train.person, held_ids)
    query = np.zeros(len(train), dtype=bool)
    for person in held_ids:
        idx = np.flatnonzero(train.person == person)
        cams = np.unique(train.camera[idx])
        if len(cams) > 1:  # one camera's samples are the queries, the other cameras the gallery
            query[idx[train.camera[idx] == cams[0]]] = True
        else:  # one camera only: the first sequence/sample queries the rest
            first = train.group[idx[0]]
            query[idx[train.group[idx] == first]] = True
    gallery = held & ~query
    q, g = train.subset(query), train.subset(gallery)
    q.labels = np.full(len(q), -1, dtype=np.int64)
    g.labels = np.full(len(g), -1, dtype=np.int64)
    return FoldData(train=_relabel(train.subset(~held)), query=q, gallery=g,
                    info={"validation": "retrieval, held-out training identities",
                          "validation_identities": int(n_held)})
