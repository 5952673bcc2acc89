"""The embedded default benchmark: protocols over the synthetic walkers and clouds.

They mirror the papers' settings (IAS-Lab A/B for gait, Market-1501 and Market->Duke for
clouds) so that every code path the real protocols use is exercised without downloads.
"""

from __future__ import annotations

from reid_bench.api import RetrievalScoring
from reid_bench.protocols import CloudRetrievalProtocol, SessionClosedSetProtocol, SessionRetrievalProtocol


class SynthGait(SessionClosedSetProtocol):
    description = (
        "Closed-set gait re-id on synthetic walkers (IAS-Lab style): train on session 'train', "
        "test on session A (new session, changed appearance/noise) or B (new place and view)."
    )
    version = "1"
    dataset = "synth-skeletons"
    datasets = ("synth-skeletons",)
    folds = ("A", "B")
    fold_sessions = {"A": (("train",), ("A",)), "B": (("train",), ("B",))}
    window = 6
    main_score = "rank1"


class SynthGaitDev(SynthGait):
    """synth-gait's development twin: the same protocol on another draw of walkers.

    Choosing a model's synth-gait settings (epochs, switches, a variant) by their synth-gait
    scores is test-set selection, and the validation split carved from the training session
    cannot show the session shift that folds A and B measure. A second population from the
    same generator (other people, other nuisance) has both shifts and shares nobody with
    synth-gait: compare settings here, then run the chosen one once on synth-gait."""

    description = (
        "Development twin of synth-gait: the same sessions and folds on another draw of walkers "
        "(generator seed 1, other people). Choose settings here, report synth-gait."
    )
    data_options = {"seed": 1}


class SynthGaitRetrieval(SessionRetrievalProtocol):
    description = (
        "Sequence retrieval on synthetic walkers: session A sequences as probes against session B "
        "as gallery, and the reverse; the model learns on session 'train'."
    )
    # 2: the skeleton releases' distance, raw Euclidean, on each sequence's mean window feature
    # (was: L2-normalised windows and means).
    version = "2"
    scoring = RetrievalScoring(distance="euclidean", item="sequence", rank_over="all")
    dataset = "synth-skeletons"
    datasets = ("synth-skeletons",)
    folds = ("A-B", "B-A")
    fold_sessions = {"A-B": (("train",), ("A",), ("B",)), "B-A": (("train",), ("B",), ("A",))}
    window = 6
    main_score = "mAP"


class SynthMarket(CloudRetrievalProtocol):
    description = (
        "Market-1501-style retrieval on synthetic coloured point clouds: disjoint train/test "
        "identities, same-camera matches are junk, distractors in the gallery."
    )
    version = "1"
    datasets = ("synth-clouds",)
    train_dataset = test_dataset = "synth-clouds"
    train_options = test_options = {"domain": "market"}
    folds = ("all",)
    main_score = "mAP"


class SynthMarketToDuke(CloudRetrievalProtocol):
    description = (
        "Direct transfer: train on the synthetic 'market' domain, test on the 'duke' domain "
        "(other cameras, palette, lighting and background)."
    )
    version = "1"
    datasets = ("synth-clouds",)
    train_dataset = test_dataset = "synth-clouds"
    train_options = {"domain": "market"}
    test_options = {"domain": "duke"}
    folds = ("all",)
    main_score = "mAP"
