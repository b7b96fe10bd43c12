"""The workflow's config: layers (the default, each ``--configfile``, ``--config``) resolved into
one, who set which key, and the checks of names and schema that run before anything reads it.

- **Layers.** ``workflows/config/default.yaml``, then every ``--configfile`` in order, then
  ``--config`` values, each applied over the ones before it as Snakemake documents: a deep merge
  (``--config 'sampling={n: 100}'`` changes one value). A layer that describes a whole run of
  its own (smoke, cifar10, …) lists the top-level blocks it *replaces* instead of merging,
  ``replace: [datasets, models, evaluate, claims]``; every layer's list applies to what came
  before it, so a user's ``replace: [datasets]`` on top of smoke.yaml replaces smoke's datasets
  and keeps smoke's own replacements (no list is dropped).
- **only_datasets: [mine]** (any layer) keeps just those datasets after the merge; every list that
  names datasets (``diagnostics.datasets``, each ``evaluate`` entry's ``datasets:``) follows.
- **Provenance.** :class:`ConfigSources` says which file set a key, so errors name the file.
- **Names.** Unknown top-level keys and model names are refused with the closest valid name,
  then the merged config is checked against ``workflows/schemas/config.schema.yaml``.

The Snakefile (``workflows/rules/common.smk``) and ``python -m e2ed2.assets`` both resolve
configs through :func:`load_config`.
"""

from __future__ import annotations

import copy
import math
import os

import jsonschema
import yaml

from .config import ConfigError, deep_merge, did_you_mean
from .dataset_kinds import KINDS
from .methods import method_names
from .metrics.families import FAMILIES

DEFAULT_CONFIG = "workflows/config/default.yaml"
SCHEMA = "workflows/schemas/config.schema.yaml"


# ---- config resolution ------------------------------------------------------------------------
def read_config_file(path) -> dict:
    """One workflow config file as a mapping; a missing file or bad YAML is one line naming it."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--configfile {path}: no such file (give a workflow config YAML, e.g. "
                                f"workflows/config/smoke.yaml)")
    try:
        data = load_yaml(path)
    except yaml.YAMLError as e:
        raise ConfigError(f"--configfile {path}: not valid YAML ({str(e).splitlines()[0]})") from e
    if not isinstance(data, dict):
        raise ConfigError(f"--configfile {path}: expected a mapping of config blocks, got {type(data).__name__}")
    return data


def config_layers(configfiles=(), cli_values: dict | None = None, default=DEFAULT_CONFIG) -> list[tuple[str, dict]]:
    """(origin, values) of the default config, each ``--configfile`` in order, and ``--config``.

    Snakemake parses ``--config key={yaml}`` with YAML's base loader, so nested scalars arrive as
    strings; they are typed again here (``sampling={n: 100}`` gives the integer 100)."""
    layers = [(_shown(default), read_config_file(default))]
    layers += [(_shown(f), read_config_file(f)) for f in configfiles]
    if cli_values:
        layers.append(("--config", _typed(cli_values)))
    return layers


def _shown(path) -> str:
    """A path as an error message shows it: relative to the working directory when inside it."""
    rel = os.path.relpath(path)
    return str(path) if rel.startswith("..") else rel


def resolve_layers(layers: list[tuple[str, dict]]) -> dict:
    """Each layer over the ones before it (its ``replace:`` blocks replaced, the rest deep-merged),
    then ``only_datasets`` applied."""
    out: dict = {}
    for origin, values in layers:
        values = copy.deepcopy(values or {})
        replace = values.pop("replace", None) or []
        if not isinstance(replace, list) or not all(isinstance(k, str) for k in replace):
            raise ConfigError(f"{origin}: replace: expected a list of top-level keys, got {replace!r}")
        for key in replace:
            if key not in values:
                raise ConfigError(f"{origin}: replace: lists {key!r} but the file gives no {key!r} block to "
                                  f"replace it with{did_you_mean(key, values)}")
        out = deep_merge({k: v for k, v in out.items() if k not in replace}, values)
    return select_datasets(out, ConfigSources(layers))


def resolve_config(default: dict, overrides: dict, cli_values: dict | None = None) -> dict:
    """``overrides`` (one merged override) then ``cli_values`` (--config) over ``default``."""
    return resolve_layers([("the default config", default), ("the override", overrides or {}),
                           ("--config", _typed(cli_values or {}))])


def load_config(configfiles=(), cli_values: dict | None = None, default=DEFAULT_CONFIG):
    """The resolved config of the workflow and the :class:`ConfigSources` that say who set what."""
    layers = config_layers(configfiles, cli_values, default)
    return resolve_layers(layers), ConfigSources(layers)


def select_datasets(config: dict, sources: ConfigSources) -> dict:
    """``only_datasets: [d, ...]``: keep only those datasets; ``diagnostics.datasets`` and every
    ``evaluate`` entry's ``datasets:`` drop the others (an entry left with none samples nothing)."""
    only = config.get("only_datasets")
    if only is None:
        return config
    where = sources.tag("only_datasets")
    if not isinstance(only, list) or not only or not all(isinstance(d, str) for d in only):
        raise ConfigError(f"only_datasets{where}: expected a non-empty list of dataset names, got {only!r}")
    defined = config.get("datasets") or {}
    for d in only:
        if d not in defined:
            raise ConfigError(f"only_datasets{where} names {d!r}, which datasets: does not define"
                              f"{did_you_mean(d, defined)}; defined: {sorted(defined)}")
    config["datasets"] = {d: defined[d] for d in only}
    if "datasets" in (config.get("diagnostics") or {}):
        config["diagnostics"]["datasets"] = [d for d in config["diagnostics"]["datasets"] if d in only]
    for entry in (config.get("evaluate") or {}).values():
        if isinstance(entry, dict) and "datasets" in entry:
            entry["datasets"] = [d for d in entry["datasets"] if d in only]
    return config


def _typed(value):
    """Strings re-read as YAML scalars, recursively (``"100"`` → 100, ``"1e-3"`` stays a string)."""
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_typed(v) for v in value]
    if isinstance(value, str):
        try:
            return yaml.safe_load(value)
        except yaml.YAMLError:
            return value
    return value


class ConfigSources:
    """Which layer (file) set a key of the resolved config: the last one holding it wins, as in the merge."""

    def __init__(self, layers: list[tuple[str, dict]] | None = None):
        self.layers = layers or []

    def where(self, *path) -> str | None:
        """The origin of the layer that set ``path`` (keys from the top), or None."""
        for origin, values in reversed(self.layers):
            node = values
            for key in path:
                if not isinstance(node, dict) or key not in node:
                    break
                node = node[key]
            else:
                return origin
        return None

    def where_key(self, key: str, *prefixes: tuple) -> str | None:
        """The origin of the last layer with ``key`` anywhere below one of ``prefixes``."""
        def holds(node) -> bool:
            return isinstance(node, dict) and (key in node or any(holds(v) for v in node.values()))

        for origin, values in reversed(self.layers):
            for prefix in prefixes:
                node = values
                for k in prefix:
                    node = node.get(k) if isinstance(node, dict) else None
                if holds(node):
                    return origin
        return None

    def tag(self, *path) -> str:
        """`` in <file>`` for an error message, or "" when no layer holds ``path``."""
        origin = self.where(*path)
        return f" in {origin}" if origin else ""


# ---- validation of names and of the schema ------------------------------------------------------
def validate_config(config: dict, schema_path=SCHEMA, sources: ConfigSources | None = None) -> None:
    """The merged config before anything reads it: top-level keys and model names (with the
    closest valid name and the file that set them), then the workflow's JSON schema, whose first
    error is one line naming the key (``config.sampling.n: 'many' is not of type 'integer'``)."""
    sources = sources or ConfigSources()
    schema = load_yaml(schema_path)
    # the metric families are the registry's (e2ed2.metrics.families), not a list kept in the schema
    # (and each may have a config block metrics.<name>: the fid and clip blocks are typed in the schema)
    metrics = schema["properties"]["metrics"]["properties"]
    metrics["families"]["items"] = {"enum": list(FAMILIES)}
    for name in FAMILIES:
        metrics.setdefault(name, {"type": "object", "description": f"the {name} family's own settings"})
    # likewise the dataset kinds (e2ed2.dataset_kinds): `prepare:` values and the block keys each reads
    block = schema["properties"]["datasets"]["additionalProperties"]
    block["properties"]["prepare"] = {"enum": list(KINDS)}
    for kind in KINDS.values():
        for key in (*kind.required, *kind.keys):
            block["properties"].setdefault(key, {"description": f"read by prepare: {kind.name}"})
    valid = sorted(schema["properties"])
    for key in config:
        if key not in schema["properties"]:
            raise ConfigError(f"unknown top-level key {key!r}{sources.tag(key)}{did_you_mean(key, valid)}; "
                              f"valid keys: {valid} (and replace)")
    check_model_names(config, sources)
    check_finite(config, sources)
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(config))
    if error is not None:
        path = list(error.absolute_path)
        message = error.message
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            allowed = sorted(error.schema.get("properties") or {})
            extra = sorted(set(error.instance) - set(allowed))
            if extra:
                path.append(extra[0])
                message = f"unknown key{did_you_mean(extra[0], allowed)}; valid keys: {allowed}"
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
        raise ConfigError(f"config{where}{sources.tag(*path)}: {message} (schema: {_shown(schema_path)})")
    for name, block in config["datasets"].items():
        missing = [k for k in KINDS[block["prepare"]].required if k not in block]
        if missing:
            raise ConfigError(f"datasets.{name}{sources.tag('datasets', name)}: prepare: {block['prepare']} needs "
                              f"{', '.join(missing)} (e2ed2.dataset_kinds)")


def check_finite(config, sources: ConfigSources, path: tuple = ()) -> None:
    """No NaN or infinity anywhere (YAML's .nan / .inf pass a JSON schema's `number`)."""
    if isinstance(config, dict):
        for k, v in config.items():
            check_finite(v, sources, (*path, k))
    elif isinstance(config, list):
        for i, v in enumerate(config):
            check_finite(v, sources, (*path, i))
    elif isinstance(config, float) and not math.isfinite(config):
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
        raise ConfigError(f"config{where}{sources.tag(*path)}: {config!r} is not a finite number")


def check_model_names(config: dict, sources: ConfigSources) -> None:
    """Every ``models:`` key is a registered method (or names one with ``registry_name:``), and a
    dataset's ``models:`` overrides only models that exist."""
    models = config.get("models")
    if not isinstance(models, dict):
        return
    registered = method_names()
    for m, block in models.items():
        name = block.get("registry_name", m) if isinstance(block, dict) else m
        if name not in registered:
            key = f"models.{m}" + (".registry_name" if name != m else "")
            raise ConfigError(
                f"unknown model {name!r} ({key}){sources.tag('models', m)}{did_you_mean(name, registered)}; a model "
                f"key is a registered method ({', '.join(registered)}) or sets registry_name: <method> "
                f"(e.g. models: {{ddpm_wide: {{registry_name: ddpm, ...}}}})")
    for d, block in (config.get("datasets") or {}).items():
        overrides = block.get("models") if isinstance(block, dict) else None
        for m in overrides if isinstance(overrides, dict) else {}:
            if m not in models:
                raise ConfigError(f"datasets.{d}.models.{m}{sources.tag('datasets', d, 'models', m)} overrides a "
                                  f"model that models: does not define{did_you_mean(m, models)}; "
                                  f"defined: {sorted(models)}")


def load_yaml(path) -> dict:
    with open(path) as f:
        return yaml.safe_load(f) or {}
