# Stage 5 — report (e2ed2.report): metric JSONs → tidy table → tables (CSV/Markdown/LaTeX),
# seaborn figures and the claims report (C1–C9 of DESIGN.md §5). `snakemake --report
# report.html` collects the outputs marked with report(), captioned from workflows/report/.


# The claims spec (method under test, variants of each ablation, margins) from config.claims
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


# Every metric JSON (and the real-data floor) → one tidy table, one row per value
rule report_table:
    input:
        metrics=metric_jsons(),
        floor=f"{R}/metrics/floor/fid.json",
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
        metrics=lambda w, input: stage_root(input.floor, "metrics"),
    shell:
        "python -m e2ed2.report aggregate --metrics {params.metrics} --out {output.table} > {log} 2>&1"


# Main comparison and ablation tables: mean and 95% CI over seed blocks, floor in captions
rule report_tables:
    input:
        table=f"{R}/report/table.csv",
        spec=f"{R}/report/claims_spec.json",
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
        " --out {output.tables} > {log} 2>&1"


# FID/CLIP vs NFE and wall-clock, trade-offs, training curves, ablation bars, sample grid
rule report_figures:
    input:
        table=f"{R}/report/table.csv",
        spec=f"{R}/report/claims_spec.json",
        train=[f"{R}/train/{m}/{v}/stats.jsonl" for m, v in trained_models()],
        grid=[
            f"{set_dir('samples', *s)}/samples.npz" for s in sample_sets() if s[4] == 0
        ],
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
        train=lambda w, input: stage_root(input.train[0], "train"),
        samples=lambda w, input: stage_root(input.grid[0], "samples"),
    shell:
        "python -m e2ed2.report figures --table {input.table} --spec {input.spec}"
        " --train {params.train} --samples {params.samples} --out {output.figures} > {log} 2>&1"


# Claims C1–C9: numbers, interval, verdict and the rule that produced it
rule report_claims:
    input:
        table=f"{R}/report/table.csv",
        spec=f"{R}/report/claims_spec.json",
        train=[f"{R}/train/{m}/{v}/stats.jsonl" for m, v in trained_models()],
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
        train=lambda w, input: stage_root(input.train[0], "train"),
    shell:
        "python -m e2ed2.report claims --table {input.table} --spec {input.spec}"
        " --train {params.train} --out $(dirname {output.md}) > {log} 2>&1"
