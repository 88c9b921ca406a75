"""CER/WER (UAR where labelled) of a checkpoint on labelled folders, per source, through speechexp-eval.

    .venv/bin/python scripts/bench_real_voices.py CKPT [--folder ../shared/real-dev] [--folder DIR ...]
        [--decoder greedy|beam|beam_lm|beam_english|beam_phonemes] [--set decoder.lm_weight=2 ...] [--corpus DIR]
        [--speak flite:awb ...] [--reference pocketsphinx] [--against CKPT2] [--json OUT]

Each folder holds a ``transcripts.csv`` (``path,text[,emotion,speaker,source]``); its rows
are evaluated as ``speechexp-eval ckpt_path=CKPT dataset=labelled_folder dataset.root=DIR``
does (the same predictions), and one markdown table row is printed per source and folder
(with the greedy phoneme error rate, PER, for a model with a phoneme head).
``scripts/voice_folder.py`` turns a corpus' held-out voice into such a folder. With
``--corpus`` (the checkpoint's corpus folder, ``data/emotional_speech-...``) each row also
says how many of the set's distinct words the training split's transcripts contain. With
``--speak VOICE`` each folder's transcripts are also said by that TTS voice (as shipped) and
scored beside the recordings: the same words in a known voice tell the words' share of the
errors from the voices'. With ``--reference pocketsphinx`` every set is also read by
PocketSphinx's US English recogniser (``pip install 'speechexp[reference]'``), whose acoustic
model was trained on recordings of people: its rows say what a recogniser that has heard
people, with a 126052-word dictionary and a general language model, reads in the same files.

Every CER comes with its 95 % interval over the set's utterances (a bootstrap,
:mod:`speechexp.tasks.intervals`): how far the rate could move with other recordings of the
same kind, not how far another training run would. ``--against CKPT2`` reads every set with a
second checkpoint too and prints their difference on the same utterances with a paired
bootstrap interval and the share of draws in which the first reads them better: whether a
change to a recipe moved a small set like real-dev, or only its noise.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import librosa
import numpy as np
from torchmetrics.functional.text import char_error_rate, word_error_rate

from speechexp.data.corpora.folder import LabelledFolderPreparer
from speechexp.data.text import CharTokenizer
from speechexp.data.tts import Style, check_installed, synthesize
from speechexp.errors import SpeechexpError
from speechexp.io import read_wav, write_csv_atomic, write_json_atomic, write_wav_atomic
from speechexp.tasks.asr_emotion import per_source_metrics
from speechexp.tasks.intervals import character_edits, paired_difference, rate_interval

DEFAULT_FOLDER = Path("../shared/real-dev")  # from the repository root
POCKETSPHINX_RATE = 16000  # its US English acoustic model's sample rate


def evaluate_folder(ckpt: str, folder: Path, decoder: str, out: Path, overrides: list[str]) -> tuple[dict, list[dict]]:
    """``speechexp-eval`` of ``ckpt`` on ``folder`` into ``out`` (with extra ``overrides``):
    its results and its predictions (``path``, ``text``, ``hypothesis``, ``source``... per row)."""
    command = [sys.executable, "-m", "speechexp.evaluate", f"ckpt_path={ckpt}", "dataset=labelled_folder",
               f"dataset.root={folder}", f"decoder={decoder}", f"hydra.run.dir={out}", "logger=csv",
               "report=false", f"paths.data_dir={out / 'data'}", "trainer.enable_progress_bar=false", *overrides]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"speechexp-eval failed on {folder}: {failure(done.stderr)}")
    with (out / "test_predictions.csv").open(newline="") as handle:
        return json.loads((out / "results.json").read_text()), list(csv.DictReader(handle))


def failure(stderr: str) -> str:
    """What a failed ``speechexp-eval`` said, on one line: its ``Error:`` sentence; a crash's
    last line; else Hydra's error about an override (with the options it lists, without
    its search path and its hint about stack traces)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    said = [line for line in lines if line.startswith("Error: ")]
    if said or "Traceback" in stderr:
        return (said or lines)[-1]
    hydra = [line for line in lines if not line.startswith("Set the environment variable HYDRA_FULL_ERROR")]
    cut = next((i for i, line in enumerate(hydra) if line.startswith("Config search path")), len(hydra))
    return " ".join(hydra[:min(cut, 8)]) or "(no output)"


def pocketsphinx_decoder() -> Any:
    """PocketSphinx's US English recogniser with its default acoustic model, dictionary and
    trigram language model, as its wheel ships them; one sentence when it is not installed."""
    try:
        from pocketsphinx import Decoder
    except ImportError:
        sys.exit("--reference pocketsphinx needs PocketSphinx; install it with "
                 ".venv/bin/pip install 'speechexp[reference]' (or pip install pocketsphinx).")
    return Decoder(samprate=POCKETSPHINX_RATE, loglevel="FATAL")


def pocketsphinx_results(decoder: Any, folder: Path) -> tuple[dict, list[dict]]:
    """``decoder`` (:func:`pocketsphinx_decoder`) on every row of ``folder``, scored as
    ``evaluate_folder``'s results are (CER and WER overall and per source, of transcripts
    normalised alike), and its rows with their ``hypothesis``."""
    tokenizer = CharTokenizer(umlauts="keep")
    try:
        rows = LabelledFolderPreparer(root=str(folder)).index()
    except SpeechexpError as error:
        sys.exit(str(error))
    for row in rows:
        audio = librosa.resample(read_wav(row["path"]), orig_sr=row["sample_rate"], target_sr=POCKETSPHINX_RATE)
        decoder.start_utt()
        decoder.process_raw((np.clip(audio, -1, 1) * 32767).astype(np.int16).tobytes(), full_utt=True)
        decoder.end_utt()
        row["hypothesis"] = tokenizer.normalize(decoder.hyp().hypstr if decoder.hyp() is not None else "")
    hypotheses, texts = [row["hypothesis"] for row in rows], [row["text"] for row in rows]
    results = {"test/cer": float(char_error_rate(hypotheses, texts)),
               "test/wer": float(word_error_rate(hypotheses, texts)),
               **per_source_metrics([{**row, "emotion": ""} for row in rows], [])}  # no emotions read here
    return results, rows


def spoken_folder(folder: Path, voice: str, out: Path) -> Path:
    """A labelled folder ``out/<folder>-<voice>`` of ``folder``'s transcripts said by the TTS
    ``voice`` in its own style, at the same relative paths (so each row keeps its source)."""
    with (folder / "transcripts.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    spoken = out / f"{folder.name}-{voice.replace(':', '-')}"
    columns = ["path", "text", *(["source"] if rows and "source" in rows[0] else [])]
    listed, taken = [], set()
    for number, row in enumerate(rows):
        path = Path(row["path"]).with_suffix(".wav")
        path = f"{number:04d}.wav" if path.is_absolute() else path.as_posix()
        if path in taken:  # x.flac and x.wav both became x.wav
            path = f"{path[:-4]}-{number:04d}.wav"
        taken.add(path)
        rendered = synthesize(voice, row["text"], Style())
        write_wav_atomic(spoken / path, rendered.audio, rendered.sample_rate)
        listed.append({"path": path, **{key: row[key] for key in columns[1:]}})
    write_csv_atomic(spoken / "transcripts.csv", listed, columns)
    return spoken


def training_words(corpus: Path) -> set[str]:
    """Every distinct word of the training split's transcripts in ``corpus/metadata.csv``,
    normalised as the recogniser spells them."""
    tokenizer = CharTokenizer()
    with (corpus / "metadata.csv").open(newline="") as handle:
        return {w for row in csv.DictReader(handle) if row["split"] == "train" for w in tokenizer.normalize(row["text"]).split()}


def seen(words: set[str], known: set[str] | None) -> str | None:
    """``"k of n"``: how many of the distinct ``words`` are among the training words ``known``."""
    return None if known is None else f"{len(words & known)} of {len(words)}"


def row_groups(folder: Path, predictions: list[dict]) -> list[tuple[str, str, list[dict]]]:
    """The table's rows of a folder: one per source (when there are several), then the whole
    folder, each as (its name, its results' key suffix, its predictions)."""
    sources = sorted({row["source"] for row in predictions})
    per_source = [(f"{folder.name}/{source}", f"/{source}", [row for row in predictions if row["source"] == source])
                  for source in sources] if len(sources) > 1 else []
    return [*per_source, (folder.name, "", predictions)]


def table_rows(folder: Path, results: dict, predictions: list[dict], known: set[str] | None) -> list[dict]:
    """:func:`row_groups`' rows, each with its CER's 95 % interval over its utterances
    (``cer_low``, ``cer_high``); with the training words ``known``, each row's ``seen`` counts
    its distinct words among them."""
    rows = []
    for name, suffix, mine in row_groups(folder, predictions):
        low, high = rate_interval(*character_edits([r["hypothesis"] for r in mine], [r["text"] for r in mine])) \
            or (None, None)
        rows.append({"set": name, "utterances": len(mine), "cer": results[f"test/cer{suffix}"],
                     "cer_low": low, "cer_high": high,
                     "wer": results[f"test/wer{suffix}"], "per": results.get(f"test/per{suffix}"),
                     "uar": results.get(f"test/uar{suffix}"),
                     "seen": seen({w for r in mine for w in r["text"].split()}, known)})
    return rows


def difference_rows(folder: Path, ours: list[dict], theirs: list[dict]) -> list[dict]:
    """Two checkpoints' predictions on one folder, paired by path → per :func:`row_groups` row,
    both CERs, their ``difference`` (ours minus theirs) with its 95 % interval, and
    ``ours_better``, the share of bootstrap draws in which ours has the lower rate."""
    theirs_by_path = {row["path"]: row for row in theirs}
    if set(theirs_by_path) != {row["path"] for row in ours}:
        sys.exit("--against read other recordings than the checkpoint did; both must read the same folders.")
    rows = []
    for name, _, mine in row_groups(folder, ours):
        texts = [row["text"] for row in mine]
        edits, lengths = character_edits([row["hypothesis"] for row in mine], texts)
        other, _ = character_edits([theirs_by_path[row["path"]]["hypothesis"] for row in mine], texts)
        difference = paired_difference(edits, other, lengths)
        rows.append({"set": name, "cer": edits.sum() / lengths.sum(), "cer_against": other.sum() / lengths.sum(),
                     **({"difference": None, "low": None, "high": None, "ours_better": None} if difference is None else
                        {"difference": difference.rate, "low": difference.low, "high": difference.high,
                         "ours_better": difference.a_better})})
    return rows


def interval_text(low: float | None, high: float | None) -> str:
    """``0.580 to 0.702``, or a dash where a set has too few utterances for an interval."""
    return "—" if low is None else f"{low:.3f} to {high:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("ckpt")
    parser.add_argument("--folder", action="append", type=Path, help="a labelled folder (repeatable)")
    parser.add_argument("--decoder", default="greedy", help="a conf/decoder option: greedy, beam, beam_lm, beam_english, beam_phonemes")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="an extra speechexp-eval override, e.g. decoder.lm_weight=2 (repeatable)")
    parser.add_argument("--corpus", type=Path, help="the checkpoint's corpus folder: count each set's words heard in training")
    parser.add_argument("--speak", action="append", default=[], metavar="ENGINE:VOICE",
                        help="also score each folder's transcripts said by this TTS voice, e.g. flite:awb (repeatable)")
    parser.add_argument("--reference", choices=["pocketsphinx"], help="also read every set with a recogniser "
                        "trained on people (pip install 'speechexp[reference]')")
    parser.add_argument("--against", metavar="CKPT2", help="also read every set with this checkpoint and print "
                        "the paired difference of the two CERs with its interval")
    parser.add_argument("--json", type=Path, help='also write the rows here: {"rows": [...], "against": [...]}')
    args = parser.parse_args()
    folders = args.folder or [DEFAULT_FOLDER]
    if args.against and not Path(args.against).is_file():  # before the first checkpoint's readings, not after
        sys.exit(f"--against {args.against} is not a file; pass CKPT2, a .ckpt file written by speechexp-train.")
    if args.corpus and not (args.corpus / "metadata.csv").is_file():
        sys.exit(f"--corpus {args.corpus} has no metadata.csv; pass the corpus folder the checkpoint trained on (data/emotional_speech-...).")
    try:  # an unknown or missing voice stops here, in one sentence, before any work
        check_installed(args.speak)
    except SpeechexpError as error:
        sys.exit(str(error))
    known = training_words(args.corpus) if args.corpus else None
    reference = pocketsphinx_decoder() if args.reference else None
    rows, differences = [], []
    with tempfile.TemporaryDirectory(prefix="bench-real-") as tmp:
        spoken = [spoken_folder(folder, voice, Path(tmp) / "spoken" / str(number))  # numbered: folders may share a name
                  for number, folder in enumerate(folders) for voice in args.speak]
        for number, folder in enumerate([*folders, *spoken]):
            results, predictions = evaluate_folder(args.ckpt, folder.resolve(), args.decoder,
                                                   Path(tmp) / str(number), args.set)
            rows += table_rows(folder, results, predictions, known)
            if args.against:
                _, theirs = evaluate_folder(args.against, folder.resolve(), args.decoder,
                                            Path(tmp) / f"{number}-against", args.set)
                differences += difference_rows(folder, predictions, theirs)
            if reference is not None:
                rows += [{**row, "set": f"{row['set']} ({args.reference})"}
                         for row in table_rows(folder, *pocketsphinx_results(reference, folder), known)]
    print(f"checkpoint: {args.ckpt}  decoder: {' '.join([args.decoder, *args.set])}\n")
    # a UAR column only where emotions are given, a PER column only for a model with a phoneme head
    optional = [(name, key) for name, key in (("PER", "per"), ("UAR", "uar"))
                if any(row[key] is not None for row in rows)]
    with_seen = known is not None
    print("| set | utterances | CER | CER 95 % interval | WER |" + "".join(f" {name} |" for name, _ in optional)
          + (" words seen in training |" if with_seen else "")
          + "\n|---|---:|---:|---:|---:|" + "---:|" * len(optional) + ("---:|" if with_seen else ""))
    for row in rows:
        values = "".join(" |" if row[key] is None else f" {row[key]:.3f} |" for _, key in optional)
        print(f"| {row['set']} | {row['utterances']} | {row['cer']:.3f} | {interval_text(row['cer_low'], row['cer_high'])} "
              f"| {row['wer']:.3f} |{values}" + (f" {row['seen']} |" if with_seen else ""))
    if args.against:
        print(f"\nagainst: {args.against} (the same recordings, paired)\n\n"
              "| set | CER | CER against | difference | 95 % interval | lower in draws |\n|---|---:|---:|---:|---:|---:|")
        for row in differences:
            better = "—" if row["ours_better"] is None else f"{row['ours_better']:.1%}"
            difference = "—" if row["difference"] is None else f"{row['difference']:+.3f}"
            print(f"| {row['set']} | {row['cer']:.3f} | {row['cer_against']:.3f} | {difference} "
                  f"| {interval_text(row['low'], row['high'])} | {better} |")
    if args.json:
        write_json_atomic(args.json, {"rows": rows, "against": differences})


if __name__ == "__main__":
    main()
