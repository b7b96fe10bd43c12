# Stage 4 — metrics: dataset statistics once (`ref`), the real-data floor at the same N, then
# one JSON per (sample set, metric family) (`calc`), after edm2's ref/calc split. Tables and
# figures read only these JSONs; the per-image features (features.npz, clip_scores.npz) feed
# the paired comparisons of the claims. FID compares only at equal N.


# Inception statistics of the reference split (clean-fid / torch-fidelity feature network)
rule fid_ref:
    input:
        data=DATA,
    output:
        ref=FID_REF,
    log:
        f"{LOG}/metrics/fid_ref.log",
    benchmark:
        f"{BENCH}/metrics/fid_ref.tsv"
    conda:
        "../envs/e2ed2.yaml"
    threads: res("metrics", "threads")
    resources:
        **job_resources("metrics"),
    params:
        split=FID["split"],
        n=FID["ref_n"],
        backend=FID["backend"],
    shell:
        "OMP_NUM_THREADS={threads} python -m e2ed2.metrics.fid ref --data {input.data}"
        " --split {params.split} --n {params.n} --backend {params.backend} --threads {threads}"
        " --out {output.ref} > {log} 2>&1"


# The real-data floor: n training images vs the reference, printed beside every table
rule fid_floor:
    input:
        data=DATA,
        ref=FID_REF,
    output:
        json=f"{FLOOR}/fid.json",
        features=f"{FLOOR}/features.npz",
    log:
        f"{LOG}/metrics/fid_floor.log",
    benchmark:
        f"{BENCH}/metrics/fid_floor.tsv"
    conda:
        "../envs/e2ed2.yaml"
    threads: res("metrics", "threads")
    resources:
        **job_resources("metrics"),
    params:
        n=config["sampling"]["n"],
        labels=lambda w: f"--label dataset={w.dataset} --label run={config['run']} --label method=real",
    shell:
        "OMP_NUM_THREADS={threads} python -m e2ed2.metrics.fid floor --data {input.data}"
        " --ref {input.ref} --n {params.n} --threads {threads} {params.labels}"
        " --save-features {output.features} --out {output.json} > {log} 2>&1"


# FID + KID + precision/recall of one sample set (the reference fixes backend and mode)
rule metrics_fid:
    input:
        samples=f"{SAMPLES}/samples.npz",
        ref=FID_REF,
    output:
        json=f"{METRICS}/fid.json",
        features=f"{METRICS}/features.npz",
    log:
        f"{LOG}/metrics/{SET}/fid.log",
    benchmark:
        f"{BENCH}/metrics/{SET}/fid.tsv"
    conda:
        "../envs/e2ed2.yaml"
    threads: res("metrics", "threads")
    resources:
        **job_resources("metrics"),
    params:
        set=lambda w: metric_set_args(w, "fid"),
    shell:
        "OMP_NUM_THREADS={threads} python -m e2ed2.metrics.fid calc --ref {input.ref} --threads {threads}"
        " {params.set} > {log} 2>&1"


if not CLIP.get("pretrained"):

    # Offline default: a small CLIP (open_clip model + ClipLoss) trained on the TRAIN image–caption
    # pairs of each dataset; its held-out zero-shot accuracy is written beside it
    rule clip_train:
        input:
            data=DATA,
        output:
            model=f"{R}/{{dataset}}/clip/model.pt",
            evaluation=f"{R}/{{dataset}}/clip/model.eval.json",
        log:
            f"{LOG}/clip_train.log",
        benchmark:
            f"{BENCH}/clip_train.tsv"
        conda:
            "../envs/e2ed2.yaml"
        threads: res("metrics", "threads")
        resources:
            **job_resources("metrics"),
        params:
            args=" ".join(
                f"--{k.replace('_', '-')} {v}" for k, v in CLIP["train"].items()
            ),
        shell:
            "OMP_NUM_THREADS={threads} python -m e2ed2.metrics.train_clip --data {input.data}"
            " --threads {threads} {params.args} --out {output.model} > {log} 2>&1"


# CLIP image-embedding statistics of the reference split (for FD_CLIP)
rule clip_ref:
    input:
        unpack(clip_model_input),
        data=DATA,
    output:
        ref=CLIP_REF,
    log:
        f"{LOG}/metrics/clip_ref.log",
    benchmark:
        f"{BENCH}/metrics/clip_ref.tsv"
    conda:
        "../envs/e2ed2.yaml"
    threads: res("metrics", "threads")
    resources:
        **job_resources("metrics"),
    params:
        clip=clip_spec,
        split=FID["split"],
        n=FID["ref_n"],
    shell:
        "OMP_NUM_THREADS={threads} python -m e2ed2.metrics.clip ref --clip {params.clip}"
        " --data {input.data} --split {params.split} --n {params.n} --threads {threads}"
        " --out {output.ref} > {log} 2>&1"


# CLIP score (100·max(cos, 0)) and FD_CLIP of one sample set, backbone named in the JSON
rule metrics_clip:
    input:
        unpack(clip_model_input),
        samples=f"{SAMPLES}/samples.npz",
        ref=CLIP_REF,
    output:
        json=f"{METRICS}/clip.json",
        scores=f"{METRICS}/clip_scores.npz",
    log:
        f"{LOG}/metrics/{SET}/clip.log",
    benchmark:
        f"{BENCH}/metrics/{SET}/clip.tsv"
    conda:
        "../envs/e2ed2.yaml"
    threads: res("metrics", "threads")
    resources:
        **job_resources("metrics"),
    params:
        clip=clip_spec,
        set=lambda w: metric_set_args(w, "clip"),
    shell:
        "OMP_NUM_THREADS={threads} python -m e2ed2.metrics.clip calc --clip {params.clip}"
        " --ref {input.ref} --threads {threads} {params.set} > {log} 2>&1"


# The real-image CLIP score (train images with their own captions) and FD_CLIP floor, same n
rule clip_floor:
    input:
        unpack(clip_model_input),
        data=DATA,
        ref=CLIP_REF,
    output:
        json=f"{FLOOR}/clip.json",
    log:
        f"{LOG}/metrics/clip_floor.log",
    benchmark:
        f"{BENCH}/metrics/clip_floor.tsv"
    conda:
        "../envs/e2ed2.yaml"
    threads: res("metrics", "threads")
    resources:
        **job_resources("metrics"),
    params:
        clip=clip_spec,
        n=config["sampling"]["n"],
        labels=lambda w: f"--label dataset={w.dataset} --label run={config['run']} --label method=real",
    shell:
        "OMP_NUM_THREADS={threads} python -m e2ed2.metrics.clip calc --clip {params.clip}"
        " --data {input.data} --split train --n {params.n} --ref {input.ref} --threads {threads}"
        " {params.labels} --out {output.json} > {log} 2>&1"


# ---- one job per arm (or per trained model): its sample sets in one process per family
# A metric job's process start-up (python, torch, the metric modules, the Inception network or CLIP,
# the references) is ~4 s of its ~26 s FID / ~5 s CLIP at n = 200 (benchmarks/bench_metrics_overhead.py):
# `metrics: {jobs: arm}` (the default) scores all sets of an arm — every training seed, sampler and
# step budget — in one `calc` process per family; `jobs: model` one process per training seed. Each
# set's JSON and replicate file stay outputs of their own, byte-identical to the per-set rule's but
# for the timing fields; the per-set rules above remain for any set outside the plan (ruleorder).
_rule_names = set()
for _key, _sets in _model_groups(METRIC_JOBS).items():
    _d = _key[0]
    _tag = _group_tag(_key, _rule_names)
    _where = _group_where(_key, "metrics")
    _w = _set_wildcards(_sets[0])

    # FID + KID + precision/recall of every sample set of one trained model
    rule:
        name:
            f"metrics_fid_model_{_tag}"
        input:
            samples=[f"{expand_set(SAMPLES, s)}/samples.npz" for s in _sets],
            ref=FID_REF.format(dataset=_d),
        output:
            json=[f"{expand_set(METRICS, s)}/fid.json" for s in _sets],
            features=[f"{expand_set(METRICS, s)}/features.npz" for s in _sets],
        log:
            f"{R}/logs/{_where}/fid.log",
        benchmark:
            f"{R}/benchmarks/{_where}/fid.tsv"
        conda:
            "../envs/e2ed2.yaml"
        threads: res("metrics", "threads")
        resources:
            **{
                **job_resources("metrics"),
                "runtime": res("metrics", "runtime") * len(_sets),
            },
        params:
            sets=_grouped_sets_args(_sets, "fid"),
        shell:
            "OMP_NUM_THREADS={threads} python -m e2ed2.metrics.fid calc --ref {input.ref} --threads {threads}"
            " {params.sets} > {log} 2>&1"

    # CLIP score and FD_CLIP of every sample set of one trained model
    rule:
        name:
            f"metrics_clip_model_{_tag}"
        input:
            **clip_model_input(_w),
            samples=[f"{expand_set(SAMPLES, s)}/samples.npz" for s in _sets],
            ref=CLIP_REF.format(dataset=_d),
        output:
            json=[f"{expand_set(METRICS, s)}/clip.json" for s in _sets],
            scores=[f"{expand_set(METRICS, s)}/clip_scores.npz" for s in _sets],
        log:
            f"{R}/logs/{_where}/clip.log",
        benchmark:
            f"{R}/benchmarks/{_where}/clip.tsv"
        conda:
            "../envs/e2ed2.yaml"
        threads: res("metrics", "threads")
        resources:
            **{
                **job_resources("metrics"),
                "runtime": res("metrics", "runtime") * len(_sets),
            },
        params:
            clip=clip_spec(_w),
            sets=_grouped_sets_args(_sets, "clip"),
        shell:
            "OMP_NUM_THREADS={threads} python -m e2ed2.metrics.clip calc --clip {params.clip}"
            " --ref {input.ref} --threads {threads} {params.sets} > {log} 2>&1"

    workflow.ruleorder(f"metrics_fid_model_{_tag}", "metrics_fid")
    workflow.ruleorder(f"metrics_clip_model_{_tag}", "metrics_clip")
