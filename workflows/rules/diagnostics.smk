# Stage 5 — diagnostics of the teachers (config.diagnostics): the denoising error per noise
# level on held-out images (EMA and online weights) and FID per sampler at every EMA snapshot
# taken while training (train.snapshots) — the learning-curve figure of the report.


rule sigma_error:
    input:
        ckpt=diagnosed_ckpt,
        data=DATA,
    output:
        csv=f"{DIAG}/{{method}}-{{variant}}/sigma_error.csv",
    log:
        f"{LOG}/diagnostics/{{method}}-{{variant}}/sigma_error.log",
    benchmark:
        f"{BENCH}/diagnostics/{{method}}-{{variant}}/sigma_error.tsv"
    conda:
        "../envs/e2ed2.yaml"
    threads: res("metrics", "threads")
    resources:
        **job_resources("metrics"),
    params:
        points=(config.get("diagnostics") or {}).get("sigma_points", 10),
        n=config["sampling"]["n"],
    shell:
        "OMP_NUM_THREADS={threads} python -m e2ed2.diagnose sigma-error --ckpt {input.ckpt}"
        " --data {input.data} --n {params.n} --points {params.points} --threads {threads}"
        " --out {output.csv} > {log} 2>&1"


rule learning_curve:
    input:
        ckpt=diagnosed_ckpt,
        ref=family_ref("fid"),
    output:
        csv=f"{DIAG}/{{method}}-{{variant}}/curve.csv",
    log:
        f"{LOG}/diagnostics/{{method}}-{{variant}}/curve.log",
    benchmark:
        f"{BENCH}/diagnostics/{{method}}-{{variant}}/curve.tsv"
    conda:
        "../envs/e2ed2.yaml"
    threads: res("metrics", "threads")
    resources:
        **job_resources("metrics"),
    params:
        run=lambda w, input: os.path.dirname(input.ckpt),
        samplers=(config.get("diagnostics") or {}).get(
            "curve_samplers", "ddim:10,ddim:50"
        ),
        n=(config.get("diagnostics") or {}).get("curve_n", 100),
    shell:
        "OMP_NUM_THREADS={threads} python -m e2ed2.diagnose curve --run {params.run} --ref {input.ref}"
        " --samplers {params.samplers} --n {params.n} --threads {threads} --out {output.csv} > {log} 2>&1"
