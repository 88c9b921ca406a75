"""Multiruns: failures isolated, one W&B run per job, resumable, compared in one report,
parallel and cluster launchers."""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path

import optuna
import pytest
import yaml

from tests.conftest import run_cli
from tests.test_cli import assert_one_line_error

SMALL = ("dataset.preparer.n_examples=20", "trainer.enable_progress_bar=false")


def statuses(sweep_dir: Path) -> dict[str, str]:
    return {p.parent.name: json.loads(p.read_text())["status"] for p in sweep_dir.glob("*/results.json")}


def table(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_a_failing_job_is_recorded_and_the_sweep_goes_on_then_a_rerun_skips_the_completed(tmp_path):
    sweep_dir = tmp_path / "sweep"
    args = ("-m", "model.units=8,-3,16", "trainer.max_epochs=1", f"hydra.sweep.dir={sweep_dir}",
            f"paths.data_dir={tmp_path / 'data'}", "logger=wandb", *SMALL)
    first = run_cli("train", *args)
    summary = [line for line in first.stderr.splitlines() if "jobs failed" in line]
    assert first.returncode == 1 and len(summary) == 1, first.stderr[-3000:]
    assert summary[0].startswith("Error: 1 of 3 jobs failed: #1 model.units=-3: ")
    assert "model.units=-3 is out of range: units must be greater than 0" in summary[0]
    assert statuses(sweep_dir) == {"0": "completed", "1": "failed", "2": "completed"}
    # one offline W&B run per job, carrying that job's config and name
    for job, units in (("0", 8), ("2", 16)):
        runs = list((sweep_dir / job / "wandb").glob("offline-run-*/run-*.wandb"))
        assert len(runs) == 1, runs
        record = runs[0].read_bytes()
        assert f'"units":{units}'.encode() in record and f"model.units={units}".encode() in record
        assert f'"units":{24 - units},'.encode() not in record  # not the other job's config
        assert sweep_dir.name.encode() in record  # the W&B group: the multirun's folder
    # the comparison was written at the end: failed job listed last with its error
    rows = table(sweep_dir / "comparison.csv")
    assert [r["model.units"] for r in rows][-1] == "-3" and rows[-1]["status"] == "failed"
    assert "units must be greater than 0" in rows[-1]["error"] and {r["model.units"] for r in rows[:2]} == {"8", "16"}
    scores = [float(r["val/si_snr (best epoch)"]) for r in rows[:2]]
    assert scores == sorted(scores, reverse=True)
    stamps = {job: (sweep_dir / job / "results.json").stat().st_mtime_ns for job in ("0", "1", "2")}
    again = run_cli("train", *args)
    assert again.returncode == 1
    assert again.stdout.count("already completed this configuration: skipping it") == 2
    assert (sweep_dir / "0" / "results.json").stat().st_mtime_ns == stamps["0"]
    assert (sweep_dir / "2" / "results.json").stat().st_mtime_ns == stamps["2"]
    assert (sweep_dir / "1" / "results.json").stat().st_mtime_ns != stamps["1"]  # the failed job ran again
    assert [line for line in again.stderr.splitlines() if "jobs failed" in line][0].startswith(
        "Error: 1 of 3 jobs failed: #1 model.units=-3")


def test_joblib_jobs_share_the_cores_and_one_prepared_dataset(tmp_path):
    """Two joblib workers: one thread each on two cores; one builds the dataset, one reuses it."""
    sweep_dir, data = tmp_path / "sweep", tmp_path / "data"
    result = run_cli("train", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "seed=1,2",
                     f"hydra.sweep.dir={sweep_dir}", f"paths.data_dir={data}", "logger=csv", "debug=fdr",
                     "dataset.preparer.n_examples=40")
    assert result.returncode == 0, result.stderr[-3000:]
    assert statuses(sweep_dir) == {"0": "completed", "1": "completed"}
    folders = list(data.iterdir())
    assert len(folders) == 1 and len((folders[0] / "metadata.csv").read_text().splitlines()) == 41
    cores = len(os.sched_getaffinity(0))
    for job in ("0", "1"):
        threads = json.loads((sweep_dir / job / "run.json").read_text())["torch_threads"]
        assert threads == max(1, cores // 2)


def test_optuna_records_a_failed_trial_goes_on_and_continues_its_stored_study(tmp_path):
    sweep_dir = tmp_path / "optuna"
    args = ("hparams_search=separation_optuna", "model.units=choice(-3,8)", f"hydra.sweep.dir={sweep_dir}",
            f"paths.data_dir={tmp_path / 'data'}", "logger=csv", "debug=fdr", *SMALL)
    first = run_cli("train", "hydra.sweeper.n_trials=3", *args)
    assert "jobs failed" in first.stderr and first.returncode == 1, first.stderr[-3000:]
    storage = f"sqlite:///{sweep_dir / 'optuna.db'}"
    study = optuna.load_study(study_name="separation", storage=storage)
    states = [t.state.name for t in study.trials]
    assert len(states) == 3 and "FAIL" in states and "COMPLETE" in states
    completed = [t for t in study.trials if t.state.name == "COMPLETE"]
    best = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert best["best_value"] == pytest.approx(max(t.value for t in completed))
    assert len(table(sweep_dir / "comparison.csv")) == 3
    again = run_cli("train", "hydra.sweeper.n_trials=4", *args)
    assert f"has {len(completed)} finished trial(s); running {4 - len(completed)} more" in again.stdout
    study = optuna.load_study(study_name="separation", storage=storage)
    assert len(study.trials) == 3 + 4 - len(completed)


def test_submitit_local_launcher_runs_two_jobs(tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = run_cli("train", "-m", "hydra/launcher=submitit_local", "seed=1,2", f"hydra.sweep.dir={sweep_dir}",
                     f"paths.data_dir={tmp_path / 'data'}", "logger=csv", "debug=fdr", *SMALL, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert statuses(sweep_dir) == {"0": "completed", "1": "completed"}
    assert (sweep_dir / "comparison.md").is_file()


def fake_job(folder: Path, overrides: list[str], results: dict, monitor="val/si_snr", mode="max") -> None:
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (folder / "results.json").write_text(json.dumps(results))
    (folder / "config.yaml").write_text(yaml.safe_dump({"task": {"monitor": monitor, "mode": mode}}))


def grid_score(units: int, lr: float, seed: int) -> float:
    return 10 + units / 8 - abs(lr - 1e-3) * 1000 + 0.5 * seed


def test_compare_writes_table_seed_statistics_heatmap_and_best_that_composes(tmp_path):
    sweep = tmp_path / "sweep"
    job = 0
    for units in (8, 32, 64):
        for lr in (3e-4, 1e-3, 3e-3):
            for seed in (0, 1):
                overrides = ["hparams_search=separation_grid", f"model.units={units}", f"optimizer.lr={lr}",
                             f"seed={seed}", "logger=csv"]
                failed = units == 64 and lr == 3e-3 and seed == 1
                results = ({"status": "failed", "error": "boom", "wall_seconds": 1.0} if failed else
                           {"status": "completed", "val/si_snr": grid_score(units, lr, seed) - 1,
                            "val/si_snr_best": grid_score(units, lr, seed), "test/si_snr": 1.0 + seed,
                            "wall_seconds": 2.0})
                fake_job(sweep / str(job), overrides, results)
                job += 1
    done = run_cli("compare", str(sweep))
    assert done.returncode == 0, done.stderr
    rows = table(sweep / "comparison.csv")
    assert len(rows) == 18 and rows[-1]["status"] == "failed" and rows[-1]["error"] == "boom"
    assert {"job", "model.units", "optimizer.lr", "seed", "val/si_snr (best epoch)", "val/si_snr", "test/si_snr",
            "status", "error", "wall_seconds"} <= set(rows[0])
    scores = [float(r["val/si_snr (best epoch)"]) for r in rows[:-1]]
    assert scores == sorted(scores, reverse=True) and scores[0] == grid_score(64, 1e-3, 1)
    by_seed = table(sweep / "comparison_by_seed.csv")
    assert len(by_seed) == 9 and {"val/si_snr_mean", "val/si_snr_std", "n"} <= set(by_seed[0])
    top = by_seed[0]
    assert (top["model.units"], top["optimizer.lr"]) == ("64", "0.001")
    assert float(top["val/si_snr_mean"]) == pytest.approx(grid_score(64, 1e-3, 0) + 0.25)
    assert float(top["val/si_snr_std"]) == pytest.approx(0.5 / 2 ** 0.5)  # seeds 0 and 1 differ by 0.5
    assert [r["n"] for r in by_seed if (r["model.units"], r["optimizer.lr"]) == ("64", "0.003")] == ["1"]
    # every final test metric is aggregated too: seeds 0 and 1 report 1.0 and 2.0
    assert float(top["test/si_snr_mean"]) == pytest.approx(1.5)
    assert float(top["test/si_snr_std"]) == pytest.approx(0.5 ** 0.5)
    assert "| 1.5 ± 0.71 |" in (sweep / "comparison_by_seed.md").read_text()
    assert (sweep / "figures" / "sweep_heatmap.png").stat().st_size > 10_000
    assert "comparison.md" in done.stdout and "| job |" in (sweep / "comparison.md").read_text()
    best = yaml.safe_load((sweep / "best.yaml").read_text())
    assert best["overrides"] == ["model.units=64", "optimizer.lr=0.001", "logger=csv"]
    assert best["command"] == "speechexp-train model.units=64 optimizer.lr=0.001 logger=csv"
    composed = run_cli("train", *best["overrides"], "--cfg", "job")
    assert composed.returncode == 0, composed.stderr
    config = yaml.safe_load(composed.stdout)
    assert config["model"]["units"] == 64 and config["optimizer"]["lr"] == 0.001


def test_compare_one_parameter_with_seeds_draws_error_bars(tmp_path):
    for i, (lr, seed) in enumerate((lr, seed) for lr in (1e-4, 1e-3, 1e-2) for seed in (0, 1, 2)):
        fake_job(tmp_path / "sweep" / str(i), [f"optimizer.lr={lr}", f"seed={seed}"],
                 {"status": "completed", "val/cer": 0.1 * (seed + 1) * (1 + abs(lr - 1e-3)), "wall_seconds": 1.0},
                 monitor="val/cer", mode="min")
    done = run_cli("compare", str(tmp_path / "sweep"))
    assert done.returncode == 0, done.stderr
    by_seed = table(tmp_path / "sweep" / "comparison_by_seed.csv")
    assert by_seed[0]["optimizer.lr"] == "0.001" and by_seed[0]["n"] == "3"  # min: lowest CER first
    assert float(by_seed[0]["val/cer_std"]) == pytest.approx(0.1)
    assert (tmp_path / "sweep" / "figures" / "sweep_line.png").stat().st_size > 10_000


def test_compare_of_a_folder_without_results_is_one_sentence(tmp_path):
    done = run_cli("compare", str(tmp_path))
    assert_one_line_error(done, f"No results.json under {tmp_path}")
    assert re.match(r"^Error: ", done.stderr)


def test_compare_by_another_metric_reads_its_direction_from_its_name_and_refuses_one_no_job_has(tmp_path):
    """``--metric test/cer`` ranks the lowest CER first although the task's monitor is maximised;
    a metric no job recorded, or one whose name says no direction, is one sentence."""
    from speechexp.errors import SpeechexpError
    from speechexp.sweeps.comparison import compare

    for i, cer in enumerate((0.3, 0.1, 0.2)):
        fake_job(tmp_path / "sweep" / str(i), [f"seed={i}"], {"status": "completed", "val/score": 1 - cer,
                                                               "test/cer": cer, "test/uar": cer, "test/odd": cer},
                 monitor="val/score", mode="max")
    ranked_by = {m: [j.results[m] for j in compare([tmp_path / "sweep"], m).jobs] for m in ("test/cer", "test/uar")}
    assert ranked_by == {"test/cer": [0.1, 0.2, 0.3], "test/uar": [0.3, 0.2, 0.1]}
    assert compare([tmp_path / "sweep"], "test/odd", "max").mode == "max"  # --mode settles an unknown name
    with pytest.raises(SpeechexpError, match=r"Which way test/odd is better .* pass --mode min or --mode max"):
        compare([tmp_path / "sweep"], "test/odd")
    with pytest.raises(SpeechexpError, match=r"No job recorded the metric val/cer; pass --metric with one they did "
                                             r"\(test/cer, test/odd, test/uar, val/score\)"):
        compare([tmp_path / "sweep"], "val/cer")
