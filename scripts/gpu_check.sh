#!/usr/bin/env bash
# Every GPU feature in one command (`make gpu-check`), in under 8 minutes on one GPU:
#   1. the CTC tests on CUDA (every test marked gpu, and the Triton kernel tests)
#   2. scripts/bench_ctc.py --device cuda (custom / built-in time and memory ratios)
#   3. short trainer=gpu runs (16-bit mixed precision) of each experiment, each next to
#      the same short run on the CPU: separation; asr_emotion with loss=ctc_custom and
#      loss=ctc_builtin; and asr_emotion with bf16-mixed on the GPU
#   4. trainer=ddp over all visible GPUs with debug=fdr (fast_dev_run), both experiments
#   5. speechexp.evaluate of a GPU-trained checkpoint on the CPU (trainer.accelerator=cpu)
# and prints ONE table (step, device, status, seconds, test metrics, mean train-epoch
# seconds from Lightning's simple profiler). Exits non-zero if any step failed.
#
# Usage: scripts/gpu_check.sh [OUT_DIR]        (default outputs/gpu_check/<time>)
#   GPU_CHECK_DEVICE=cpu scripts/gpu_check.sh   the same steps with the GPU parts on the
#       CPU (trainer=cpu in float32, ddp_sim, bench on cpu) and tiny settings: checks the
#       script's plumbing on a machine without a GPU (minutes on 2 cores).
#   PYTHON=...  the interpreter (default .venv/bin/python, else python3)
#   GPU_CHECK_EPOCHS=N  epochs of the asr_emotion runs (default 2; separation runs 3x that)
set -uo pipefail

cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[[ -x $PY ]] || PY=python3
DEVICE=${GPU_CHECK_DEVICE:-gpu}
OUT=${1:-outputs/gpu_check/$(date +%Y-%m-%d_%H-%M-%S)}
EPOCHS=${GPU_CHECK_EPOCHS:-2}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
ROWS="$OUT/rows.tsv"
: >"$ROWS"
export WANDB_MODE=offline HYDRA_FULL_ERROR=1 PYTHONUNBUFFERED=1

if [[ $DEVICE == gpu ]]; then
    if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
        echo "gpu_check: no CUDA GPU visible to torch ($PY); run with GPU_CHECK_DEVICE=cpu to check the plumbing only." >&2
        exit 2
    fi
    GPU_TRAINER=(trainer=gpu)                      # 16-mixed
    BF16=(trainer=gpu trainer.precision=bf16-mixed)
    DDP=(trainer=ddp)                              # devices=-1: every visible GPU
    BENCH=(--device cuda --reps 5)
    SHORT=()
    GPU_NAME=$("$PY" -c "import torch; print(torch.cuda.get_device_name(0), 'x', torch.cuda.device_count())")
else
    # float32: the LSTMs cannot run under bf16 autocast on CPUs without AVX512-BF16
    GPU_TRAINER=(trainer=cpu)
    BF16=(trainer=cpu)
    DDP=(trainer=ddp_sim)
    BENCH=(--device cpu --reps 1 --no-memory)
    SHORT=(trainer.limit_train_batches=3 trainer.limit_val_batches=2 trainer.limit_test_batches=2)
    EPOCHS=1
    GPU_NAME="none (GPU_CHECK_DEVICE=cpu: GPU steps run on the CPU)"
fi
COMMON=(paths.data_dir="$OUT/data" logger=csv trainer.enable_progress_bar=false hydra.job.chdir=false)
SEP=(experiment=separation trainer.max_epochs=$((3 * EPOCHS)))
ASR=(experiment=asr_emotion trainer.max_epochs=$EPOCHS)

# step NAME DEVICE RUN_DIR_OR_- CMD...: runs CMD with its output in $OUT/NAME.log and
# records status and seconds (a row of rows.tsv); a step never stops the script.
step() {
    local name=$1 device=$2 run=$3
    shift 3
    echo "== $name ($device): $*" | tee "$OUT/$name.log"
    local start=$SECONDS
    timeout 600 "$@" >>"$OUT/$name.log" 2>&1
    local rc=$?
    local status=ok
    [[ $rc -eq 0 ]] || status="FAILED (exit $rc; see $name.log)"
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$device" "$status" "$((SECONDS - start))" "$run" >>"$ROWS"
    echo "   -> $status in $((SECONDS - start)) s"
}

# train NAME DEVICE OVERRIDES...: one speechexp.train run into $OUT/runs/NAME, with the
# simple profiler's report (mean epoch time) written beside it
train() {
    local name=$1 device=$2
    shift 2
    local run="$OUT/runs/$name"
    step "$name" "$device" "$run" "$PY" -m speechexp.train "${COMMON[@]}" "$@" "hydra.run.dir=$run" \
        "trainer.profiler={_target_:pytorch_lightning.profilers.SimpleProfiler,dirpath:'$run',filename:profile}"
}

echo "gpu_check: device=$DEVICE ($GPU_NAME), output in $OUT"

# 1. CTC tests on CUDA: everything marked gpu, plus the Triton kernel tests (interpreter,
#    compile for sm_90, CUDA)
step ctc-tests "$DEVICE" - "$PY" -m pytest -q -p no:cacheprovider tests/test_ctc_triton.py
step gpu-tests "$DEVICE" - "$PY" -m pytest -q -p no:cacheprovider -m gpu tests

# 2. CTC benchmark
step bench-ctc "$DEVICE" - "$PY" scripts/bench_ctc.py "${BENCH[@]}" --json --out "$OUT/bench_ctc.json"

# 3. short runs: GPU (mixed precision) next to CPU
train sep-gpu "$DEVICE" "${SEP[@]}" "${GPU_TRAINER[@]}" "${SHORT[@]}"
train sep-cpu cpu "${SEP[@]}" trainer=cpu "${SHORT[@]}"
train asr-custom-gpu "$DEVICE" "${ASR[@]}" loss=ctc_custom "${GPU_TRAINER[@]}" "${SHORT[@]}"
train asr-custom-cpu cpu "${ASR[@]}" loss=ctc_custom trainer=cpu "${SHORT[@]}"
train asr-builtin-gpu "$DEVICE" "${ASR[@]}" loss=ctc_builtin "${GPU_TRAINER[@]}" "${SHORT[@]}"
train asr-builtin-cpu cpu "${ASR[@]}" loss=ctc_builtin trainer=cpu "${SHORT[@]}"
train asr-custom-bf16 "$DEVICE" "${ASR[@]}" loss=ctc_custom "${BF16[@]}" "${SHORT[@]}"

# 4. DDP over every visible GPU, one batch of everything
step ddp-sep "$DEVICE" "$OUT/runs/ddp-sep" "$PY" -m speechexp.train "${COMMON[@]}" experiment=separation \
    "${DDP[@]}" debug=fdr "hydra.run.dir=$OUT/runs/ddp-sep"
step ddp-asr "$DEVICE" "$OUT/runs/ddp-asr" "$PY" -m speechexp.train "${COMMON[@]}" experiment=asr_emotion \
    "${DDP[@]}" debug=fdr "hydra.run.dir=$OUT/runs/ddp-asr"

# 5. a GPU-trained checkpoint evaluated on the CPU
for exp in sep asr-custom; do
    ckpt=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['best_checkpoint'])" \
        "$OUT/runs/$exp-gpu/results.json" 2>/dev/null || echo missing)
    step "eval-$exp-on-cpu" cpu "$OUT/runs/eval-$exp" "$PY" -m speechexp.evaluate "ckpt_path=$ckpt" \
        "paths.data_dir=$OUT/data" trainer.accelerator=cpu trainer.enable_progress_bar=false \
        "hydra.run.dir=$OUT/runs/eval-$exp"
done

# the table
"$PY" - "$ROWS" "$OUT" "$DEVICE" "$GPU_NAME" <<'EOF'
import json, re, sys
from pathlib import Path

rows_file, out, device, gpu = sys.argv[1:5]
keys = ["test/si_snr", "test/cer", "test/wer", "test/uar", "test/ctc"]


def metrics(run):
    path = Path(run) / "results.json"
    if run == "-" or not path.is_file():
        return ""
    res = json.loads(path.read_text())
    shown = [f"{k.split('/')[1]} {res[k]:.3f}" for k in keys if isinstance(res.get(k), (int, float))]
    if res.get("status") != "completed":
        shown.append(f"status {res.get('status')}")
    return ", ".join(shown)


def epoch_seconds(run):
    for report in Path(run).glob("*profile*.txt") if run != "-" else []:
        match = re.search(r"run_training_epoch\s*\|\s*([0-9.]+)", report.read_text())
        if match:
            return f"{float(match.group(1)):.2f}"
    return ""


def summary(name):
    log = Path(out) / f"{name}.log"
    text = log.read_text(errors="replace") if log.is_file() else ""
    if name == "bench-ctc":
        bench = Path(out) / "bench_ctc.json"
        if bench.is_file():
            b = json.loads(bench.read_text())
            mem = [r["mem_ratio"] for r in b["rows"] if "mem_ratio" in r]
            extra = f", worst mem ratio {max(mem):.2f}" if mem else ""
            return f"time ratio geo-mean {b['geomean_ratio']:.3f}, worst {b['worst_ratio']:.2f}{extra}"
    found = re.findall(r"^=*\s*(\d+ (?:passed|failed|skipped|deselected|error).*?)\s*=*$", text, re.M)
    return found[-1] if found else ""


rows = [line.rstrip("\n").split("\t") for line in open(rows_file) if line.strip()]
table = [("step", "device", "status", "s", "epoch s", "result")]
for name, dev, status, secs, run in rows:
    table.append((name, dev, status, secs, epoch_seconds(run), metrics(run) or summary(name)))
widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
print(f"\ngpu_check ({device}; GPU: {gpu}); logs and runs in {out}")
for i, r in enumerate(table):
    print(" | ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    if i == 0:
        print("-+-".join("-" * w for w in widths))
failed = [r[0] for r in rows if r[2] != "ok"]
print(f"\n{len(rows) - len(failed)} passed, {len(failed)} failed" + (f": {', '.join(failed)}" if failed else ""))
sys.exit(1 if failed else 0)
EOF
