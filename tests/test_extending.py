"""The README's "Extend speechexp" recipes, followed as a user would: options added from a
``--config-dir`` (and one class on the user's path) work with the shipped tasks."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from speechexp.config import CONF_DIR
from tests.conftest import run_cli

CHIRP_MODULE = '''
from dataclasses import dataclass

from speechexp.data.sinusoids import SinusoidPreparer


@dataclass
class NarrowBandPreparer(SinusoidPreparer):
    """Two-sinusoid mixtures whose sources sit in narrower bands (a user's own dataset class)."""

    bandwidth: float = 200.0
    name: str = "narrow_band"

    def __post_init__(self) -> None:
        self.f1_range = (400.0, 400.0 + self.bandwidth)
        self.f2_range = (2000.0, 2000.0 + self.bandwidth)
        super().__post_init__()
'''


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())


def results_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def test_dataset_class_model_loss_and_sweep_preset_from_a_config_dir(tmp_path):
    """One YAML (plus one class for the dataset) per new option; a sweep preset over them."""
    conf, code = tmp_path / "my_conf", tmp_path / "code"
    write(code / "my_datasets.py", CHIRP_MODULE)
    write(conf / "dataset" / "narrow_band.yaml", """
        defaults:
          - /schema/dataset/narrow_band@_here_
          - _self_
        name: narrow_band
        preparer:
          _target_: my_datasets.NarrowBandPreparer
          n_examples: 20
          bandwidth: 100.0
        datamodule:
          _target_: speechexp.data.separation_datamodule.SeparationDataModule
          sample_rate: ${dataset.preparer.fs}
          batch_size: 4
    """)
    write(conf / "model" / "tiny_lstm.yaml", """
        defaults:
          - /schema/model/tiny_lstm@_here_
          - _self_
        _target_: speechexp.models.lstm_separator.LSTMSeparator
        units: 8
        layers: 1
    """)
    write(conf / "loss" / "l1_pit.yaml", """
        _target_: speechexp.losses.separation.L1Loss
        pit: true
    """)
    write(conf / "hparams_search" / "tiny_grid.yaml", """
        # @package _global_
        hydra:
          mode: MULTIRUN
          sweeper:
            params:
              model.units: 4,8
    """)
    sweep_dir = tmp_path / "sweep"
    result = run_cli("train", "--config-dir", str(conf), "dataset=narrow_band", "model=tiny_lstm", "loss=l1_pit",
                     "hparams_search=tiny_grid", "debug=fdr", "logger=csv", f"hydra.sweep.dir={sweep_dir}",
                     f"paths.data_dir={tmp_path / 'data'}", env={"PYTHONPATH": str(code)}, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = sorted(p.parent for p in sweep_dir.glob("*/results.json"))
    assert len(jobs) == 2
    for job in jobs:
        results = results_of(job)
        assert results["status"] == "completed" and "test/si_snr" in results
    config = (jobs[0] / "config.yaml").read_text()
    assert "my_datasets.NarrowBandPreparer" in config and "bandwidth: 100.0" in config and "pit: true" in config
    assert (sweep_dir / "comparison.md").is_file()
    [folder] = (tmp_path / "data").glob("narrow_band-*")
    assert len((folder / "metadata.csv").read_text().splitlines()) == 21  # header + 20 mixtures


def test_copied_dataset_yaml_trains_with_the_shipped_asr_emotion_task(tmp_path):
    """The issue's case: a copy of emotional_speech.yaml under another name is accepted
    (its datamodule is one the task consumes) and trains one batch."""
    conf = tmp_path / "my_conf"
    shipped = (Path(CONF_DIR) / "dataset" / "emotional_speech.yaml").read_text()
    tiny = (shipped.replace("name: emotional_speech", "name: tiny_voices")
            .replace("num_speakers: 380", "num_speakers: 12")
            .replace("utterances_per_speaker: 10", "utterances_per_speaker: 5")
            .replace("num_sentences: 2000", "num_sentences: 40"))
    assert tiny != shipped
    write(conf / "dataset" / "tiny_voices.yaml", tiny)
    run_dir = tmp_path / "run"
    result = run_cli("train", "--config-dir", str(conf), "experiment=asr_emotion", "dataset=tiny_voices",
                     "debug=fdr", "logger=csv", f"hydra.run.dir={run_dir}", f"paths.data_dir={tmp_path / 'data'}",
                     timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    results = results_of(run_dir)
    assert results["status"] == "completed" and "test/cer" in results
    rows = (Path(results["dataset_dir"]) / "metadata.csv").read_text().splitlines()
    assert len(rows) == 1 + 12 * 5  # the copy's own size, not the shipped corpus


def test_option_of_another_kind_is_refused_naming_the_fitting_ones(tmp_path):
    """A user's loss of the separation kind under the CTC task: one sentence, exit 2, nothing written."""
    conf = tmp_path / "my_conf"
    write(conf / "loss" / "l1_pit.yaml", """
        _target_: speechexp.losses.separation.L1Loss
        pit: true
    """)
    result = run_cli("train", "--config-dir", str(conf), "experiment=asr_emotion", "loss=l1_pit",
                     f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "Error: loss=l1_pit cannot be used with experiment=asr_emotion (task=asr_emotion); use "
        "experiment=minor2_q1, or choose one of loss=ctc_builtin, loss=ctc_custom.")
    assert not (tmp_path / "run").exists()
