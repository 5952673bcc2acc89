"""Ray Tune's driver-side trial events, forwarded to the invocation's Coordinator.

Ray pickles its run configuration (callbacks included), so the callback carries only a token;
the Coordinator, with its MLflow client, stays in the driver process. Kept in its own module so
that cloudpickle stores the class by reference and importing the runner does not import Ray.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ray import tune

COORDINATORS: dict[str, Any] = {}


def trial_key(trial: Any) -> str:
    if "params" in trial.config:  # a search trial: identified by Ray's trial id
        return trial.trial_id
    config = trial.config.get("pair", trial.config)
    return f"{config['fold']}/seed{config['seed']}"


class TuneBridge(tune.Callback):
    def __init__(self, token: str):
        self.token = token

    @property
    def events(self) -> Any:
        return COORDINATORS[self.token]

    def on_trial_start(self, iteration, trials, trial, **info):
        if hasattr(self.events, "params"):
            self.events.params[trial_key(trial)] = dict(trial.config.get("params", {}))
        self.events.started(trial_key(trial))

    def on_trial_result(self, iteration, trials, trial, result, **info):
        kind = result.get("reid_event")
        payload = json.loads(result.get("payload", "{}"))
        if kind == "progress":
            self.events.reported(trial_key(trial), payload)
        elif kind == "final":
            self.events.finished(trial_key(trial), payload)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.events.completed(trial_key(trial))

    def on_trial_recover(self, iteration, trials, trial, **info):
        self.events.retried(trial_key(trial), _error_text(trial))

    def on_trial_error(self, iteration, trials, trial, **info):
        self.events.failed(trial_key(trial), _error_text(trial) or f"trial {trial_key(trial)} failed")


def _error_text(trial: Any) -> str:
    path = getattr(trial, "error_file", None)
    if path and os.path.exists(path):
        return Path(path).read_text()
    return ""
