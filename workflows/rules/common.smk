# Shared helpers: the resolved config, its plan (e2ed2.plan) and the path patterns every rule
# uses. Everything a job depends on is turned into a `params:` value, so that changing one
# hyperparameter reruns exactly the jobs that depend on it.

import json
import os
import re
import shlex
import sys
from types import SimpleNamespace

sys.path.insert(0, workflow.basedir)  # the e2ed2 package of this checkout

from e2ed2.dataset_kinds import KINDS
from e2ed2.methods import METHODS, display_of
from e2ed2.metrics.families import FAMILIES
from e2ed2.plan import (
    DEFAULT_CONFIG,
    PAIRS_AMP,
    SCHEMA,
    Plan,
    load_config,
    validate_config,
)

# ---- the config: the default, each --configfile in order, then --config values -------------
# (e2ed2.workflow_config: a file's `replace:` blocks replace what came before it, the rest
# merges; `only_datasets:` keeps just those datasets). Names and the schema are checked before
# anything reads it, and an error names the file that set the key.
_resolved, SOURCES = load_config(
    workflow.config_settings.configfiles,
    dict(workflow.config_settings.config),
    default=os.path.join(workflow.basedir, DEFAULT_CONFIG),
)
config.clear()
config.update(_resolved)
validate_config(config, os.path.join(workflow.basedir, SCHEMA), SOURCES)
PLAN = Plan(config, SOURCES)
R = PLAN.R
FID = config["metrics"]["fid"]
CLIP = config["metrics"]["clip"]

# ---- a failed job's log on the console --------------------------------------------------------
# Snakemake's --show-failed-logs, on without a profile: the failing job's log follows its error
# report. (Snakemake finds a default workflow profile only in profiles/default/ beside the
# Snakefile, at the repository root; so the switch is set on its console formatter here.)
# Another Snakemake logging layout (ImportError) keeps Snakemake's own default: log paths only.
try:
    from snakemake.logging import DefaultFormatter, logger as _smk_logger
except ImportError:
    DefaultFormatter, _smk_logger = None, None
for _handler in _smk_logger.handlers if _smk_logger else []:
    if isinstance(_handler.formatter, DefaultFormatter):
        _handler.formatter.show_failed_logs = True

# ---- path patterns (wildcards in braces) ---------------------------------------------------
DATA = f"{R}/data/{{dataset}}.npz"
TRAIN = f"{R}/{{dataset}}/train/{{method}}/{{variant}}/s{{seed}}"
SET = "{method}/{variant}/s{seed}/{sampler}-{steps}/b{block}"
SAMPLES = f"{R}/{{dataset}}/samples/{SET}"
METRICS = f"{R}/{{dataset}}/metrics/{SET}"
REF = f"{R}/{{dataset}}/metrics/ref"
FLOOR = f"{R}/{{dataset}}/metrics/floor"
DIAG = f"{R}/{{dataset}}/diagnostics"
LOG = f"{R}/logs/{{dataset}}"
BENCH = f"{R}/benchmarks/{{dataset}}"


wildcard_constraints:
    dataset=r"[A-Za-z0-9_.-]+",
    method=r"[A-Za-z0-9_]+",
    variant=r"[A-Za-z0-9_]+",
    seed=r"\d+",
    sampler=r"[A-Za-z0-9_]+",
    steps=r"\d+",
    block=r"\d+",
    teacher=r"[A-Za-z0-9_]+-[A-Za-z0-9_]+",
    drop=r"[0-9.e-]+",
    precision=r"fp32|bf16",
    n=r"\d+",


def expand_set(pattern, s):
    """A path pattern filled in for one e2ed2.plan.SampleSet."""
    return pattern.format(
        dataset=s.dataset,
        method=s.method,
        variant=s.variant,
        seed=s.seed,
        sampler=s.sampler,
        steps=s.steps,
        block=s.block,
    )


# ---- per-job resources: config.resources.<stage> (a model's `resources:` for training) -----
RESOURCE_DEFAULTS = {
    "threads": 1,
    "mem_mb": 2000,
    "gpu": 0,
    "runtime": 60,
    "processes": 0,
}


def res(stage, key, wildcards=None):
    block = config["resources"].get(stage) or config["resources"]["sample"]
    value = block.get(key, RESOURCE_DEFAULTS[key])
    if stage == "train" and wildcards is not None:
        spec = PLAN.model_spec(wildcards.dataset, wildcards.method, wildcards.variant)
        value = (spec.get("resources") or {}).get(key, value)
    return value


def job_resources(stage):
    """mem_mb, gpu and runtime (minutes, the Slurm time limit) of a stage's jobs."""
    return {k: res(stage, k) for k in ("mem_mb", "gpu", "runtime")}


# ---- training inputs and params ---------------------------------------------------------------
def train_inputs(w):
    """The dataset, the teacher's final.pt (students) and the latents (latent-space runs)."""
    inputs = {"data": DATA.format(dataset=w.dataset)}
    teacher = PLAN.teacher_ckpt(w.dataset, w.method, w.variant)
    if teacher:
        inputs["teacher"] = teacher
    pairs = PLAN.pairs_file(w.dataset, w.method, w.variant, int(w.seed))
    if pairs:
        inputs["pairs"] = pairs
    if config.get("latent"):
        inputs["latents"] = f"{R}/data/{w.dataset}.latents.npz"
    return inputs


def pairs_teacher_ckpt(w):
    """The teacher checkpoint behind a pairs file ('edm-main' → edm/main's final.pt)."""
    return PLAN.final_ckpt(w.dataset, w.teacher.replace("-", "/", 1))


def run_config_json(w):
    run = PLAN.run_config(w.dataset, w.method, w.variant, int(w.seed))
    return shlex.quote(json.dumps(run, sort_keys=True))


def train_priority(w):
    """Scheduling order when cores are short: a teacher (a model others distil from or sample
    through `checkpoint_of`) first, since every dependent job waits for it; then the other
    training jobs; sampling and metrics (priority 0) fill in."""
    ref = f"{w.method}/{w.variant}"
    for m, v in PLAN.all_models(w.dataset):
        spec = PLAN.model_spec(w.dataset, m, v)
        if ref in (spec.get("teacher"), spec.get("checkpoint_of")):
            return 2
    return 1


def train_launcher(w, resources):
    """`torchrun` when the job asks for more than one process (GPUs, or CPU gloo ranks)."""
    nproc = max(int(resources.gpu), int(res("train", "processes", w)), 1)
    if nproc == 1:
        return "python"
    # on a multi-GPU node, claim that many whole GPUs (e2ed2.devices) and pin them for torchrun
    gpus = int(resources.gpu)
    pin = f"python -m e2ed2.devices run --gpus {gpus} -- " if gpus > 1 else ""
    return f"{pin}torchrun --standalone --nnodes 1 --nproc_per_node {nproc}"


# ---- sample sets and metrics ----------------------------------------------------------------
def sample_ckpt(w):
    return PLAN.checkpoint_for(w.dataset, w.method, w.variant, int(w.seed))


def mid_sigmas_text(w):
    """A consistency sample set's intermediate σ's (evaluate.<entry>.mid_sigmas), comma-separated; else ""."""
    mids = PLAN.mid_sigmas(w.dataset, w.method, w.variant, w.sampler, int(w.steps))
    return ",".join(str(v) for v in mids) if mids else ""


def mid_sigmas_arg(w):
    """--mid-sigmas of a consistency sample set, else nothing."""
    text = mid_sigmas_text(w)
    return f"--mid-sigmas {text}" if text else ""


def metric_labels(w):
    """--label arguments every metric JSON of one sample set carries (+ the model's labels)."""
    labels = {
        "dataset": w.dataset,
        "run": config["run"],
        "method": w.method,
        "variant": w.variant,
        "train_seed": w.seed,
        "sampler": w.sampler,
        "steps": w.steps,
        "seed_block": w.block,
        **(PLAN.model_spec(w.dataset, w.method, w.variant).get("labels") or {}),
        # how the report names, orders and colours the method: its class's display name
        **(display_of(w.method) if w.method in METHODS else {}),
    }
    if mids := mid_sigmas_text(w):
        labels["mid_sigmas"] = mids
    return " ".join(f"--label {shlex.quote(f'{k}={v}')}" for k, v in labels.items())


def clip_model(dataset):
    """A pretrained open_clip file (outside the workflow), or the small CLIP a rule trains."""
    return os.path.expanduser(CLIP.get("pretrained") or f"{R}/{dataset}/clip/model.pt")


def clip_spec(w):
    return shlex.quote(f"{CLIP['model']}:{clip_model(w.dataset)}")


def clip_model_input(w):
    return {} if CLIP.get("pretrained") else {"model": clip_model(w.dataset)}


# ---- metric families: every rule of a family comes from its registry entry (FAMILIES); what the
# registry cannot say — a family's extra input files and options per dataset — is here ----------
# family → (wildcards → {name: file}): what its commands read beside the data (CLIP's backbone)
FAMILY_INPUTS = {"clip": clip_model_input}
# family → (wildcards → options) that every command of the family gets
FAMILY_ARGS = {"clip": lambda w: f"--clip {clip_spec(w)}"}


def family_inputs(family):
    return FAMILY_INPUTS.get(family, lambda w: {})


def family_args(family):
    return FAMILY_ARGS.get(family, lambda w: "")


def family_ref(family):
    """The family's reference statistics file of a dataset (pattern with {dataset})."""
    # one reference protocol (split, N) for every family: metrics.fid's
    protocol = {"split": FID["split"], "ref_n": FID["ref_n"]}
    keys = {**config["metrics"].get(family, {}), **protocol, "name": family}
    return os.path.join(REF, FAMILIES[family].ref_file.format(**keys))


def family_ref_options(family):
    """``--key value`` of the family's ``ref_options`` (from metrics.<family>)."""
    block = config["metrics"].get(family, {})
    return " ".join(
        f"--{k.replace('_', '-')} {shlex.quote(str(block[k]))}"
        for k in FAMILIES[family].ref_options
    )


def metric_outputs(family):
    return [
        f"{expand_set(METRICS, s)}/{family}.json"
        for s in PLAN.sample_sets()
        if family in config["metrics"]["families"]
    ]


def trained_finals():
    return [
        f"{PLAN.train_dir(d, m, v, s)}/final.pt"
        for d in PLAN.datasets()
        for m, v, s in PLAN.trained(d)
    ]


# ---- data, diagnostics and report inputs ------------------------------------------------------
def prepared_by(kind):
    """Regex of the dataset names whose `prepare:` is `kind` (a rule per preparation kind)."""
    names = [d for d in PLAN.datasets() if PLAN.dataset_block(d)["prepare"] == kind]
    return "|".join(map(re.escape, names)) or "(?!)"


def dataset_source(w):
    """What `python -m e2ed2.data` converts: the dataset's `source:` (default: its built-in name)."""
    return shlex.quote(PLAN.dataset_block(w.dataset).get("source", w.dataset))


def dataset_keys(w):
    """--key ROLE=NAME of a dataset's `keys:` (the .npz arrays holding images, labels, ...)."""
    keys = PLAN.dataset_block(w.dataset).get("keys") or {}
    return " ".join(f"--key {shlex.quote(f'{k}={v}')}" for k, v in keys.items())


def downloads(dataset):
    return PLAN.dataset_block(dataset).get("download_dir", "data/downloads")


def model_dir(ref):
    """'method/variant' → 'method-variant', the diagnostics folder of a model."""
    method, variant = ref.split("/")
    return f"{method}-{variant}"


def diagnostics_files(kind):
    """<run>/<dataset>/diagnostics/<method>-<variant>/<kind>.csv of every diagnosed model (Plan.diagnosed)."""
    return [
        f"{R}/{d}/diagnostics/{model_dir(ref)}/{kind}.csv"
        for d in PLAN.diagnostics_datasets()
        for ref in PLAN.diagnosed(d, kind)
    ]


def diagnosed_ckpt(w):
    return PLAN.final_ckpt(w.dataset, f"{w.method}/{w.variant}")


def floor_jsons():
    families = config["metrics"]["families"]
    return [
        f"{R}/{d}/metrics/floor/{fam}.json" for d in PLAN.datasets() for fam in families
    ]


def replicate_files():
    """The per-image replicates beside each metric JSON (paired comparisons)."""
    return [
        f"{expand_set(METRICS, s)}/{FAMILIES[fam].replicate_file}"
        for s in PLAN.sample_sets()
        for fam in config["metrics"]["families"]
    ]


def grid_samples():
    return [
        f"{expand_set(SAMPLES, s)}/samples.npz"
        for s in PLAN.sample_sets()
        if s.block == 0
    ]


def all_targets():
    """What `snakemake` builds by default: the report, or the metric JSONs without one."""
    if config["report"]["enabled"]:
        return [f"{R}/report/claims/claims.md"]
    return [
        out for fam in config["metrics"]["families"] for out in metric_outputs(fam)
    ] + floor_jsons()


# ---- sampling.jobs / metrics.jobs: arm | model — the sample sets of one arm (all its training seeds)
# or of one trained model (one seed) in one job (one process: no per-set interpreter, torch and
# network start-up); set: one job per sample set ------------------------------------------------
SAMPLE_JOBS = config["sampling"].get("jobs", "set")
METRIC_JOBS = config["metrics"].get("jobs", "set")


def _model_groups(jobs):
    """{(dataset, method, variant, seed or None): [SampleSet, ...]} in plan order for ``jobs``
    (arm: seed None, every training seed of the arm in one group; model: one group per seed);
    {} for ``jobs: set``."""
    if jobs not in ("model", "arm"):
        return {}
    groups = {}
    for s in PLAN.sample_sets():
        seed = None if jobs == "arm" else s.seed
        groups.setdefault((s.dataset, s.method, s.variant, seed), []).append(s)
    return groups


def _group_tag(key, taken):
    """A rule-name suffix for a group key (dataset_method_variant[_sSEED]), unique within ``taken``."""
    d, m, v, seed = key
    tag = re.sub(r"\W", "_", f"{d}_{m}_{v}" + ("" if seed is None else f"_s{seed}"))
    while tag in taken:
        tag += "_"
    taken.add(tag)
    return tag


def _group_where(key, stage):
    """The group's log/benchmark path stem under the dataset: <dataset>/<stage>/<method>/<variant>[/s<seed>]."""
    d, m, v, seed = key
    return os.path.join(d, stage, m, v, *([] if seed is None else [f"s{seed}"]))


def _set_wildcards(s):
    """A SampleSet as the per-set rules' wildcards (strings), for metric_labels and clip_spec."""
    return SimpleNamespace(
        dataset=s.dataset,
        method=s.method,
        variant=s.variant,
        seed=str(s.seed),
        sampler=s.sampler,
        steps=str(s.steps),
        block=str(s.block),
    )


def metric_set_args(w, family):
    """One sample set's ``--samples DIR <labels> --save-x NPZ --out JSON`` for ``python -m
    e2ed2.metrics.<family> calc``: the per-set rule's, and repeated per set by a per-arm job.
    """
    f = FAMILIES[family]
    return (
        f"--samples {shlex.quote(expand_set(SAMPLES, w))} {metric_labels(w)}"
        f" {f.replicate_option} {shlex.quote(f'{expand_set(METRICS, w)}/{f.replicate_file}')}"
        f" --out {shlex.quote(f'{expand_set(METRICS, w)}/{family}.json')}"
    )


def _grouped_sets_args(sets, family):
    """Every set's ``metric_set_args``, in plan order."""
    return " ".join(metric_set_args(_set_wildcards(s), family) for s in sets)


def sample_set_args(w):
    """``python -m e2ed2.sample``'s arguments for one sample set: the per-set rule's, and joined
    by ``--next`` in a per-arm job."""
    ema = "" if config["sampling"]["ema"] else " --no-ema"
    return (
        f"--ckpt {shlex.quote(sample_ckpt(w))} --data {shlex.quote(DATA.format(dataset=w.dataset))}"
        f" --batch-size {config['sampling']['batch_size']} --guidance {config['sampling']['guidance']}{ema}"
        f" --steps {w.steps} --sampler {w.sampler} --seeds {PLAN.seeds_for(int(w.block))} {mid_sigmas_arg(w)}"
        f" --out {shlex.quote(expand_set(SAMPLES, w))}"
    )


def _grouped_sample_args(sets):
    """Every set's ``sample_set_args``, joined by ``--next``, in plan order."""
    return " --next ".join(sample_set_args(_set_wildcards(s)) for s in sets)
