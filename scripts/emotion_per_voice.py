#!/usr/bin/env python
"""Does every engine render every emotion? An emotion classifier's UAR per voice, from audio.

For each source (espeak and each natural voice) of a prepared corpus, measures what a
listener hears of the prosody in every utterance's audio: speaking rate (seconds per
character), median and spread of F0 (``librosa.yin``, 60-400 Hz, voiced-looking frames),
loudness (RMS dB) and brightness (spectral centroid), each minus the mean of that
utterance's speaker, then fits a logistic regression on half of the source's speakers
and scores UAR on the other half (and the reverse; the mean of both). Chance is
1 / number of emotions; a source near chance would teach the model nothing about emotion.
A second column fits the classifier on every *other* source and scores this one: whether
the emotions of an unseen engine sound like those of the engines trained on (what a
leave-one-voice-out test split asks of the model).

    .venv/bin/python scripts/emotion_per_voice.py data/emotional_speech-<hash> [--json OUT]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import librosa
import numpy as np

from speechexp.data.metadata import read_metadata
from speechexp.errors import SpeechexpError
from speechexp.runs.entry import entry_point

FEATURES = ("seconds_per_char", "f0_median", "f0_spread", "rms_db", "centroid")


def features(path: Path, text: str) -> list[float]:
    audio, rate = librosa.load(path, sr=16000)
    f0 = librosa.yin(audio, fmin=60, fmax=400, sr=rate, frame_length=1024, hop_length=256)
    rms = librosa.feature.rms(y=audio, frame_length=1024, hop_length=256)[0]
    n = min(f0.size, rms.size)
    voiced = f0[:n][rms[:n] > 0.3 * rms.max()] if rms.max() > 0 else f0
    log_f0 = np.log(voiced if voiced.size else f0)
    centroid = librosa.feature.spectral_centroid(y=audio, sr=rate)[0]
    return [audio.size / rate / max(1, len(text)), float(np.median(log_f0)),
            float(np.subtract(*np.percentile(log_f0, [90, 10]))),
            float(20 * np.log10(np.sqrt(np.mean(audio**2)) + 1e-9)), float(np.mean(centroid))]


def uar_per_source(folder: Path, emotions: list[str]) -> dict[str, dict]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def fitted(values: np.ndarray, labels: np.ndarray):
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(values, labels)

    rows = read_metadata(folder, ["emotion", "speaker"])
    present = sorted({r["emotion"] for r in rows})
    unknown = sorted(set(emotions) - set(present))
    if unknown or len(set(emotions)) < 2:
        among = f" ({unknown} are not among them)." if unknown else "."
        raise SpeechexpError(f"--emotions {' '.join(emotions)}: name at least two of the corpus' emotions {present}{among}")
    rows = [r for r in rows if r["emotion"] in emotions]
    values = np.array([features(folder / r["path"], r["text"]) for r in rows])
    speakers = np.array([r["speaker"] for r in rows])
    for speaker in set(speakers):  # relative to the speaker, as the model's speaker means do
        values[speakers == speaker] -= values[speakers == speaker].mean(0)
    labels = np.array([emotions.index(r["emotion"]) for r in rows])
    sources = np.array([r.get("source") or "espeak" for r in rows])
    report = {}
    for source in sorted(set(sources)):
        mine = sources == source
        order = sorted(set(speakers[mine]))
        half = np.isin(speakers, order[::2])
        within = [balanced_accuracy_score(labels[mine & ~train], fitted(values[mine & train], labels[mine & train])
                                          .predict(values[mine & ~train])) for train in (half, ~half)]
        others = fitted(values[~mine], labels[~mine]).predict(values[mine])
        report[source] = {"utterances": int(mine.sum()), "speakers": len(order), "uar": float(np.mean(within)),
                          "uar_from_other_sources": float(balanced_accuracy_score(labels[mine], others))}
    return report


@entry_point
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset_dir", type=Path)
    parser.add_argument("--emotions", nargs="+", default=["neutral", "happy", "sad", "angry", "fearful"])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    report = uar_per_source(args.dataset_dir, args.emotions)
    print(f"emotion from audio prosody ({', '.join(FEATURES)}; speaker-relative), chance {1 / len(args.emotions):.2f}\n")
    print("| source | speakers | utterances | UAR within the source | UAR trained on the other sources |")
    print("|---|---:|---:|---:|---:|")
    for source, row in report.items():
        print(f"| {source} | {row['speakers']} | {row['utterances']} | {row['uar']:.3f} "
              f"| {row['uar_from_other_sources']:.3f} |")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
