# E2ED² reproduction harness: one DAG from data to report (arXiv 2412.21044).
#
#   snakemake --cores all                                   # embedded offline default (mnist5k, CPU)
#   snakemake --cores all --configfile workflows/config/smoke.yaml
#   snakemake --profile workflows/profiles/slurm --configfile workflows/config/cifar10.yaml
#
# Stages (one rule file each): data → train → sample → metrics → report.
# workflows/README.md documents the layout, the cluster profiles and how to add a baseline.

from snakemake.utils import min_version, validate

min_version("9.0")


# A --configfile given on the command line replaces the default instead of being merged
# into it (a merge would add the default's models to every other config).
if not workflow.overwrite_configfiles:

    configfile: "workflows/config/default.yaml"


validate(config, "workflows/schemas/config.schema.yaml")


report: "workflows/report/workflow.rst"


include: "workflows/rules/common.smk"
include: "workflows/rules/data.smk"
include: "workflows/rules/train.smk"
include: "workflows/rules/sample.smk"
include: "workflows/rules/metrics.smk"
include: "workflows/rules/report.smk"


rule all:
    default_target: True
    input:
        all_targets(),
