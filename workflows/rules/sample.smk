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
        seeds=lambda w: PLAN.seeds_for(int(w.block)),
        batch_size=config["sampling"]["batch_size"],
        guidance=config["sampling"]["guidance"],
        ema="" if config["sampling"]["ema"] else "--no-ema",
        mid_sigmas=mid_sigmas_arg,
        out=lambda w, output: os.path.dirname(output.samples),
    shell:
        "OMP_NUM_THREADS={threads} python -m e2ed2.sample --ckpt {input.ckpt} --data {input.data}"
        " --steps {wildcards.steps} --sampler {wildcards.sampler} --seeds {params.seeds}"
        " --batch-size {params.batch_size} --guidance {params.guidance} {params.ema} {params.mid_sigmas}"
        " --threads {threads} --out {params.out} > {log} 2>&1"
