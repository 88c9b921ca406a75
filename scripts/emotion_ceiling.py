#!/usr/bin/env python
"""Emotion ceiling of the synthetic corpus: classify emotion from the prosody it rendered.

Prepares (or reuses) the corpus of ``experiment=asr_emotion`` through the normal preparer,
so it reads the same folder as training, then trains classifiers on the six prosody
columns that ``metadata.csv`` records for every utterance (rate, pitch, pitch_range,
volume, word_gap, tilt: the synthesiser's settings, speaker baseline included),
standardised with the train split's statistics, and scores them on the held-out
speakers and sentences. The model hears audio instead of reading these numbers, so the
ceiling says how separable the classes are, not what a model must reach. Needs
scikit-learn (installed with librosa).

    .venv/bin/python scripts/emotion_ceiling.py [--json] [override ...]
    e.g. scripts/emotion_ceiling.py dataset.preparer.jitter=1.0
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np
from hydra import compose, initialize_config_dir
from hydra.errors import HydraException

from speechexp.errors import SpeechexpError
from speechexp.runs.entry import entry_point

PROSODY_COLUMNS = ("rate", "pitch", "pitch_range", "volume", "word_gap", "tilt")


def prepare_corpus(overrides: list[str]) -> tuple[Path, list[str]]:
    """The experiment's corpus folder (prepared if missing) and its emotion labels in order."""
    from speechexp.config import CONF_DIR
    from speechexp.runs.build import prepare_dataset

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        try:
            cfg = compose(config_name="train", overrides=["experiment=asr_emotion", *overrides])
        except HydraException as exc:  # an override that is misspelt or names no option
            raise SpeechexpError(" ".join(str(exc).split()) + f" (overrides: {' '.join(overrides)})") from None
    return prepare_dataset(cfg.dataset, cfg.paths.data_dir), list(cfg.dataset.preparer.emotions)


def read_split(folder: Path, split: str, emotions: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(features [n, 6], labels [n])`` of one split."""
    with open(folder / "metadata.csv", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["split"] == split and r["emotion"] in emotions]
    features = np.array([[float(r[c]) for c in PROSODY_COLUMNS] for r in rows], dtype=np.float64)
    labels = np.array([emotions.index(r["emotion"]) for r in rows])
    return features, labels


def ceilings(folder: Path, emotions: list[str]) -> dict:
    """UAR and accuracy per split of each classifier, fitted on the train split."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, balanced_accuracy_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    splits = {s: read_split(folder, s, emotions) for s in ("train", "val", "test")}
    classifiers = {
        "logistic regression": make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0)),
        "gradient boosting": HistGradientBoostingClassifier(random_state=0),
        "chance": None,
    }
    rows = []
    for name, classifier in classifiers.items():
        row = {"classifier": name}
        if classifier is not None:
            classifier.fit(*splits["train"])
        for split, (features, labels) in splits.items():
            predicted = classifier.predict(features) if classifier is not None else np.zeros_like(labels)
            row[f"{split}_uar"] = float(balanced_accuracy_score(labels, predicted))
            row[f"{split}_accuracy"] = float(accuracy_score(labels, predicted))
        rows.append(row)
    return {"dataset_dir": str(folder), "features": list(PROSODY_COLUMNS), "emotions": emotions,
            "sizes": {s: int(len(v[1])) for s, v in splits.items()}, "rows": rows}


@entry_point
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. dataset.preparer.jitter=1.0")
    args = parser.parse_args()
    folder, emotions = prepare_corpus(args.overrides)
    report = ceilings(folder, emotions)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    sizes = report["sizes"]
    print(f"emotion from the six prosody columns of {folder}")
    print(f"({', '.join(PROSODY_COLUMNS)}; standardised on train; "
          f"train/val/test = {sizes['train']}/{sizes['val']}/{sizes['test']} utterances)")
    print(f"{'classifier':<20} {'train UAR':>9} {'val UAR':>8} {'test UAR':>8} {'test acc':>8}")
    for row in report["rows"]:
        print(f"{row['classifier']:<20} {row['train_uar']:>9.3f} {row['val_uar']:>8.3f} "
              f"{row['test_uar']:>8.3f} {row['test_accuracy']:>8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
