"""Which backend computes the CTC, and the fallback from Triton to torch.

Backends (``backend=`` of ``ctc_loss`` and ``CTCLoss``; by default picked from the device):

* ``'numba'`` (CPU): :mod:`speechexp.losses.ctc.numba`, faster than the built-in;
* ``'triton'`` (CUDA): :mod:`speechexp.losses.ctc.triton`, one launch for the whole
  forward-backward pass; with CPU tensors it runs in Triton's interpreter (tests);
* ``'torch'`` (any device): :mod:`speechexp.losses.ctc.torch`, vectorised torch code with
  a Python loop over the frames; the fallback without numba (CPU) or triton (CUDA).

Each backend module has the same ``forward_backward(log_probs (T, N, C), targets (N, S),
input_lengths (N,), target_lengths (N,), blank, want_grad) -> (loss (N,), grad (T, N, C)
or None)``; triton and torch also have ``viterbi(...) -> (path (N, T), score (N,))``
(numba has none: ``'numba'`` aligns with torch). A Triton kernel that was chosen
automatically and cannot run here (no compiler for this GPU, a driver problem) warns
once and leaves the work to torch from then on: a :class:`Backends` object remembers
that, :data:`DEFAULT` for the whole process.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import torch

from speechexp.losses.ctc import torch as ctc_torch
from speechexp.losses.ctc.inputs import check_choice

try:  # numba is optional: the torch path covers everything, only slower on CPU
    from speechexp.losses.ctc import numba as ctc_numba
except ImportError:  # pragma: no cover - exercised only without numba
    ctc_numba = None

BACKENDS = ("numba", "torch", "triton")
THREADINGS = ("auto", "serial", "pool")  # the numba driver's thread policies (see ctc.numba.forward_backward)
TRITON_INSTALLED = importlib.util.find_spec("triton") is not None

Result = TypeVar("Result")


def _ctc_triton():
    """The Triton backend, imported on first use (importing triton takes a second)."""
    from speechexp.losses.ctc import triton as ctc_triton

    return ctc_triton


@dataclass
class Backends:
    """The backends this process can run, and why an automatically chosen Triton kernel
    failed (``triton_failed``), if it did: then the torch path runs instead from then on."""

    numba: bool = ctc_numba is not None
    triton: bool = TRITON_INSTALLED
    triton_failed: str | None = None

    def choose(self, backend: str | None, device: torch.device) -> tuple[str, bool]:
        """(backend to use for tensors on ``device``, whether it was chosen automatically);
        a ``ValueError`` when the named ``backend`` cannot run there."""
        if backend is None:
            if device.type == "cpu":
                return ("numba" if self.numba else "torch"), True
            if device.type == "cuda" and self.triton and self.triton_failed is None:
                return "triton", True
            return "torch", True
        check_choice("backend", backend, BACKENDS)
        if backend == "numba" and (not self.numba or device.type != "cpu"):
            raise ValueError("backend 'numba' needs numba installed and log_probs on the CPU.")
        if backend == "triton" and (not self.triton or device.type not in ("cuda", "cpu")):
            raise ValueError("backend 'triton' needs the triton package and log_probs on CUDA (or the CPU, interpreted).")
        return backend, False

    def forward_backward(self, backend: str, auto: bool, log_probs: torch.Tensor, targets: torch.Tensor,
                         input_lengths: torch.Tensor, target_lengths: torch.Tensor, blank: int, want_grad: bool,
                         threading: str = "auto") -> tuple[torch.Tensor, torch.Tensor | None]:
        """The chosen backend's ``forward_backward`` (see the module docstring for shapes);
        ``threading`` is the numba driver's thread policy."""
        args = (log_probs, targets, input_lengths, target_lengths, blank, want_grad)
        if backend == "numba":
            return ctc_numba.forward_backward(*args, threading=threading)
        if backend == "triton":
            return self.fallback(auto, lambda: _ctc_triton().forward_backward(*args),
                                 lambda: ctc_torch.forward_backward(*args))
        return ctc_torch.forward_backward(*args)

    def viterbi(self, backend: str, auto: bool, log_probs: torch.Tensor, targets: torch.Tensor,
                input_lengths: torch.Tensor, target_lengths: torch.Tensor, blank: int
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """The chosen backend's ``viterbi``: triton's, or torch's for every other backend."""
        args = (log_probs, targets, input_lengths, target_lengths, blank)
        if backend == "triton":
            return self.fallback(auto, lambda: _ctc_triton().viterbi(*args), lambda: ctc_torch.viterbi(*args))
        return ctc_torch.viterbi(*args)

    def fallback(self, auto: bool, run_triton: Callable[[], Result], run_torch: Callable[[], Result]) -> Result:
        """Run the Triton kernel; if it was chosen automatically and cannot run here, warn
        once and use the torch path (now and from then on). An explicitly requested
        backend='triton' raises instead."""
        if not auto:
            return run_triton()
        try:
            return run_triton()
        except torch.cuda.OutOfMemoryError:
            raise  # the torch path needs more memory, not less
        except Exception as exc:  # noqa: BLE001 - any failure to compile/launch: fall back
            self.triton_failed = f"{type(exc).__name__}: {exc}"
            warnings.warn(f"speechexp CTC: the Triton kernel failed ({self.triton_failed}); using the slower torch "
                          "path from now on. Pass backend='triton' to see the error.", RuntimeWarning, stacklevel=3)
            return run_torch()


DEFAULT = Backends()  # the process's: ctc_loss, ctc_alignment and CTCLoss use it
