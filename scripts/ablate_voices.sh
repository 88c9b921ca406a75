#!/usr/bin/env bash
# The real-voices ablation (docs/results.md#real-voices): each step adds one part of
# experiment=asr_emotion_voices to the one before, at a reduced budget (12 epochs, 200 espeak
# voices, 25 pseudo-speakers per natural voice); then every best checkpoint reads the held-out
# voice festival:ked (step 5's test split, a voice no step trains on: grammar sentences and general
# text, speakers slow to brisk, as the recipe tests it) and real recordings, and
# scripts/ablation_table.py prints one table (OUT_DIR/table.md):
#   bash scripts/ablate_voices.sh OUT_DIR [REAL_FOLDER]     (needs `make voices`; 35 min on 2 cores)
# STEPS="0_espeak 3_general_text" runs only those steps (step 5 always runs: its corpus holds
# the held-out voice); EXTRA="trainer.max_epochs=1 ..." appends overrides to every step (a
# smoke run); a step already trained in OUT_DIR is not trained again; FULL_CKPT=path adds a
# row for a checkpoint of the full experiment at its own budget (experiment=asr_emotion_voices).
set -euo pipefail
OUT=${1:?usage: scripts/ablate_voices.sh OUT_DIR [REAL_FOLDER]}
REAL=${2:-../shared/real-dev}
PY=${PYTHON:-.venv/bin/python}
[ -f "$REAL/transcripts.csv" ] || { echo "$REAL has no transcripts.csv: pass a labelled folder as REAL_FOLDER." >&2; exit 2; }
[ -z "${FULL_CKPT:-}" ] || [ -f "$FULL_CKPT" ] || { echo "FULL_CKPT=$FULL_CKPT is not a file: pass a checkpoint path." >&2; exit 2; }
BUDGET=(trainer.max_epochs=12 trainer.enable_progress_bar=false dataset.preparer.num_speakers=200)
VOICES=(dataset/voices=natural dataset.preparer.speakers_per_voice=25)
NO_WARP=(dataset.preparer.warp_spread=0 dataset.preparer.raised_fraction=0)
declare -A STEP=(
  [0_espeak]="experiment=asr_emotion"
  [1_voices]="experiment=asr_emotion ${VOICES[*]} ${NO_WARP[*]}"
  [2_warps]="experiment=asr_emotion ${VOICES[*]}"
  [3_general_text]="experiment=asr_emotion ${VOICES[*]} dataset.preparer.general_text=0.4"
  [4_augmentation]="experiment=asr_emotion ${VOICES[*]} dataset.preparer.general_text=0.4 dataset.preparer.degrade=0.3"
  # the rest of the recipe: speakers slow to brisk, a warp per utterance, instance-normalised front end, pitch, emotion sources
  [5_recipe]="experiment=asr_emotion_voices ${VOICES[*]}"
)
read -r -a EXTRA_ARGS <<< "${EXTRA:-}"
CHOSEN=$(printf '%s\n' ${STEPS:-${!STEP[@]}} 5_recipe | sort -u)
for step in $CHOSEN; do
  [ -n "${STEP[$step]:-}" ] || { echo "Unknown step '$step': choose from $(printf '%s\n' "${!STEP[@]}" | sort | tr '\n' ' ')" >&2; exit 2; }
done
mkdir -p "$OUT"
printf '%s\n' $CHOSEN ${FULL_CKPT:+full} > "$OUT/steps"

best() { ls "$1"/checkpoints/best-*.ckpt | head -1; }
for step in $CHOSEN; do
  if [ -f "$OUT/$step/results.json" ]; then  # run again into the same OUT_DIR: only what is missing
    echo "$step: already trained in $OUT/$step (remove it to train it again)"; continue; fi
  echo "${STEP[$step]} ${BUDGET[*]} ${EXTRA_ARGS[*]}" > "$OUT/$step.overrides"
  start=$(date +%s)
  # shellcheck disable=SC2086
  $PY -m speechexp.train ${STEP[$step]} "${BUDGET[@]}" "${EXTRA_ARGS[@]}" hydra.run.dir="$OUT/$step" > "$OUT/$step.log" 2>&1 \
    || { echo "$step failed: the end of $OUT/$step.log says why; run the script again to go on from there." >&2; exit 1; }
  echo $(( $(date +%s) - start )) > "$OUT/$step.wall"
  echo "$step trained in $(cat "$OUT/$step.wall") s: $(grep -o '"test/cer": [0-9.]*' "$OUT/$step/results.json")"
done

# the held-out voice as a labelled folder, from step 5's corpus (the recipe's test utterances)
CORPUS=$($PY -c "import json, sys; print(json.load(open(sys.argv[1]))['dataset_dir'])" "$OUT/5_recipe/results.json")
rm -rf "$OUT/ked"
$PY scripts/voice_folder.py "$CORPUS" "$OUT/ked" --source festival:ked
for step in $CHOSEN; do
  $PY scripts/bench_real_voices.py "$(best "$OUT/$step")" --folder "$OUT/ked" --folder "$REAL" \
    --json "$OUT/$step.bench.json" > "$OUT/$step.bench.txt" 2>&1 \
    || { echo "Reading $step's checkpoint failed: see $OUT/$step.bench.txt." >&2; exit 1; }
done
if [ -n "${FULL_CKPT:-}" ]; then
  echo "the full experiment: $FULL_CKPT" > "$OUT/full.overrides"
  mkdir -p "$OUT/full"  # its run's own test figures, where the run folder holds them
  results=$(dirname "$(dirname "$FULL_CKPT")")/results.json
  if [ -f "$results" ]; then cp "$results" "$OUT/full/"; fi
  $PY scripts/bench_real_voices.py "$FULL_CKPT" --folder "$OUT/ked" --folder "$REAL" \
    --json "$OUT/full.bench.json" > "$OUT/full.bench.txt" 2>&1 \
    || { echo "Reading FULL_CKPT failed: see $OUT/full.bench.txt." >&2; exit 1; }
fi
$PY scripts/ablation_table.py "$OUT" | tee "$OUT/table.md"
