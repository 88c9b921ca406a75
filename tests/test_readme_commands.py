"""Every command in the README's bash blocks runs, so a documented override cannot rot.

Each command runs in a fast form (tiny data, one or two epochs, in a scratch folder) or,
where running is expensive or needs what this machine lacks (sweeps, SLURM, a corpus
folder), is composed and pre-flighted (``--cfg job``, the same checks a run starts with).
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from speechexp.data.tts import installed_voices
from tests.conftest import REPO, compose_config, run_cli

README = (REPO / "README.md").read_text()
MODULES = {"speechexp-train": "train", "speechexp-eval": "evaluate", "speechexp-prepare": "prepare",
           "speechexp-plot": "plot", "speechexp-compare": "compare", "speechexp-infer": "infer",
           "speechexp-report": "report", "speechexp-export": "export"}
TINY = ("dataset.preparer.n_examples=20", "trainer.limit_train_batches=2", "trainer.limit_val_batches=2",
        "trainer.limit_test_batches=2", "trainer.enable_progress_bar=false")
TINY_ASR = ("dataset.preparer.num_speakers=10", "dataset.preparer.utterances_per_speaker=5",
            "dataset.preparer.num_sentences=30", *TINY[1:])


def experiment_voices() -> list[str]:
    """The engine voices ``experiment=asr_emotion_voices`` synthesises."""
    preparer = compose_config("train", ["experiment=asr_emotion_voices"]).dataset.preparer
    return list(preparer.voices)


def readme_commands() -> list[str]:
    """The ``speechexp-*`` lines of the README's bash blocks, without their comments."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README, re.S):
        for line in block.splitlines():
            line = re.split(r"\s+#", line.strip(), maxsplit=1)[0].strip()
            if line.split(" ", 1)[0] in MODULES:
                commands.append(line)
    return commands


COMMANDS = readme_commands()


def is_composed_only(args: list[str]) -> bool:
    """Sweeps (many jobs, launchers, Optuna studies) are composed, not run."""
    return any(a in ("-m", "--multirun") or a.startswith(("hparams_search=", "hydra/launcher=")) for a in args)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A scratch folder holding what the README's commands refer to: the data and a trained run."""
    root = tmp_path_factory.mktemp("readme")
    (root / "my_conf" / "experiment").mkdir(parents=True)  # the README's own example config
    example = re.search(r"cat > my_conf/experiment/mine.yaml <<'YAML'\n(.*?)\nYAML", README, re.S)
    (root / "my_conf" / "experiment" / "mine.yaml").write_text(example.group(1) + "\n")
    done = run_cli("train", *TINY, "trainer.max_epochs=1", "logger=csv", "hydra.run.dir=outputs/separation/runs/t0",
                   cwd=root)
    assert done.returncode == 0, done.stderr[-2000:]
    sweep = run_cli("train", "-m", "seed=0,1", *TINY, "trainer.max_epochs=1", "logger=csv",
                    "hydra.sweep.dir=outputs/separation/multiruns/t0", cwd=root)
    assert sweep.returncode == 0, sweep.stderr[-2000:]
    return root


def fast_form(args: list[str]) -> list[str]:
    """The command's own arguments with its budget scaled down (10 epochs -> 1, 20 or 25 -> 2)
    and tiny data of its experiment appended."""
    out = []
    for arg in args:
        if arg.startswith("trainer.max_epochs="):
            arg = f"trainer.max_epochs={max(1, int(arg.split('=')[1]) // 10)}"
        out.append(arg)
    if not any(a.startswith("trainer.max_epochs=") for a in out):
        out.append("trainer.max_epochs=1")
    asr = any("asr_emotion" in a for a in out)
    voices = ("dataset.preparer.speakers_per_voice=1",) if any("asr_emotion_voices" in a for a in out) else ()
    return [*out, *(TINY_ASR if asr else TINY), *voices, "logger=csv"] if "logger=many" not in out else [*out, *TINY]


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command_runs(command, workspace):
    written = command.replace("[more folders]", "").replace("[", "").replace("]", "")  # optional parts: given
    args = [a.replace("<time>", "t0") for a in shlex.split(written)[1:]]
    module = MODULES[shlex.split(command)[0]]
    if module in ("plot", "compare", "report"):
        args = [str(p) for a in args for p in (sorted(workspace.glob(a)) or [a])] if module == "plot" else args
        result = run_cli(module, *args, cwd=workspace)
        assert result.returncode == 0, f"{command}\n{result.stderr[-2000:]}"
        return
    if module == "prepare":
        corpus = next((a for a in args if a.startswith("dataset.root=")), None)
        voices = "experiment=asr_emotion_voices" in args
        if corpus:
            tiny = ()
        elif any("asr_emotion" in a for a in args):  # the tiny data of the command's dataset
            tiny = TINY_ASR[:3] + (("dataset.preparer.speakers_per_voice=1",) if voices else ())
        else:
            tiny = TINY[:1]
        result = run_cli(module, *args, *tiny, cwd=workspace)
        if corpus:  # no corpus here: refused in one sentence naming the folder to pass
            assert result.returncode == 1 and "Traceback" not in result.stderr
            assert result.stderr.strip().splitlines()[-1].startswith("Error: ") and "dataset.root" in result.stderr
        elif voices and not set(experiment_voices()) <= set(installed_voices()):
            assert result.returncode == 1 and "make voices" in result.stderr.strip().splitlines()[-1], result.stderr
        else:
            assert result.returncode == 0, f"{command}\n{result.stderr[-2000:]}"
            assert (workspace / result.stdout.strip().splitlines()[-1]).is_dir()  # the folder it prints
        return
    if module in ("infer", "export"):  # composed; and run where its checkpoint was trained here and its input exists
        result = run_cli(module, *args, "--cfg", "job", "--resolve", cwd=workspace)
        assert result.returncode == 0 and "Traceback" not in result.stderr, f"{command}\n{result.stderr[-2000:]}"
        setting = {a.split("=", 1)[0]: a.split("=", 1)[1] for a in args if "=" in a}
        if (workspace / setting["ckpt_path"]).is_file() and list(workspace.glob(setting.get("input", "*"))):
            result = run_cli(module, *args, f"hydra.run.dir=outputs/readme/{abs(hash(command))}", cwd=workspace)
            assert result.returncode == 0, f"{command}\n{result.stderr[-2000:]}"
        return
    if module == "evaluate" or is_composed_only(args):
        if "-m" in args:  # Hydra composes one job at a time: the sweep's first point
            args = [re.sub(r"^([\w./]+)=([^,=\[]+),.*$", r"\1=\2", a) for a in args if a != "-m"]
        result = run_cli(module, *args, "--cfg", "job", "--resolve", cwd=workspace)
        assert result.returncode == 0 and "Traceback" not in result.stderr, f"{command}\n{result.stderr[-2000:]}"
        ckpt = next((a.split("=", 1)[1] for a in args if a.startswith("ckpt_path=")), "")
        if module == "evaluate" and (workspace / ckpt).is_file():  # and the evaluation of the run trained here
            result = run_cli(module, *args, "hydra.run.dir=outputs/eval", cwd=workspace)
            assert result.returncode == 0, f"{command}\n{result.stderr[-2000:]}"
        return
    run_dir = next((a.split("=", 1)[1] for a in args if a.startswith("hydra.run.dir=")), None)
    extra = () if run_dir else (f"hydra.run.dir=outputs/readme/{abs(hash(command))}",)
    result = run_cli(module, *fast_form(args), *extra, cwd=workspace)
    if "experiment=asr_emotion_voices" in args and not set(experiment_voices()) <= set(installed_voices()):
        assert result.returncode == 1 and "make voices" in result.stderr.strip().splitlines()[-1], result.stderr
        return
    assert result.returncode == 0, f"{command}\n{result.stderr[-3000:]}"
    out_dir = workspace / (run_dir or extra[0].split("=", 1)[1])
    assert json.loads((out_dir / "results.json").read_text())["status"] == "completed"
