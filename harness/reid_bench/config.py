"""Typed ``--set key=value`` overrides onto dataclass configs.

Keys: ``name`` or ``model.name`` (the model's config), ``probe.name`` (closed-set probe),
``data.name`` (options of the protocol's datasets). Values are coerced to the field's declared
type; unknown keys and ill-typed values are refused with the key named.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, Union, get_args, get_origin

SCOPES = ("model", "probe", "data")


class ConfigError(ValueError):
    pass


@dataclass
class Overrides:
    """``--set`` values split by scope, still as strings (coerced against a dataclass later)."""

    model: dict[str, str] = field(default_factory=dict)
    probe: dict[str, str] = field(default_factory=dict)
    data: dict[str, str] = field(default_factory=dict)

    def as_flat(self) -> dict[str, str]:
        flat = {f"model.{k}": v for k, v in self.model.items()}
        flat.update({f"probe.{k}": v for k, v in self.probe.items()})
        flat.update({f"data.{k}": v for k, v in self.data.items()})
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
        return typing.get_type_hints(cls)
    except Exception:  # unresolvable annotations: fall back to the raw ones
        return {f.name: f.type for f in dataclasses.fields(cls)}


def coerce(value: str, tp: Any, key: str) -> Any:
    """Turn the string ``value`` into ``tp`` or raise ConfigError naming ``key``."""
    origin = get_origin(tp)
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


def apply_overrides(config: Any, values: dict[str, str], what: str) -> Any:
    """A copy of dataclass ``config`` with ``values`` coerced and applied."""
    if not values:
        return config
    names = [f.name for f in dataclasses.fields(config)]
    hints = _type_hints(type(config))
    changes = {}
    for key, value in values.items():
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"unknown --set key {key!r} for {what}{hint} (keys: {', '.join(names)})")
        changes[key] = coerce(value, hints.get(key, str), key)
    try:
        return dataclasses.replace(config, **changes)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{what}: {exc}") from None


def config_dict(config: Any) -> dict[str, Any]:
    """JSON-friendly view of a dataclass config (tuples as lists)."""
    if config is None:
        return {}
    return json.loads(json.dumps(dataclasses.asdict(config), default=str))


def fingerprint(payload: dict[str, Any]) -> str:
    """Stable short hash of a resolved configuration: the identity of a leaderboard entry."""
    import hashlib

    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:12]
