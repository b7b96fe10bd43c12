# Stage 3 — sample: every model × sampler × step budget × seed block, from the same per-seed
# noise (seed block b = seeds [b·N, (b+1)·N), e2ed2.noise.SeedNoise), so every method and
# step budget starts from the same x_T for seed i.


rule sample:
    input:
        ckpt=lambda w: checkpoint_for(w.method, w.variant),
        data=DATA_NPZ,
    output:
        samples=f"{R}/samples/{{method}}/{{variant}}/{{sampler}}-{{steps}}/seed{{block}}/samples.npz",
        timing=f"{R}/samples/{{method}}/{{variant}}/{{sampler}}-{{steps}}/seed{{block}}/timing.json",
        grid=f"{R}/samples/{{method}}/{{variant}}/{{sampler}}-{{steps}}/seed{{block}}/grid.png",
    log:
        f"{R}/logs/sample/{{method}}/{{variant}}/{{sampler}}-{{steps}}/seed{{block}}.log",
    benchmark:
        f"{R}/benchmarks/sample/{{method}}/{{variant}}/{{sampler}}-{{steps}}/seed{{block}}.tsv"
    conda:
        "../envs/e2ed2.yaml"
    threads: res("sample", "threads")
    resources:
        mem_mb=res("sample", "mem_mb"),
        gpu=res("sample", "gpu"),
        runtime=res("sample", "runtime"),
    params:
        seeds=lambda w: seeds_for(w.block),
        batch_size=config["sampling"]["batch_size"],
        guidance=config["sampling"]["guidance"],
        ema="" if config["sampling"]["ema"] else "--no-ema",
        out=lambda w, output: os.path.dirname(output.samples),
    shell:
        "OMP_NUM_THREADS={threads} python -m e2ed2.sample --ckpt {input.ckpt} --data {input.data}"
        " --steps {wildcards.steps} --sampler {wildcards.sampler} --seeds {params.seeds}"
        " --batch-size {params.batch_size} --guidance {params.guidance} {params.ema}"
        " --threads {threads} --out {params.out} > {log} 2>&1"
