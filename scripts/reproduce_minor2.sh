#!/usr/bin/env bash
# Reproduce the seed report (Minor 2) with speechexp, end to end, on a CPU (~10 min):
#   Q1  sinusoid data, spectrograms, the seed's settings, the default experiment and the
#       units x learning-rate sweep the seed left open, compared in one table;
#   Q2  the custom-vs-built-in CTC comparison and benchmark, and the multitask model;
#   then OUT_DIR/report.html: the seed report's sections in its order, from this run.
# Usage: scripts/reproduce_minor2.sh [OUT_DIR]   (default outputs/reproduce_minor2)
set -euo pipefail
cd "$(dirname "$0")/.."
make install >/dev/null
BIN=.venv/bin
OUT=${1:-outputs/reproduce_minor2}
mkdir -p "$OUT"

echo "== Q1: data and spectrograms"
data=$($BIN/speechexp-prepare dataset=sinusoids | tail -n 1)
$BIN/speechexp-plot "$data/source1" "$data/source2" "$data/mixture" --limit 1 --out "$OUT/spectrograms"

echo "== Q1: the seed's settings, then the default experiment"
$BIN/speechexp-train experiment=minor2_q1 hydra.run.dir="$OUT/q1_seed" trainer.enable_progress_bar=false
$BIN/speechexp-train hydra.run.dir="$OUT/q1_default" trainer.enable_progress_bar=false

echo "== Q1: sweep over units and learning rate (time-domain front end, 40 epochs)"
$BIN/speechexp-train -m experiment=minor2_q1 model.units=8,64,256 optimizer.lr=0.0003,0.003 \
  trainer.max_epochs=40 logger=csv trainer.enable_progress_bar=false hydra.sweep.dir="$OUT/q1_sweep"
$BIN/speechexp-compare "$OUT/q1_seed" "$OUT/q1_default" "$OUT/q1_sweep" --plot "$OUT/q1_compare.png" \
  --csv "$OUT/q1_compare.csv"

echo "== Q2: custom CTC vs PyTorch's, values and speed"
$BIN/python scripts/compare_ctc.py --out "$OUT/ctc_compare.json"
$BIN/python scripts/bench_ctc.py --out "$OUT/ctc_bench.json"

echo "== Q2: multitask ASR + emotion on the synthetic emotional speech corpus"
$BIN/speechexp-train experiment=asr_emotion hydra.run.dir="$OUT/q2_asr_emotion" trainer.enable_progress_bar=false
$BIN/speechexp-compare "$OUT/q2_asr_emotion" --metric test/cer --ascending
echo "== The seed report as one page"
$BIN/python -m speechexp.reports.minor2 "$OUT"
echo "Outputs in $OUT; open $OUT/report.html"
