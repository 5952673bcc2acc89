"""The plugin registry: entry points read once, objects imported only when asked for.

Listing names reads distribution metadata alone, so ``reid-bench list`` never imports torch. A
plugin that fails to import is reported by ``reid-bench plugins`` and does not affect the rest.
"""

from __future__ import annotations

import dataclasses
import difflib
import traceback
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from reid_bench.modes import MODES

KINDS: dict[str, str] = {
    "models": "reid_bench.models",
    "datasets": "reid_bench.datasets",
    "protocols": "reid_bench.protocols",
    "layouts": "reid_bench.layouts",
}
_SINGULAR = {"models": "model", "datasets": "dataset", "protocols": "protocol", "layouts": "layout"}


class PluginError(Exception):
    """Base for registry errors; the message is meant for the user as is."""


class UnknownPluginError(PluginError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class DuplicatePluginError(PluginError):
    pass


class PluginLoadError(PluginError):
    pass


class PluginAPIError(PluginError):
    pass


@dataclass(frozen=True)
class PluginEntry:
    """One entry point as declared by a distribution (nothing imported yet)."""

    kind: str
    name: str
    value: str
    distribution: str
    version: str

    @property
    def label(self) -> str:
        return f"{self.distribution} {self.version}"


@dataclass(frozen=True)
class PluginStatus:
    entry: PluginEntry
    loaded: bool
    error: str = ""


def _dist_of(ep: EntryPoint, seen: dict[Any, tuple[str, str]]) -> tuple[str, str]:
    """Name and version of the distribution behind ``ep``. Each lookup parses its METADATA file
    (the e-mail parser: about 1 ms); the entry points of one ``entry_points()`` scan share their
    distribution object, so ``seen`` keeps one answer per distribution."""
    dist = getattr(ep, "dist", None)
    if dist is None:
        return ("<unknown>", "")
    if dist not in seen:
        meta = dist.metadata
        seen[dist] = (meta["Name"] or "<unknown>", meta["Version"] or "")
    return seen[dist]


class Registry:
    """Lazy, typed access to the four plugin kinds."""

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, PluginEntry]] | None = None
        self._eps: dict[tuple[str, str], EntryPoint] = {}
        self._duplicates: dict[tuple[str, str], list[PluginEntry]] = {}
        self._loaded: dict[tuple[str, str], Any] = {}
        self._errors: dict[tuple[str, str], str] = {}
        self._runtime_layouts: dict[str, Any] = {}
        self._published_methods: dict[str, list[str]] | None = None

    # ---------------------------------------------------------------- metadata (no imports)
    def _scan(self) -> dict[str, dict[str, PluginEntry]]:
        if self._entries is not None:
            return self._entries
        entries: dict[str, dict[str, PluginEntry]] = {kind: {} for kind in KINDS}
        installed = entry_points()  # one scan of the installed distributions for the four groups
        seen: dict[Any, tuple[str, str]] = {}
        for kind, group in KINDS.items():
            for ep in installed.select(group=group):
                dist, version = _dist_of(ep, seen)
                entry = PluginEntry(kind, ep.name, ep.value, dist, version)
                previous = entries[kind].get(ep.name)
                if previous is not None:
                    if previous.distribution == dist and previous.value == ep.value:
                        continue  # the same distribution seen twice on sys.path
                    self._duplicates.setdefault((kind, ep.name), [previous]).append(entry)
                    continue
                entries[kind][ep.name] = entry
                self._eps[(kind, ep.name)] = ep
        self._entries = entries
        return entries

    def entries(self, kind: str) -> dict[str, PluginEntry]:
        self._check_kind(kind)
        return dict(sorted(self._scan()[kind].items()))

    def names(self, kind: str) -> list[str]:
        return list(self.entries(kind))

    def entry(self, kind: str, name: str) -> PluginEntry:
        entries = self.entries(kind)
        if name not in entries:
            raise UnknownPluginError(self._unknown_message(kind, name, list(entries)))
        return entries[name]

    def kind_of(self, name: str) -> list[str]:
        """Kinds that have a plugin called ``name`` (``info`` accepts any kind)."""
        return [kind for kind in KINDS if name in self._scan()[kind]]

    # ---------------------------------------------------------------- loading
    def load(self, kind: str, name: str) -> Any:
        entry = self.entry(kind, name)
        key = (kind, name)
        if key in self._duplicates:
            dists = " and ".join(f"{e.distribution} ({e.value})" for e in self._duplicates[key])
            raise DuplicatePluginError(
                f"{_SINGULAR[kind]} {name!r} is registered twice: by {dists}; uninstall one of them"
            )
        if key in self._loaded:
            return self._loaded[key]
        if key in self._errors:
            raise PluginLoadError(self._errors[key])
        try:
            obj = self._eps[key].load()
        except Exception as exc:  # a broken plugin must not take the others down
            message = (
                f"{_SINGULAR[kind]} {name!r} from {entry.label} failed to import ({entry.value}): "
                f"{type(exc).__name__}: {exc}"
            )
            self._errors[key] = message + "\n" + traceback.format_exc()
            raise PluginLoadError(message) from exc
        try:
            check_plugin(kind, name, obj)
        except PluginAPIError as exc:
            self._errors[key] = f"{entry.label}: {exc}"
            raise PluginAPIError(f"{entry.label}: {exc}") from None
        self._loaded[key] = obj
        return obj

    def model(self, name: str) -> Any:
        return self.load("models", name)

    def published_methods(self) -> dict[str, list[str]]:
        """{published method: the installed models that declare it (``Model.published_as``), by
        name}. Loads every model; one that fails to load declares nothing (``plugins`` shows why)."""
        if self._published_methods is None:
            declared: dict[str, list[str]] = {}
            for name in self.names("models"):
                try:
                    method = getattr(self.model(name), "published_as", None)
                except PluginError:
                    continue
                if method is not None:
                    declared.setdefault(method, []).append(name)
            self._published_methods = declared
        return {method: list(models) for method, models in self._published_methods.items()}

    def dataset(self, name: str) -> Any:
        return self.load("datasets", name)

    def protocol(self, name: str) -> Any:
        return self.load("protocols", name)

    def layout(self, name: str) -> Any:
        if name in self._runtime_layouts:
            return self._runtime_layouts[name]
        return self.load("layouts", name)

    def register_layout(self, layout: Any) -> None:
        """Make a user layout (read from a TOML/JSON file) resolvable by name in this process."""
        check_plugin("layouts", layout.name, layout)
        if layout.name in self._scan()["layouts"]:
            raise DuplicatePluginError(
                f"user layout {layout.name!r} clashes with the installed layout of that name; rename it"
            )
        previous = self._runtime_layouts.get(layout.name)
        if previous is not None and previous != layout:
            raise DuplicatePluginError(f"two different user layouts are both named {layout.name!r}")
        self._runtime_layouts[layout.name] = layout

    def status(self) -> list[PluginStatus]:
        """Try to load every plugin; report each one's outcome (for ``reid-bench plugins``)."""
        out: list[PluginStatus] = []
        for kind in KINDS:
            for name, entry in self.entries(kind).items():
                try:
                    self.load(kind, name)
                    out.append(PluginStatus(entry, True))
                except PluginError as exc:
                    out.append(PluginStatus(entry, False, str(exc).splitlines()[0]))
            for (dkind, dname), dups in sorted(self._duplicates.items()):
                if dkind == kind:
                    for dup in dups[1:]:
                        out.append(
                            PluginStatus(dup, False, f"duplicate name {dname!r}: also registered by {dups[0].label}")
                        )
        return out

    # ---------------------------------------------------------------- helpers
    @staticmethod
    def _check_kind(kind: str) -> None:
        if kind not in KINDS:
            raise UnknownPluginError(Registry._unknown_message("kind", kind, list(KINDS)))

    @staticmethod
    def _unknown_message(kind: str, name: str, known: list[str]) -> str:
        what = _SINGULAR.get(kind, kind)
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        listing = f" (known: {', '.join(known)})" if known and not close else ""
        return f"unknown {what} {name!r}{hint}{listing}"


def check_plugin(kind: str, name: str, obj: Any) -> None:
    """Refuse objects that do not implement the plugin API they are registered under."""
    from reid_bench import API_VERSION, api

    base = {"models": api.Model, "datasets": api.Dataset, "protocols": api.Protocol}.get(kind)
    what = f"{_SINGULAR[kind]} {name!r}"
    if kind == "layouts":
        if not isinstance(obj, api.Layout):
            raise PluginAPIError(f"{what} must be a reid_bench.api.Layout instance, got {type(obj).__name__}")
        try:
            obj.validate()
        except ValueError as exc:
            raise PluginAPIError(f"{what}: {exc}") from None
    else:
        if not (isinstance(obj, type) and issubclass(obj, base)):
            raise PluginAPIError(f"{what} must be a subclass of reid_bench.api.{base.__name__}, got {obj!r}")
        if getattr(obj, "__abstractmethods__", None):
            missing = ", ".join(sorted(obj.__abstractmethods__))
            raise PluginAPIError(f"{what} does not implement {missing}")
        if kind == "protocols" and not obj.cuts_folds():
            raise PluginAPIError(f"{what} does not implement build_fold")
        modality = getattr(obj, "modality", None)
        if modality not in api.MODALITIES:
            raise PluginAPIError(f"{what} declares modality {modality!r}; expected one of {api.MODALITIES}")
        if kind == "models":
            config_class = getattr(obj, "config_class", None)
            if not (isinstance(config_class, type) and dataclasses.is_dataclass(config_class)):
                raise PluginAPIError(f"{what} needs a dataclass `config_class` (its hyper-parameters)")
            published_as = getattr(obj, "published_as", None)
            if published_as is not None and not (isinstance(published_as, str) and published_as.strip()):
                raise PluginAPIError(f"{what} declares published_as={published_as!r}; expected a published "
                                     f"method's name (a non-empty string) or None")
        if kind == "protocols" and getattr(obj, "mode", None) not in MODES:
            raise PluginAPIError(f"{what} declares mode {obj.mode!r}; expected " + " or ".join(f"{m!r}" for m in MODES))
    declared = str(getattr(obj, "api_version", ""))
    if declared.split(".")[0] != API_VERSION.split(".")[0]:
        raise PluginAPIError(
            f"{what} targets plugin API {declared or '?'}, this reid-bench speaks {API_VERSION}"
        )


_default: Registry | None = None


def get_registry() -> Registry:
    global _default
    if _default is None:
        _default = Registry()
    return _default


def reset_registry() -> None:
    """Forget what was read (tests that change sys.path or install plugins call this)."""
    global _default
    _default = None
