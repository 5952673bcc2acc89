"""--set parsing and typed coercion against dataclass configs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

import pytest

from reid_bench.config import ConfigError, apply_overrides, parse_sets


@dataclass
class Cfg:
    lr: float = 0.1
    epochs: int = 3
    amsgrad: bool = False
    name: str = "x"
    widths: tuple[int, ...] = (64, 128)
    pool: Literal["max", "mean"] = "max"
    extra: Optional[int] = None


def test_scopes_are_split():
    o = parse_sets(["lr=0.5", "model.epochs=4", "probe.kind=knn", "data.identities=7"])
    assert o.model == {"lr": "0.5", "epochs": "4"}
    assert o.probe == {"kind": "knn"} and o.data == {"identities": "7"}
    assert o.as_flat()["data.identities"] == "7"


@pytest.mark.parametrize("bad", ["lr", "zzz.lr=1", "model.=3", "model.1x=2"])
def test_malformed_sets_are_refused(bad):
    with pytest.raises(ConfigError):
        parse_sets([bad])


def test_values_are_coerced_to_field_types():
    cfg = apply_overrides(Cfg(), {"lr": "1e-3", "epochs": "10", "amsgrad": "true", "widths": "48,96",
                                  "pool": "mean", "extra": "none"}, "model m")
    assert cfg == Cfg(lr=1e-3, epochs=10, amsgrad=True, widths=(48, 96), pool="mean", extra=None)
    assert apply_overrides(Cfg(), {"widths": "[1, 2, 3]", "extra": "5"}, "m").widths == (1, 2, 3)


@pytest.mark.parametrize(
    "values, message",
    [
        ({"epochs": "ten"}, "--set epochs='ten': expected an integer"),
        ({"lr": "fast"}, "expected a number"),
        ({"amsgrad": "maybe"}, "expected a boolean"),
        ({"pool": "sum"}, "expected one of max, mean"),
        ({"lrr": "1"}, "unknown --set key 'lrr' for model m; did you mean 'lr'?"),
    ],
)
def test_bad_values_name_the_key(values, message):
    with pytest.raises(ConfigError, match=None) as info:
        apply_overrides(Cfg(), values, "model m")
    assert message in str(info.value)


@pytest.mark.parametrize("typed, shown", [
    ("0.000381314106731405", "0.000381"),  # a sampled value
    ("3.5e-4", "3.5e-4"), ("0.5", "0.5"), ("1234", "1234"), ("0.1235", "0.1235"),  # typed: as written
    ("12345.678", "1.23e+04"), ("-0.06283185307", "-0.0628"), ("adam", "adam"), ("[1, 2]", "[1, 2]"),
])
def test_labels_round_long_numbers_only(typed, shown):
    from reid_bench.config import readable_value

    assert readable_value(typed) == shown


def test_run_settings_leave_the_fingerprint_and_hyper_parameters_do_not():
    """`--set embed_batch=64` runs the same configuration (one leaderboard row); a
    hyper-parameter makes another."""
    from reid_bench.config import Overrides, run_settings_of
    from reid_bench.registry import get_registry
    from reid_bench.trial import resolve_config

    registry = get_registry()
    checked = 0
    for name in registry.names("models"):
        settings = run_settings_of(registry.model(name).config_class())
        if "embed_batch" not in settings:
            continue
        protocol = "synth-market" if registry.model(name).modality == "pointcloud" else "synth-gait-retrieval"
        base = resolve_config(name, protocol, Overrides())
        batched = resolve_config(name, protocol, Overrides(model={"embed_batch": str(int(settings["embed_batch"]) + 7)}))
        assert batched.run_settings["embed_batch"] != base.run_settings["embed_batch"]
        assert batched.fingerprint == base.fingerprint, name
        checked += 1
    assert checked >= 2
    lr = resolve_config("lstm-1", "synth-gait-retrieval", Overrides(model={"lr": "0.001"}))
    assert lr.fingerprint != resolve_config("lstm-1", "synth-gait-retrieval", Overrides()).fingerprint


def test_a_later_setting_at_its_default_keeps_the_recorded_configuration():
    """A field added after rows were recorded (``later_setting``) leaves them the same
    configuration at its default; set to anything else it is in the fingerprint and the label."""
    from dataclasses import replace

    from reid_bench.config import config_dict, fingerprint, later_setting

    @dataclass
    class Before:
        lr: float = 0.1

    @dataclass
    class After:
        lr: float = 0.1
        train_precision: str = later_setting("float32")

    assert config_dict(After()) == config_dict(Before()) == {"lr": 0.1}
    assert fingerprint(config_dict(After())) == fingerprint(config_dict(Before()))
    switched = replace(After(), train_precision="bfloat16")
    assert config_dict(switched) == {"lr": 0.1, "train_precision": "bfloat16"}
    assert fingerprint(config_dict(switched)) != fingerprint(config_dict(Before()))
