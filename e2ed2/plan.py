"""The workflow's plan: a config → the datasets, models, run configs and sample sets of the DAG.

The Snakefile (``workflows/rules/common.smk``) is a thin layer over this module, so that what
the DAG builds is plain Python a test can call. Three things live here:

- **Config resolution.** ``--configfile`` files and ``--config`` values update the default
  config (``workflows/config/default.yaml``), as Snakemake documents: a deep merge (``--config
  'sampling={n: 100}'`` changes one value). A file that describes a whole run of its own (smoke,
  cifar10, …) lists the top-level blocks it *replaces* instead of merging,
  ``replace: [datasets, models, evaluate, claims]``, so the default's models do not leak in.
- **Expansion.** ``datasets.<d>`` may override ``net``, ``train`` and ``models`` for that
  dataset; ``models.<m>`` keys are shared by its ``variants``, which override them; a model
  with ``train_seeds: [0, 1]`` is trained once per seed (the seed becomes ``train.seed``).
  Students take the teacher's first training seed; ``checkpoint_of`` models (DDIM) sample
  their source's checkpoints, seed for seed.
- **Validation at DAG build.** Every run config is parsed with the method's typed config, so a
  typo'd knob or an unregistered method fails ``snakemake -n``, naming the model and the key.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import jsonschema
import yaml

from .config import ConfigError, deep_merge
from .registry import validate_run_config
from .train import TrainConfig

DEFAULT_CONFIG = "workflows/config/default.yaml"
DATASET_OVERRIDES = ("net", "train", "models")


# ---- config resolution ------------------------------------------------------------------------
def resolve_config(default: dict, overrides: dict, cli_values: dict | None = None) -> dict:
    """``overrides`` (merged --configfile contents) then ``cli_values`` (--config) over ``default``.

    Snakemake parses ``--config key={yaml}`` with YAML's base loader, so nested scalars arrive as
    strings; they are typed again here (``sampling={n: 100}`` gives the integer 100)."""
    overrides = deep_merge(copy.deepcopy(overrides or {}), _typed(cli_values or {}))
    replace = overrides.pop("replace", None) or []
    if not isinstance(replace, list) or not all(isinstance(k, str) for k in replace):
        raise ConfigError(f"replace: expected a list of top-level keys, got {replace!r}")
    for key in replace:
        if key not in overrides:
            raise ConfigError(f"replace: lists {key!r} but the override gives no {key!r} block to replace it with")
    out = {k: v for k, v in copy.deepcopy(default).items() if k not in replace}
    return deep_merge(out, overrides)


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


def validate_config(config: dict, schema_path) -> None:
    """The merged config against the workflow's JSON schema: the first error as one line naming
    the key (``config.sampling.n: 'many' is not of type 'integer'``), not a schema dump."""
    schema = load_yaml(schema_path)
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(config))
    if error is not None:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
        raise ConfigError(f"config{where}: {error.message} (schema: {schema_path})")


def load_yaml(path) -> dict:
    with open(path) as f:
        return yaml.safe_load(f) or {}


# ---- the plan ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class SampleSet:
    dataset: str
    method: str
    variant: str
    seed: int  # training seed
    sampler: str
    steps: int
    block: int  # sampling-seed block: seeds [block·n, (block+1)·n)


class Plan:
    """What to build for a resolved config (paths are relative to the repository root)."""

    def __init__(self, config: dict):
        self.config = config
        self.R = f"results/{config['run']}"

    # ---- datasets and models --------------------------------------------------------------
    def datasets(self) -> list[str]:
        return list(self.config["datasets"])

    def dataset_block(self, dataset: str) -> dict:
        if dataset not in self.config["datasets"]:
            raise ConfigError(f"config.datasets has no {dataset!r}; defined: {self.datasets()}")
        return self.config["datasets"][dataset] or {}

    def models_of(self, dataset: str) -> dict:
        """config.models with the dataset's own `models:` overrides merged in."""
        return deep_merge(self.config["models"], self.dataset_block(dataset).get("models"))

    def model_spec(self, dataset: str, method: str, variant: str) -> dict:
        """The method block with its variant's overrides merged in (variant wins)."""
        models = self.models_of(dataset)
        if method not in models or variant not in (models[method].get("variants") or {}):
            known = [f"{m}/{v}" for m in models for v in models[m].get("variants") or {}]
            raise ConfigError(f"config.models has no {method}/{variant}; defined: {known}")
        block = {k: v for k, v in models[method].items() if k != "variants"}
        return deep_merge(block, models[method]["variants"][variant] or {})

    def all_models(self, dataset: str) -> list[tuple[str, str]]:
        return [(m, v) for m, block in self.models_of(dataset).items() for v in block["variants"]]

    def train_seeds(self, dataset: str, method: str, variant: str) -> list[int]:
        spec = self.model_spec(dataset, method, variant)
        if "checkpoint_of" in spec:
            return self.train_seeds(dataset, *spec["checkpoint_of"].split("/"))
        return [int(s) for s in spec.get("train_seeds") or [self.config["train"].get("seed", 0)]]

    def needed(self, dataset: str) -> set[tuple[str, str]]:
        """Models a dataset needs trained: those it samples (or borrows checkpoints from), their
        teachers, and the models config.diagnostics examines on it."""
        refs = {(s.method, s.variant) for s in self.sample_sets() if s.dataset == dataset}
        refs |= {tuple(r.split("/")) for kind in ("sigma_error", "curve") for r in self.diagnosed(dataset, kind)}
        todo, out = list(refs), set()
        while todo:
            m, v = todo.pop()
            if (m, v) in out:
                continue
            out.add((m, v))
            spec = self.model_spec(dataset, m, v)
            todo += [tuple(spec[k].split("/")) for k in ("teacher", "checkpoint_of") if k in spec]
        return out

    def diagnostics_datasets(self) -> list[str]:
        """The datasets config.diagnostics examines (default: every dataset)."""
        return (self.config.get("diagnostics") or {}).get("datasets", self.datasets())

    def diagnosed(self, dataset: str, kind: str) -> list[str]:
        """'method/variant' of the models whose `kind` diagnostic runs on a dataset: the per-σ error
        ('sigma_error') of diagnostics.models, the learning curves ('curve') of
        diagnostics.curve_models (default: the same models)."""
        if kind not in ("sigma_error", "curve"):
            raise ValueError(f"unknown diagnostic {kind!r}; expected 'sigma_error' or 'curve'")
        if dataset not in self.diagnostics_datasets():
            return []
        diag = self.config.get("diagnostics") or {}
        models = diag.get("models", [])
        return diag.get("curve_models", models) if kind == "curve" else models

    def trained(self, dataset: str) -> list[tuple[str, str, int]]:
        """(method, variant, seed) of every training job a dataset needs."""
        needed = self.needed(dataset)
        return [(m, v, s) for m, v in self.all_models(dataset)
                if (m, v) in needed and "checkpoint_of" not in self.model_spec(dataset, m, v)
                for s in self.train_seeds(dataset, m, v)]

    # ---- paths ----------------------------------------------------------------------------
    def data_npz(self, dataset: str) -> str:
        return f"{self.R}/data/{dataset}.npz"

    def train_dir(self, dataset: str, method: str, variant: str, seed: int) -> str:
        return f"{self.R}/{dataset}/train/{method}/{variant}/s{seed}"

    def final_ckpt(self, dataset: str, model_ref: str, seed: int | None = None) -> str:
        """'method/variant' → its final checkpoint (of ``seed``, default its first training seed)."""
        method, _, variant = model_ref.partition("/")
        seeds = self.train_seeds(dataset, method, variant)
        return f"{self.train_dir(dataset, method, variant, seeds[0] if seed is None else seed)}/final.pt"

    def checkpoint_for(self, dataset: str, method: str, variant: str, seed: int) -> str:
        """The checkpoint a model samples: its own, or the one it borrows (DDIM ← the teacher)."""
        spec = self.model_spec(dataset, method, variant)
        if "checkpoint_of" in spec:
            return self.final_ckpt(dataset, spec["checkpoint_of"], seed)
        return f"{self.train_dir(dataset, method, variant, seed)}/final.pt"

    def teacher_ckpt(self, dataset: str, method: str, variant: str) -> str | None:
        spec = self.model_spec(dataset, method, variant)
        return self.final_ckpt(dataset, spec["teacher"]) if "teacher" in spec else None

    # ---- run configs ----------------------------------------------------------------------
    def run_config(self, dataset: str, method: str, variant: str, seed: int) -> dict:
        """The ``python -m e2ed2.train`` run config {data, method, net, train} of one model."""
        spec = self.model_spec(dataset, method, variant)
        knobs = {"name": spec.get("registry_name", method), **(spec.get("method") or {})}
        teacher = self.teacher_ckpt(dataset, method, variant)
        if teacher:  # the teacher checkpoint is a method knob (CD, E2ED²)
            knobs["teacher"] = teacher
        block = self.dataset_block(dataset)
        net = deep_merge(deep_merge(self.config["net"], block.get("net")), spec.get("net"))
        train = deep_merge(deep_merge(self.config["train"], block.get("train")), spec.get("train"))
        run = {"data": self.data_npz(dataset), "method": knobs, "net": net, "train": {**train, "seed": seed}}
        if self.config.get("latent"):
            run["latent"] = {k: v for k, v in self.config["latent"].items() if k in ("vae", "subfolder")}
            run["latent"]["latents"] = f"{self.R}/data/{dataset}.latents.npz"
        return run

    def validate(self) -> None:
        """Parse every model's run config (typed method, net and train configs): a bad knob fails here."""
        for dataset in self.datasets():
            for m, v in self.all_models(dataset):
                spec = self.model_spec(dataset, m, v)
                if "checkpoint_of" in spec:
                    self.model_spec(dataset, *spec["checkpoint_of"].split("/"))
                    continue
                if "teacher" in spec:
                    self.model_spec(dataset, *spec["teacher"].split("/"))
                for s in self.train_seeds(dataset, m, v):
                    run = self.run_config(dataset, m, v, s)
                    try:
                        validate_run_config(run)
                        TrainConfig.from_dict(run["train"])
                    except ConfigError as e:
                        raise ConfigError(f"models.{m} (variant {v}, dataset {dataset}): {e}") from None
        for s in self.sample_sets():
            self.model_spec(s.dataset, s.method, s.variant)
            self.mid_sigmas(s.dataset, s.method, s.variant, s.sampler, s.steps)

    # ---- sample sets ----------------------------------------------------------------------
    def sample_sets(self) -> list[SampleSet]:
        """Every (dataset, model, seed, sampler, steps, block) the config asks to sample and score."""
        sets = []
        for dataset in self.datasets():
            for entry in self.config["evaluate"].values():
                if entry.get("datasets") and dataset not in entry["datasets"]:
                    continue
                method, _, variant = entry["model"].partition("/")
                blocks = entry.get("seed_blocks", self.config["sampling"]["seed_blocks"])
                for seed in self.train_seeds(dataset, method, variant):
                    for steps in entry["steps"]:
                        sets += [SampleSet(dataset, method, variant, seed, entry["sampler"], int(steps), b)
                                 for b in range(blocks)]
        return sets

    def mid_sigmas(self, dataset: str, method: str, variant: str, sampler: str, steps: int) -> list[float] | None:
        """The consistency sampler's intermediate σ's for this set (evaluate.<entry>.mid_sigmas), or None."""
        found = None
        for name, entry in self.config["evaluate"].items():
            if (entry["model"] != f"{method}/{variant}" or entry["sampler"] != sampler
                    or (entry.get("datasets") and dataset not in entry["datasets"])):
                continue
            mids = {int(k): v for k, v in (entry.get("mid_sigmas") or {}).items()}
            if steps in mids:
                if sampler != "consistency":
                    raise ConfigError(f"evaluate.{name}.mid_sigmas: an option of the consistency sampler, "
                                      f"not {sampler}")
                if len(mids[steps]) != steps - 1:
                    raise ConfigError(f"evaluate.{name}.mid_sigmas.{steps}: {steps} steps take {steps - 1} "
                                      f"intermediate σ's, got {mids[steps]}")
                found = [float(v) for v in mids[steps]]
        return found

    def set_dir(self, stage: str, s: SampleSet) -> str:
        return (f"{self.R}/{s.dataset}/{stage}/{s.method}/{s.variant}/s{s.seed}/{s.sampler}-{s.steps}/b{s.block}")

    def seeds_for(self, block: int) -> str:
        """Seed block b = seeds [b·n, (b+1)·n): blocks are disjoint, every set shares block b."""
        n = int(self.config["sampling"]["n"])
        return f"{block * n}-{(block + 1) * n - 1}"
