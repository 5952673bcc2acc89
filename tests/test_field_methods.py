"""The field's methods (hand-crafted descriptors and sequence learners) on small, known inputs.

Each descriptor is checked value by value on a hand-built skeleton; each learned model's
parameter count against the count of its released architecture; each trains (loss falls) and
runs through the trial code on the real formats' fixtures and on the synthetic protocols.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import fits_by_precision, trial_context
from reid_bench.api import DataSpec, SampleSet
from reid_bench.layouts import CASIA_14, COCO_17, KINECT_V1_20, KINECT_V2_25, Layout

# A Kinect v1 skeleton with round coordinates (metres, y up), asymmetric on purpose: the right
# arm is held out sideways, the right knee sits lower than the left.
KNOWN = {
    "HipCenter": (0.0, 1.0, 0.0), "Spine": (0.0, 1.2, 0.0), "ShoulderCenter": (0.0, 1.5, 0.0), "Head": (0.0, 1.7, 0.0),
    "ShoulderLeft": (-0.2, 1.5, 0.0), "ElbowLeft": (-0.2, 1.2, 0.0), "WristLeft": (-0.2, 1.0, 0.0),
    "HandLeft": (-0.2, 0.9, 0.0),
    "ShoulderRight": (0.2, 1.5, 0.0), "ElbowRight": (0.5, 1.5, 0.0), "WristRight": (0.75, 1.5, 0.0),
    "HandRight": (0.8, 1.5, 0.0),
    "HipLeft": (-0.1, 1.0, 0.0), "KneeLeft": (-0.1, 0.55, 0.0), "AnkleLeft": (-0.1, 0.1, 0.0),
    "FootLeft": (-0.1, 0.0, 0.1),
    "HipRight": (0.1, 1.0, 0.0), "KneeRight": (0.1, 0.5, 0.0), "AnkleRight": (0.1, 0.1, 0.0),
    "FootRight": (0.1, 0.04, 0.1),
}


def known_frame() -> np.ndarray:
    return np.array([KNOWN[name] for name in KINECT_V1_20.joints], dtype=np.float64)


def _spec(layout: Layout = KINECT_V1_20, classes: int = 4, window: int = 6) -> DataSpec:
    return DataSpec("skeleton", num_classes=classes, layout=layout, window=window)


def _windows(frames: np.ndarray, layout: Layout = KINECT_V1_20) -> SampleSet:
    """One or more windows [N, f, J, 3] as a SampleSet with one class each."""
    n = len(frames)
    ids = np.arange(n)
    return SampleSet("skeleton", frames.astype(np.float32), person=ids, labels=ids, camera=np.zeros(n), group=ids,
                     layout=layout)


# ------------------------------------------------------------------------------ D13 / D16


def test_d13_values_on_a_known_skeleton():
    from reid_bench_handcrafted.d13 import D13, D13Config

    model = D13(D13Config(), _spec())
    got = model.frame_descriptors(known_frame())
    expected = [
        1.7 - 0.02,  # head over the mean foot height (0.0, 0.04)
        1.5 - 0.02,  # neck (ShoulderCenter)
        0.2, 0.2,  # neck to left / right shoulder
        math.hypot(0.2, 0.3),  # spine to right shoulder
        0.55,  # right arm: shoulder to wrist, straight
        0.5,  # left arm
        0.5, 0.45,  # right / left upper leg
        0.3,  # torso: neck to spine
        0.2,  # hip width
        0.3 / 0.5, 0.3 / 0.45,  # torso over upper legs
    ]
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert len(model.feature_names) == 13


def test_d13_ratio_floor_and_window_mean():
    from reid_bench_handcrafted.d13 import D13, D13Config

    frame = known_frame()
    bent = frame.copy()
    bent[KINECT_V1_20.joint_index("KneeRight")] = bent[KINECT_V1_20.joint_index("HipRight")] + [0.0, -0.05, 0.0]
    model = D13(D13Config(), _spec())
    assert model.frame_descriptors(bent)[11] == pytest.approx(0.3 / 0.1)  # the denominator floored at 0.1
    # a window of the skeleton and the same skeleton twice as large: lengths average to 1.5x,
    # ratios stay
    window = np.stack([frame, 2 * frame])[None]
    model.fit(_windows(window), trial_context(Path(".")))
    pooled = model.embed(_windows(window))[0]
    single = model.frame_descriptors(frame)
    np.testing.assert_allclose(pooled[:11], 1.5 * single[:11], rtol=1e-6)
    np.testing.assert_allclose(pooled[11:], single[11:], rtol=1e-6)


def test_d16_values_on_a_known_skeleton():
    from reid_bench_handcrafted.d16 import D16, D16Config

    got = D16(D16Config(), _spec()).frame_descriptors(known_frame())
    expected = [
        0.2, 0.3, 0.2,  # head-neck, spine-neck, spine-pelvis
        0.2, 0.3, 0.25,  # right shoulder-neck, right upper arm, right forearm
        0.2, 0.3, 0.2,  # neck-left shoulder, left upper arm, left forearm
        0.1, 0.5, math.hypot(0.46, 0.1),  # right hip-pelvis, right thigh, right knee-foot (ankle skipped)
        0.1, 0.45, math.hypot(0.55, 0.1),  # left
        1.68,  # head height
    ]
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def _descriptor(name: str, layout):
    from reid_bench_handcrafted.d13 import D13, D13Config
    from reid_bench_handcrafted.d16 import D16, D16Config
    from reid_bench_posegait.descriptor import PoseGaitDescriptor, PoseGaitDescriptorConfig

    model_class, config_class = {"d13": (D13, D13Config), "d16": (D16, D16Config),
                                 "posegait-descriptor": (PoseGaitDescriptor, PoseGaitDescriptorConfig)}[name]
    return model_class(config_class(), _spec(layout))


@pytest.mark.parametrize("descriptor", ["d13", "d16", "posegait-descriptor"])
@pytest.mark.parametrize("layout", [KINECT_V2_25, CASIA_14, COCO_17], ids=lambda layout: layout.name)
def test_descriptors_read_any_layout_through_roles(layout, descriptor):
    rng = np.random.default_rng(0)
    windows = rng.normal(size=(3, 6, layout.num_joints, 3))
    model = _descriptor(descriptor, layout)
    model.fit(_windows(windows, layout), trial_context(Path(".")))
    out = model.embed(_windows(windows, layout))
    assert out.shape[0] == 3 and np.isfinite(out).all()


def test_a_layout_without_the_joints_is_refused_by_name():
    from reid_bench_handcrafted.d13 import D13, D13Config
    from reid_bench_posegait.model import PoseGait, PoseGaitConfig

    bare = Layout("stick", ("a", "b", "c"), ((0, 1), (1, 2)), ((0,), (1,), (2,)), ((0, 1, 2),))
    with pytest.raises(ValueError, match=r"layout 'stick' has no joint for role 'head', which D13 needs"):
        D13(D13Config(), _spec(bare))
    partial = Layout("half", ("h", "n", "f"), ((0, 1), (1, 2)), ((0,), (1,), (2,)), ((0, 1, 2),),
                     roles=(("head", (0,)), ("neck", (1,))))
    with pytest.raises(ValueError, match=r"no joint for role 'shoulder_right', which posegait needs"):
        PoseGait(PoseGaitConfig(), _spec(partial))


def test_layout_file_roles_are_read_and_checked(tmp_path):
    from reid_bench.layouts import load_layout_file

    path = tmp_path / "mine.toml"
    base = 'name = "mine"\njoints = ["a", "b"]\nedges = [[0, 1]]\nparts = [[0], [1]]\nbodies = [[0, 1]]\n'
    path.write_text(base + "[roles]\nhead = 0\npelvis = [0, 1]\n")
    assert dict(load_layout_file(path).roles) == {"head": (0,), "pelvis": (0, 1)}
    path.write_text(base + "[roles]\nnose = 0\n")
    with pytest.raises(ValueError, match="unknown role 'nose'"):
        load_layout_file(path)
    path.write_text(base + "[roles]\nhead = 5\n")
    with pytest.raises(ValueError, match=r"role 'head' needs joint indices in 0..1"):
        load_layout_file(path)


# ------------------------------------------------------------------------------ the tables' classifiers


def test_knn_probe_by_euclidean_distance_and_adaboost():
    from reid_bench.probe import ProbeConfig, train_probe_and_score

    # cosine calls [1, 0] and [10, 0] the same; Euclidean 1-NN does not
    train = np.array([[1.0, 0.0], [10.0, 0.1]])
    test = np.array([[9.0, 0.0]])
    knn = ProbeConfig(kind="knn", k=1, standardize=False)
    euclid = train_probe_and_score(train, [0, 1], test, ProbeConfig(kind="knn", k=1, metric="euclidean",
                                                                   standardize=False), seed=0)
    np.testing.assert_allclose(euclid[0], [-8.0, -math.hypot(1.0, 0.1)])
    cosine = train_probe_and_score(train, [0, 1], test, knn, seed=0)
    assert cosine[0, 0] > cosine[0, 1]
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(c * 3, 0.5, size=(20, 2)) for c in range(3)])
    y = np.repeat(np.arange(3), 20)
    scores = train_probe_and_score(x, y, x, ProbeConfig(kind="adaboost", estimators=30), seed=0)
    assert scores.shape == (60, 3) and (scores.argmax(1) == y).mean() > 0.9
    np.testing.assert_allclose(scores.sum(1), 1.0)


def test_probe_trains_each_chunk_as_a_sample():
    from reid_bench.probe import ProbeConfig, train_probe_and_score

    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(3), 30)
    frames = np.stack([rng.normal(y[:, None] * 2.0, 0.3, size=(90, 4)) for _ in range(5)], axis=1)  # [90, 5, 4]
    cfg = ProbeConfig(chunks=5, chunk_loss="each", epochs=100, hidden=16, batch_size=8, scores="logits", standardize=False)
    scores = train_probe_and_score(frames.reshape(90, 20), y, frames.reshape(90, 20), cfg, seed=0)
    assert (scores.argmax(1) == y).mean() > 0.95


# ------------------------------------------------------------------------------ PoseGait features


def test_posegait_features_on_a_known_skeleton():
    from reid_bench_posegait.features import FEATURE_GROUPS, body_joints, pose_features

    first = known_frame()
    second = first + np.array([1.0, 0.0, 2.0])  # the same pose elsewhere: no motion once normalised
    joints = body_joints(np.stack([first, second]), KINECT_V1_20)
    feats = pose_features(joints)
    assert feats.shape == (2, 81)
    pos = feats[0, FEATURE_GROUPS["positions"]].reshape(14, 3)
    np.testing.assert_allclose(pos[1], 0.0)  # the neck is the origin
    scale = 0.5  # neck (y 1.5) to mid-hip (y 1.0)
    np.testing.assert_allclose(pos[0], [0.0, 0.2 / scale, 0.0])  # head
    np.testing.assert_allclose(pos[4], [0.75 / scale, 0.0, 0.0])  # right wrist
    lengths = feats[0, FEATURE_GROUPS["limb_lengths"]]
    np.testing.assert_allclose(lengths[:4], [0.2, 0.2, 0.3, 0.25])  # head-neck, neck-RS, RS-RE, RE-RW
    np.testing.assert_allclose(lengths[7], math.hypot(0.1, 0.5))  # neck-right hip
    angles = feats[0, FEATURE_GROUPS["joint_angles"]]
    np.testing.assert_allclose(angles[1], math.pi)  # right elbow straight (arm held out)
    np.testing.assert_allclose(angles[3], math.pi)  # left elbow straight (arm hanging)
    np.testing.assert_allclose(angles[8], math.pi / 2)  # right upper arm swung 90 degrees from the trunk
    np.testing.assert_allclose(angles[9], 0.0, atol=1e-7)  # left upper arm along the trunk
    motion = feats[:, FEATURE_GROUPS["joint_motion"]]
    np.testing.assert_allclose(motion, 0.0, atol=1e-12)
    moved = joints.copy()
    moved[1, 0] += [0.0, 0.5, 0.0]  # the head rises 0.5 m = 1 body unit in the second frame
    assert pose_features(moved)[1, FEATURE_GROUPS["joint_motion"]][0] == pytest.approx(1.0)


def test_posegait_cnn_matches_the_released_parameter_count():
    """The released network.py with its loader's 126 x 17 input: by hand, convolutions
    9*32 + 9*32*64 + 9*64*64 + 9*64*128 + 2*9*128*128 = 424,224 (no bias), BatchNorm 2 x (32 + 64
    + 64 + 128 + 128 + 128) = 1,088, fc 128*29*2*512 + 512 = 3,801,600: 4,226,912 without the
    classifier; + 513 x 74 classes (CASIA-B's training subjects) = 4,264,874."""
    from reid_bench_posegait.model import PoseGait, PoseGaitConfig

    released = PoseGait(PoseGaitConfig(input="release"), PoseGait.example_spec())
    assert released.num_parameters() == 424_224 + 1_088 + 3_801_600 == 4_226_912
    assert sum(p.numel() for p in released.net.parameters()) == 4_264_874
    features = PoseGait(PoseGaitConfig(), PoseGait.example_spec())  # 81 rows: 77 -> 38 -> 36 -> 18
    assert features.num_parameters() == 424_224 + 1_088 + 128 * 18 * 2 * 512 + 512


# ------------------------------------------------------------------------------ AGE / SGELA


def _tf_age_variables(joints: int) -> int:
    """AGE's trainable TF variables per axis (SGE-LA train.py 199-347): encoder LSTM kernels
    [J+256, 1024] and [512, 1024] with biases, the two unused copies (lstm_weights_layer_1
    [J+256, 1024], lstm_weights_layer_2 [1024]), memory layer [256, 256], decoder kernels
    [J+256+256, 1024] and [512, 1024] with biases, attention layer [512, 256], output [256, J] + J."""
    h4 = 4 * 256
    return ((joints + 256) * h4 + h4 + 512 * h4 + h4 + (joints + 256) * h4 + h4 + 256 * 256
            + (joints + 512) * h4 + h4 + 512 * h4 + h4 + 512 * 256 + 256 * joints + joints)


def _release_unused_copies(joints: int) -> int:
    """The release's two unused trainable copies."""
    return (joints + 256) * 1024 + 1024


@pytest.mark.parametrize("layout", [KINECT_V1_20, KINECT_V2_25], ids=lambda layout: layout.name)
def test_age_and_sgela_parameter_counts_match_the_release_per_layout(layout):
    from reid_bench_sgela.model import AGE, SGELA, AGEConfig, SGELAConfig

    j = layout.num_joints
    age = AGE(AGEConfig(), _spec(layout, window=6))
    assert age.num_parameters() == 3 * (_tf_age_variables(j) - _release_unused_copies(j))
    head = 6 * 256 * 256 + 256 + 256 * 256 + 256  # SGELA's projection head per axis at f = 6
    sgela = SGELA(SGELAConfig(), _spec(layout, window=6))
    assert sgela.num_parameters() == age.num_parameters() + 3 * head


def test_age_and_sgela_parameter_counts_match_the_release():
    from reid_bench_sgela.model import AGE, SGELA, AGEConfig, SGELAConfig

    assert 3 * _tf_age_variables(20) == 7_096_380  # the release's count at J = 20
    assert AGE(AGEConfig(), _spec(window=6)).num_parameters() == 6_245_436
    assert SGELA(SGELAConfig(), _spec(window=6)).num_parameters() + 3 * _release_unused_copies(20) == 8_474_172


def test_locality_mask_and_adjacent_contrastive_loss():
    from reid_bench_sgela.network import adjacent_nt_xent, locality_mask

    mask = locality_mask(6)
    np.testing.assert_allclose(mask[0], [0.2494, 0.4111, 0.6065, 0.8007, 0.9460, 1.0], atol=1e-4)
    np.testing.assert_allclose(mask[5], mask[0].flip(0))
    torch.manual_seed(0)
    z = torch.randn(5, 8)
    t = 0.1
    z1, z2 = z[1:], z[:-1]
    views = torch.nn.functional.normalize(torch.cat([z1, z2]), dim=1)
    sim = (views @ views.T / t).exp()
    n = len(z1)
    manual = 0.0
    for i in range(n):
        manual -= math.log(sim[i, i + n] / (sim[i].sum() - sim[i, i]))
        manual -= math.log(sim[i + n, i] / (sim[i + n].sum() - sim[i + n, i + n]))
    assert float(adjacent_nt_xent(z, t)) == pytest.approx(manual / (2 * n), rel=1e-5)


def test_tf_forget_bias_is_a_frozen_constant():
    from reid_bench_sgela.network import AxisEncoderDecoder

    net = AxisEncoderDecoder(20)
    bias = net.encoder.bias_hh_l0
    assert not bias.requires_grad and bias[256:512].eq(1).all() and bias[:256].eq(0).all()
    assert net.encoder.weight_ih_l0.abs().max() <= 0.1


# ------------------------------------------------------------------------------ learning


LEARNED = {
    "lstm-1": ("reid_bench_lstm.model", "SingleLayerLSTM", "LSTMConfig", dict(epochs=8, hidden=32, batch_size=16, lr=3e-3)),
    "lstm-m": ("reid_bench_lstm.model", "MultiLayerLSTM", "MultiLayerLSTMConfig", dict(epochs=8, hidden=32, batch_size=16, lr=3e-3)),
    "posegait": ("reid_bench_posegait.model", "PoseGait", "PoseGaitConfig", dict(epochs=8, lr=1e-3, batch_size=16)),
    "age": ("reid_bench_sgela.model", "AGE", "AGEConfig", dict(epochs=8, batch_size=16, lr=2e-3)),
    "sgela": ("reid_bench_sgela.model", "SGELA", "SGELAConfig", dict(epochs=8, batch_size=16, lr=2e-3)),
}


@pytest.mark.parametrize("name", sorted(LEARNED))
def test_learned_models_lower_their_loss_and_embed(name, tiny_fold, tmp_path):
    import importlib

    module, cls_name, cfg_name, settings = LEARNED[name]
    mod = importlib.import_module(module)
    train, test = tiny_fold
    model = getattr(mod, cls_name)(getattr(mod, cfg_name)(**settings), _spec(classes=train.num_classes))
    log: list = []
    model.fit(train, trial_context(tmp_path, seed=0, log=log))
    losses = [m["loss"] for _, m in log]
    assert len(losses) == 8 and losses[-1] < losses[0], losses
    emb = model.embed(test)
    assert emb.shape[0] == len(test) and emb.dtype == np.float32 and np.isfinite(emb).all()
    again = getattr(mod, cls_name)(getattr(mod, cfg_name)(**settings), _spec(classes=train.num_classes))
    again.fit(train, trial_context(tmp_path, seed=0))
    np.testing.assert_array_equal(again.embed(test), emb)  # seeded: the same weights


@pytest.mark.parametrize("name", ["lstm-m", "posegait", "age"])
def test_bfloat16_training_is_a_named_switch_that_changes_the_numbers(name, tiny_fold, tmp_path):
    """``train_precision=bfloat16``: the training forward passes run in bf16 (none does by
    default), the loss still falls, and the embeddings stay float32 but are not the float32 fit's."""
    import dataclasses
    import importlib

    module, cls_name, cfg_name, settings = LEARNED[name]
    mod = importlib.import_module(module)
    train, test = tiny_fold

    def build(precision):
        cfg = dataclasses.replace(getattr(mod, cfg_name)(**settings), epochs=4, train_precision=precision)
        return getattr(mod, cls_name)(cfg, _spec(classes=train.num_classes))

    fits = fits_by_precision(build, train, tmp_path)
    for precision, (_, losses, _) in fits.items():
        assert losses[-1] < losses[0], (precision, losses)
    assert torch.bfloat16 not in fits["float32"][0] and torch.bfloat16 in fits["bfloat16"][0]
    emb = fits["bfloat16"][2].embed(test)
    assert emb.dtype == np.float32 and np.isfinite(emb).all() and not np.array_equal(emb, fits["float32"][2].embed(test))


def test_an_unknown_training_precision_is_refused_by_name():
    from reid_bench.config import ConfigError, Overrides
    from reid_bench.torchutil import training_autocast
    from reid_bench.trial import resolve_config

    with pytest.raises(ConfigError, match="train_precision"):
        resolve_config("lstm-m", "synth-gait", Overrides(model={"train_precision": "float16"}))
    with pytest.raises(ValueError, match="train_precision"):
        training_autocast("float16", "cpu")


@pytest.mark.parametrize("layout", ["contiguous", "permuted", "channels_last"])
def test_dropout_draws_torchs_mask_with_its_gradient_and_generator_state(layout):
    """The models' dropout (``reid_bench.torchutil``) draws its mask faster than torch's CPU
    dropout but must be the same function of the same generator: equal outputs, gradients and
    the draws that follow, also for tensors whose memory order is not their logical order."""
    from reid_bench.torchutil import Dropout, dropout

    x = torch.randn(6, 5, 7, 9)
    if layout == "permuted":
        x = x.permute(2, 0, 3, 1)
    elif layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    weights = torch.randn(x.shape)
    for p in (0.5, 0.1):
        results = []
        for fn in (torch.nn.functional.dropout, dropout):
            torch.manual_seed(3)
            out = fn(x, p, True)
            grad, = torch.autograd.grad((out * weights).sum(), x)
            results.append((out, grad, torch.rand(4)))
        (out, grad, after), (ours, our_grad, our_after) = results
        assert torch.equal(ours, out) and torch.equal(our_grad, grad) and torch.equal(our_after, after)
        assert 0.2 < float((ours == 0).float().mean()) / p < 2.0  # it does drop
    module = Dropout(0.5)
    module.eval()
    assert torch.equal(module(x), x)  # evaluation: the identity, as torch's
    import pickle

    again = pickle.loads(pickle.dumps(module))  # a whole model can still be pickled
    assert again.p == 0.5 and not again.training


def test_age_gradients_reach_every_trainable_weight(tiny_fold):
    from reid_bench_sgela.model import SGELA, SGELAConfig
    from reid_bench_sgela.network import locality_mask

    train, _ = tiny_fold
    model = SGELA(SGELAConfig(), _spec(classes=train.num_classes))
    x = torch.as_tensor(np.asarray(train.data[:8], dtype=np.float32))
    losses = model._losses(x, locality_mask(6))
    assert set(losses) == {"reconstruction", "locality", "contrastive"}
    sum(losses.values()).backward()
    missing = [n for n, p in list(model.axes.named_parameters()) + list(model.heads.named_parameters())
               if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)]
    assert missing == []


# ------------------------------------------------------------------------------ every protocol


def _fixtures(root: Path) -> None:
    from formats_casia import make_casia_3d_dataset
    from formats_kinect import write_biwi, write_ias_lab, write_kgbd, write_ks20

    write_ias_lab(root, persons=3, frames=32)
    write_kgbd(root, walks_per_person=(3, 3, 3), frames=32)
    write_ks20(root, bodies=(1, 2, 3), frames=32)
    write_biwi(root, persons=3, test_persons=3, frames=32)
    make_casia_3d_dataset(root / "casia-b-3d", subjects=(1, 2, 3), views=("072", "090", "108"), frames=45)


TINY = {
    "d13": {}, "d16": {"estimators": "5"}, "dpg": {},
    "lstm-1": {"epochs": "1", "hidden": "16"}, "lstm-m": {"epochs": "1", "hidden": "16"},
    "posegait": {"epochs": "1", "batch_size": "32"},
    "age": {"epochs": "1", "probe_epochs": "2"}, "sgela": {"epochs": "1", "probe_epochs": "2"},
    "mocos": {"epochs": "1", "batch_size": "32", "hidden": "16", "heads": "8"},
    "stgcn": {"epochs": "1", "batch_size": "16", "base_channels": "8"},
    "ctrgcn": {"epochs": "1", "batch_size": "16", "base_channels": "8"},
    "gaittr": {"iterations": "4", "epoch_iterations": "2", "per_identity": "2", "channels": "[8,8,16,32]",
               "heads": "2", "embed_dim": "16"},
    "gpgait": {"iterations": "4", "epoch_iterations": "2", "per_identity": "2", "channels": "[8,8,8,16]"},
}
PROTOCOLS = [("ias", "A"), ("ias-retrieval", "B-A"), ("kgbd", "all"), ("ks20-retrieval", "all"), ("biwi", "W"),
             ("casia-b", "090"), ("synth-gait", "A"), ("synth-gait-retrieval", "A-B")]


RETRIEVAL = {"ias-retrieval", "ks20-retrieval", "biwi", "synth-gait-retrieval"}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("field-data")
    _fixtures(root)
    return root


@pytest.mark.parametrize("model", sorted(TINY))
def test_every_method_runs_every_skeleton_protocol(model, data_root, tmp_path):
    from reid_bench.trial import TrialSpec, execute_trial

    tiny_synth = {"identities": "5", "train_sequences": "2", "test_sequences": "1"}
    for protocol, fold in PROTOCOLS:
        overrides = {"model": TINY[model]}
        if protocol.startswith("synth"):
            overrides["data"] = tiny_synth
        if protocol in ("ias", "kgbd", "casia-b", "synth-gait") and model not in ("age", "sgela"):
            overrides["probe"] = {"epochs": "3"}
        spec = TrialSpec(model, protocol, fold, 0, overrides=overrides, data_root=str(data_root), device="cpu",
                         work_dir=str(tmp_path / protocol), cache_dir=str(tmp_path / "cache"))
        result = execute_trial(spec)
        metrics = result["metrics"]
        assert 0.0 <= metrics["rank1"] <= 1.0, (protocol, metrics)
        assert ("mAP" in metrics) == (protocol in RETRIEVAL), (protocol, sorted(metrics))


def test_listed_with_parameter_counts_and_per_protocol_defaults(cli):
    import json

    models = {m["name"] for m in json.loads(cli("list", "models", "--json").stdout)["models"]}
    assert set(TINY) <= models
    counts = {}
    for name in TINY:
        info = json.loads(cli("info", name, "--json").stdout)
        counts[name] = info["num_parameters"]
        assert "protocol_overrides" in info and "config" in info
    assert counts["age"] == 6_245_436 and counts["d13"] == counts["d16"] == counts["dpg"] == 0
    sgela = json.loads(cli("info", "sgela", "--json").stdout)
    assert sgela["protocol_overrides"]["kgbd"]["temperature"] == 0.5
    assert sgela["protocol_overrides"]["ks20"]["probe_epochs"] == 800


def test_the_tables_classifiers_are_the_resolved_probes(cli):
    """What `info MODEL --protocol P` resolves: the released recognition network of AGE on KGBD
    (150 epochs), D13's 1-NN and D16's AdaBoost on IAS; `--set probe.*` would still win."""
    import json

    def resolved(model: str, protocol: str) -> dict:
        return json.loads(cli("info", model, "--protocol", protocol, "--json").stdout)["on_protocol"]

    age = resolved("age", "kgbd")
    assert age["model"]["epochs"] == 400 and age["probe"]["epochs"] == 150
    assert {k: age["probe"][k] for k in ("hidden", "init", "lr", "chunks", "chunk_loss", "standardize", "weight_decay")} \
        == {"hidden": 256, "init": "normal", "lr": 0.0005, "chunks": 6, "chunk_loss": "each", "standardize": False,
            "weight_decay": 0.0}
    d13 = resolved("d13", "ias")["probe"]
    assert (d13["kind"], d13["k"], d13["metric"], d13["standardize"]) == ("knn", 1, "euclidean", False)
    assert resolved("d16", "ias")["probe"]["kind"] == "adaboost"
    assert not resolved("d13", "ias-retrieval")["probe"]  # retrieval ranks the descriptors directly
