"""MG-SCR (``reid_bench_smsge.mg_scr``) on small inputs.

The graphs, the level-to-joint maps and the parameter count are checked against the release's
own arrays and variable shapes (Kali-Hac/MG-SCR commit cf9e1c9, ``utils/process.py`` and
``train.py``); the collaborative fusion and both losses against formulas computed by hand; and
the model runs through the trial code on the real formats' fixtures and a synthetic protocol.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import reload_saved, trial_context
from reid_bench.api import DataSpec
from reid_bench.layouts import KINECT_V1_20, KINECT_V2_25
from reid_bench_smsge.graphs import build_graphs
from reid_bench_smsge.mg_scr import (MGSCR, MGSCRConfig, MultiLevelGraphEncoder, membership, sparse_frames, ssp_loss,
                                     summed_logits)


def _pairs_to_adjacency(first: list[int], second: list[int], n: int) -> np.ndarray:
    adj = np.zeros((n, n), dtype=np.float32)
    adj[first, second] = 1.0
    return adj


# utils/process.py lines 112-115 (Kinect v1), 93-96 (KS20), 122-123 (parts), 128-129 (bodies)
_JOINT_V1 = ([3, 2, 2, 8, 8, 9, 10, 9, 11, 10, 4, 2, 4, 5, 5, 6, 6, 7, 1, 2, 1, 0, 16, 0, 12, 0, 16, 17, 12, 13, 17, 18,
              19, 18, 13, 14, 14, 15],
             [2, 3, 8, 2, 9, 8, 9, 10, 10, 11, 2, 4, 5, 4, 6, 5, 7, 6, 2, 1, 0, 1, 0, 16, 0, 12, 17, 16, 13, 12, 18, 17,
              18, 19, 14, 13, 15, 14])
_JOINT_KS20 = ([3, 2, 20, 8, 8, 9, 10, 9, 11, 10, 4, 20, 4, 5, 5, 6, 6, 7, 1, 20, 1, 0, 16, 0, 12, 0, 16, 17, 12, 13, 17,
                18, 19, 18, 13, 14, 14, 15, 2, 20, 11, 23, 10, 24, 7, 21, 6, 22],
               [2, 3, 8, 20, 9, 8, 9, 10, 10, 11, 20, 4, 5, 4, 6, 5, 7, 6, 20, 1, 0, 1, 0, 16, 0, 12, 17, 16, 13, 12, 18,
                17, 18, 19, 14, 13, 15, 14, 20, 2, 23, 11, 24, 10, 21, 7, 22, 6])
_PARTS = ([5, 6, 5, 8, 6, 7, 8, 9, 5, 4, 4, 2, 4, 0, 2, 3, 1, 0], [6, 5, 8, 5, 7, 6, 9, 8, 4, 5, 2, 4, 0, 4, 3, 2, 0, 1])
_BODIES = ([2, 3, 2, 4, 2, 1, 2, 0], [3, 2, 4, 2, 1, 2, 0, 2])
# train.py lines 188-197 / 224-228 (20 joints) and 162-175 / 210-216 (25): the group whose feature
# each joint receives, in joint order.
_PART_OF_V1 = [4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 0, 0, 1, 1, 2, 2, 3, 3]
_BODY_OF_V1 = [2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 0, 0, 0, 0, 1, 1, 1, 1]
_PART_OF_KS20 = _PART_OF_V1 + [5, 7, 7, 9, 9]
_BODY_OF_KS20 = _BODY_OF_V1 + [2, 3, 3, 4, 4]


@pytest.mark.parametrize("layout,joints,part_of,body_of", [(KINECT_V1_20, _JOINT_V1, _PART_OF_V1, _BODY_OF_V1),
                                                           (KINECT_V2_25, _JOINT_KS20, _PART_OF_KS20, _BODY_OF_KS20)])
def test_graphs_and_level_maps_are_the_released_ones(layout, joints, part_of, body_of):
    graphs = build_graphs(layout, 1, "released")
    n = layout.num_joints
    expected = {"joint": _pairs_to_adjacency(*joints, n), "part": _pairs_to_adjacency(*_PARTS, 10),
                "body": _pairs_to_adjacency(*_BODIES, 5)}
    for level, adj in expected.items():
        np.testing.assert_array_equal(graphs[level].adjacency, adj)
        # adj_to_bias with nhood 1 (process.py 307-318): the neighbours and the node itself
        np.testing.assert_array_equal(graphs[level].mask, (adj + np.eye(len(adj))) > 0)
    np.testing.assert_array_equal(membership(graphs["part"]), np.eye(10, dtype=np.float32)[part_of])
    np.testing.assert_array_equal(membership(graphs["body"]), np.eye(5, dtype=np.float32)[body_of])


def test_casia_level_maps_are_the_released_ones():
    from reid_bench.layouts import CASIA_14

    graphs = build_graphs(CASIA_14, 1, "released")
    # train-CASIA.py lines 200-222 (parts) and 264-274 (bodies), in joint order
    np.testing.assert_array_equal(membership(graphs["part"]).argmax(1), [5, 4, 8, 9, 9, 6, 7, 7, 2, 3, 3, 0, 1, 1])
    np.testing.assert_array_equal(membership(graphs["body"]).argmax(1), [2, 2, 4, 4, 4, 3, 3, 3, 1, 1, 1, 0, 0, 0])


def test_part_and_body_nodes_are_the_means_of_their_joints():
    model = MGSCR(MGSCRConfig(), _spec())
    x = torch.randn(2, 3, 20, 3)
    nodes = model.net.node_positions(x)
    # reduce2part / reduce2body (process.py 164-245): left upper leg = joints 12, 13; torso body = 0-3
    torch.testing.assert_close(nodes["part"].reshape(2, 3, 10, 3)[:, :, 0], x[:, :, [12, 13]].mean(2))
    torch.testing.assert_close(nodes["body"].reshape(2, 3, 5, 3)[:, :, 2], x[:, :, :4].mean(2))
    torch.testing.assert_close(nodes["joint"].reshape(x.shape), x)


def test_collaborative_fusion_by_hand():
    """Each part attends to the joints, each body to the parts; fused back with lambda ([R] 140-148, 245-269)."""
    torch.manual_seed(0)
    cfg = MGSCRConfig(d_t=4, heads=2, fusion_lambda=0.3)
    graphs = build_graphs(KINECT_V1_20, 1, "released")
    enc = MultiLevelGraphEncoder(cfg, graphs)
    x = torch.randn(3, 20, 3)
    nodes = {"joint": x, "part": torch.as_tensor(graphs["part"].pool) @ x,
             "body": torch.as_tensor(graphs["body"].pool) @ x}
    got = enc(nodes).detach().numpy()
    h = {s: enc.structural[s](enc.embed[s](nodes[s])).detach().numpy() for s in nodes}
    w12, w23 = enc.joint_to_part.detach().numpy(), enc.part_to_body.detach().numpy()

    def attend(queries, keys):  # CCRL_fusion, one sample and one query node at a time
        out = np.zeros_like(queries)
        for i in range(len(queries)):
            scores = keys @ queries[i]
            weights = np.exp(scores - scores.max())
            out[i] = (weights / weights.sum()) @ keys
        return out

    for b in range(3):
        part = h["part"][b] + attend(h["part"][b], h["joint"][b]) @ w12
        body = h["body"][b] + attend(h["body"][b], h["part"][b]) @ w23
        expected = h["joint"][b] + 0.3 * (part[_PART_OF_V1] + body[_BODY_OF_V1])
        np.testing.assert_allclose(got[b], expected, rtol=1e-4, atol=1e-4)
    # W_cs_13 exists (as in the release) but nothing depends on it
    enc(nodes).sum().backward()
    assert enc.joint_to_body_unused.grad is None and enc.joint_to_part.grad is not None


def test_sparse_frames_are_sorted_distinct_and_leave_room_for_the_target():
    frames = sparse_frames(6, 2, torch.Generator().manual_seed(0))
    assert [len(i) for i in frames] == [1, 2, 3, 4, 5] * 2
    for idx in frames:
        assert torch.equal(idx, torch.sort(idx).values) and len(set(idx.tolist())) == len(idx)
        assert int(idx.max()) <= 4  # targets are idx + 1 <= 5


def test_losses_by_hand():
    pred = torch.tensor([[[1.0, 2.0], [0.0, -1.0]]])
    target = torch.tensor([[[0.0, 0.0], [1.0, 1.0]]])
    assert float(ssp_loss(pred, target)) == pytest.approx(0.5 * (1 + 4 + 1 + 4))
    # the SSP objective: next-frame targets through the shared LSTM and predictor, mean over subsequences
    torch.manual_seed(0)
    model = MGSCR(MGSCRConfig(d_t=2, heads=1, hidden=4), _spec())
    net = model.net
    x = torch.randn(2, 4, 20, 3)
    frames = [torch.tensor([1]), torch.tensor([0, 2])]
    feats = net.frame_features(x)
    by_hand = []
    for idx in frames:
        out, _ = net.lstm(feats[:, idx])
        err = net.predictor(out) - x[:, idx + 1].reshape(2, len(idx), 60)
        by_hand.append(0.5 * float((err ** 2).sum().detach()))
    assert float(net.ssp_objective(x, frames).detach()) == pytest.approx(np.mean(by_hand), rel=1e-5)
    # the re-ID loss: cross-entropy of the logits summed over the prefix states
    classifier = torch.nn.Linear(2, 3)
    with torch.no_grad():
        classifier.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]))
        classifier.bias.zero_()
    states = torch.tensor([[[1.0, 0.0], [1.0, 1.0]]])  # summed logits (2, 1, 0)
    logits = summed_logits(classifier, states)
    torch.testing.assert_close(logits, torch.tensor([[2.0, 1.0, 0.0]]))
    ce = torch.nn.functional.cross_entropy(logits, torch.tensor([0]))
    assert float(ce.detach()) == pytest.approx(-np.log(np.exp(2) / (np.exp(2) + np.exp(1) + 1)), rel=1e-6)


def test_prefix_states_are_the_last_states_of_the_consecutive_prefixes():
    model = MGSCR(MGSCRConfig(hidden=8), _spec())
    x = torch.randn(2, 6, 20, 3)
    with torch.no_grad():
        states = model.net.prefix_states(x)
        feats = model.net.frame_features(x)
        assert states.shape == (2, 5, 8)
        for k in range(1, 6):  # Test_ftr: frames 0..k-1, last output ([R] 303-310, 324-331)
            out, _ = model.net.lstm(feats[:, :k])
            torch.testing.assert_close(states[:, k - 1], out[:, -1])


def _spec(layout=KINECT_V1_20, classes: int = 11) -> DataSpec:
    return DataSpec("skeleton", num_classes=classes, layout=layout, window=6)


def test_parameter_count_matches_the_released_variables():
    # train.py, per level: W_h [3, 8] + b_h [8] (127-128); 8 heads x (conv1d 8x8, two 8x1 + bias,
    # bias_add 8) = 720 (utils/layers.py 11-27); W_cs_12/23/13 [8, 8] (241-243); TF LSTMCell(128) x 2
    # on 20 x 8 inputs: (160 + 128) x 512 + 512 and (128 + 128) x 512 + 512 (274); predictor
    # 128x128 + 128 + 128x60 + 60 (315-318); classifier 128x128 + 128 + 128xC + C (360-363).
    ias = 3 * (32 + 720) + 3 * 64 + (288 * 512 + 512) + (256 * 512 + 512) + (16512 + 128 * 60 + 60) + (16512 + 128 * 11 + 11)
    assert ias == 324_183
    model = MGSCR(MGSCRConfig(), _spec())
    assert model.num_parameters() == ias
    assert model.encoder_parameters() == 3 * (32 + 720) + 3 * 64 + 279_552
    ks20 = 3 * (32 + 720) + 3 * 64 + (328 * 512 + 512) + (256 * 512 + 512) + (16512 + 128 * 75 + 75) + (16512 + 128 * 20 + 20)
    assert MGSCR(MGSCRConfig(), _spec(KINECT_V2_25, 20)).num_parameters() == ks20 == 347_759
    # TF's single LSTM bias: PyTorch's second one is frozen at TF's constant forget bias 1
    b_hh = model.net.lstm.bias_hh_l0
    assert not b_hh.requires_grad and float(b_hh[128:256].min()) == 1.0 and float(b_hh.abs().sum()) == 128.0


def test_probe_and_overrides_follow_the_release():
    from reid_bench.registry import get_registry

    registry = get_registry()
    probe = MGSCR.probe_defaults(MGSCRConfig(), registry.protocol("ias")())
    assert probe["chunks"] == 5 and probe["hidden"] == 128 and probe["lr"] == 0.005 and probe["weight_decay"] == 0.0005
    assert MGSCR.probe_defaults(MGSCRConfig(probe="harness"), registry.protocol("ias")()) == {}
    assert set(MGSCR.protocol_overrides) <= set(registry.names("protocols"))
    assert set(MGSCR.protocol_notes) == {"synth-gait", "synth-gait-dev", "synth-gait-retrieval"}


def test_short_optimisation_lowers_both_objectives(tiny_fold):
    train, _ = tiny_fold
    torch.manual_seed(0)
    model = MGSCR(MGSCRConfig(hidden=32), _spec(classes=4))
    net = model.net
    x = torch.as_tensor(np.asarray(train.data[:24], dtype=np.float32))
    y = torch.as_tensor(np.asarray(train.labels[:24], dtype=np.int64))
    frames = sparse_frames(6, 1, torch.Generator().manual_seed(0))
    opt = torch.optim.Adam(net.trainable(), lr=0.005)
    first = float(net.ssp_objective(x, frames).detach())
    for _ in range(10):
        opt.zero_grad()
        net.ssp_objective(x, frames).backward()
        opt.step()
    assert float(net.ssp_objective(x, frames).detach()) < 0.8 * first

    def reid() -> torch.Tensor:
        return torch.nn.functional.cross_entropy(summed_logits(net.classifier, net.prefix_states(x)), y)

    opt = torch.optim.Adam(net.trainable(), lr=0.005)
    first = float(reid().detach())
    for _ in range(10):
        opt.zero_grad()
        (reid() + 0.0005 * net.l2_penalty()).backward()
        opt.step()
    assert float(reid().detach()) < 0.5 * first


def test_fit_reports_both_stages_and_is_seeded(tiny_fold, tmp_path):
    train, test = tiny_fold
    settings = dict(pretrain_epochs=2, epochs=2, batch_size=16, hidden=32)
    log: list = []
    model = MGSCR(MGSCRConfig(**settings), _spec(classes=4))
    model.fit(train, trial_context(tmp_path, seed=0, log=log))
    assert [epoch for epoch, _ in log] == [0, 1, 2, 3]
    assert all(set(m) == {"ssp_loss"} and np.isfinite(m["ssp_loss"]) for _, m in log[:2])
    assert all(set(m) == {"ce_loss", "train_acc"} and 0 <= m["train_acc"] <= 1 for _, m in log[2:])
    emb = model.embed(test)
    assert emb.shape == (len(test), 5 * 32) and emb.dtype == np.float32 and np.isfinite(emb).all()
    again = MGSCR(MGSCRConfig(**settings), _spec(classes=4))
    again.fit(train, trial_context(tmp_path, seed=0))
    np.testing.assert_array_equal(again.embed(test), emb)
    np.testing.assert_array_equal(reload_saved(model, tmp_path).embed(test), emb)


@pytest.mark.parametrize("protocol,fold", [("ias", "A"), ("ias-retrieval", "A-B"), ("ks20-retrieval", "all"),
                                           ("synth-gait-retrieval", "A-B")])
def test_mg_scr_runs_closed_set_and_retrieval_protocols(protocol, fold, tmp_path_factory, tmp_path):
    """Closed-set trains the release's recognition MLP as the probe; retrieval ranks the states."""
    from formats_kinect import write_ias_lab, write_ks20
    from reid_bench.trial import TrialSpec, execute_trial

    root = tmp_path_factory.getbasetemp() / "mg-scr-data"
    if not root.exists():
        write_ias_lab(root, persons=3, frames=32)
        write_ks20(root, bodies=(1, 2, 3), frames=32)
    # the class-balanced set (about twice the windows) is covered by the seeded-fit test
    overrides = {"model": {"pretrain_epochs": "1", "epochs": "1", "batch_size": "64", "hidden": "32",
                           "balanced_batches": "false"}}
    if protocol.startswith("synth"):
        overrides["data"] = {"identities": "5", "train_sequences": "2", "test_sequences": "1"}
    if protocol == "ias":
        overrides["probe"] = {"epochs": "3"}
    spec = TrialSpec("mg-scr", protocol, fold, 0, overrides=overrides, data_root=str(root), device="cpu",
                     work_dir=str(tmp_path), cache_dir=str(tmp_path / "cache"))
    metrics = execute_trial(spec)["metrics"]
    assert 0.0 <= metrics["rank1"] <= 1.0
    assert ("mAP" in metrics) == protocol.endswith("retrieval")
