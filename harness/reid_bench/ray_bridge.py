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


def trial_keys(trial: Any) -> list[str]:
    """The (fold, seed) keys a Ray trial serves: one, or every fold it fits once for."""
    if "params" in trial.config:  # a search trial: identified by Ray's trial id
        return [trial.trial_id]
    entry = trial.config["trial"]
    return [f"{fold}/seed{entry['seed']}" for fold in (entry["fold"], *entry.get("also", ()))]


def trial_key(trial: Any) -> str:
    return trial_keys(trial)[0]


class TuneBridge(tune.Callback):
    def __init__(self, token: str):
        self.token = token
        self._pending: dict[str, dict[str, Any]] = {}  # Ray trial id -> the checkpoint it announced

    @property
    def events(self) -> Any:
        return COORDINATORS[self.token]

    def on_trial_start(self, iteration, trials, trial, **info):
        if hasattr(self.events, "params"):
            self.events.params[trial_key(trial)] = dict(trial.config.get("params", {}))
        for key in trial_keys(trial):
            self.events.started(key)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        kind = result.get("reid_event")
        payload = json.loads(result.get("payload", "{}"))
        if kind == "progress":
            keys = trial_keys(trial)
            if "fold" in payload and len(keys) > 1:  # one fold of a shared fit is being scored
                keys = [f"{payload['fold']}/seed{trial.config['trial']['seed']}"]
            for key in keys:
                self.events.reported(key, payload)
        elif kind == "checkpoint":
            self._pending[trial.trial_id] = payload
        elif kind == "final":
            keys = trial_keys(trial)
            self.events.finished(keys[0] if len(keys) == 1 else f"{payload['fold']}/seed{payload['seed']}", payload)

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
        """Ray persisted a checkpoint the trial reported (after its result): tell every fold."""
        note = self._pending.pop(trial.trial_id, {})
        location = storage_location(checkpoint)
        for key in trial_keys(trial):
            self.events.checkpointed(key, note.get("kind", "training"), location, note.get("epoch"), checkpoint)

    def on_trial_complete(self, iteration, trials, trial, **info):
        for key in trial_keys(trial):
            self.events.completed(key)

    def on_trial_recover(self, iteration, trials, trial, **info):
        for key in trial_keys(trial):
            self.events.retried(key, _error_text(trial))

    def on_trial_error(self, iteration, trials, trial, **info):
        for key in trial_keys(trial):
            self.events.failed(key, _error_text(trial) or f"trial {key} failed")


def storage_location(checkpoint: Any) -> str:
    """A checkpoint's place as one string: a local path, or ``scheme://path`` in remote storage."""
    fs = getattr(checkpoint, "filesystem", None)
    kind = getattr(fs, "type_name", "local")
    return checkpoint.path if kind == "local" else f"{kind}://{checkpoint.path}"


def _error_text(trial: Any) -> str:
    path = getattr(trial, "error_file", None)
    if path and os.path.exists(path):
        return Path(path).read_text()
    return ""
