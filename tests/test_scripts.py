"""The scripts run and report what they promise (speed itself is not asserted)."""

from __future__ import annotations

import csv
import json

import pytest

from tests.cli_fork import ForkedProcess
from tests.conftest import REPO, cli_env, run_script


def script_output(script: str, *args: str) -> str:
    done = run_script(script, *args)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_the_scripts_refuse_bad_input_in_one_sentence(tmp_path):
    """A checkpoint of the other task, a folder that is no prepared corpus, an override that
    names no key, a size of none: one line each, no traceback, started side by side."""
    import torch  # noqa: PLC0415

    torch.save({"state_dict": {}, "speechexp_config": {"task": {"name": "separation"}}}, tmp_path / "sep.ckpt")
    calls = {"scripts/bench_decoders.py": ([str(tmp_path / "sep.ckpt")], 1,
                                           "was trained for task=separation, but this reads task=asr_emotion checkpoints"),
             "scripts/voice_folder.py": ([str(tmp_path), str(tmp_path / "out")], 1,
                                         f"{tmp_path}/metadata.csv does not exist"),
             "scripts/emotion_ceiling.py": (["dataset.preparer.nokey=1"], 1,
                                            "Could not override 'dataset.preparer.nokey'"),
             "scripts/compare_ctc.py": (["--T", "0"], 2, "argument --T: '0' is not a whole number above 0")}
    started = {script: ForkedProcess(script, args, REPO, cli_env()) for script, (args, _, _) in calls.items()}
    for script, (_, code, said) in calls.items():
        _, stderr = started[script].communicate(timeout=300)
        assert started[script].returncode == code and "Traceback" not in stderr, (script, stderr[-2000:])
        assert said in stderr.strip().splitlines()[-1], (script, stderr[-2000:])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sep.ckpt"]  # no output folder made


def test_compare_ctc_shows_equal_losses_for_every_reduction():
    lines = script_output("scripts/compare_ctc.py").splitlines()
    table = {line.split()[0]: line.split()[1:] for line in lines if line.startswith(("mean ", "sum "))}
    for reduction in ("mean", "sum"):
        custom, builtin = float(table[reduction][0]), float(table[reduction][1])
        assert custom == pytest.approx(builtin, rel=1e-5), reduction
    none_line = next(line for line in lines if line.startswith("none"))
    assert float(none_line.split("=")[-1]) < 1e-4
    assert any("mean_b(loss_b / L_b)" in line for line in lines)  # the normalisations are compared


def test_bench_ctc_json_covers_the_issue_shapes():
    report = json.loads(script_output("scripts/bench_ctc.py", "--reps", "1", "--no-memory", "--json"))
    shapes = [(row["T"], row["N"], row["S"]) for row in report["rows"]]
    assert shapes == [(100, 8, 20), (100, 64, 20), (500, 8, 20), (500, 64, 100), (1000, 8, 200), (1000, 64, 200)]
    for row in report["rows"]:
        assert row["builtin_ms"] > 0 and row["custom_ms"] > 0
        assert row["ratio"] == pytest.approx(row["custom_ms"] / row["builtin_ms"], rel=1e-6)
    assert report["classes"] == 30 and report["device"] == "cpu"


def test_bench_sweep_bound_is_serial_overhead_plus_half_the_one_thread_work():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_sweep", REPO / "scripts" / "bench_sweep.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    # serial sweep: 100 s wall, its jobs 4 x 20 s (so 20 s of launch overhead); 1-thread jobs 4 x 30 s
    assert bench.lowest_ratio(100.0, [20.0] * 4, [30.0] * 4) == pytest.approx((20 + 60) / 100)
    # jobs that gain nothing from a second thread: two at once halve the work
    assert bench.lowest_ratio(100.0, [25.0] * 4, [25.0] * 4) == pytest.approx(0.5)


def test_emotion_per_voice_finds_a_source_whose_cue_goes_the_other_way(tmp_path):
    """Four sources render two emotions as tones: "angry" louder than "neutral" in a, b and d,
    quieter in c (a cue inverted, as a peak limiter did to loud engines). Within each source the
    classifier reads them; trained on the other sources it reads a, b and d, not c."""
    import importlib.util

    import numpy as np
    import soundfile as sf

    spec = importlib.util.spec_from_file_location("emotion_per_voice", REPO / "scripts" / "emotion_per_voice.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    rng = np.random.default_rng(0)
    rows, rate = [], 16000
    time = np.arange(int(0.5 * rate)) / rate
    for source, louder in (("a", 1), ("b", 1), ("c", -1), ("d", 1)):
        for speaker in range(6):
            pitch = 120 * 1.1 ** speaker
            for take in range(4):
                for emotion in ("neutral", "angry"):
                    gain_db = (3.0 if emotion == "angry" else -3.0) * louder + rng.normal(0, 0.5)
                    audio = 0.1 * 10 ** (gain_db / 20) * np.sin(2 * np.pi * pitch * time)
                    path = f"{source}/{speaker}_{take}_{emotion}.wav"
                    (tmp_path / source).mkdir(exist_ok=True)
                    sf.write(tmp_path / path, audio.astype(np.float32), rate)
                    rows.append({"path": path, "speaker": f"{source}{speaker}", "emotion": emotion,
                                 "text": "the cat", "source": source})
    with (tmp_path / "metadata.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    report = script.uar_per_source(tmp_path, ["neutral", "angry"])
    assert {s: r["speakers"] for s, r in report.items()} == {"a": 6, "b": 6, "c": 6, "d": 6}
    assert all(report[s]["uar"] > 0.9 for s in "abcd")
    assert all(report[s]["uar_from_other_sources"] > 0.9 for s in "abd")
    assert report["c"]["uar_from_other_sources"] < 0.2  # the others' rule reads c's emotions backwards


def test_bench_gloo_exit_counts_each_way_and_the_destroyed_group_never_aborts():
    lines = script_output("scripts/bench_gloo_exit.py", "--runs", "1").splitlines()
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]
    assert [row[0] for row in rows] == ["group left to shutdown (Lightning, gloo)", "destroyed at exit (speechexp)"]
    assert [row[1] for row in rows] == ["1", "1"] and int(rows[0][2]) in (0, 1)
    assert rows[1][2] == "0"  # none of 40 pairs did in the README's measurement


def test_ablation_table_puts_each_steps_figures_in_its_row_in_the_order_run(tmp_path):
    def bench_row(name, cer, uar=None):
        return {"set": name, "cer": cer, "cer_low": cer - 0.05, "cer_high": cer + 0.05, "wer": cer + 0.3,
                "uar": uar, "per": None, "seen": None, "utterances": 10}

    (tmp_path / "steps").write_text("0_espeak\n5_recipe\n")
    for step, ked, people, own in (("0_espeak", 0.78, 0.90, 0.25), ("5_recipe", 0.31, 0.62, 0.29)):
        (tmp_path / step).mkdir()
        (tmp_path / step / "results.json").write_text(json.dumps({"test/cer": own, "test/uar": 0.9}))
        (tmp_path / f"{step}.wall").write_text("123\n")
        (tmp_path / f"{step}.overrides").write_text(f"experiment={step}\n")
        rows = [bench_row("ked", ked, 0.4), bench_row("real-dev/alsa", people - 0.2), bench_row("real-dev", people),
                bench_row("real-dev/tuxpaint", people + 0.04)]
        (tmp_path / f"{step}.bench.json").write_text(json.dumps({"rows": rows, "against": []}))
    lines = script_output("scripts/ablation_table.py", str(tmp_path)).splitlines()
    assert lines[0] == ("| step | ked CER | ked UAR | real-dev CER | 95 % interval | real-dev WER | alsa CER "
                        "| tuxpaint CER | own test CER / UAR | wall s | overrides |")
    assert lines[2] == ("| 0_espeak | 0.780 | 0.400 | 0.900 | 0.850 to 0.950 | 1.200 | 0.700 | 0.940 "
                        "| 0.250 / 0.900 | 123 | `experiment=0_espeak` |")
    assert lines[3].startswith("| 5_recipe | 0.310 | 0.400 | 0.620 | 0.570 to 0.670 |")
    assert len(lines) == 4


def test_ablation_table_shows_dashes_for_a_step_still_running_and_names_a_wrong_folder(tmp_path):
    (tmp_path / "steps").write_text("0_espeak\n")
    (tmp_path / "0_espeak.overrides").write_text("experiment=asr_emotion\n")
    row = script_output("scripts/ablation_table.py", str(tmp_path)).splitlines()[-1]
    assert row == "| 0_espeak | — | — | — | — | — | — / — | — | `experiment=asr_emotion` |"
    done = run_script("scripts/ablation_table.py", str(tmp_path / "elsewhere"))
    assert done.returncode != 0 and "has no 'steps' file" in done.stderr
