# Stage 2 — train: every model in config.models (DDPM teacher, CD and E2ED² from it, CT from
# scratch) through the ONE shared loop of e2ed2.train. The whole run config is a param, so a
# changed knob reruns exactly that model and what depends on it. latest.pt is not declared:
# a rerun after a crash resumes from it. In a latent-space run (config.latent) every job also
# reads the encoded latents, and its run config carries `latent: {vae, latents}`.


rule train:
    input:
        unpack(teacher_inputs),
        unpack(latent_inputs),
        data=DATA_NPZ,
    output:
        ckpt=f"{R}/train/{{method}}/{{variant}}/final.pt",
        stats=f"{R}/train/{{method}}/{{variant}}/stats.jsonl",
    log:
        f"{R}/logs/train/{{method}}/{{variant}}.log",
    benchmark:
        f"{R}/benchmarks/train/{{method}}/{{variant}}.tsv"
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
        out=lambda w: f"{R}/train/{w.method}/{w.variant}",
        launcher=train_launcher,
    shell:
        "OMP_NUM_THREADS={threads} {params.launcher} -m e2ed2.train"
        " --config-json {params.run_config} --set train.threads={threads}"
        " --out {params.out} --no-progress > {log} 2>&1"
