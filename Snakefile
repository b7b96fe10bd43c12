# E2ED² reproduction harness: one DAG from data to report (arXiv 2412.21044).
#
#   snakemake --cores all                                   # embedded offline default (mnist5k + digits, CPU)
#   snakemake --cores all --configfile workflows/config/smoke.yaml
#   snakemake --cores all --configfile my.yaml              # a partial file updates the default
#   snakemake --profile workflows/profiles/slurm --configfile workflows/config/cifar10.yaml
#
# Stages (one rule file each): data → train → sample → metrics → diagnostics → report.
# workflows/README.md documents the layout, config overrides, cluster profiles and how to add
# a baseline; docs/DESIGN.md the method, the claims and the protocol.

from snakemake.utils import min_version

min_version("9.0")


# --configfile files and --config values update this default (e2ed2.workflow_config.load_config);
# a file with `replace: [...]` replaces those top-level blocks instead of merging into them.
configfile: "workflows/config/default.yaml"


include: "workflows/rules/common.smk"


# the merged config was checked against the schema in common.smk (naming the file of a bad key);
# here every method/net/train knob of every model, at DAG build
PLAN.validate()


report: "workflows/report/workflow.rst"


include: "workflows/rules/data.smk"
include: "workflows/rules/train.smk"
include: "workflows/rules/sample.smk"
include: "workflows/rules/metrics.smk"
include: "workflows/rules/diagnostics.smk"
include: "workflows/rules/report.smk"


rule all:
    default_target: True
    input:
        all_targets(),
