# Stage 3 — sample: every model × training seed × sampler × step budget × seed block, from the
# same per-seed noise (block b = seeds [b·n, (b+1)·n), e2ed2.noise.SeedNoise), so every method
# and step budget starts from the same x_T and caption for seed i.


rule sample:
    input:
        ckpt=sample_ckpt,
        data=DATA,
    output:
        samples=f"{SAMPLES}/samples.npz",
        timing=f"{SAMPLES}/timing.json",
        grid=f"{SAMPLES}/grid.png",
    log:
        f"{LOG}/sample/{SET}.log",
    benchmark:
        f"{BENCH}/sample/{SET}.tsv"
    conda:
        "../envs/e2ed2.yaml"
    threads: res("sample", "threads")
    resources:
        **job_resources("sample"),
    params:
        args=sample_set_args,
    shell:
        "OMP_NUM_THREADS={threads} python -m e2ed2.sample {params.args} --threads {threads} > {log} 2>&1"


# ---- one job per arm (or per trained model): its sample sets in one process
# A sample job's process start-up (python, torch, the e2ed2 modules) is ≈ 2 s, most of a digits set's
# 2 s and half of an mnist5k NFE-1 set's 3.7 s (the committed run's benchmarks): `sampling: {jobs: arm}`
# (the default) draws every set of an arm — all its training seeds, samplers and step budgets — in one
# `python -m e2ed2.sample` (argument lists joined by --next); `jobs: model` one process per training
# seed. Each set's files stay outputs of their own, the same bytes as the per-set rule's but for the
# timing fields; the per-set rule above remains for any set outside the plan (ruleorder).
_sample_rule_names = set()
for _key, _sets in _model_groups(SAMPLE_JOBS).items():
    _tag = _group_tag(_key, _sample_rule_names)
    _where = _group_where(_key, "sample")

    # every sample set of one arm (or trained model) in one process
    rule:
        name:
            f"sample_model_{_tag}"
        input:
            ckpt=sorted({sample_ckpt(_set_wildcards(s)) for s in _sets}),
            data=DATA.format(dataset=_key[0]),
        output:
            samples=[f"{expand_set(SAMPLES, s)}/samples.npz" for s in _sets],
            timing=[f"{expand_set(SAMPLES, s)}/timing.json" for s in _sets],
            grid=[f"{expand_set(SAMPLES, s)}/grid.png" for s in _sets],
        log:
            f"{R}/logs/{_where}.log",
        benchmark:
            f"{R}/benchmarks/{_where}.tsv"
        conda:
            "../envs/e2ed2.yaml"
        threads: res("sample", "threads")
        resources:
            **{
                **job_resources("sample"),
                "runtime": res("sample", "runtime") * len(_sets),
            },
        params:
            sets=_grouped_sample_args(_sets),
        shell:  # --threads of the first set holds for the process, hence for every set
            "OMP_NUM_THREADS={threads} python -m e2ed2.sample --threads {threads} {params.sets} > {log} 2>&1"

    workflow.ruleorder(f"sample_model_{_tag}", "sample")
