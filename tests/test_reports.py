"""Results you can look at: a run's and a multirun's self-contained report page, the media
a test stage logs to W&B (offline) and TensorBoard, and the run's learning curves."""

from __future__ import annotations

import base64
import io
import json
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image as mpimg
import pytest
import soundfile as sf

from tests.conftest import run_cli

SMALL = ("dataset.preparer.n_examples=20", "trainer.max_epochs=2", "trainer.enable_progress_bar=false",
         "model.units=8")


class Page(HTMLParser):
    """Every tag's attributes of one HTML page, by tag name."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: dict[str, list[dict]] = {}
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.setdefault(tag, []).append(dict(attrs))


def embedded(src: str, mime: str) -> bytes:
    prefix = f"data:{mime};base64,"
    assert src.startswith(prefix), src[:60]
    return base64.b64decode(src[len(prefix):], validate=True)


def assert_self_contained(html_path: Path) -> Page:
    """The page parses, every image is a PNG, every audio a WAV, and nothing is fetched."""
    text = html_path.read_text()
    page = Page(text)
    assert "http://" not in text and "https://" not in text
    assert not page.tags.get("script") and not page.tags.get("link")
    for img in page.tags.get("img", []):
        image = mpimg.imread(io.BytesIO(embedded(img["src"], "image/png")), format="png")
        assert image.ndim == 3 and image.shape[0] > 50 and image.shape[1] > 50
    for clip in page.tags.get("audio", []):
        audio, rate = sf.read(io.BytesIO(embedded(clip["src"], "audio/wav")))
        assert rate > 0 and len(audio) > 0
    return page


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A short default run (CSV + offline W&B logger, the default) with report=true."""
    tmp = tmp_path_factory.mktemp("report")
    done = run_cli("train", f"hydra.run.dir={tmp / 'run'}", f"paths.data_dir={tmp / 'data'}", "task.module.n_media=1",
                   *SMALL)
    assert done.returncode == 0, done.stderr[-3000:]
    return tmp / "run"


def test_a_run_writes_its_curves_and_a_self_contained_report(run_dir):
    curves = mpimg.imread(run_dir / "figures" / "curves.png")
    assert curves.shape[0] > 300 and curves.shape[1] > 600
    page = assert_self_contained(run_dir / "report.html")
    captions = [tag.get("alt", "") for tag in page.tags["img"]]
    assert captions[0].startswith("figures/curves.png") and any(c.endswith("_separated_vs_truth.png") for c in captions)
    # mixture, two estimates and two references of one test example, playable
    assert len(page.tags["audio"]) == 5
    text = (run_dir / "report.html").read_text()
    results = json.loads((run_dir / "results.json").read_text())
    assert f"{results['test/si_snr']:.4g}" in text and "trainer.max_epochs=2" in text
    assert "<details><summary>Resolved config" in text
    markdown = (run_dir / "report.md").read_text()
    assert "![curves.png](figures/curves.png)" in markdown and "| metric | test | val | train |" in markdown
    lr = [line for line in (run_dir / "csv" / "metrics.csv").read_text().splitlines()[:1]][0]
    assert "lr-Adam" in lr  # LearningRateMonitor with the default logger


def test_the_offline_wandb_run_carries_audio_images_and_a_table(run_dir):
    (wandb_run,) = (run_dir / "wandb").glob("offline-run-*")
    media = wandb_run / "files" / "media"
    audio = sorted((media / "audio").rglob("*.wav"))
    images = sorted((media / "images").rglob("*.png"))
    tables = sorted((media / "table").rglob("*.table.json"))
    # of 2 test examples, n_media=1: its mixture, 2 estimates and 2 references; its spectrograms and the curves
    assert len(audio) == 5 and len(images) == 2 and len(tables) == 1
    assert all(sf.info(str(path)).samplerate == 8000 for path in audio)
    table = json.loads(tables[0].read_text())
    assert table["columns"][:3] == ["id", "si_snr", "si_snri"] and len(table["data"]) == 2  # 20 examples: 2 test
    assert sum(path.stat().st_size for path in media.rglob("*")) < 2_000_000


def test_report_false_writes_no_report_and_speechexp_report_writes_one(tmp_path):
    """Also: a CSV log keeps no media, so none is drawn or logged for it (only ``n_figures``)."""
    run = tmp_path / "run"
    done = run_cli("train", f"hydra.run.dir={run}", f"paths.data_dir={tmp_path / 'data'}", "report=false",
                   "logger=csv", "debug=limit", "task.module.n_figures=1", *SMALL)
    assert done.returncode == 0, done.stderr[-3000:]
    assert not (run / "report.html").exists() and (run / "figures" / "curves.png").is_file()
    assert len(list((run / "figures").glob("test_*_separated_vs_truth.png"))) == 1
    assert "media" not in (run / "train.log").read_text()
    again = run_cli("report", str(run))
    assert again.returncode == 0 and again.stdout.strip() == str(run / "report.html")
    assert_self_contained(run / "report.html")
    missing = run_cli("report", str(tmp_path / "nowhere"))
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1 and "not a folder" in missing.stderr


def test_a_multirun_report_links_every_job_and_tensorboard_holds_audio_and_images(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    sweep = tmp_path / "sweep"
    done = run_cli("train", "-m", "model.units=8,-3", f"hydra.sweep.dir={sweep}", f"paths.data_dir={tmp_path / 'data'}",
                   "logger=tensorboard", "debug=limit", *[o for o in SMALL if not o.startswith("model.units")])
    assert done.returncode == 1 and "1 of 2 jobs failed" in done.stderr, done.stderr[-3000:]
    page = assert_self_contained(sweep / "report.html")
    links = {a["href"] for a in page.tags.get("a", [])}
    assert {"0/report.html", "1/report.html"} <= links
    assert all((sweep / link).is_file() for link in links)
    text = (sweep / "report.html").read_text()
    assert "Failed jobs (1)" in text and "model.units=-3" in text
    markdown = (sweep / "report.md").read_text()
    assert "[0](0/report.html)" in markdown and "[1](1/report.html)" in markdown
    assert list((sweep / "0" / "tensorboard").glob("events.out.tfevents.*"))
    accumulator = EventAccumulator(str(sweep / "0" / "tensorboard"), size_guidance={"audio": 0, "images": 0})
    accumulator.Reload()
    tags = accumulator.Tags()
    assert len(tags["audio"]) == 10 and "test/audio/00018/mixture" in tags["audio"]
    # the 2 test examples' spectrograms (no curves image: curves are drawn from the CSV log)
    assert sorted(tags["images"]) == ["test/spectrograms/00018", "test/spectrograms/00019"]
    clip = accumulator.Audio("test/audio/00018/mixture")[0]
    audio, rate = sf.read(io.BytesIO(clip.encoded_audio_string))
    assert rate == 8000 and len(audio) == 8000


def test_asr_emotion_logs_confusion_alignment_predictions_and_captioned_audio(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    done = run_cli("train", "experiment=asr_emotion", "dataset.preparer.num_speakers=30",
                   "dataset.preparer.utterances_per_speaker=10", "dataset.preparer.num_sentences=120",
                   "trainer.max_epochs=1", "logger=many", "task.module.n_media=2", f"hydra.run.dir={run}",
                   f"paths.data_dir={tmp_path / 'data'}", "trainer.enable_progress_bar=false")
    assert done.returncode == 0, done.stderr[-3000:]
    (media,) = (run / "wandb").glob("offline-run-*/files/media")
    images = sorted(p.name.rsplit("_", 2)[0] for p in (media / "images").rglob("*.png"))
    assert images == ["ctc_alignment", "curves", "emotion_confusion"]
    assert len(list((media / "audio").rglob("*.wav"))) == 2
    (table_file,) = (media / "table").rglob("predictions_*.table.json")
    table = json.loads(table_file.read_text())
    assert table["columns"] == ["text", "hypothesis", "cer", "emotion", "predicted_emotion"]
    tested = (run / "test_predictions.csv").read_text().splitlines()
    assert len(table["data"]) == min(50, len(tested) - 1) and table["data"][0][0] in tested[1]
    accumulator = EventAccumulator(str(run / "tensorboard"), size_guidance={"audio": 0, "images": 0, "tensors": 0})
    accumulator.Reload()
    tags = accumulator.Tags()
    assert {"test/emotion_confusion", "test/ctc_alignment", "test/curves"} == set(tags["images"])
    assert len(tags["audio"]) == 2 and "test/predictions/text_summary" in tags["tensors"]
    caption = accumulator.Tensors(f"{tags['audio'][0]}/caption/text_summary")[0].tensor_proto.string_val[0].decode()
    first = tested[1].split(",")  # path, text, hypothesis, ...: the caption is its transcript and emotions
    assert caption.startswith(f"{first[1]} -> ")
    page = assert_self_contained(run / "report.html")
    captions = [tag["alt"].split(":")[0] for tag in page.tags["img"]][:3]
    assert captions == ["figures/curves.png", "figures/emotion_confusion.png", "figures/ctc_alignment.png"]
    assert len(page.tags["audio"]) == 2 and "Test predictions (first 10)" in (run / "report.html").read_text()


def test_the_minor2_page_reads_its_numbers_from_the_runs_and_names_what_is_missing(run_dir, tmp_path):
    from speechexp.reports.minor2 import write_minor2_report

    out = tmp_path / "out"
    out.mkdir()
    (out / "q1_seed").symlink_to(run_dir)
    page_path = write_minor2_report(out)
    page = assert_self_contained(page_path)
    text = page_path.read_text()
    results = json.loads((run_dir / "results.json").read_text())
    assert f"test/si_snr = {results['test/si_snr']:.4g} dB" in text and f"test/loss = {results['test/loss']:.4g}" in text
    assert (out / "figures" / "minor2_loss.png").is_file() and (out / "figures" / "minor2_si_snr.png").is_file()
    assert len(page.tags["audio"]) == 5  # the seed-settings run's example: mixture, estimates, references
    for absent in ("spectrograms", "ctc_compare.json", "ctc_bench.json", "q2_asr_emotion/results.json"):
        assert f"Not produced: {out / absent}" in text
    assert "the seed printed" in text.lower() and "5.1149" in text  # the seed's own number, quoted as the seed's


def test_a_damaged_results_file_is_named_not_reported_as_a_run_without_results(tmp_path):
    """``speechexp-report`` and ``speechexp-compare`` read ``results.json`` alike: a damaged one
    is one sentence naming it, and no page is written from it."""
    from speechexp.errors import SpeechexpError
    from speechexp.reports import write_report
    from speechexp.sweeps.comparison import find_jobs

    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text('{"status": "compl')  # cut off mid-write by a full disk
    for read in (write_report, lambda path: find_jobs([path])):
        with pytest.raises(SpeechexpError, match=f"{run / 'results.json'} is unreadable .*; delete it or rerun"):
            read(run)
    (run / "results.json").write_text("[1, 2]")
    with pytest.raises(SpeechexpError, match="holds no results object"):
        write_report(run)
    assert sorted(p.name for p in run.iterdir()) == ["results.json"]
