"""A protocol plugin is mostly data: which dataset, how folds are cut, what is scored."""

from __future__ import annotations

from reid_bench.protocols import SessionClosedSetProtocol


class TemplateGait(SessionClosedSetProtocol):
    description = "A small closed-set variant of synth-gait (8 walkers, fold A only) for quick checks."
    version = "1"
    dataset = "synth-skeletons"
    datasets = ("synth-skeletons",)
    data_options = {"identities": 8, "train_sequences": 2, "test_sequences": 1}
    folds = ("A",)
    seeds = (0, 1)
    fold_sessions = {"A": (("train",), ("A",))}
    window = 6
    main_score = "rank1"
