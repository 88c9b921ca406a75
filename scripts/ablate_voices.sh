#!/usr/bin/env bash
# The real-voices ablation (docs/results.md#real-voices): each step adds one part of
# experiment=asr_emotion_voices to the one before, at a reduced budget (12 epochs, 25
# pseudo-speakers per natural voice), then every checkpoint is measured on the held-out
# voice (festival:ked, never in training) and on real recordings:
#   bash scripts/ablate_voices.sh OUT_DIR [REAL_FOLDER]     (about 35 min on 2 cores; needs `make voices`)
set -euo pipefail
OUT=${1:?usage: scripts/ablate_voices.sh OUT_DIR [REAL_FOLDER]}
REAL=${2:-../shared/real-dev}
PY=${PYTHON:-.venv/bin/python}
BUDGET=(trainer.max_epochs=12 trainer.enable_progress_bar=false dataset.preparer.num_speakers=200)
VOICES=(dataset/voices=natural dataset.preparer.speakers_per_voice=25)
NO_WARP=(dataset.preparer.warp_spread=0 dataset.preparer.raised_fraction=0)
declare -A STEP=(
  [0_espeak]="experiment=asr_emotion"
  [1_voices]="experiment=asr_emotion ${VOICES[*]} ${NO_WARP[*]}"
  [2_warps]="experiment=asr_emotion ${VOICES[*]}"
  [3_general_text]="experiment=asr_emotion ${VOICES[*]} dataset.preparer.general_text=0.4"
  [4_augmentation]="experiment=asr_emotion ${VOICES[*]} dataset.preparer.general_text=0.4 dataset.preparer.degrade=0.3"
)
for step in $(printf '%s\n' "${!STEP[@]}" | sort); do
  # shellcheck disable=SC2086
  $PY -m speechexp.train ${STEP[$step]} "${BUDGET[@]}" hydra.run.dir="$OUT/$step" > "$OUT/$step.log" 2>&1
  echo "$step done: $(grep -o '"test/cer": [0-9.]*' "$OUT/$step/results.json")"
done
