"""Checkpoints: the state format, strict loading, and fits that continue bit for bit.

The kill-and-resume tests with real processes (SIGKILL, the CLI, Ray) are in
test_resume.py; here the same guarantees are checked in process, where they are cheap."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from reid_bench.checkpoints import (CheckpointError, CheckpointFolder, CheckpointPolicy, capture, read_checkpoint,
                                    restore, rng_state, set_rng_state, write_checkpoint)
from reid_bench.trial import LocalSink, TrialSpec, execute_fit, read_resume_point, trial_folder

TINY = {"data": {"identities": "6", "train_sequences": "2", "test_sequences": "1"}, "probe": {}}


def test_state_round_trip_restores_every_kind_in_place():
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters(), lr=0.1)
    net(torch.ones(1, 3)).sum().backward()
    opt.step()
    gen = torch.Generator().manual_seed(5)
    rng = np.random.default_rng(7)
    torch.rand(3, generator=gen)
    rng.random(4)
    saved = capture({"net": net, "opt": opt, "gen": gen, "rng": rng, "arr": np.arange(4.0), "hist": [1.5, None]})
    expect_gen, expect_rng = torch.rand(5, generator=gen), rng.random(5)
    expect_w = net.weight.detach().clone()

    net2 = torch.nn.Linear(3, 2)
    opt2 = torch.optim.Adam(net2.parameters(), lr=0.1)
    gen2, rng2 = torch.Generator().manual_seed(0), np.random.default_rng(0)
    out = restore({"net": net2, "opt": opt2, "gen": gen2, "rng": rng2, "arr": None, "hist": None}, saved)
    assert out["net"] is net2 and torch.equal(net2.weight, expect_w)
    assert out["opt"].state_dict()["state"][0]["step"] == opt.state_dict()["state"][0]["step"]
    assert torch.equal(torch.rand(5, generator=gen2), expect_gen)
    assert np.array_equal(rng2.random(5), expect_rng)
    assert np.array_equal(out["arr"], np.arange(4.0)) and out["hist"] == [1.5, None]


def test_global_rng_state_round_trips():
    state = rng_state()
    a = (torch.rand(3), np.random.rand(3), random.random())
    set_rng_state(state)
    b = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]


def test_an_unsupported_object_is_refused_by_name():
    with pytest.raises(TypeError, match=r"state\['model'\]: cannot checkpoint a object"):
        capture({"model": object()})


def test_written_checkpoints_are_read_with_weights_only_and_their_hash(tmp_path):
    folder = write_checkpoint(tmp_path / "ck", {"model": capture({"w": torch.ones(2)})}, {"kind": "model"})
    state, meta = read_checkpoint(folder)
    assert meta["kind"] == "model" and len(meta["sha256"]) == 64
    assert torch.equal(restore({}, state["model"])["w"], torch.ones(2))
    assert not list(tmp_path.glob(".tmp-*"))  # nothing half-written stays behind

    data = bytearray((folder / "state.pt").read_bytes())
    data[-10] ^= 0xFF
    (folder / "state.pt").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match the SHA-256"):
        read_checkpoint(folder)

    folder = write_checkpoint(tmp_path / "ck2", {"model": {}}, {"kind": "model", "model": "lstm-1"})
    record = json.loads((folder / "checkpoint.json").read_text())
    (folder / "checkpoint.json").write_text(json.dumps(dict(record, model="smsge")))
    with pytest.raises(CheckpointError, match="the record does not match its SHA-256"):
        read_checkpoint(folder)


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path):
    """torch.load(weights_only=True): a pickle that calls a function is not a state."""
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    folder = write_checkpoint(tmp_path / "ck", {"model": {}}, {"kind": "model"})
    (folder / "state.pt").write_bytes(pickle.dumps({"x": Evil()}))
    meta = json.loads((folder / "checkpoint.json").read_text())
    from reid_bench.checkpoints import file_sha256, record_sha256

    meta["sha256"] = file_sha256(folder / "state.pt")  # even with matching hashes
    meta["record_sha256"] = record_sha256(meta)
    (folder / "checkpoint.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="cannot be read"):
        read_checkpoint(folder)


def test_strict_loading_names_missing_unexpected_keys_and_shapes():
    small, other = torch.nn.Linear(3, 2), torch.nn.Linear(3, 4)
    state = capture(small)
    with pytest.raises(CheckpointError, match=r"net: weight has shape \(2, 3\) in the checkpoint, \(4, 3\) in the model"):
        restore(other, state, "net")
    seq = torch.nn.Sequential(torch.nn.Linear(3, 2))
    with pytest.raises(CheckpointError, match="missing keys 0.bias, 0.weight; unexpected keys bias, weight"):
        restore(seq, state, "net")


def test_the_folder_keeps_the_newest_two(tmp_path):
    folder = CheckpointFolder(tmp_path, keep=2)
    for epoch in range(4):
        folder.save(epoch, {"epoch": epoch}, {"kind": "training", "epoch": epoch})
    assert [p.name for p in folder.entries()] == ["checkpoint_000002", "checkpoint_000003"]
    assert folder.latest().name == "checkpoint_000003"


def test_policy_every_n_epochs_or_m_minutes():
    policy = CheckpointPolicy(every_epochs=3, every_minutes=1.0)
    assert not policy.due(1, None, 0.0, 10.0)
    assert policy.due(2, None, 0.0, 10.0)  # third epoch since the start
    assert not policy.due(4, 2, 0.0, 10.0)
    assert policy.due(4, 2, 0.0, 61.0)  # a minute passed
    assert not CheckpointPolicy(0, 0).due(100, None, 0.0, 1e9)
    with pytest.raises(ValueError):
        CheckpointPolicy(keep=0)


class _Stop(Exception):
    """Stands for the process dying right after a checkpoint was written."""


class _DyingSink(LocalSink):
    def __init__(self, root: Path, after_epoch: int):
        super().__init__(root, keep=2)
        self.after_epoch = after_epoch

    def checkpoint(self, state, meta):
        path = super().checkpoint(state, meta)
        if meta["kind"] == "training" and meta["epoch"] >= self.after_epoch:
            raise _Stop()
        return path


CASES = [
    ("lstm-1", "synth-gait", ("A", "B"), {"epochs": "5", "hidden": "16"}),
    ("smsge", "synth-gait", ("A",), {"epochs": "4", "d_t": "4", "heads": "2", "hidden": "16"}),
    ("simmc", "synth-gait-retrieval", ("A-B", "B-A"), {"epochs": "4", "hidden": "32", "min_samples": "2"}),
    ("transg", "synth-gait-retrieval", ("A-B",), {"epochs": "3", "hidden": "16", "heads": "2"}),
]


@pytest.mark.parametrize("model,protocol,folds,sets", CASES, ids=[c[0] for c in CASES])
def test_a_fit_killed_after_a_checkpoint_continues_bit_for_bit(tmp_path, model, protocol, folds, sets):
    spec = TrialSpec(model=model, protocol=protocol, fold=folds[0], also=folds[1:], seed=3,
                     overrides={**TINY, "model": sets}, work_dir=str(tmp_path / "whole"), threads=1, cache_dir=None,
                     checkpoint_epochs=1)
    whole = execute_fit(spec, LocalSink(trial_folder(spec)))

    broken = TrialSpec(**{**spec.__dict__, "work_dir": str(tmp_path / "broken")})
    with pytest.raises(_Stop):
        execute_fit(broken, _DyingSink(trial_folder(broken), after_epoch=1))
    latest = CheckpointFolder(trial_folder(broken)).latest()
    assert latest.name == "checkpoint_000001"
    resumed = execute_fit(broken, LocalSink(trial_folder(broken)), resume=read_resume_point(str(latest)))

    assert [r["fold"] for r in resumed] == list(folds)
    for a, b in zip(whole, resumed):
        assert a["metrics"] == b["metrics"]  # bit for bit: same floats
        assert a["per_query"] == b["per_query"]
    assert resumed[0]["resumed_from"]["epoch"] == 1


def test_a_model_checkpoint_skips_the_fit_and_scores_the_same(tmp_path):
    spec = TrialSpec(model="lstm-1", protocol="synth-gait-retrieval", fold="A-B", seed=0,
                     overrides={**TINY, "model": {"epochs": "2", "hidden": "16"}}, work_dir=str(tmp_path), threads=1,
                     cache_dir=None)
    first = execute_fit(spec, LocalSink(trial_folder(spec)))[0]
    model_dir = trial_folder(spec) / "model"
    assert json.loads((model_dir / "checkpoint.json").read_text())["kind"] == "model"
    again = execute_fit(spec, LocalSink(None), resume=read_resume_point(str(model_dir)))[0]
    assert again["metrics"] == first["metrics"] and again["resumed_from"]["kind"] == "model"


def test_a_checkpoint_of_another_trial_is_refused(tmp_path):
    spec = TrialSpec(model="lstm-1", protocol="synth-gait-retrieval", fold="A-B", seed=0,
                     overrides={**TINY, "model": {"epochs": "1", "hidden": "16"}}, work_dir=str(tmp_path), threads=1,
                     cache_dir=None)
    execute_fit(spec, LocalSink(trial_folder(spec)))
    other = TrialSpec(**{**spec.__dict__, "seed": 1})
    with pytest.raises(ValueError, match="seed is 0, this trial's is 1"):
        execute_fit(other, LocalSink(None), resume=read_resume_point(str(trial_folder(spec) / "model")))


def test_folds_that_share_training_fit_once_and_score_as_separate_fits(tmp_path):
    base = dict(model="lstm-1", protocol="synth-gait", seed=2, overrides={**TINY, "model": {"epochs": "2"}},
                threads=1, cache_dir=None)
    together = execute_fit(TrialSpec(fold="A", also=("B",), work_dir=str(tmp_path / "t"), **base), LocalSink(None))
    for result in together:
        alone = execute_fit(TrialSpec(fold=result["fold"], work_dir=str(tmp_path / result["fold"]), **base),
                            LocalSink(None))[0]
        assert alone["metrics"] == result["metrics"]
        assert result["folds_fitted_together"] == ["A", "B"]


def test_folds_declared_to_share_training_must_really_share_it(tmp_path, monkeypatch):
    from reid_bench.protocols.synthetic import SynthGaitRetrieval

    protocol = SynthGaitRetrieval()
    assert protocol.training_set("A-B") == protocol.training_set("B-A") == "sessions train"
    monkeypatch.setattr(SynthGaitRetrieval, "fold_sessions",
                        {"A-B": (("train",), ("A",), ("B",)), "B-A": (("A",), ("B",), ("A",))})
    monkeypatch.setattr(SynthGaitRetrieval, "training_set", lambda self, fold: "declared the same")
    spec = TrialSpec(model="d13", protocol="synth-gait-retrieval", fold="A-B", also=("B-A",), seed=0,
                     overrides={**TINY, "model": {}}, work_dir=str(tmp_path), threads=1, cache_dir=None)
    with pytest.raises(ValueError, match="folds 'A-B' and 'B-A' are declared to share a training set, but their "
                                         "training splits differ"):
        execute_fit(spec, LocalSink(None))
