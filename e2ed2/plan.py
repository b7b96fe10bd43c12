"""The workflow's plan: a config → the datasets, models, run configs and sample sets of the DAG.

The Snakefile (``workflows/rules/common.smk``) is a thin layer over this module, so that what
the DAG builds is plain Python a test can call. The config it gets is resolved by
``e2ed2.workflow_config`` (the default, ``--configfile`` layers with ``replace:``, ``--config``,
``only_datasets``; names re-exported here). Here:

- **Expansion.** ``datasets.<d>`` may override ``net``, ``train`` and ``models`` for that
  dataset; ``models.<m>`` keys are shared by its ``variants``, which override them; a model
  with ``train_seeds: [0, 1]`` is trained once per seed (the seed becomes ``train.seed``).
  Students take the teacher's first training seed; ``checkpoint_of`` models (DDIM) sample
  their source's checkpoints, seed for seed.
- **The UNet's shape from the data.** ``net.image_channels`` / ``net.resolution`` are read from
  each dataset (a built-in's known shape, an .npz header, an image folder's headers) unless the
  config sets them; a value it sets must agree with the data, or the DAG build stops naming the fix.
- **Validation at DAG build.** Every dataset, model and variant a config names must exist, and
  every variant must be used (with the closest valid name and the file that set it); then every
  run config is parsed with the method's typed config, so a typo'd knob or an unregistered
  method fails ``snakemake -n``, naming the model and the key.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

from .config import ConfigError, deep_merge, did_you_mean
from .data import peek_shape
from .dataset_kinds import kind_of
from .methods import TEACHER_KEYS, DiffusionConfig, RunConfig, get_method, method_config
from .nets import UNetConfig
from .train_config import TrainConfig
from .workflow_config import (  # noqa: F401 (the workflow's config API, re-exported for the Snakefile)
    DEFAULT_CONFIG,
    SCHEMA,
    ConfigSources,
    load_config,
    load_yaml,
    resolve_config,
    validate_config,
)

DATASET_OVERRIDES = ("net", "train", "models")
# train.amp → the teacher-pairs file's precision tag, and back (make_pairs --amp)
PAIRS_PRECISION = {"none": "fp32", "bf16": "bf16"}
PAIRS_AMP = {tag: amp for amp, tag in PAIRS_PRECISION.items()}


def evaluates(entry: dict, dataset: str) -> bool:
    """An evaluate entry samples ``dataset``: every dataset without ``datasets:``, else the ones listed
    (``datasets: []`` — e.g. after only_datasets dropped its datasets — samples none)."""
    return "datasets" not in entry or dataset in entry["datasets"]


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

    def __init__(self, config: dict, sources: ConfigSources | None = None):
        self.config = config
        self.sources = sources or ConfigSources()
        self.R = f"results/{config['run']}"
        self._shapes: dict[str, tuple[int, int]] = {}
        self._methods: dict[tuple[str, str, str], object] = {}  # method_of

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
            raise ConfigError(f"config.models has no {method}/{variant}{did_you_mean(f'{method}/{variant}', known)}; "
                              f"defined: {known}")
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

    def pairs_file(self, dataset: str, method: str, variant: str, seed: int) -> str | None:
        """The teacher-pairs file (e2ed2.pairs) a model trains on, or None.

        A model with ``pairs: true`` whose method knobs say ``pairing: teacher`` and ``start: pure``
        reads its targets from pairs drawn once per (teacher, sampler, steps, budget, seed) — shared
        by every arm of that seed — instead of integrating the teacher's ODE in every step. The
        sampler and steps are the model's own resolved ``teacher_sampler``/``teacher_steps`` knobs
        (one home: the method config); the budget M is the run's training images (steps × batch
        size). ``start: leaky`` draws its targets in the step (its start depends on the batch's data).
        The pairs are drawn at the precision the teacher runs at inside the model's own training step
        (``train.amp``: bf16 autocast → ``-bf16``, else ``-fp32``), so precomputed and per-step targets agree.
        """
        spec = self.model_spec(dataset, method, variant)
        knobs = spec.get("method") or {}
        if not spec.get("pairs") or knobs.get("pairing") != "teacher" or knobs.get("start", "pure") != "pure":
            return None
        if "teacher" not in spec:
            raise ConfigError(f"models.{method}.variants.{variant}: pairs: needs a teacher: (method/variant)")
        _, mc = method_config({"name": spec.get("registry_name", method), **knobs})
        train = self.run_train(dataset, spec)
        tc = TrainConfig.from_dict(train)  # the resolved knobs: cond_drop's default when the config omits it
        n = tc.steps * tc.batch_size
        teacher = spec["teacher"].replace("/", "-")
        return (f"{self.R}/{dataset}/pairs/{teacher}/{mc.teacher_sampler}-{int(mc.teacher_steps)}"
                f"-n{n}-drop{tc.cond_drop:g}-{PAIRS_PRECISION[tc.amp]}-s{seed}.npz")

    def run_train(self, dataset: str, spec: dict) -> dict:
        """The train block of a model: the config's, the dataset's, then the model's own."""
        return deep_merge(deep_merge(self.config["train"], self.dataset_block(dataset).get("train")), spec.get("train"))

    # ---- run configs ----------------------------------------------------------------------
    def run_config(self, dataset: str, method: str, variant: str, seed: int) -> dict:
        """The ``python -m e2ed2.train`` run config {data, method, net, train} of one model."""
        spec = self.model_spec(dataset, method, variant)
        knobs = {"name": spec.get("registry_name", method), **self.inherited(dataset, method, variant),
                 **(spec.get("method") or {})}
        teacher = self.teacher_ckpt(dataset, method, variant)
        if teacher:  # the teacher checkpoint is a method knob (CD, E2ED²)
            knobs["teacher"] = teacher
        pairs = self.pairs_file(dataset, method, variant, seed)
        if pairs:  # precomputed teacher targets (E2ED² pairing: teacher), a method knob too
            knobs["teacher_pairs"] = pairs
        block = self.dataset_block(dataset)
        net = self.fit_net(dataset, method, variant,
                           deep_merge(deep_merge(self.config["net"], block.get("net")), spec.get("net")))
        train = self.run_train(dataset, spec)
        run = {"data": self.data_npz(dataset), "method": knobs, "net": net, "train": {**train, "seed": seed}}
        if self.config.get("latent"):
            run["latent"] = {k: v for k, v in self.config["latent"].items() if k in ("vae", "subfolder")}
            run["latent"]["latents"] = f"{self.R}/data/{dataset}.latents.npz"
        return run

    # ---- the UNet's shape from the data ----------------------------------------------------
    def data_shape(self, dataset: str) -> tuple[int, int] | None:
        """(channels, resolution) of a dataset's images, read from its source's header (once);
        None in latent space, where the net's shape is the VAE's and not the images'."""
        if self.config.get("latent"):
            return None
        if dataset not in self._shapes:
            block = self.dataset_block(dataset)
            kind = kind_of(block)  # a kind that knows its shape from the block (downloads, generated sets)
            if kind.shape is not None:
                self._shapes[dataset] = kind.shape(block)
            else:  # a source to convert: its header says
                source = block.get("source", dataset)
                try:
                    self._shapes[dataset] = peek_shape(source, block.get("keys"))
                except (FileNotFoundError, ValueError) as e:
                    hint = (f" (source paths are relative to the directory snakemake runs in, {os.getcwd()})"
                            if isinstance(e, FileNotFoundError) else "")
                    raise ConfigError(f"datasets.{dataset}{self.sources.tag('datasets', dataset)}: {e}{hint}") from None
        return self._shapes[dataset]

    def fit_net(self, dataset: str, method: str, variant: str, net: dict) -> dict:
        """``net`` with image_channels and resolution from the data where the config leaves them
        out (attention kept at the same levels); a value the config sets must equal the data's
        (ConfigError naming the fix)."""
        shape = self.data_shape(dataset)
        if shape is None:
            return net
        net = dict(net)
        if "resolution" not in net and all(isinstance(net.get(k, ()), (list, tuple))
                                           for k in ("attn_resolutions", "channel_mult")):
            # attention stays at the same UNet levels: at level i the configured (or default)
            # resolution r becomes the data's resolution // 2^i (32 → 28: [8] → [7])
            r0, levels = UNetConfig.resolution, len(net.get("channel_mult") or UNetConfig.channel_mult)
            at = {r0 // 2 ** i: shape[1] // 2 ** i for i in range(levels)}
            net["attn_resolutions"] = [at.get(r, r) for r in net.get("attn_resolutions", UNetConfig.attn_resolutions)]
        for key, value in zip(("image_channels", "resolution"), shape):
            if key not in net:
                net[key] = value
            elif net[key] != value:
                where = self.sources.where_key(key, ("net",), ("datasets", dataset, "net"),
                                               ("datasets", dataset, "models", method), ("models", method))
                raise ConfigError(
                    f"dataset {dataset!r} holds {shape[0]}×{shape[1]}×{shape[1]} images, but {method}/{variant} "
                    f"has net.{key}: {net[key]}{f' (set in {where})' if where else ''}; remove that net.{key} to "
                    f"take it from the data, or set datasets: {{{dataset}: {{net: {{{key}: {value}}}}}}}")
        return net

    def validate(self) -> None:
        """Every name a config refers to, then every model's run config (typed method, net and train
        configs): a bad reference or knob fails here, with the closest valid name and the file."""
        self.check_references()
        for dataset in self.datasets():
            for m, v in self.all_models(dataset):
                spec = self.model_spec(dataset, m, v)
                if "checkpoint_of" in spec:
                    self.model_spec(dataset, *spec["checkpoint_of"].split("/"))
                    continue
                for seed in self.train_seeds(dataset, m, v):
                    self._parse_run_config(dataset, m, v, seed)
                if "teacher" in spec:
                    self.check_teacher_agrees(dataset, m, v, spec["teacher"])
        for s in self.sample_sets():
            self.model_spec(s.dataset, s.method, s.variant)
            self.mid_sigmas(s.dataset, s.method, s.variant, s.sampler, s.steps)

    def method_of(self, dataset: str, method: str, variant: str):
        """The typed method config of a model as its (first training seed's) run config resolves it,
        inheritance included; computed once per model."""
        key = (dataset, method, variant)
        if key not in self._methods:
            run = self.run_config(dataset, method, variant, self.train_seeds(dataset, method, variant)[0])
            self._methods[key] = method_config(run["method"])[1]
        return self._methods[key]

    def inherited(self, dataset: str, method: str, variant: str) -> dict:
        """What a student takes from its teacher: every ``TEACHER_KEYS`` knob (noise schedule,
        parameterisation) it leaves unset, at the teacher's resolved value wherever that differs from
        the harness default (``DiffusionConfig``) or from the student's own default — so a config
        states the schedule once, on the teacher, and the student's run config still spells it out."""
        spec = self.model_spec(dataset, method, variant)
        if "teacher" not in spec:
            return {}
        teacher = self.method_of(dataset, *spec["teacher"].split("/"))
        own = spec.get("method") or {}
        base = {f.name: f.default for f in dataclasses.fields(DiffusionConfig)}
        mine = {f.name: f.default for f in dataclasses.fields(get_method(spec.get("registry_name", method)).Config)}
        return {k: getattr(teacher, k) for k in TEACHER_KEYS
                if k not in own and k in mine and not getattr(teacher, k) == base[k] == mine[k]}

    def check_teacher_agrees(self, dataset: str, m: str, v: str, teacher: str) -> None:
        """A student's noise schedule and preconditioning (``TEACHER_KEYS``) equal its teacher's,
        checked when the DAG is built instead of when the student's job loads the teacher."""
        student, mine = self.method_of(dataset, m, v), self.method_of(dataset, *teacher.split("/"))
        for k in TEACHER_KEYS:
            if hasattr(student, k) and hasattr(mine, k) and getattr(student, k) != getattr(mine, k):
                where = self.sources.where_key(k, ("models", m))
                raise ConfigError(f"models.{m} (variant {v}, dataset {dataset}{f'; in {where}' if where else ''}): "
                                  f"{k}={getattr(student, k)!r} but its teacher {teacher} has {k}="
                                  f"{getattr(mine, k)!r}; they must agree (set models.{m}.method.{k}: "
                                  f"{getattr(mine, k)!r})", key=k)

    def _parse_run_config(self, dataset: str, m: str, v: str, seed: int) -> None:
        """The run config of one model parsed (``RunConfig``: method, net and train knobs typed); a bad
        knob is a ConfigError naming the model, the closest valid key and the file that set the bad one."""
        try:
            RunConfig.parse(self.run_config(dataset, m, v, seed))  # resolves the method knobs too (pairs_file)
            return
        except ConfigError as err:
            e = err
        origin = self.sources.where_key(e.key, ("models", m), ("datasets", dataset), ("net",), ("train",)) \
            if e.key else None
        shown = f"variant {v}, dataset {dataset}" + (f"; in {origin}" if origin else "")
        raise ConfigError(f"models.{m} ({shown}): {e}") from None

    # ---- references ------------------------------------------------------------------------
    def check_references(self) -> None:
        """Every dataset, model and variant a config names exists (a typo gets the closest valid
        name and the file), and every defined variant is used somewhere (a typo'd variant key
        would otherwise define a model that nothing trains)."""
        defined = self.datasets()
        diag = self.config.get("diagnostics") or {}
        named = [(("diagnostics", "datasets"), diag.get("datasets") or [])]
        named += [(("evaluate", e, "datasets"), entry.get("datasets") or [])
                  for e, entry in self.config["evaluate"].items()]
        for path, names in named:
            for d in names:
                if d not in defined:
                    raise ConfigError(f"{'.'.join(path)}{self.sources.tag(*path)} names dataset {d!r}, which "
                                      f"datasets: does not define{did_you_mean(d, defined)}; defined: {defined} "
                                      f"(only_datasets: [...] drops datasets everywhere)")
        refs = [(("evaluate", e, "model"), entry["model"]) for e, entry in self.config["evaluate"].items()]
        refs += [(("diagnostics", k), r) for k in ("models", "curve_models") for r in diag.get(k) or []]
        refs += self._claims_refs()
        for d in defined:
            for m, v in self.all_models(d):
                refs += [(("models", m, k), self.model_spec(d, m, v)[k]) for k in ("teacher", "checkpoint_of")
                         if k in self.model_spec(d, m, v)]
        variants = self._variants()
        for path, ref in refs:
            self._check_ref(path, ref, variants)
        used = {ref for _, ref in refs}
        for m, vs in variants.items():
            for v in vs:
                if f"{m}/{v}" not in used:
                    path = ("models", m, "variants", v)
                    close = did_you_mean(v, [u.split("/")[1] for u in used if u.startswith(f"{m}/")])
                    raise ConfigError(
                        f"models.{m}.variants.{v}{self.sources.tag(*path)} is never trained or sampled: no evaluate "
                        f"entry, teacher, checkpoint_of, diagnostics or claims entry names {m}/{v}{close}; add an "
                        f"evaluate entry for it ({{model: {m}/{v}, sampler: ..., steps: [...]}}) or remove it")

    def _variants(self) -> dict[str, list[str]]:
        """method → its variants, over every dataset's models."""
        out: dict[str, list[str]] = {}
        for d in self.datasets():
            for m, v in self.all_models(d):
                out.setdefault(m, [])
                if v not in out[m]:
                    out[m].append(v)
        return out

    def _check_ref(self, path: tuple, ref: str, variants: dict) -> None:
        method, _, variant = ref.partition("/")
        tag = self.sources.tag(*path)
        if method not in variants:
            raise ConfigError(f"{'.'.join(path)}{tag} names model {ref!r}, but models: has no {method!r}"
                              f"{did_you_mean(method, variants)}; defined: {sorted(variants)}")
        if variant not in variants[method]:
            raise ConfigError(f"{'.'.join(path)}{tag} names {ref!r}, but models.{method}.variants has no "
                              f"{variant!r}{did_you_mean(variant, variants[method])}; defined: {variants[method]}")

    def _claims_refs(self) -> list[tuple[tuple, str]]:
        """'method/variant' references of the claims spec, when the report runs and the method under
        test is one of the models (a run without it gets claims marked "not tested")."""
        claims = self.config.get("claims") or {}
        if not (self.config.get("report") or {}).get("enabled") or claims.get("method") not in self.config["models"]:
            return []
        m = claims["method"]
        refs = [(("claims", "main_variant"), f"{m}/{claims.get('main_variant', 'main')}")]
        for c, arms in (claims.get("ablations") or {}).items():
            names = list(arms.get("variants") or {}) + [arms[k] for k in ("treatment", "control") if k in arms]
            refs += [(("claims", "ablations", c), f"{m}/{v}") for v in names]
        return refs

    # ---- sample sets ----------------------------------------------------------------------
    def sample_sets(self) -> list[SampleSet]:
        """Every (dataset, model, seed, sampler, steps, block) the config asks to sample and score."""
        sets = []
        for dataset in self.datasets():
            for entry in self.config["evaluate"].values():
                if not evaluates(entry, dataset):
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
            if entry["model"] != f"{method}/{variant}" or entry["sampler"] != sampler or not evaluates(entry, dataset):
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
