"""Control rows for the closed-set boards: what a score is worth before any method learns.

A closed-set score comes from a probe classifier trained on the model's frozen training features,
and the probe alone carries much of it (on real data an untrained SM-SGE encoder under the same
probe scored about what the trained one did). The boards therefore carry controls computed by
the harness itself:

- ``control-chance``: features that are noise (a fixed random draw per window), so the probe can
  learn nothing that transfers: the chance level of the protocol's metrics;
- ``control-raw``: the windows' own joint coordinates, flattened: what the probe makes of the raw
  input, with no encoder at all;
- each learned model at ``--set epochs=0``: its untrained (randomly initialised) encoder under
  the same probe, so a reader sees what training added.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reid_bench.api import Model, PositiveInt, SampleSet, TrialContext


@dataclass
class ChanceConfig:
    dims: PositiveInt = 64


class ChanceControl(Model):
    modality = "skeleton"
    config_class = ChanceConfig
    description = "Control: random features (a fixed draw per window); the probe's chance level"

    def fit(self, train: SampleSet, ctx: TrialContext) -> None:
        self.seed = ctx.seed

    def embed(self, samples: SampleSet) -> np.ndarray:
        # a draw keyed by the window's content, so train and test windows get unrelated features
        keys = np.abs(samples.data.reshape(len(samples), -1).sum(1) * 1e6).astype(np.int64) % (2**31)
        rows = [np.random.default_rng([getattr(self, "seed", 0), int(k), i]).standard_normal(self.config.dims)
                for i, k in enumerate(keys)]
        return np.asarray(rows, dtype=np.float32).reshape(len(samples), self.config.dims)


@dataclass
class RawConfig:
    pass


class RawWindowsControl(Model):
    modality = "skeleton"
    config_class = RawConfig
    description = "Control: the window's joint coordinates, flattened; the probe on raw input, no encoder"

    def fit(self, train: SampleSet, ctx: TrialContext) -> None:
        pass

    def embed(self, samples: SampleSet) -> np.ndarray:
        return np.asarray(samples.data, dtype=np.float32).reshape(len(samples), -1)


#: How a board recognises a control row: a control model, or a learned model's untrained encoder.
CONTROL_MODELS = ("control-chance", "control-raw")


def control_kind(model: str, config_diff: dict[str, str], mode: str = "closed-set") -> str | None:
    """The control a row is, in the board's words: a retrieval board ranks features by distance,
    with no probe, so its raw-input control is named for that."""
    if model == "control-chance":
        return "chance"
    if model == "control-raw":
        return "probe on raw windows" if mode == "closed-set" else "raw windows ranked by distance"
    # nothing is learned at epochs=0, whatever else the config sets (shown in the Config column)
    if config_diff.get("epochs") == "0":
        return "untrained encoder"
    return None


def controls_caption(mode: str) -> str:
    """The line above a board's control rows."""
    if mode == "closed-set":
        return ("Controls (not ranked): chance, the probe on the raw windows, each learned model's untrained "
                "encoder under the same probe.")
    return ("Controls (not ranked): chance, the raw windows ranked by the protocol's distance (no encoder), "
            "each learned model's untrained encoder.")
