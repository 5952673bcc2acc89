"""Typed ``--set key=value`` overrides onto dataclass configs, and the valid values of a field.

Keys: ``name`` or ``model.name`` (the model's config), ``probe.name`` (closed-set probe),
``data.name`` (options of the protocol's datasets). Values are coerced to the field's declared
type; unknown keys and ill-typed values are refused with the key named. A field declares its
valid values in its type: ``Literal[...]`` for choices, ``Annotated[int, Range(ge=1)]`` (or the
aliases below) for ranges; :func:`check_config` enforces them on a whole config before anything
runs, and a config's ``__post_init__`` may refuse combinations (raising ``ValueError``).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Union, get_args, get_origin

SCOPES = ("model", "probe", "data", "eval")


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Range:
    """The valid interval of a numeric field: ``Annotated[float, Range(ge=0, lt=1)]``."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def contains(self, value: float) -> bool:
        if isinstance(value, float) and not math.isfinite(value):
            return False
        return ((self.ge is None or value >= self.ge) and (self.gt is None or value > self.gt)
                and (self.le is None or value <= self.le) and (self.lt is None or value < self.lt))

    def describe(self) -> str:
        parts = [f"{op} {bound:g}" for op, bound in ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt))
                 if bound is not None]
        return " and ".join(parts) or "finite"


def require_order(config: Any, low: str, high: str) -> None:
    """For a config's ``__post_init__``: refuse ``low`` above ``high`` (a range given as two fields)."""
    if getattr(config, low) > getattr(config, high):
        raise ValueError(f"{low} ({getattr(config, low)}) must not exceed {high} ({getattr(config, high)})")


PositiveInt = Annotated[int, Range(ge=1)]
NonNegativeInt = Annotated[int, Range(ge=0)]
PositiveFloat = Annotated[float, Range(gt=0)]
NonNegativeFloat = Annotated[float, Range(ge=0)]
#: Dropout, label smoothing: 0 <= p < 1.
Fraction = Annotated[float, Range(ge=0, lt=1)]
Probability = Annotated[float, Range(ge=0, le=1)]


@dataclass
class Overrides:
    """``--set`` values split by scope, still as strings (coerced against a dataclass later)."""

    model: dict[str, str] = field(default_factory=dict)
    probe: dict[str, str] = field(default_factory=dict)
    data: dict[str, str] = field(default_factory=dict)
    #: How a retrieval protocol ranks (``RetrievalScoring`` fields): distance, item, rank_over.
    eval: dict[str, str] = field(default_factory=dict)

    def as_scopes(self) -> dict[str, dict[str, str]]:
        """Plain data per scope (what a trial spec carries to a worker)."""
        return {scope: dict(getattr(self, scope)) for scope in SCOPES}

    def as_flat(self) -> dict[str, str]:
        flat = {f"model.{k}": v for k, v in self.model.items()}
        for scope in SCOPES[1:]:
            flat.update({f"{scope}.{k}": v for k, v in getattr(self, scope).items()})
        return dict(sorted(flat.items()))


def parse_sets(items: list[str] | None) -> Overrides:
    out = Overrides()
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value")
        key, value = item.split("=", 1)
        key = key.strip()
        scope, _, name = key.partition(".")
        if not name:
            scope, name = "model", key
        if scope not in SCOPES:
            raise ConfigError(f"--set {key!r}: unknown scope {scope!r}; use one of {', '.join(SCOPES)} (or a bare model key)")
        if not name.isidentifier():
            raise ConfigError(f"--set {key!r}: {name!r} is not a valid key")
        getattr(out, scope)[name] = value.strip()
    return out


def _type_hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls, include_extras=True)
    except Exception:  # unresolvable annotations: fall back to the raw ones
        return {f.name: f.type for f in dataclasses.fields(cls)}


def coerce(value: str, tp: Any, key: str) -> Any:
    """Turn the string ``value`` into ``tp`` or raise ConfigError naming ``key``."""
    origin = get_origin(tp)
    if origin is Annotated:
        return coerce(value, get_args(tp)[0], key)
    if tp is Any:
        return _parse_literal(value)
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if type(None) in args and value.lower() in ("none", "null", ""):
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"--set {key}={value!r}: no matching type")
    if origin is Literal:
        choices = get_args(tp)
        for choice in choices:
            if str(choice) == value:
                return choice
        raise ConfigError(f"--set {key}={value!r}: expected one of {', '.join(map(str, choices))}")
    if tp is bool:
        low = value.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"--set {key}={value!r}: expected a boolean (true/false)")
    if tp is int:
        try:
            return int(value)
        except ValueError:
            raise ConfigError(f"--set {key}={value!r}: expected an integer") from None
    if tp is float:
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"--set {key}={value!r}: expected a number") from None
    if tp is str:
        return value
    if origin in (tuple, list):
        args = get_args(tp)
        text = value.strip()
        if text.startswith("["):
            try:
                raw = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"--set {key}={value!r}: invalid list ({exc})") from None
            parts = [str(x) for x in raw]
        else:
            parts = [p.strip() for p in text.split(",") if p.strip()]
        item_type = args[0] if args else str
        items = [coerce(p, item_type, key) for p in parts]
        return tuple(items) if origin is tuple else items
    raise ConfigError(f"--set {key}: fields of type {tp!r} cannot be set from the command line")


def _parse_literal(value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def apply_overrides(config: Any, values: dict[str, str], what: str, prefix: str = "") -> Any:
    """A copy of dataclass ``config`` with ``values`` coerced and applied, then checked whole
    (:func:`check_config`); ``prefix`` is how the keys are spelt on the command line."""
    names = [f.name for f in dataclasses.fields(config)]
    hints = _type_hints(type(config))
    changes = {}
    for key, value in values.items():
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
            hint = f"; did you mean {prefix}{close[0]!r}?" if close else ""
            raise ConfigError(f"unknown --set key {prefix}{key!r} for {what}{hint} (keys: {', '.join(names)})")
        changes[key] = coerce(value, hints.get(key, str), f"{prefix}{key}")
        problem = _check_value(changes[key], hints.get(key, Any), key)
        if problem:  # before the config is made: its own __post_init__ would not name the key
            raise ConfigError(f"{prefix}{key}={json.dumps(changes[key], default=str)}: {problem} ({what})")
    try:
        config = dataclasses.replace(config, **changes) if changes else config
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{what}: {exc}") from None
    check_config(config, what, prefix)
    return config


def _check_value(value: Any, tp: Any, key: str) -> str | None:
    """Why ``value`` is not a valid ``tp`` (None when it is)."""
    origin = get_origin(tp)
    if origin is Annotated:
        base, *extras = get_args(tp)
        problem = _check_value(value, base, key)
        if problem:
            return problem
        for extra in extras:
            if isinstance(extra, Range) and not extra.contains(value):
                return f"must be {extra.describe()}"
        return None
    if tp is Any:
        return None
    if origin in (Union, types.UnionType):
        problems = [_check_value(value, arg, key) for arg in get_args(tp)]
        return None if any(p is None for p in problems) else next(p for p in problems if p)
    if tp is type(None):
        return None if value is None else "must be null"
    if origin is Literal:
        choices = get_args(tp)
        return None if value in choices else f"must be one of {', '.join(map(str, choices))}"
    if origin in (tuple, list):
        if not isinstance(value, (tuple, list)):
            return "must be a list"
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:  # a fixed-length tuple
            if len(value) != len(args):
                return f"must have {len(args)} items"
            item_types = list(args)
        else:
            item_types = [args[0] if args else Any] * len(value)
        for i, (item, item_type) in enumerate(zip(value, item_types)):
            problem = _check_value(item, item_type, key)
            if problem:
                return f"item {i + 1} ({item!r}) {problem}"
        return None
    if tp is bool:
        return None if isinstance(value, bool) else "must be true or false"
    if tp is int:
        return None if isinstance(value, int) and not isinstance(value, bool) else "must be an integer"
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return "must be a number"
        return None if math.isfinite(value) else "must be finite"
    if tp is str:
        return None if isinstance(value, str) else "must be text"
    return None


def check_config(config: Any, what: str, prefix: str = "") -> None:
    """Refuse a config whose fields lie outside their declared types, choices and ranges,
    naming the key as the command line spells it."""
    if config is None:
        return
    hints = _type_hints(type(config))
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        problem = _check_value(value, hints.get(f.name, Any), f.name)
        if problem:
            raise ConfigError(f"{prefix}{f.name}={json.dumps(value, default=str)}: {problem} ({what})")


def run_setting(default: Any) -> Any:
    """A config field that says how a trial runs, not what it computes (how many samples one
    forward pass embeds): ``--set`` still takes it and the run records it, but it stays out of
    the configuration's fingerprint, so it never makes a leaderboard row of its own."""
    return field(default=default, metadata={"run_setting": True})


def later_setting(default: Any) -> Any:
    """A config field added after rows were recorded without it: at its default it is left out
    of the configuration (fingerprint and label), so those rows stay the same configuration;
    any other value is part of it, as every field is."""
    return field(default=default, metadata={"omit_at_default": True})


def run_setting_names(config: Any) -> tuple[str, ...]:
    if config is None or not dataclasses.is_dataclass(config):
        return ()
    return tuple(f.name for f in dataclasses.fields(config) if f.metadata.get("run_setting"))


def config_dict(config: Any, run_settings: bool = False) -> dict[str, Any]:
    """JSON-friendly view of a dataclass config (tuples as lists); its run settings only when
    asked for (they are not part of what a configuration is)."""
    if config is None:
        return {}
    values = json.loads(json.dumps(dataclasses.asdict(config), default=str))
    if not run_settings:
        for name in run_setting_names(config):
            values.pop(name, None)
    for f in dataclasses.fields(config):
        if f.metadata.get("omit_at_default") and getattr(config, f.name) == f.default:
            values.pop(f.name, None)
    return values


def run_settings_of(config: Any) -> dict[str, Any]:
    """The run-setting fields of a config, JSON-friendly."""
    values = json.loads(json.dumps(dataclasses.asdict(config), default=str)) if dataclasses.is_dataclass(config) else {}
    return {name: values[name] for name in run_setting_names(config)}


def fingerprint(payload: dict[str, Any]) -> str:
    """Stable short hash of a resolved configuration: the identity of a leaderboard entry."""
    import hashlib

    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:12]


def readable_value(text: str, digits: int = 3) -> str:
    """A number as a label shows it: a sampled ``0.000381314106731405`` reads ``0.000381``. Values
    typed with few digits (``3.5e-4``, ``0.5``) and non-numbers stay as written; configurations
    and fingerprints keep the exact value."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        return text
    mantissa = text.strip().lstrip("+-").lower().split("e")[0].replace(".", "").lstrip("0")
    if not math.isfinite(value) or len(mantissa) <= digits + 1:
        return text
    return f"{value:.{digits}g}"

