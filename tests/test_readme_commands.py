"""Every command in the README's bash blocks runs, so a documented override cannot rot.

Each command runs in a fast form (tiny data, one or two epochs, in a scratch folder) or,
where running is expensive or needs what this machine lacks (sweeps, SLURM, a corpus
folder), is pre-flighted: its config composed (``--cfg job``) or its refusal read. All of
them run in one interpreter, in the README's order.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from speechexp.data.tts import installed_voices
from tests.conftest import REPO, compose_config, run_cli, run_cli_each

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


def command_args(command: str) -> tuple[str, list[str]]:
    """The command's module and its arguments, optional parts given and ``<time>`` filled in."""
    written = command.replace("[more folders]", "").replace("[", "").replace("]", "")  # optional parts: given
    return MODULES[shlex.split(command)[0]], [a.replace("<time>", "t0") for a in shlex.split(written)[1:]]


def corpus_folder(args: list[str]) -> str | None:
    return next((a for a in args if a.startswith("dataset.root=")), None)


def voices_missing(args: list[str]) -> bool:
    """A command of the voices experiment on a machine without its engines (refused: make voices)."""
    return "experiment=asr_emotion_voices" in args and not set(experiment_voices()) <= set(installed_voices())


def preflight(module: str, args: list[str]) -> list[str] | None:
    """The arguments that check a command without running it, where it is checked so: the
    config composed (``--cfg job``) for evaluations, inference, exports and sweeps (Hydra
    composes one job at a time: a sweep's first point)."""
    if module in ("infer", "export", "evaluate") or (module == "train" and is_composed_only(args)):
        if "-m" in args:
            args = [re.sub(r"^([\w./]+)=([^,=\[]+),.*$", r"\1=\2", a) for a in args if a != "-m"]
        return [*args, "--cfg", "job", "--resolve"]
    return None


def fast_run(module: str, args: list[str], workspace: Path, name: str) -> list[str] | None:
    """The arguments that run a command in its fast form, or ``None`` where it is only composed."""
    if module == "plot":
        return [str(p) for a in args for p in (sorted(workspace.glob(a)) or [a])]
    if module in ("compare", "report"):
        return args
    if module == "prepare":
        if corpus_folder(args):  # no corpus here: run as written, to be refused
            return args
        if any("asr_emotion" in a for a in args):  # the tiny data of the command's dataset
            voices = ("dataset.preparer.speakers_per_voice=1",) if "experiment=asr_emotion_voices" in args else ()
            return [*args, *TINY_ASR[:3], *voices]
        return [*args, *TINY[:1]]
    if module in ("infer", "export", "evaluate"):  # run where its checkpoint was trained here and its input exists
        setting = {a.split("=", 1)[0]: a.split("=", 1)[1] for a in args if "=" in a}
        trained_here = (workspace / setting.get("ckpt_path", "")).is_file()
        if not (trained_here and list(workspace.glob(setting.get("input", "*")))):
            return None
        return [*args, f"hydra.run.dir={run_dir_of(module, args, name)}"]
    if is_composed_only(args):
        return None
    own_dir = any(a.startswith("hydra.run.dir=") for a in args)
    return [*fast_form(args), *([] if own_dir else [f"hydra.run.dir={run_dir_of(module, args, name)}"])]


def run_dir_of(module: str, args: list[str], name: str) -> str:
    """Where a command's run writes: its own ``hydra.run.dir``, else a folder of its own."""
    given = next((a.split("=", 1)[1] for a in args if a.startswith("hydra.run.dir=")), None)
    return given or ("outputs/eval" if module == "evaluate" else f"outputs/readme/{name}")


@pytest.fixture(scope="module")
def outcomes(workspace) -> dict[str, dict[str, subprocess.CompletedProcess]]:
    """Each command's ``preflight`` and ``run``, in the README's order, all in one interpreter as
    Hydra runs the jobs of a sweep: a process per command would spend most of its time starting
    torch and Lightning."""
    planned = []
    for index, command in enumerate(COMMANDS):
        module, args = command_args(command)
        calls = {"preflight": preflight(module, args), "run": fast_run(module, args, workspace, str(index))}
        for stage, call in calls.items():
            if call is not None:
                planned.append((command, stage, (module, call)))
    done = run_cli_each([call for _, _, call in planned], cwd=workspace, timeout=1800)
    found: dict[str, dict[str, subprocess.CompletedProcess]] = {}
    for (command, stage, _), result in zip(planned, done):
        found.setdefault(command, {})[stage] = result
    return found


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command_runs(command, workspace, outcomes):
    module, args = command_args(command)
    checked, ran = outcomes[command].get("preflight"), outcomes[command].get("run")
    if checked is not None:
        assert checked.returncode == 0 and "Traceback" not in checked.stderr, f"{command}\n{checked.stderr[-2000:]}"
    if ran is None:
        assert checked is not None
        return
    last = (ran.stderr.strip().splitlines() or [""])[-1]
    if module == "prepare" and corpus_folder(args):  # no corpus here: refused in one sentence naming the folder
        assert ran.returncode == 1 and "Traceback" not in ran.stderr
        assert last.startswith("Error: ") and "dataset.root" in ran.stderr
    elif voices_missing(args):
        assert ran.returncode == 1 and "make voices" in last, ran.stderr
    else:
        assert ran.returncode == 0, f"{command}\n{ran.stderr[-3000:]}"
        if module == "prepare":
            assert (workspace / ran.stdout.strip().splitlines()[-1]).is_dir()  # the folder it prints
        if module == "train":
            run_dir = workspace / run_dir_of(module, args, str(COMMANDS.index(command)))
            assert json.loads((run_dir / "results.json").read_text())["status"] == "completed"
