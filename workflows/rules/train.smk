# Stage 2 — train: every model of every dataset (teachers, CD and E2ED² from them, CT) through
# the ONE shared loop of e2ed2.train, once per training seed. The whole run config is a param,
# so a changed knob reruns exactly that model and what depends on it, and the trainer restarts
# its folder (--restart) instead of resuming weights of the old config. latest.pt and
# stats.jsonl are not declared outputs: after a crash Snakemake keeps them, the rerun resumes
# from latest.pt and cuts the log back to it (every step logged once). --watch-pid $PPID stops
# the trainer if this Snakemake process dies. The log gets a progress line (step, images/s, elapsed,
# ETA) every log_every steps and at least every 30 s: `tail -f results/<run>/logs/<dataset>/train/...`.


rule train:
    input:
        unpack(train_inputs),
    output:
        ckpt=f"{TRAIN}/final.pt",
    log:
        f"{LOG}/train/{{method}}/{{variant}}/s{{seed}}.log",
    benchmark:
        f"{BENCH}/train/{{method}}/{{variant}}/s{{seed}}.tsv"
    priority: train_priority
    conda:
        "../envs/e2ed2.yaml"
    threads: lambda w: res("train", "threads", w)
    resources:
        mem_mb=lambda w: res("train", "mem_mb", w),
        gpu=lambda w: res("train", "gpu", w),
        runtime=lambda w: res("train", "runtime", w),
    params:
        run_config=run_config_json,
        out=lambda w, output: os.path.dirname(output.ckpt),
        launcher=train_launcher,
    shell:
        "OMP_NUM_THREADS={threads} {params.launcher} -m e2ed2.train"
        " --config-json {params.run_config} --set train.threads={threads}"
        " --out {params.out} --restart --watch-pid $PPID > {log} 2>&1"


# E2ED²'s teacher pairing, drawn once (e2ed2.pairs): the teacher's ODE sample from each of n
# noises, with training captions (a `drop` fraction null), one file per training seed, read by
# every arm of that seed whose model has a `pairs:` block (e2ed2.plan.Plan.pairs_file), at the
# precision its teacher runs at inside the students' step (train.amp: fp32 | bf16 autocast).
rule teacher_pairs:
    input:
        teacher=pairs_teacher_ckpt,
        data=DATA,
    output:
        pairs=f"{R}/{{dataset}}/pairs/{{teacher}}/{{sampler}}-{{steps}}-n{{n}}-drop{{drop}}-{{precision}}-s{{seed}}.npz",
    log:
        f"{LOG}/pairs/{{teacher}}/{{sampler}}-{{steps}}-n{{n}}-drop{{drop}}-{{precision}}-s{{seed}}.log",
    benchmark:
        f"{BENCH}/pairs/{{teacher}}/{{sampler}}-{{steps}}-n{{n}}-drop{{drop}}-{{precision}}-s{{seed}}.tsv"
    priority: 2
    conda:
        "../envs/e2ed2.yaml"
    threads: res("sample", "threads")
    resources:
        **job_resources("sample"),
    params:
        amp=lambda w: PAIRS_AMP[w.precision],  # the precision of the teacher inside the student's step
    shell:
        "OMP_NUM_THREADS={threads} python -m e2ed2.make_pairs --teacher {input.teacher} --data {input.data}"
        " --n {wildcards.n} --steps {wildcards.steps} --sampler {wildcards.sampler}"
        " --cond-drop {wildcards.drop} --seed {wildcards.seed} --amp {params.amp} --threads {threads}"
        " --out {output.pairs} > {log} 2>&1"
