"""GPU-facing code without a GPU: the scripts say so in one sentence, the training-step
CTC benchmark runs (its numbers are not asserted), and an automatically chosen Triton
kernel that cannot run falls back to the torch path with one warning."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without a GPU")


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


@no_cuda
def test_bench_ctc_cuda_without_a_gpu_says_so_in_one_sentence():
    done = run(sys.executable, "scripts/bench_ctc.py", "--device", "cuda")
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "--device cuda needs a CUDA GPU" in lines[0], done.stderr


@no_cuda
def test_gpu_check_without_a_gpu_says_so_and_how_to_check_the_plumbing(tmp_path):
    done = run("bash", "scripts/gpu_check.sh", str(tmp_path / "out"), env={"PYTHON": sys.executable})
    assert done.returncode == 2
    assert "no CUDA GPU" in done.stderr and "GPU_CHECK_DEVICE=cpu" in done.stderr


def test_bench_ctc_step_runs_and_prints_its_table():
    done = run(sys.executable, "scripts/bench_ctc_step.py", "--pairs", "1", "--steps", "1", "--batch", "2",
               "--impls", "builtin,custom-serial", "--probe-reps", "1")
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {line.split("|")[0].strip(): line for line in done.stdout.splitlines() if "|" in line}
    assert {"builtin", "custom-serial"} <= set(rows)
    assert "encoder bwd" in done.stdout and "step ratio" in done.stdout and "after a matmul" in done.stdout


def test_automatic_triton_failure_warns_once_and_falls_back_to_torch():
    from speechexp.losses.ctc.dispatch import Backends

    backends = Backends(triton=True)  # its own state: the process's DEFAULT stays untouched
    assert backends.choose(None, torch.device("cuda")) == ("triton", True)

    def broken():
        raise RuntimeError("no compiler for this GPU")

    with pytest.warns(RuntimeWarning, match="Triton kernel failed .*no compiler for this GPU"):
        assert backends.fallback(True, broken, lambda: "torch path") == "torch path"
    assert backends.triton_failed == "RuntimeError: no compiler for this GPU"
    assert backends.choose(None, torch.device("cuda")) == ("torch", True)  # from now on
    assert backends.choose("triton", torch.device("cuda")) == ("triton", False)  # still on request
    with pytest.raises(RuntimeError, match="no compiler"):  # asked for explicitly: the error itself
        backends.fallback(False, broken, lambda: "torch path")
