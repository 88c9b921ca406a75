"""The seed report (Minor 2) as one page, from what ``scripts/reproduce_minor2.sh OUT`` ran:
``python -m speechexp.reports.minor2 OUT`` writes ``OUT/report.html``.

The sections follow the seed's own, in its order: data generation with the three
spectrogram / mel plots; the LSTM's batch and average train/test loss; batch and average
SI-SNR; reconstructed vs ground-truth spectrograms, with audio; the observations (the
seed's "8 units at 3e-4 is best" next to what the sweep measured, with the heatmap); the
CTC comparison (the seed's 5.11 vs 6.35 explained by the reduction; the custom and
built-in values agreeing) and the CTC benchmark; the multitask model's results, confusion
matrix and an alignment. Every number on the page is read from ``OUT``; the seed's own
numbers are quoted as the seed's. A part whose files are missing says which.

Layout of ``OUT`` (as the script writes it): ``spectrograms/`` (``speechexp-plot``),
``q1_seed/`` and ``q1_default/`` (run dirs), ``q1_sweep/`` (multirun), ``ctc_compare.json``
(``scripts/compare_ctc.py --out``), ``ctc_bench.json`` (``scripts/bench_ctc.py --out``),
``q2_asr_emotion/`` (run dir).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from speechexp.errors import SpeechexpError  # noqa: E402
from speechexp.reports import html as h  # noqa: E402
from speechexp.runs.plan import read_json  # noqa: E402
from speechexp.reports.run_page import clips, final_metrics  # noqa: E402
from speechexp.viz.curves import CSV_LOG, epoch_table  # noqa: E402
from speechexp.viz.spectrogram import save_figure  # noqa: E402

SEED_CTC = (5.11487340927124, 6.346907615661621)  # the seed's printed custom / PyTorch CTC losses
SEED_BEST = {"model.units": "8", "optimizer.lr": "0.0003"}  # the seed's "8 units at 3e-4 is best"


def _json(path: Path) -> dict | None:
    """The file's JSON object, ``None`` when it is missing or unreadable."""
    return read_json(path) or None


def missing(what: Path) -> str:
    return f'<p class="bad">Not produced: {h.esc(what)} is missing (run scripts/reproduce_minor2.sh to write it).</p>'


def num(value, digits: int = 4) -> str:
    return f"{value:.{digits}g}" if isinstance(value, (int, float)) else "n/a"


# -- figures drawn from a run's CSV log -------------------------------------------------------

def plot_batch_and_average(metrics_csv: Path, name: str, label: str, test_value: float | None, out: Path) -> Path:
    """The seed's pair of plots for one quantity: per batch (train batches by step; the
    held-out validation and test batches in the order they ran) and per epoch (train and
    validation averages, the final test value as a line)."""
    frame = pd.read_csv(metrics_csv)
    fig, (batch_ax, epoch_ax) = plt.subplots(1, 2, figsize=(11, 3.6), constrained_layout=True)
    train = frame.dropna(subset=[f"train/{name}_batch"]) if f"train/{name}_batch" in frame else frame.iloc[:0]
    batch_ax.plot(train["step"], train[f"train/{name}_batch"], linewidth=0.8, color="tab:blue",
                  label="train batch (by step)")
    held_out = [(f"val/{name}_batch", "tab:orange", "validation batch"), (f"test/{name}_batch", "tab:red", "test batch")]
    twin = None
    for column, color, text in held_out:
        if column in frame and not frame[column].dropna().empty:
            twin = twin or batch_ax.twiny()
            values = frame[column].dropna().to_numpy()
            twin.plot(range(len(values)), values, "o", markersize=3, color=color, label=f"{text} (in order)")
    handles, labels = batch_ax.get_legend_handles_labels()
    if twin is not None:
        twin.set_xlabel("held-out batch, in the order evaluated")
        more = twin.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    batch_ax.set(title=f"Batch {label}", xlabel="training step", ylabel=label)
    fig.legend(handles, labels, fontsize=8, loc="outside lower center", ncol=3)
    epochs = epoch_table(frame, [f"train/{name}", f"val/{name}"])
    for column, color in ((f"train/{name}", "tab:blue"), (f"val/{name}", "tab:orange")):
        if column in epochs and not epochs[column].dropna().empty:
            values = epochs.dropna(subset=[column])
            epoch_ax.plot(values["epoch"], values[column], marker="o", markersize=3, color=color, label=column)
    if test_value is not None:
        epoch_ax.axhline(test_value, color="tab:red", linestyle="--", linewidth=1, label=f"test/{name} {test_value:.3g}")
    epoch_ax.set(title=f"Average {label} per epoch", xlabel="epoch", ylabel=label)
    epoch_ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    epoch_ax.legend(fontsize=8)
    for ax in (batch_ax, epoch_ax):
        ax.grid(alpha=0.3)
    return save_figure(fig, out)


# -- sections ----------------------------------------------------------------------------------

def data_section(out: Path, seed_run: Path) -> str:
    results = _json(seed_run / "results.json") or {}
    preparer = _json(Path(str(results.get("dataset_dir", ""))) / "preparer.json") or {}
    config = preparer.get("fields", preparer)
    facts = ""
    if config:
        keys = ("n_examples", "fs", "duration", "f1_range", "f2_range", "amplitude_range", "splits", "seed")
        facts = h.table([{"setting": k, "value": str(config[k])} for k in keys if k in config], ["setting", "value"])
    plots = sorted((out / "spectrograms").glob("*.png"))
    order = {"source1": 0, "source2": 1, "mixture": 2}
    plots.sort(key=lambda p: (order.get(p.name.split("_")[0], 3), p.name))
    body = [f"<p>Two-sinusoid mixtures (<code>dataset=sinusoids</code>): source 1 in a low band, source 2 in a high "
            f"band, their sum the mixture, written as WAV with a <code>metadata.csv</code>. Dataset folder: "
            f"<code>{h.esc(results.get('dataset_dir', 'n/a'))}</code>.</p>", facts]
    titles = {"source1": "Plotting source 1", "source2": "Plotting source 2", "mixture": "Plotting mixture"}
    body += [h.image(p, f"{titles.get(p.name.split('_')[0], p.stem)}: spectrogram and mel spectrogram ({p.name})")
             for p in plots[:3]] or [missing(out / "spectrograms")]
    return h.section("Question 1 · Data generation and spectrograms", *body)


def training_section(seed_run: Path) -> str:
    config = _yaml(seed_run / "config.yaml")
    results = _json(seed_run / "results.json")
    if not config or not results:
        return h.section("Training using LSTM and linear layer", missing(seed_run / "results.json"))
    model, optimizer = config.get("model", {}), config.get("optimizer", {})
    rows, columns = final_metrics(results)
    return h.section(
        "Training using LSTM and linear layer",
        f"<p>The seed's settings (<code>experiment=minor2_q1</code>): an LSTM of {model.get('units')} units "
        f"({'bi' if model.get('bidirectional') else 'uni'}directional, {model.get('front_end')} front end) and a "
        f"linear mask layer, {config.get('loss', {}).get('_target_', '').rsplit('.', 1)[-1]} loss, "
        f"{optimizer.get('_target_', '').rsplit('.', 1)[-1]} at lr {optimizer.get('lr')}, "
        f"{config.get('trainer', {}).get('max_epochs')} epochs; {results.get('wall_seconds')} s. "
        f"Run dir <code>{h.esc(seed_run)}</code>.</p>",
        h.table(rows, columns))


def curves_sections(seed_run: Path, figures: Path) -> list[str]:
    results = _json(seed_run / "results.json") or {}
    metrics_csv = seed_run / CSV_LOG
    if not metrics_csv.is_file():
        return [h.section("Train and test loss", missing(metrics_csv))]
    loss = plot_batch_and_average(metrics_csv, "loss", "L1 loss", results.get("test/loss"), figures / "minor2_loss.png")
    snr = plot_batch_and_average(metrics_csv, "si_snr", "SI-SNR (dB)", results.get("test/si_snr"),
                                 figures / "minor2_si_snr.png")
    return [h.section("Train and test loss",
                      "<p>1) per batch and 2) averaged per epoch; the seed's \"test\" curve is the held-out split "
                      "evaluated after every epoch (validation here), the final test value is the line.</p>",
                      h.image(loss, f"Loss: test/loss = {num(results.get('test/loss'))}")),
            h.section("SI-SNR plots",
                      h.image(snr, f"SI-SNR: test/si_snr = {num(results.get('test/si_snr'))} dB, "
                                   f"best validation epoch {num(results.get('val/si_snr_best'))} dB"))]


def reconstruction_section(run: Path, label: str) -> str:
    results = _json(run / "results.json") or {}
    pictures = sorted((run / "figures").glob("test_*_separated_vs_truth.png"))
    audio = clips(run, [], results)
    if not pictures:
        return h.section(f"Spectrograms of the reconstructed sources ({label})", missing(run / "figures"))
    return h.section(f"Spectrograms of the reconstructed sources ({label})",
                     "<p>Ground truth vs reconstruction for each source of a test example; listen to the mixture, "
                     "each estimate and each reference.</p>",
                     h.image(pictures[0], f"{pictures[0].name}: test/si_snr of this run "
                                          f"{num(results.get('test/si_snr'))} dB"),
                     h.clips(h.audio(path, caption) for path, caption in audio))


def observations_section(out: Path) -> str:
    from speechexp.sweeps.comparison import compare  # noqa: PLC0415

    sweep = out / "q1_sweep"
    runs = {name: _json(out / name / "results.json") for name in ("q1_seed", "q1_default")}
    lines = []
    for name, text in (("q1_seed", "the seed's settings (8 units, lr 3e-4, time-domain, 10 epochs)"),
                       ("q1_default", "the default experiment (64 units BiLSTM, STFT front end, lr 3e-3)")):
        if runs[name]:
            lines.append(f"<li>{text}: test SI-SNR <b>{num(runs[name].get('test/si_snr'))} dB</b> "
                         f"in {num(runs[name].get('wall_seconds'), 3)} s</li>")
    parts = ["<p>The seed: <i>\"LSTM with 8 units is used to get the best results with a 3e-4 learning "
             "rate.\"</i> Measured here:</p>", "<ul>" + "".join(lines) + "</ul>"]
    try:
        comparison = compare([sweep])
    except SpeechexpError:
        return h.section("Observations", *parts, missing(sweep / "comparison.csv"))
    ranked = [g for g in comparison.groups if g.values]
    seed_rank = next((i + 1 for i, g in enumerate(ranked)
                      if all(_same(g.config.get(k), v) for k, v in SEED_BEST.items())), None)
    best = ranked[0] if ranked else None
    if best is not None:
        config = ", ".join(f"{k}={v}" for k, v in best.config.items())
        seed_text = (f"the seed's 8 units at 3e-4 ranks {seed_rank} of {len(ranked)}" if seed_rank
                     else "the seed's 8 units at 3e-4 was not in this sweep")
        parts.append(f"<p>The sweep (time-domain front end, {len(comparison.jobs)} jobs, by "
                     f"{h.esc(comparison.metric)} at its best epoch): best <b>{h.esc(config)}</b> with "
                     f"<b>{num(best.mean)}</b> dB; {seed_text}.</p>")
    rows = [{**g.config, comparison.metric: g.mean, "jobs": len(g.jobs)} for g in comparison.groups]
    keys = sorted({k for g in comparison.groups for k in g.config})
    parts.append(h.table(rows, [*keys, comparison.metric, "jobs"]))
    for picture in sorted((sweep / "figures").glob("sweep_*.png")):
        parts.append(h.image(picture, f"q1_sweep/figures/{picture.name}"))
    if (sweep / "report.html").is_file():
        parts.append('<p>The sweep\'s own page: <a href="q1_sweep/report.html">q1_sweep/report.html</a>.</p>')
    return h.section("Observations", *parts)


def _same(a, b) -> bool:
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return a == b


def ctc_sections(out: Path) -> list[str]:
    compare_json, bench_json = _json(out / "ctc_compare.json"), _json(out / "ctc_bench.json")
    custom, builtin = SEED_CTC
    parts = [f"<p>The seed printed <code>Custom CTC Loss: {custom:.4f}</code> next to "
             f"<code>PyTorch CTC Loss: {builtin:.4f}</code>, a ratio of {custom / builtin:.3f}.</p>"]
    if compare_json is None:
        parts.append(missing(out / "ctc_compare.json"))
    else:
        c = compare_json
        parts.append(f"<p>Here, on the same kind of inputs (log-softmax of randn, T={c['T']}, N={c['N']}, "
                     f"C={c['C']}, targets up to {c['S']}, seed {c['seed']}), speechexp's CTC and PyTorch's agree "
                     f"for every reduction (per sample: max |diff| {c['none_max_abs_diff']:.1e}):</p>")
        parts.append(h.table(c["reductions"], ["reduction", "custom", "builtin", "abs_diff"]))
        parts.append(f"<p>PyTorch's <code>mean</code> divides each sample's loss by its own target length, then "
                     f"averages. The usual hand-written normalisations against it (built-in mean "
                     f"{c['builtin_mean']:.4f}):</p>")
        parts.append(h.table(c["variants"], ["normalisation", "value", "ratio"]))
        closest = next((v["ratio"] for v in c["variants"] if v["normalisation"] == c["closest"]), None)
        parts.append(f"<p>The seed's ratio {c['seed_ratio']:.3f} is closest to <b>{h.esc(c['closest'])}</b> "
                     f"(ratio {num(closest, 3)} here): a token-weighted mean (the batch total over the total target "
                     "length) instead of the per-sample length division, smaller than the built-in's by an amount "
                     "that depends on how the target lengths vary. The gap is the reduction, not the loss: with the "
                     "same reduction the two agree to float precision (above).</p>")
    sections = [h.section("Question 2 · CTC loss: custom vs built-in", *parts)]
    if bench_json is None:
        sections.append(h.section("CTC benchmark", missing(out / "ctc_bench.json")))
    else:
        b = bench_json
        columns = [c for c in ("T", "N", "S", "builtin_ms", "custom_ms", "ratio", "builtin_mib", "custom_mib",
                               "mem_ratio") if c in b["rows"][0]]
        sections.append(h.section(
            "CTC benchmark",
            f"<p>Forward + backward, device {h.esc(b['device'])} (custom backend {h.esc(b['backend'])}), torch "
            f"{h.esc(b['torch'])}, {b['threads']} threads, C={b['classes']}, best of {b['reps']}. Geometric-mean "
            f"time ratio custom / built-in {b['geomean_ratio']:.3f}, worst {b['worst_ratio']:.2f}.</p>",
            h.table(b["rows"], columns)))
    return sections


def multitask_section(run: Path) -> str:
    results = _json(run / "results.json")
    if results is None:
        return h.section("Multitask ASR + emotion", missing(run / "results.json"))
    config = _yaml(run / "config.yaml") or {}
    rows = [{"metric": k, "test": results.get(f"test/{k}"), "val (last epoch)": results.get(f"val/{k}")}
            for k in ("cer", "wer", "uar", "accuracy", "score", "loss") if f"test/{k}" in results]
    parts = [f"<p>One encoder, a CTC head for the transcript (custom CTC loss, "
             f"<code>{h.esc(config.get('loss', {}).get('_target_', 'n/a'))}</code>) and an emotion head "
             f"(cross-entropy), on the synthetic emotional speech corpus; "
             f"{config.get('trainer', {}).get('max_epochs')} epochs, {num(results.get('wall_seconds'), 3)} s. "
             f"Run dir <code>{h.esc(run)}</code>.</p>",
             h.table(rows, ["metric", "test", "val (last epoch)"])]
    for name, caption in (("emotion_confusion.png", "Emotion confusion matrix (test)"),
                          ("ctc_alignment.png", "A test utterance's CTC (Viterbi) alignment")):
        if (run / "figures" / name).is_file():
            parts.append(h.image(run / "figures" / name, caption))
    predictions = run / "test_predictions.csv"
    if predictions.is_file():
        frame = pd.read_csv(predictions, keep_default_na=False).head(8)
        parts.append("<p>Test predictions (first 8):</p>")
        parts.append(h.table(frame.drop(columns=["path"], errors="ignore").to_dict("records"),
                             [c for c in frame.columns if c != "path"]))
    return h.section("Multitask ASR + emotion", *parts)


def _yaml(path: Path) -> dict | None:
    import yaml  # noqa: PLC0415

    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None


def write_minor2_report(out: str | Path) -> Path:
    """Write ``out/report.html`` from the folders and files ``reproduce_minor2.sh`` left there."""
    from speechexp.io import write_text_atomic  # noqa: PLC0415

    out = Path(out)
    if not out.is_dir():
        raise SpeechexpError(f"{out} is not a folder; pass the OUT folder of scripts/reproduce_minor2.sh.")
    figures = out / "figures"
    seed_run = out / "q1_seed"
    parts = ['<p>The seed report ("Minor 2", Speech Understanding) reproduced with speechexp by '
             f"<code>scripts/reproduce_minor2.sh {h.esc(out)}</code>. Its sections, in its order; every "
             "number and figure below comes from this run (the seed's own numbers are quoted as the seed's).</p>",
             data_section(out, seed_run), training_section(seed_run), *curves_sections(seed_run, figures),
             reconstruction_section(seed_run, "the seed's settings"),
             reconstruction_section(out / "q1_default", "the default experiment"),
             observations_section(out), *ctc_sections(out), multitask_section(out / "q2_asr_emotion")]
    return write_text_atomic(out / "report.html", h.page("Minor 2, reproduced", parts))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m speechexp.reports.minor2", description=__doc__.split("\n\n")[0])
    parser.add_argument("out", metavar="OUT", help="the folder scripts/reproduce_minor2.sh wrote")
    args = parser.parse_args(argv)
    try:
        print(write_minor2_report(args.out))
    except SpeechexpError as exc:
        print(f"Error: {exc}", file=sys.stderr, flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
