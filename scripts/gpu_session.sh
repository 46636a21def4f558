#!/usr/bin/env bash
# One call on a lent GPU (torch, numpy, pandas, pyyaml only; no jupyter / papermill there):
#   1. the speed ladder with the pems08_tail_gpu model             -> speed_<device>.json / .md
#      and an op-by-op profile of its fastest kernel-by-kernel rung   -> ops_<device>.csv
#   2. the cost of the alternating model for N = 170 .. 8600       -> scale_<device>.csv
#   3. stage 2, one component at a time x 3 seeds, all runs at once on the one GPU, each with the
#      same training-time budget (what is left before DEADLINE_S)  -> stage2_runs.csv / _summary.csv
#   (attn, only when PHASES names it: fused attention kernels vs explicit matmuls for the 12-step
#      sequences, a short eager A/B on the stage-2 model and on the ladder's model -> attn_<device>.csv;
#      the faster setting is what the best phase uses)
#   (best, only when PHASES names it: the best stage-2 configuration (alternating + adaptive embedding)
#      x 3 seeds, all at once, compiled, with every second left before DEADLINE_S -> best/stage2_*.csv;
#      BEST_BUDGET_S sets a training budget longer than one loan, KEEP_CHECKPOINTS=1 returns the
#      stopped runs as ckpt_*.tar.gz, and PHASES=resume RESUME_FROM=<folder of them> continues them)
#   (stage1, only when PHASES names it: notebook 03's roadmap items x 3 seeds, all at once, a fixed
#      number of epochs (STAGE1_EPOCHS, default 8: the H100 ran about 0.4 run-epochs a second at batch 32, eager and time-sliced, so 21 x 8 at batch 64 needs about 4-5 min) so the scaled warmup / patience mean what they say;
#      the left-over time is only a safety stop                      -> stage1_runs.csv / _summary.csv)
# and the run records (no checkpoints) as runs.tar.gz, the whole log as gpu_session.log.
#
#   OUT=/some/dir STLIB_DATA_DIR=data_local/pems08_tail bash scripts/gpu_session.sh
#
# PHASES (default "ladder scale stage2"; any of ladder scale stage1 attn best resume stage2, run in that order) picks phases;
# STAGE1_VARIANTS / STAGE1_JOBS and STAGE2_VARIANTS / STAGE2_JOBS (comma lists, counts) narrow the studies.
# BEST_SET="key=value ..." overrides the best phase's configuration (e.g. "model.head=linear model.patch=6").
# DEADLINE_S (default 560) is the wall time the whole script aims to end by; SMOKE=1 runs every
# phase at toy size on the synthetic data (a check of the script itself, on any machine).
set -u
: "${OUT:?set OUT to the folder for results}"
DEADLINE_S=${DEADLINE_S:-560}
PY=${PYTHON:-python3}
START=$(date +%s)
export PYTHONUNBUFFERED=1
export STLIB_OUTPUT_DIR=${STLIB_OUTPUT_DIR:-$(mktemp -d)}
mkdir -p "$OUT"

left() { echo $((START + DEADLINE_S - $(date +%s))); }
unfinished() { [ -f "${1}last.pt" ] && [ ! -f "${1}metrics.json" ]; }  # a run dir (with a trailing /) stopped early
phase() {  # phase NAME LIMIT_S command...: run with a hard limit, report, never stop the script
    local name=$1 limit=$2 t0
    shift 2
    t0=$(date +%s)
    echo "=== $name: limit ${limit} s, $(left) s left before the deadline"
    timeout --kill-after=10 "$limit" "$@"
    echo "=== $name: exit $? after $(($(date +%s) - t0)) s"
}

if [ "${SMOKE:-0}" = 1 ]; then
    PARAMS=params/default.yaml
    LADDER=(--params params/default.yaml --repeats 1 --epochs 2 --train-windows 128 --val-windows 64 --op-profile)
    SIZES=(64 128)
    D_MODEL=16
    S2SET=(--set model.d_model=16 --set model.n_heads=2 --set data.num_days=7)
    STAGE2=(--params params/default.yaml --seeds 0 1 --jobs 2 --encoder-depth 3 --adaptive-dim 8 "${S2SET[@]}")
    BEST=(--params params/default.yaml --seeds 0 1 --jobs 2 --encoder-depth 3 --adaptive-dim 8 "${S2SET[@]}"
          --set train.epochs=40)
    ATTN=(--repeats 1 --epochs 2 --train-windows 64 --val-windows 32)
    STAGE1=(--params params/default.yaml --seeds 0 1 --jobs 2 --depth 2 3 --variants start +noise
            --set model.d_model=16 --set model.n_heads=2 --set data.num_days=7 --set train.epochs=2)
    RESERVE=25
else
    PARAMS=params/pems08_tail_gpu.yaml
    LADDER=(--profile gpu --repeats 2 --epochs 3 --op-profile)
    SIZES=(170 1000 4000 8600)
    D_MODEL=128
    # the stage-2 study: d_model 64 (STAEformer's size class), denoising off (notebook 03's one clear
    # effect on CPU), dropout 0.1, cosine to the budget, eager bf16 (twelve concurrent compiles would
    # cost more than they save)
    S2SET=(--set model.d_model=64 --set model.n_heads=4 --set model.decoder_depth=2 --set model.dropout=0.1
           --set model.use_denoising=false --set train.batch_size=32 --set train.lr=0.001
           --set train.scheduler=cosine --set train.min_lr=0.00001 --set train.warmup_steps=100
           --set train.epochs=400 --set train.amp=auto --set train.loader=device
           --set train.validate_every=1 --set train.eval_batch_size=512 --set train.quiet=true)
    STAGE2=(--params "$PARAMS" --seeds 0 1 2 --jobs 12 --encoder-depth 6 --adaptive-dim 80
            --variants "stage 1 (temporal only)" "+ spatial attention (stacked T..S..)" "+ alternation (T S T S)"
            "+ adaptive embedding" "${S2SET[@]}" --set train.compile=off)
    # the best configuration alone, 3 seeds at once: compiled (three concurrent compiles took ~2 min of a
    # 417 s budget), attention path from the attn phase; the partial last batch (2834 = 88 x 32 + 18) is
    # dropped, which spares each process a recompile with a dynamic batch dimension
    BEST=(--params "$PARAMS" --seeds 0 1 2 --jobs 3 --encoder-depth 6 --adaptive-dim 80 "${S2SET[@]}"
          --set train.drop_last=true)
    ATTN=(--repeats 2 --epochs 3 --train-windows 640 --val-windows 128)
    # stage 1 at the profile's own batch (64). Evaluation at batch 128: at 512, 21 processes at once
    # needed 3.3-5.5 GB each and ran the H100 out of memory (session 4); 12 at once fitted
    STAGE1=(--params "$PARAMS" --seeds 0 1 2 --jobs 21 --depth 4 6
            --variants start +scheduler +depth +noise +warmup +scheduler+depth+noise+warmup "no denoising"
            --set model.d_model=64 --set model.n_heads=4 --set model.decoder_depth=2
            --set train.epochs="${STAGE1_EPOCHS:-8}" --set train.compile=off --set train.amp=auto
            --set train.loader=device --set train.validate_every=1 --set train.eval_batch_size=128
            --set train.quiet=true)
    RESERVE=75  # worker start-up, the last epoch past the budget, the tests, packing
fi

{
    echo "gpu_session: $(date -u) deadline ${DEADLINE_S} s, outputs in $STLIB_OUTPUT_DIR"
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv 2>/dev/null || echo "no nvidia-smi"
    $PY -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.cuda.is_available())"

    PHASES=${PHASES:-ladder scale stage2}
    if [ -n "${STAGE2_VARIANTS:-}" ]; then IFS=',' read -r -a picked <<<"$STAGE2_VARIANTS"; STAGE2+=(--variants "${picked[@]}"); fi
    [ -n "${STAGE2_JOBS:-}" ] && STAGE2+=(--jobs "$STAGE2_JOBS")
    if [ -n "${STAGE1_VARIANTS:-}" ]; then IFS=',' read -r -a picked <<<"$STAGE1_VARIANTS"; STAGE1+=(--variants "${picked[@]}"); fi
    [ -n "${STAGE1_JOBS:-}" ] && STAGE1+=(--jobs "$STAGE1_JOBS")
    [[ " $PHASES " == *" ladder "* ]] && phase ladder 300 $PY -m stlib.studies.bench "${LADDER[@]}" --out "$OUT"
    [[ " $PHASES " == *" scale "* ]] && phase scale 100 $PY -m stlib.studies.scale --sizes "${SIZES[@]}" --batch 2 --d-model "$D_MODEL" --out "$OUT"

    if [[ " $PHASES " == *" stage1 "* ]]; then
        if [[ " $PHASES " == *" stage2 "* ]]; then share=$(( ($(left) - 2 * RESERVE) / 2 )); else share=$(($(left) - RESERVE)); fi
        phase stage1 $((share + RESERVE - 5)) $PY -m stlib.studies.ablation --study stage1 "${STAGE1[@]}" \
            --set train.time_budget_s="$share" --stage 03 --out "$OUT"
    fi

    short=0
    if [[ " $PHASES " == *" attn "* ]]; then
        # the stage-2 model (alternating, encoder 6, adaptive embedding) and the ladder's model, eager
        phase attn-stage2 100 $PY -m stlib.studies.bench --attn-ab --short 32 --params "$PARAMS" "${ATTN[@]}" "${S2SET[@]}" \
            --set model.name=alternating --set model.pattern=alternating --set model.encoder_depth=6 \
            --set model.adaptive_dim=80 --set train.compile=off --out "$OUT" 2>&1 | tee "$OUT/attn.log"
        picked=$(grep -o 'best model.attn_short=[0-9]*' "$OUT/attn.log" | tail -1 | cut -d= -f2)
        short=${picked:-0}
        echo "=== attention path for the best phase: model.attn_short=$short"
        phase attn-ladder 80 $PY -m stlib.studies.bench --attn-ab --short 32 --params "$PARAMS" "${ATTN[@]}" \
            --set train.amp=auto --set train.batch_size=128 --set train.loader=device --set train.compile=off \
            --out "$OUT"
    fi
    if [[ " $PHASES " == *" best "* ]]; then
        budget=$(($(left) - RESERVE))
        extra=()  # BEST_SET="k=v k=v": overrides on top of the best configuration (e.g. model.head=linear)
        for kv in ${BEST_SET:-}; do extra+=(--set "$kv"); done
        # BEST_BUDGET_S longer than this loan: the runs are stopped at the deadline with their last.pt, which
        # KEEP_CHECKPOINTS=1 brings back and PHASES=resume continues in a later loan, on the same schedule
        phase best $((budget + RESERVE - 20)) $PY -m stlib.studies.ablation --study stage2 "${BEST[@]}" \
            --variants "+ adaptive embedding" --set model.attn_short="$short" --set train.compile="${BEST_COMPILE:-default}" \
            --set train.time_budget_s="${BEST_BUDGET_S:-$budget}" ${extra[@]+"${extra[@]}"} --stage 04 --out "$OUT/best"
    fi
    if [[ " $PHASES " == *" resume "* ]]; then
        # continue the unfinished runs of an earlier loan exactly (python -m stlib.train --resume), all at once
        if [ -z "${RESUME_FROM:-}" ] || ! ls "$RESUME_FROM"/ckpt_*.tar.gz > /dev/null 2>&1; then
            echo "=== resume: RESUME_FROM must name a folder holding an earlier loan's ckpt_*.tar.gz (got '${RESUME_FROM:-}')"
        else
            mkdir -p "$STLIB_OUTPUT_DIR/runs/04"
            for f in "$RESUME_FROM"/ckpt_*.tar.gz; do tar xzf "$f" -C "$STLIB_OUTPUT_DIR/runs/04"; done
            limit=$(($(left) - RESERVE + 40))
            echo "=== resume: limit ${limit} s, $(left) s left before the deadline"
            for d in "$STLIB_OUTPUT_DIR"/runs/04/*/; do
                if unfinished "$d"; then
                    # one thread each, as the ablation workers that started them (GPU work; no oversubscribed cores)
                    OMP_NUM_THREADS=1 timeout --kill-after=10 "$limit" $PY -m stlib.train --resume "$d" > "${d}resume.log" 2>&1 &
                fi
            done
            wait
            for d in "$STLIB_OUTPUT_DIR"/runs/04/*/; do echo "--- $(basename "$d")"; tail -n 2 "${d}resume.log"; done
        fi
    fi

    budget=$(($(left) - RESERVE))
    if [[ " $PHASES " != *" stage2 "* ]]; then
        echo "=== stage2: not asked for"
    elif [ "$budget" -ge 30 ]; then
        phase stage2 $((budget + RESERVE - 5)) $PY -m stlib.studies.ablation --study stage2 "${STAGE2[@]}" \
            --set train.time_budget_s="$budget" --stage 04 --out "$OUT"
    else
        echo "=== stage2: skipped, only $(left) s left"
    fi

    if [ "${KEEP_CHECKPOINTS:-0}" = 1 ]; then  # one file per unfinished run (8 files at most come back)
        i=0
        for d in "$STLIB_OUTPUT_DIR"/runs/*/*/; do
            if unfinished "$d"; then
                tar czf "$OUT/ckpt_$i.tar.gz" -C "$(dirname "$d")" "$(basename "$d")" && i=$((i + 1))
            fi
        done
        echo "kept $i unfinished runs as ckpt_*.tar.gz: copy them into a git-ignored folder, carry it, and run"
        echo "PHASES=resume RESUME_FROM=<that folder> in the next loan"
    fi
    # the run records without checkpoints (*.pt): configs, histories, metrics, the ledger
    tar czf "$OUT/runs.tar.gz" --exclude='*.pt' -C "$STLIB_OUTPUT_DIR" . && echo "packed $(du -h "$OUT/runs.tar.gz" | cut -f1) of run records"
    echo "gpu_session: done after $(($(date +%s) - START)) s"
    ls -la "$OUT"
} 2>&1 | tee "$OUT/gpu_session.log"
