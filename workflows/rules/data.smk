# Stage 1 — data: each dataset in the harness format (uint8 N×C×H×W + captions + split), once
# per run, so every later job depends on one file whose content Snakemake tracks. With
# config.latent, `encode_latents` turns it into VAE latents once, read by every train job.


# A built-in set (mnist5k, digits), a user .npz (its arrays named by the dataset's `keys:`, else
# images/labels or x/y) or an image folder → results/<run>/data/<name>.npz
rule dataset:
    output:
        npz=DATA,
    log:
        f"{LOG}/data.log",
    benchmark:
        f"{BENCH}/data.tsv"
    wildcard_constraints:
        dataset=prepared_by("convert"),
    conda:
        "../envs/e2ed2.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        source=dataset_source,
        key_args=dataset_keys,
    shell:
        "python -m e2ed2.data {params.source} {params.key_args} --out {output.npz} > {log} 2>&1"


# Any other kind (e2ed2.dataset_kinds) with a `module`: `python -m MODULE ARGS --out NPZ`, ARGS
# from its `args(name, block)` — e.g. a generated or site-local dataset
for _kind in KINDS.values():
    if _kind.module is None or prepared_by(_kind.name) == "(?!)":
        continue

    rule:
        name:
            f"dataset_{_kind.name}"
        output:
            npz=DATA,
        log:
            f"{LOG}/data.log",
        benchmark:
            f"{BENCH}/data.tsv"
        wildcard_constraints:
            dataset=prepared_by(_kind.name),
        conda:
            "../envs/e2ed2.yaml"
        threads: 1
        resources:
            mem_mb=2000,
        params:
            args=lambda w, _kind=_kind: " ".join(
                map(shlex.quote, _kind.args(w.dataset, PLAN.dataset_block(w.dataset)))
            ),
            module=_kind.module,
        # (no loop variable in a shell string: Snakemake evaluates it again when the job runs)
        shell:
            "python -m {params.module} {params.args} --out {output.npz} > {log} 2>&1"


if prepared_by("cifar10") != "(?!)":
    DOWNLOADS = downloads(prepared_by("cifar10").split("|")[0])

    # CIFAR-10 (Krizhevsky 2009): torchvision download of the python batches (network)
    rule cifar10_download:
        output:
            batches=directory(f"{DOWNLOADS}/cifar-10-batches-py"),
        log:
            f"{R}/logs/cifar10_download.log",
        conda:
            "../envs/e2ed2.yaml"
        params:
            root=lambda w, output: os.path.dirname(output.batches),
        shell:
            "python -m e2ed2.datasets_remote cifar10-download --root {params.root} > {log} 2>&1"

    # 50,000 train / 10,000 held-out images, captions "a photo of a {class}"
    rule cifar10_convert:
        input:
            batches=f"{DOWNLOADS}/cifar-10-batches-py",
        output:
            npz=DATA,
        log:
            f"{LOG}/data.log",
        benchmark:
            f"{BENCH}/data.tsv"
        wildcard_constraints:
            dataset=prepared_by("cifar10"),
        conda:
            "../envs/e2ed2.yaml"
        resources:
            mem_mb=8000,
        shell:
            "python -m e2ed2.datasets_remote cifar10 --root {input.batches}"
            " --out {output.npz} > {log} 2>&1"


if prepared_by("coco30k") != "(?!)":
    COCO_NAME = prepared_by("coco30k").split("|")[0]
    COCO = PLAN.dataset_block(COCO_NAME)["coco"]
    DOWNLOADS = downloads(COCO_NAME)

    # COCO-2014: val2014 images + caption annotations (and train2014 for training pairs)
    rule coco_download:
        output:
            val=directory(f"{DOWNLOADS}/val2014"),
            val_captions=f"{DOWNLOADS}/annotations/captions_val2014.json",
            train=directory(f"{DOWNLOADS}/train2014"),
            train_captions=f"{DOWNLOADS}/annotations/captions_train2014.json",
        log:
            f"{R}/logs/coco_download.log",
        conda:
            "../envs/e2ed2.yaml"
        params:
            root=lambda w, output: os.path.dirname(output.val),
        shell:
            "python -m e2ed2.datasets_remote coco-download --root {params.root} --train > {log} 2>&1"

    # The fixed-seed 30K (image, caption) pairs of val2014 (held out: FID reference and the
    # sampling captions) + n_train train2014 pairs (split 0), center-cropped and resized
    rule coco30k_convert:
        input:
            val=f"{DOWNLOADS}/val2014",
            val_captions=f"{DOWNLOADS}/annotations/captions_val2014.json",
            train=f"{DOWNLOADS}/train2014",
            train_captions=f"{DOWNLOADS}/annotations/captions_train2014.json",
        output:
            npz=DATA,
            pairs=f"{R}/data/{{dataset}}_pairs.json",
        log:
            f"{LOG}/data.log",
        benchmark:
            f"{BENCH}/data.tsv"
        wildcard_constraints:
            dataset=prepared_by("coco30k"),
        conda:
            "../envs/e2ed2.yaml"
        threads: 4
        resources:
            mem_mb=32000,
        params:
            resolution=lambda w: PLAN.dataset_block(w.dataset)["resolution"],  # pixels (the net may be latent)
            n=COCO["n"],
            seed=COCO["seed"],
            n_train=COCO["n_train"],
        shell:
            "python -m e2ed2.datasets_remote coco30k --images {input.val}"
            " --captions {input.val_captions} --resolution {params.resolution}"
            " --n {params.n} --seed {params.seed} --train-images {input.train}"
            " --train-captions {input.train_captions} --n-train {params.n_train}"
            " --out {output.npz} --pairs-out {output.pairs} > {log} 2>&1"


LATENT = config.get("latent")
if LATENT:

    # Latent space (Rombach et al. 2022): every image of the dataset (all splits, in order)
    # encoded once by the VAE; training reads these, sampling decodes through the same VAE
    rule encode_latents:
        input:
            data=DATA,
        output:
            latents=f"{R}/data/{{dataset}}.latents.npz",
        log:
            f"{LOG}/latents.log",
        benchmark:
            f"{BENCH}/latents.tsv"
        conda:
            "../envs/e2ed2.yaml"
        threads: res("latent", "threads")
        resources:
            **job_resources("latent"),
        params:
            vae=shlex.quote(LATENT["vae"]),
            subfolder=(
                f"--subfolder {shlex.quote(LATENT['subfolder'])}"
                if LATENT.get("subfolder")
                else ""
            ),
            batch_size=LATENT.get("batch_size", 32),
            mode=LATENT.get("mode", "mean"),
            seed=LATENT.get("seed", 0),
            dtype=LATENT.get("dtype", "float32"),
        shell:
            "OMP_NUM_THREADS={threads} python -m e2ed2.latent encode --data {input.data}"
            " --vae {params.vae} {params.subfolder} --mode {params.mode} --seed {params.seed}"
            " --batch-size {params.batch_size} --dtype {params.dtype}"
            " --out {output.latents} > {log} 2>&1"


# Every pretrained file the harness may use (FID Inception, open_clip, LPIPS backbones, VAE),
# downloaded into the standard caches when online: `snakemake fetch_assets` (not in `all`)
rule fetch_assets:
    output:
        manifest=f"{R}/assets/manifest.json",
    log:
        f"{R}/logs/fetch_assets.log",
    conda:
        "../envs/e2ed2.yaml"
    shell:
        "python -m e2ed2.assets fetch all --manifest {output.manifest} > {log} 2>&1"
