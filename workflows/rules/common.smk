# Shared helpers: resolve the config into models, run configs, sample sets and targets.
# Everything a job depends on is turned into a `params:` value here, so that changing one
# hyperparameter in the config reruns exactly the jobs that depend on it.

import copy
import json
import shlex

R = f"results/{config['run']}"
DATASET = config["dataset"]["name"]
DATA_NPZ = f"{R}/data/{DATASET}.npz"
# optional latent space (e2ed2.latent): the dataset encoded once by a VAE, decoded before metrics
LATENT = config.get("latent")
LATENTS_NPZ = f"{R}/data/{DATASET}.latents.npz" if LATENT else None
FID = config["metrics"]["fid"]
CLIP = config["metrics"]["clip"]
N = config["sampling"]["n"]
FID_REF = (
    f"{R}/metrics/ref/{DATASET}-{FID['split']}-{FID['backend']}-n{FID['ref_n']}.npz"
)
# a pretrained open_clip file lives outside the workflow (resolved by the job, e2ed2.assets);
# the offline default is the small CLIP a rule trains
CLIP_MODEL = os.path.expanduser(CLIP.get("pretrained") or f"{R}/clip/model.pt")
CLIP_SPEC = shlex.quote(
    f"{CLIP['model']}:{CLIP_MODEL}"
)  # e2ed2.metrics.clip --clip MODEL:FILE
CLIP_REF = (
    f"{R}/metrics/ref/{DATASET}-{FID['split']}-clip-{CLIP['model']}-n{FID['ref_n']}.npz"
)
# the real-data floor is labelled method "real" (e2ed2.report.aggregate.FLOOR_METHOD)
FLOOR_LABELS = (
    f"--label dataset={DATASET} --label run={config['run']} --label method=real"
)


wildcard_constraints:
    method=r"[A-Za-z0-9_]+",
    variant=r"[A-Za-z0-9_]+",
    sampler=r"[A-Za-z0-9_]+",
    steps=r"\d+",
    block=r"\d+",
    family=r"[A-Za-z0-9_]+",


# ---- models: config.models.<method>.variants.<variant> ---------------------------------
def deep_merge(a, b):
    """b over a, recursing into dicts (lists and scalars are replaced)."""
    out = copy.deepcopy(a)
    for k, v in (b or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def model_spec(method, variant):
    """The method block with its variant's overrides merged in (variant wins)."""
    models = config["models"]
    if method not in models or variant not in models[method]["variants"]:
        known = [f"{m}/{v}" for m in models for v in models[m]["variants"]]
        raise ValueError(f"config.models has no {method}/{variant}; defined: {known}")
    block = {k: v for k, v in models[method].items() if k != "variants"}
    return deep_merge(block, models[method]["variants"][variant] or {})


def all_models():
    return [(m, v) for m, block in config["models"].items() for v in block["variants"]]


def trained_models():
    """Models with their own training job (not `checkpoint_of` another model)."""
    return [(m, v) for m, v in all_models() if "checkpoint_of" not in model_spec(m, v)]


def final_ckpt(model_ref):
    """'method/variant' → its final checkpoint path."""
    method, _, variant = model_ref.partition("/")
    model_spec(method, variant)  # raises with the list of defined models
    return f"{R}/train/{method}/{variant}/final.pt"


def checkpoint_for(method, variant):
    """The checkpoint a model samples from: its own, or the one it borrows (DDIM ← DDPM)."""
    spec = model_spec(method, variant)
    if "checkpoint_of" in spec:
        return final_ckpt(spec["checkpoint_of"])
    return f"{R}/train/{method}/{variant}/final.pt"


def teacher_inputs(wildcards):
    spec = model_spec(wildcards.method, wildcards.variant)
    return {"teacher": final_ckpt(spec["teacher"])} if "teacher" in spec else {}


def train_priority(wildcards):
    """Scheduling order when cores are short: a teacher (a model others distil from or sample
    through `checkpoint_of`) first, since every dependent job waits for it; then the other
    training jobs, the longest jobs of the run; sampling and metrics (priority 0) fill in.
    """
    ref = f"{wildcards.method}/{wildcards.variant}"
    for m, v in all_models():
        spec = model_spec(m, v)
        if ref in (spec.get("teacher"), spec.get("checkpoint_of")):
            return 2
    return 1


def latent_inputs(wildcards):
    """The encoded latents every training job reads in a latent-space run (none otherwise)."""
    return {"latents": LATENTS_NPZ} if LATENT else {}


def latent_block():
    """The run config's `latent:` block: the VAE (checkpoints carry it; sampling decodes) and latents."""
    block = {"vae": LATENT["vae"], "latents": LATENTS_NPZ}
    if LATENT.get("subfolder"):
        block["subfolder"] = LATENT["subfolder"]
    return block


def run_config(method, variant):
    """The e2ed2.train run config {data, method, net, train} of one model."""
    spec = model_spec(method, variant)
    knobs = {"name": spec.get("registry_name", method), **(spec.get("method") or {})}
    if "teacher" in spec:  # the teacher checkpoint is a method knob (CD, E2ED²)
        knobs["teacher"] = final_ckpt(spec["teacher"])
    run = {
        "data": DATA_NPZ,
        "method": knobs,
        "net": deep_merge(config["net"], spec.get("net")),
        "train": deep_merge(config["train"], spec.get("train")),
    }
    if LATENT:
        run["latent"] = latent_block()
    return run


def run_config_json(wildcards):
    return shlex.quote(
        json.dumps(run_config(wildcards.method, wildcards.variant), sort_keys=True)
    )


def model_labels(method, variant):
    """Free-form labels of a model (e.g. ablation=C5 arm=leaky), passed to every metric JSON."""
    return model_spec(method, variant).get("labels") or {}


def clip_model_input(wildcards):
    return {} if CLIP.get("pretrained") else {"model": CLIP_MODEL}


# ---- resources --------------------------------------------------------------------------
RESOURCE_DEFAULTS = {
    "threads": 1,
    "mem_mb": 2000,
    "gpu": 0,
    "runtime": 60,
    "processes": 0,
}


def res(stage, key, wildcards=None):
    """config.resources.<stage>.<key> (or its default), with a per-model override for training.
    The optional `latent` stage (VAE encoding) falls back to the `sample` resources."""
    block = config["resources"].get(stage) or config["resources"]["sample"]
    value = block.get(key, RESOURCE_DEFAULTS[key])
    if stage == "train" and wildcards is not None:
        spec = model_spec(wildcards.method, wildcards.variant)
        value = (spec.get("resources") or {}).get(key, value)
    return value


def train_launcher(wildcards, resources):
    """`torchrun` when the job asks for more than one process (GPUs, or CPU gloo ranks)."""
    nproc = max(int(resources.gpu), int(res("train", "processes", wildcards)), 1)
    if nproc == 1:
        return "python"
    return f"torchrun --standalone --nnodes 1 --nproc_per_node {nproc}"


# ---- sample sets: config.evaluate -------------------------------------------------------
def seeds_for(block, n=None):
    """Seed block b = seeds [b·N, (b+1)·N): blocks are disjoint, every set shares block b."""
    n = n or config["sampling"]["n"]
    b = int(block)
    return f"{b * n}-{(b + 1) * n - 1}"


def sample_sets():
    """Every (method, variant, sampler, steps, block) the config asks to sample and score."""
    sets = []
    for entry in config["evaluate"]:
        method, _, variant = entry["model"].partition("/")
        model_spec(method, variant)
        for steps in entry["steps"]:
            for block in range(
                entry.get("seed_blocks", config["sampling"]["seed_blocks"])
            ):
                sets.append((method, variant, entry["sampler"], int(steps), block))
    return sets


def set_dir(stage, method, variant, sampler, steps, block):
    return f"{R}/{stage}/{method}/{variant}/{sampler}-{steps}/seed{block}"


def metric_jsons():
    return [
        f"{set_dir('metrics', *s)}/{family}.json"
        for s in sample_sets()
        for family in config["metrics"]["families"]
    ]


def metric_labels(wildcards):
    """--label arguments every metric JSON of one sample set carries."""
    labels = {
        "dataset": DATASET,
        "run": config["run"],
        "method": wildcards.method,
        "variant": wildcards.variant,
        "sampler": wildcards.sampler,
        "steps": wildcards.steps,
        "seed_block": wildcards.block,
        **model_labels(wildcards.method, wildcards.variant),
    }
    return " ".join(f"--label {shlex.quote(f'{k}={v}')}" for k, v in labels.items())


def stage_root(path, stage):
    """results/<run>/<stage> from any file below it (the report CLIs read whole folders)."""
    head, sep, _ = str(path).partition(f"/{stage}/")
    if not sep:
        raise ValueError(f"{path} is not under a '{stage}/' folder")
    return f"{head}/{stage}"


# ---- targets ----------------------------------------------------------------------------
def all_targets():
    """What `snakemake` builds by default: the report, or the metric JSONs without one."""
    if config["report"]["enabled"]:
        return [
            f"{R}/report/tables",
            f"{R}/report/figures",
            f"{R}/report/claims/claims.md",
        ]
    return metric_jsons() + [f"{R}/metrics/floor/fid.json"]
