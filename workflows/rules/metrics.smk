# Stage 4 — metrics: dataset statistics once (`ref`), the real-data floor at the same N, then
# one JSON per (sample set, metric family) (`calc`), after edm2's ref/calc split. Tables and
# figures read only these JSONs. FID compares only at equal N: reference and floor use N.


# Inception statistics of the reference split (clean-fid / torch-fidelity feature network)
rule fid_ref:
    input:
        data=DATA_NPZ,
    output:
        ref=FID_REF,
    log:
        f"{R}/logs/metrics/ref.log",
    benchmark:
        f"{R}/benchmarks/metrics/ref.tsv"
    conda:
        "../envs/e2ed2.yaml"
    threads: res("metrics", "threads")
    resources:
        mem_mb=res("metrics", "mem_mb"),
        gpu=res("metrics", "gpu"),
        runtime=res("metrics", "runtime"),
    params:
        split=FID["split"],
        n=FID["ref_n"],
        backend=FID["backend"],
    shell:
        "OMP_NUM_THREADS={threads} python -m e2ed2.metrics.fid ref --data {input.data}"
        " --split {params.split} --n {params.n} --backend {params.backend} --threads {threads}"
        " --out {output.ref} > {log} 2>&1"


# The real-data floor: N training images vs the reference, printed beside every table
rule fid_floor:
    input:
        data=DATA_NPZ,
        ref=FID_REF,
    output:
        json=f"{R}/metrics/floor/fid.json",
    log:
        f"{R}/logs/metrics/floor.log",
    benchmark:
        f"{R}/benchmarks/metrics/floor.tsv"
    conda:
        "../envs/e2ed2.yaml"
    threads: res("metrics", "threads")
    resources:
        mem_mb=res("metrics", "mem_mb"),
        gpu=res("metrics", "gpu"),
        runtime=res("metrics", "runtime"),
    params:
        n=N,
        labels=FLOOR_LABELS,
    shell:
        "OMP_NUM_THREADS={threads} python -m e2ed2.metrics.fid floor --data {input.data}"
        " --ref {input.ref} --n {params.n} --threads {threads}"
        " {params.labels} --out {output.json} > {log} 2>&1"


# FID + KID + precision/recall of one sample set (the reference fixes backend and mode)
rule metrics_fid:
    input:
        samples=f"{R}/samples/{{method}}/{{variant}}/{{sampler}}-{{steps}}/seed{{block}}/samples.npz",
        ref=FID_REF,
    output:
        json=f"{R}/metrics/{{method}}/{{variant}}/{{sampler}}-{{steps}}/seed{{block}}/fid.json",
    log:
        f"{R}/logs/metrics/{{method}}/{{variant}}/{{sampler}}-{{steps}}/seed{{block}}/fid.log",
    benchmark:
        f"{R}/benchmarks/metrics/{{method}}/{{variant}}/{{sampler}}-{{steps}}/seed{{block}}/fid.tsv"
    conda:
        "../envs/e2ed2.yaml"
    threads: res("metrics", "threads")
    resources:
        mem_mb=res("metrics", "mem_mb"),
        gpu=res("metrics", "gpu"),
        runtime=res("metrics", "runtime"),
    params:
        samples=lambda w, input: os.path.dirname(input.samples),
        labels=metric_labels,
    shell:
        "OMP_NUM_THREADS={threads} python -m e2ed2.metrics.fid calc --samples {params.samples}"
        " --ref {input.ref} --threads {threads} {params.labels} --out {output.json} > {log} 2>&1"


if not CLIP.get("pretrained"):

    # Offline default: a small CLIP (open_clip model + ClipLoss) trained on the TRAIN
    # image–caption pairs; its held-out zero-shot accuracy is written beside it
    rule clip_train:
        input:
            data=DATA_NPZ,
        output:
            model=CLIP_MODEL,
            evaluation=CLIP_MODEL.replace(".pt", ".eval.json"),
        log:
            f"{R}/logs/clip/train.log",
        benchmark:
            f"{R}/benchmarks/clip/train.tsv"
        conda:
            "../envs/e2ed2.yaml"
        threads: res("metrics", "threads")
        resources:
            mem_mb=res("metrics", "mem_mb"),
            gpu=res("metrics", "gpu"),
            runtime=res("metrics", "runtime"),
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
        data=DATA_NPZ,
    output:
        ref=CLIP_REF,
    log:
        f"{R}/logs/metrics/clip_ref.log",
    benchmark:
        f"{R}/benchmarks/metrics/clip_ref.tsv"
    conda:
        "../envs/e2ed2.yaml"
    threads: res("metrics", "threads")
    resources:
        mem_mb=res("metrics", "mem_mb"),
        gpu=res("metrics", "gpu"),
        runtime=res("metrics", "runtime"),
    params:
        clip=CLIP_SPEC,
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
        samples=f"{R}/samples/{{method}}/{{variant}}/{{sampler}}-{{steps}}/seed{{block}}/samples.npz",
        ref=CLIP_REF,
    output:
        json=f"{R}/metrics/{{method}}/{{variant}}/{{sampler}}-{{steps}}/seed{{block}}/clip.json",
    log:
        f"{R}/logs/metrics/{{method}}/{{variant}}/{{sampler}}-{{steps}}/seed{{block}}/clip.log",
    benchmark:
        f"{R}/benchmarks/metrics/{{method}}/{{variant}}/{{sampler}}-{{steps}}/seed{{block}}/clip.tsv"
    conda:
        "../envs/e2ed2.yaml"
    threads: res("metrics", "threads")
    resources:
        mem_mb=res("metrics", "mem_mb"),
        gpu=res("metrics", "gpu"),
        runtime=res("metrics", "runtime"),
    params:
        clip=CLIP_SPEC,
        samples=lambda w, input: os.path.dirname(input.samples),
        labels=metric_labels,
    shell:
        "OMP_NUM_THREADS={threads} python -m e2ed2.metrics.clip calc --clip {params.clip}"
        " --samples {params.samples} --ref {input.ref} --threads {threads}"
        " {params.labels} --out {output.json} > {log} 2>&1"
