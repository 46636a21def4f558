#!/usr/bin/env bash
# The runs of docs/results.md, "When attention pays" (issue 29), from a queue file, on this 2-core CPU:
#
#   STLIB_DATA_DIR=... scripts/attention_runs.sh OUT QUEUE          # WORKERS (default 2) workers, 1 thread each
#   WORKERS=1 THREADS=2 scripts/attention_runs.sh OUT QUEUE         # one run at a time on both cores (timed runs)
#   SET="train.epochs=2 model.stem_epochs=1" scripts/attention_runs.sh ...   # extra overrides (a check of the script)
#
# Each worker pops the first line of QUEUE (under a lock, so lines can be added or removed while it runs) until the
# file is empty. A line is one run:
#   lc PRESET DAYS SEED     the learning curve: PRESET (stid_converged | stage2_converged) on the last DAYS days of
#                           the training part (data.train_days; all: the whole part), run name PRESET_dDAYS
#   ctx CONFIG SEED         a day and a week back (data.lags=[288,2016]): stid_ctx (stid_converged with them) or
#                           s2ctx_dw_p12 (stage2_converged with them, time patches of 12, 3540 s budget: timed, alone)
#   syn CONFIG SEED         CONFIG (stid_converged, stid_ctx, stage2_converged, s2ctx_dw_p12) with only the data block
#                           changed: the synthetic dataset, 24 sensors, 28 days
# Every run is fp32 (no AVX-512 here: bf16 would be emulated) and ends once 60 validations in a row gain nothing.
# Records go to OUT/runs/{29,ctx,syn}/, logs to OUT/logs/. A run stopped by SIGTERM writes last.pt; its line, queued
# again, continues it (--resume) with its first config. Export with python -m stlib.reporting.results (docs/results.md).
set -u
OUT=${1:?usage: scripts/attention_runs.sh OUT QUEUE}
QUEUE=${2:?usage: scripts/attention_runs.sh OUT QUEUE}
WORKERS=${WORKERS:-2}
THREADS=${THREADS:-1}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-$ROOT/.venv/bin/python}
[ -f "$QUEUE" ] || { echo "error: queue file $QUEUE does not exist" >&2; exit 2; }
mkdir -p "$OUT/logs"
OUT=$(cd "$OUT" && pwd)

run() {  # run KIND ARGS...: one line of the queue
  local kind=$1 stage name seed cfg=() data=()
  case $kind in
    lc) stage=29; seed=$4; name=$2_d$3; cfg=(--preset "$2")
        [ "$3" != all ] && data=(--set "data.train_days=$3");;
    ctx|syn) stage=$kind; name=$2; seed=$3
        case $2 in
          stid_converged|stage2_converged) cfg=(--preset "$2");;
          stid_ctx) cfg=(--preset stid_converged --set "data.lags=[288,2016]");;
          s2ctx_dw_p12) cfg=(--preset stage2_converged --set "data.lags=[288,2016]" --set model.patch=12)
                        [ "$kind" = ctx ] && cfg+=(--set train.time_budget_s=3540);;
          *) echo "error: unknown configuration '$2' (stid_converged stid_ctx stage2_converged s2ctx_dw_p12)" >&2
             return 2;;
        esac
        [ "$kind" = syn ] && data=(--set data.name=synthetic --set data.num_sensors=24 --set data.num_days=28);;
    *) echo "error: unknown kind '$kind' in the queue (lc, ctx, syn)" >&2; return 2;;
  esac
  local log="$OUT/logs/$stage-$name-s$seed.log" args
  local dir; dir=$(ls -d "$OUT/runs/$stage/"*"-s$seed-$name-"* 2>/dev/null | head -1)
  if [ -n "$dir" ] && [ -f "$dir/metrics.json" ]; then echo "$(date +%T) $stage $name s$seed: done in $dir"; return 0; fi
  if [ -n "$dir" ]; then args=(--resume "$dir")
  else args=(--params "$ROOT/params/pems08_tail_cpu.yaml" --stage "$stage" "${cfg[@]}" "${data[@]}"
             --set "train.seed=$seed" --set "name=$name" --set "train.threads=$THREADS" --set train.quiet=true
             --set train.amp=off --set train.early_stop_patience=60)
    for kv in ${SET:-}; do args+=(--set "$kv"); done
  fi
  echo "$(date +%T) start $stage $name s$seed"
  (cd "$ROOT" && STLIB_OUTPUT_DIR=$OUT "$PY" -m stlib.train "${args[@]}" >> "$log" 2>&1)
  local rc=$?
  echo "$(date +%T) end $stage $name s$seed rc=$rc ($(tail -n 2 "$log" | head -n 1))"
}

worker() {
  local line
  while line=$(flock "$QUEUE.lock" bash -c 'l=$(head -n 1 "$1"); [ -n "$l" ] && sed -i 1d "$1"; echo "$l"' _ "$QUEUE") \
    && [ -n "$line" ]; do
    # shellcheck disable=SC2086
    run $line
  done
}

for _ in $(seq "$WORKERS"); do worker & sleep 2; done
wait
