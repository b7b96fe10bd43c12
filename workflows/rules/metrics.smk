# Stage 4 — metrics: dataset statistics once (`ref`), the real-data floor at the same N, then
# one JSON per (sample set, metric family) (`calc`), after edm2's ref/calc split. Tables and
# figures read only these JSONs; the per-image replicates (features.npz, clip_scores.npz) feed
# the paired comparisons of the claims. FID compares only at equal N.
#
# Every family's rules come from its registry entry (e2ed2.metrics.families) and the shared CLI
# (e2ed2.metrics.family_cli): `<family>_ref`, `<family>_floor`, `metrics_<family>` per set and
# `metrics_<family>_model_<arm>` per arm. What a family needs beyond that (CLIP's backbone) is in
# FAMILY_INPUTS / FAMILY_ARGS (common.smk).


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


for _fam in config["metrics"]["families"]:
    _F = FAMILIES[_fam]

    # Statistics of the reference split in the family's feature space (Inception, CLIP, ...)
    rule:
        name:
            f"{_fam}_ref"
        input:
            unpack(family_inputs(_fam)),
            data=DATA,
        output:
            ref=family_ref(_fam),
        log:
            f"{LOG}/metrics/{_fam}_ref.log",
        benchmark:
            f"{BENCH}/metrics/{_fam}_ref.tsv"
        conda:
            "../envs/e2ed2.yaml"
        threads: res("metrics", "threads")
        resources:
            **job_resources("metrics"),
        params:
            family=family_args(_fam),
            split=FID["split"],
            n=FID["ref_n"],
            options=family_ref_options(_fam),
            cli=f"e2ed2.metrics.{_fam}",
        # (no loop variable in a shell string: Snakemake evaluates it again when the job runs)
        shell:
            "OMP_NUM_THREADS={threads} python -m {params.cli} ref {params.family} --data {input.data}"
            " --split {params.split} --n {params.n} {params.options} --threads {threads}"
            " --out {output.ref} > {log} 2>&1"

    # The real-data floor: n training images (with their captions) vs the reference, beside every table
    rule:
        name:
            f"{_fam}_floor"
        input:
            unpack(family_inputs(_fam)),
            data=DATA,
            ref=family_ref(_fam),
        output:
            json=f"{FLOOR}/{_fam}.json",
            replicates=f"{FLOOR}/{_F.replicate_file}",
        log:
            f"{LOG}/metrics/{_fam}_floor.log",
        benchmark:
            f"{BENCH}/metrics/{_fam}_floor.tsv"
        conda:
            "../envs/e2ed2.yaml"
        threads: res("metrics", "threads")
        resources:
            **job_resources("metrics"),
        params:
            family=family_args(_fam),
            n=config["sampling"]["n"],
            labels=lambda w: f"--label dataset={w.dataset} --label run={config['run']} --label method=real",
            cli=f"e2ed2.metrics.{_fam}",
            replicate_option=_F.replicate_option,
        shell:
            "OMP_NUM_THREADS={threads} python -m {params.cli} floor {params.family}"
            " --data {input.data} --ref {input.ref} --n {params.n} --threads {threads} {params.labels}"
            " {params.replicate_option} {output.replicates} --out {output.json} > {log} 2>&1"

    # One sample set scored against the reference (the reference fixes backend and mode)
    rule:
        name:
            f"metrics_{_fam}"
        input:
            unpack(family_inputs(_fam)),
            samples=f"{SAMPLES}/samples.npz",
            ref=family_ref(_fam),
        output:
            json=f"{METRICS}/{_fam}.json",
            replicates=f"{METRICS}/{_F.replicate_file}",
        log:
            f"{LOG}/metrics/{SET}/{_fam}.log",
        benchmark:
            f"{BENCH}/metrics/{SET}/{_fam}.tsv"
        conda:
            "../envs/e2ed2.yaml"
        threads: res("metrics", "threads")
        resources:
            **job_resources("metrics"),
        params:
            family=family_args(_fam),
            set=lambda w, _fam=_fam: metric_set_args(w, _fam),
            cli=f"e2ed2.metrics.{_fam}",
        shell:
            "OMP_NUM_THREADS={threads} python -m {params.cli} calc {params.family} --ref {input.ref}"
            " --threads {threads} {params.set} > {log} 2>&1"


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
    for _fam in config["metrics"]["families"]:
        _F = FAMILIES[_fam]

        # Every sample set of one arm (or trained model) scored in one process
        rule:
            name:
                f"metrics_{_fam}_model_{_tag}"
            input:
                **family_inputs(_fam)(_w),
                samples=[f"{expand_set(SAMPLES, s)}/samples.npz" for s in _sets],
                ref=family_ref(_fam).format(dataset=_d),
            output:
                json=[f"{expand_set(METRICS, s)}/{_fam}.json" for s in _sets],
                replicates=[
                    f"{expand_set(METRICS, s)}/{_F.replicate_file}" for s in _sets
                ],
            log:
                f"{R}/logs/{_where}/{_fam}.log",
            benchmark:
                f"{R}/benchmarks/{_where}/{_fam}.tsv"
            conda:
                "../envs/e2ed2.yaml"
            threads: res("metrics", "threads")
            resources:
                **{
                    **job_resources("metrics"),
                    "runtime": res("metrics", "runtime") * len(_sets),
                },
            params:
                family=family_args(_fam)(_w),
                sets=_grouped_sets_args(_sets, _fam),
                cli=f"e2ed2.metrics.{_fam}",
            shell:
                "OMP_NUM_THREADS={threads} python -m {params.cli} calc {params.family} --ref {input.ref}"
                " --threads {threads} {params.sets} > {log} 2>&1"

        workflow.ruleorder(f"metrics_{_fam}_model_{_tag}", f"metrics_{_fam}")
