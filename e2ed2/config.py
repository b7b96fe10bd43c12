"""Typed configs: dataclasses parsed from YAML/JSON dicts with every key and value checked.

``parse(cls, values, where)`` builds the frozen dataclass ``cls`` from a dict: unknown keys
are an error that lists the valid ones; each value is checked against its annotation (``int``,
``float`` — any YAML spelling, ``"1e-3"`` included —, ``bool``, ``str``, ``Literal`` choices,
tuples, ``X | None``) and against the bounds declared with ``knob(..., min=, max=, gt=, lt=)``.
Every error is a :class:`ConfigError` naming the dotted key (``train.lr``) and what is valid.

Run configs (the input of ``python -m e2ed2.train``) are ``{data, method, net, train[, latent]}``;
:func:`load_run_config` reads one from YAML/JSON and ``KEY=VALUE`` overrides.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

RUN_CONFIG_KEYS = ("data", "method", "net", "train", "latent")


class ConfigError(ValueError):
    """A config key or value that is unknown, mistyped or out of range (the message names it).

    ``key`` (optional) is the offending key itself, so a caller that knows which file set it can
    name that file."""

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


def did_you_mean(name: str, choices) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices`` (difflib), or ``""`` when none is close."""
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def knob(default, *, min=None, max=None, gt=None, lt=None, doc: str = ""):  # noqa: A002 (bounds read as in the docs)
    """A dataclass field with bounds checked by :func:`parse` and a one-line description."""
    bounds = {k: v for k, v in {"min": min, "max": max, "gt": gt, "lt": lt}.items() if v is not None}
    if isinstance(default, (list, dict, set)):
        raise TypeError("knob defaults must be immutable (use a tuple)")
    return dataclasses.field(default=default, metadata={"bounds": bounds, "doc": doc})


def parse(cls, values: dict | None, where: str):
    """``cls(**values)`` after checking every key and value (see module docstring)."""
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a mapping of keys to values, got {type(values).__name__} {values!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}{did_you_mean(unknown[0], fields)}; "
                          f"valid keys: {sorted(fields)}", key=unknown[0])
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        name = f"{where}.{key}"
        try:
            kwargs[key] = coerce(value, hints[key], name)
            check_bounds(kwargs[key], fields[key].metadata.get("bounds", {}), name, shown=value)
        except ConfigError as e:  # the key, so that a caller can name the file that set it
            e.key = e.key or key
            raise
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: {e}") from e


def coerce(value: Any, annotation, name: str):
    """``value`` converted to ``annotation`` where that is lossless; ConfigError otherwise."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return coerce(value, rest[0], name)
        raise TypeError(f"unsupported annotation {annotation}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{name}: {value!r} is not one of {list(args)}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(coerce(v, args[0], f"{name}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{name}: expected a list of {len(args)} values, got {value!r}")
        return tuple(coerce(v, a, f"{name}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{name}: expected true or false, got {value!r}")
        return value
    if annotation is int:
        return _as_int(value, name)
    if annotation is float:
        return _as_float(value, name)
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name}: expected a string, got {value!r}")
        return value
    if annotation is Any:
        return value
    raise TypeError(f"{name}: unsupported annotation {annotation}")


def _as_float(value, name: str) -> float:
    """Numbers in any YAML spelling: PyYAML reads ``1e-3`` (no dot) as the string '1e-3'."""
    if isinstance(value, bool):
        raise ConfigError(f"{name}: expected a number, got {value!r}")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: expected a number, got {value!r}") from None
    if not math.isfinite(out):
        raise ConfigError(f"{name}: expected a finite number, got {value!r}")
    return out


def _as_int(value, name: str) -> int:
    """Integers, also written as an integral float or string (``1e3``, ``"2000"``)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    out = _as_float(value, name) if isinstance(value, (float, str)) else None
    if out is None or not out.is_integer():
        raise ConfigError(f"{name}: expected an integer, got {value!r}")
    return int(out)


def check_bounds(value, bounds: dict, name: str, shown=None) -> None:
    """Every element of ``value`` within ``bounds``; the message shows ``shown`` (the value as written)."""
    if value is None or not bounds:
        return
    shown = value if shown is None else shown
    for v in value if isinstance(value, tuple) else (value,):
        if "min" in bounds and v < bounds["min"]:
            raise ConfigError(f"{name}: {shown!r} is below the minimum {bounds['min']}")
        if "max" in bounds and v > bounds["max"]:
            raise ConfigError(f"{name}: {shown!r} is above the maximum {bounds['max']}")
        if "gt" in bounds and not v > bounds["gt"]:
            raise ConfigError(f"{name}: {shown!r} must be greater than {bounds['gt']}")
        if "lt" in bounds and not v < bounds["lt"]:
            raise ConfigError(f"{name}: {shown!r} must be less than {bounds['lt']}")


def as_dict(cfg) -> dict:
    """A dataclass config as plain JSON-able values (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


BOUND_SIGNS = {"min": "≥", "max": "≤", "gt": ">", "lt": "<"}


def type_name(annotation) -> str:
    """A knob's type as a reader writes it: ``int``, ``float``, ``'pure' | 'leaky'``,
    ``tuple[float, float]``, ``tuple[int, ...]``, ``str | None``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Literal:
        return " | ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join("None" if a is type(None) else type_name(a) for a in args)
    if origin is tuple:
        return f"tuple[{', '.join('...' if a is Ellipsis else type_name(a) for a in args)}]"
    return getattr(annotation, "__name__", str(annotation).replace("typing.", ""))


def describe(cls) -> list[str]:
    """One line per knob of ``cls``: name, default, readable type, bounds and its description."""
    hints = typing.get_type_hints(cls)
    lines = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        bounds = f.metadata.get("bounds", {})
        limits = "".join(f", {BOUND_SIGNS[k]} {v}" for k, v in bounds.items())
        doc = f.metadata.get("doc", "")
        lines.append(f"{f.name} = {f.default!r}  ({type_name(hints[f.name])}{limits})"
                     f"{'  ' + doc if doc else ''}")
    return lines


# ---- run configs ----------------------------------------------------------------------------
def load_run_config(path: str | None = None, json_text: str | None = None, overrides=()) -> dict:
    """A run config from a YAML/JSON file and/or a JSON string, then ``KEY=VALUE`` overrides."""
    config: dict = {}
    if path:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"config file not found: {p}")
        try:
            config = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{p}: invalid YAML ({e})") from e
        if not isinstance(config, dict):
            raise ConfigError(f"{p}: a run config is a mapping with keys {list(RUN_CONFIG_KEYS)}")
    if json_text:
        try:
            config = deep_merge(config, json.loads(json_text))
        except json.JSONDecodeError as e:
            raise ConfigError(f"--config-json is not valid JSON: {e}") from e
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} must be KEY=VALUE, e.g. train.lr=1e-4")
        set_path(config, key, yaml.safe_load(value))
    check_run_config_keys(config)
    return config


def check_run_config_keys(config: dict) -> None:
    unknown = sorted(set(config) - set(RUN_CONFIG_KEYS))
    if unknown:
        raise ConfigError(f"run config: unknown top-level key(s) {unknown}; valid keys: {list(RUN_CONFIG_KEYS)}")
    if "data" not in config:
        raise ConfigError("run config needs 'data' (a built-in name such as mnist5k, an .npz, or an image folder)")
    if not isinstance(config.get("method"), dict) or "name" not in config["method"]:
        raise ConfigError("run config needs 'method: {name: ...}' naming a registered method")


def deep_merge(a: dict, b: dict | None) -> dict:
    """``b`` over ``a``, recursing into dicts (lists and scalars are replaced); inputs untouched."""
    out = dict(a)
    for k, v in (b or {}).items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def set_path(d: dict, dotted: str, value) -> None:
    """d[k1][k2]... = value for ``dotted`` = 'k1.k2...', creating mappings on the way."""
    keys = dotted.split(".")
    for k in keys[:-1]:
        nxt = d.setdefault(k, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"cannot set {dotted!r}: {k!r} holds {nxt!r}, not a mapping")
        d = nxt
    d[keys[-1]] = value
