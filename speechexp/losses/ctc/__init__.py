"""CTC loss written from scratch, a drop-in replacement for ``torch.nn.functional.ctc_loss``.

Values and gradients match the built-in (to float rounding), including its
conventions: per-sample losses are ``inf`` exactly when no alignment fits, the
gradient w.r.t. ``log_probs`` is the built-in's ``exp(log_probs) - gamma`` (gamma
= posterior occupation of each class; this is the true gradient w.r.t. the logits
through ``log_softmax``), frames beyond an input length get a zero gradient, and
samples with an infinite loss get NaN gradients unless ``zero_infinity``.

Half-precision log-probs (float16/bfloat16, e.g. under ``precision=16-mixed``) are
computed in float32 by :class:`CTCLoss` (the function itself asks for float32/64).

The package, one module per job:

* ``api``: the autograd function, :func:`ctc_loss`, :class:`CTCLoss`, :func:`ctc_alignment`
  (the Viterbi path) and :func:`ctc_alignment_targets` (per-frame posteriors);
* ``inputs``: argument checks and the canonical batch the backends receive;
* ``dispatch``: which backend runs (``backend=``, by default picked from the device)
  and the fallback from an automatically chosen Triton kernel to torch;
* the backends, each with its kernels and driver: ``numba`` (CPU), ``triton`` (CUDA;
  CPU tensors run in Triton's interpreter) and ``torch`` (any device).

Shapes: log-probs ``(T, N, C)``: T frames, N batch, C classes (blank included);
targets ``(N, S)``, S the padded target length.
"""

from speechexp.losses.ctc.api import CTCLoss, ctc_alignment, ctc_alignment_targets, ctc_loss

__all__ = ["CTCLoss", "ctc_alignment", "ctc_alignment_targets", "ctc_loss"]
