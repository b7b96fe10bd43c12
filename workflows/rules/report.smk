# Stage 6 — report (e2ed2.report): metric JSONs → tidy table → paired comparisons, tables,
# seaborn figures and the claims page (C1–C9 of docs/DESIGN.md §6, gated by the baseline
# health checks). `snakemake --report report.html` collects the outputs marked with report().


# The claims spec (method under test, variants of each ablation, margins, health checks)
rule claims_spec:
    output:
        spec=f"{R}/report/claims_spec.json",
    log:
        f"{R}/logs/report/claims_spec.log",
    conda:
        "../envs/e2ed2.yaml"
    params:
        spec=shlex.quote(json.dumps(config["claims"], sort_keys=True)),
    shell:
        "printf '%s\\n' {params.spec} > {output.spec} 2> {log}"


# Every metric JSON (and the real-data floors) → one tidy table, one row per value
rule report_table:
    input:
        metrics=[o for f in config["metrics"]["families"] for o in metric_outputs(f)],
        floor=floor_jsons(),
    output:
        table=report(
            f"{R}/report/table.csv", caption="../report/table.rst", category="Tables"
        ),
    log:
        f"{R}/logs/report/table.log",
    benchmark:
        f"{R}/benchmarks/report/table.tsv"
    conda:
        "../envs/e2ed2.yaml"
    params:
        metrics=" ".join(f"{R}/{d}/metrics" for d in PLAN.datasets()),
    shell:
        "python -m e2ed2.report aggregate --metrics {params.metrics} --out {output.table} > {log} 2>&1"


# Paired comparisons over images (same seeds in every arm) for the claims
rule report_paired:
    input:
        table=f"{R}/report/table.csv",
        spec=f"{R}/report/claims_spec.json",
        replicates=replicate_files(),
    output:
        paired=f"{R}/report/paired.csv",
    log:
        f"{R}/logs/report/paired.log",
    benchmark:
        f"{R}/benchmarks/report/paired.tsv"
    conda:
        "../envs/e2ed2.yaml"
    shell:
        "python -m e2ed2.report paired --table {input.table} --spec {input.spec}"
        " --out {output.paired} > {log} 2>&1"


# Main, ablation, health and diagnostics tables: mean ± 95% interval, floor in the captions
rule report_tables:
    input:
        table=f"{R}/report/table.csv",
        spec=f"{R}/report/claims_spec.json",
        diagnostics=diagnostics_files("sigma_error"),
        clip_eval=(
            []
            if CLIP.get("pretrained")
            else [f"{R}/{d}/clip/model.eval.json" for d in PLAN.datasets()]
        ),
    output:
        tables=report(
            directory(f"{R}/report/tables"),
            patterns=["{name}.md"],
            caption="../report/tables.rst",
            category="Tables",
        ),
    log:
        f"{R}/logs/report/tables.log",
    benchmark:
        f"{R}/benchmarks/report/tables.tsv"
    conda:
        "../envs/e2ed2.yaml"
    shell:
        "python -m e2ed2.report tables --table {input.table} --spec {input.spec}"
        " --diagnostics {input.diagnostics} --clip-eval {input.clip_eval}"
        " --out {output.tables} > {log} 2>&1"


# FID/CLIP vs NFE and wall-clock, learning curves, per-σ error, ablations, sample grids
rule report_figures:
    input:
        table=f"{R}/report/table.csv",
        spec=f"{R}/report/claims_spec.json",
        train=trained_finals(),
        grid=grid_samples(),
        diagnostics=diagnostics_files("sigma_error") + diagnostics_files("curve"),
    output:
        figures=report(
            directory(f"{R}/report/figures"),
            patterns=["{name}.png"],
            caption="../report/figures.rst",
            category="Figures",
        ),
    log:
        f"{R}/logs/report/figures.log",
    benchmark:
        f"{R}/benchmarks/report/figures.tsv"
    conda:
        "../envs/e2ed2.yaml"
    params:
        train=lambda w, input: os.path.commonpath(input.train),
        samples=" ".join(f"{R}/{d}/samples" for d in PLAN.datasets()),
    shell:
        "python -m e2ed2.report figures --table {input.table} --spec {input.spec}"
        " --train {params.train} --samples {params.samples} --diagnostics {input.diagnostics}"
        " --out {output.figures} > {log} 2>&1"


# Claims C1–C9 and the one-page summary (claims, health checks, main tables, key figures)
rule report_claims:
    input:
        table=f"{R}/report/table.csv",
        paired=f"{R}/report/paired.csv",
        spec=f"{R}/report/claims_spec.json",
        train=trained_finals(),
        tables=f"{R}/report/tables",
        figures=f"{R}/report/figures",
    output:
        md=report(
            f"{R}/report/claims/claims.md",
            caption="../report/claims.rst",
            category="Claims",
        ),
        html=f"{R}/report/claims/claims.html",
        json=f"{R}/report/claims/claims.json",
    log:
        f"{R}/logs/report/claims.log",
    benchmark:
        f"{R}/benchmarks/report/claims.tsv"
    conda:
        "../envs/e2ed2.yaml"
    params:
        train=lambda w, input: os.path.commonpath(input.train),
    shell:
        "python -m e2ed2.report claims --table {input.table} --paired {input.paired} --spec {input.spec}"
        " --train {params.train} --tables {input.tables} --figures {input.figures}"
        " --out $(dirname {output.md}) > {log} 2>&1"
