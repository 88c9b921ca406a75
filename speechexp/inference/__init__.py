"""Using a trained model on any audio: :func:`load_model` (the Python API) and the pieces
``speechexp-infer`` is built from.

    from speechexp import load_model
    model = load_model("outputs/asr_emotion/runs/<time>/checkpoints/last.ckpt")
    result = model.transcribe(audio, 44100)   # .text, .emotion, .emotion_probs, .words

Modules: :mod:`.audio` (reading, downmixing, resampling), :mod:`.separation` (windows and
overlap-add), :mod:`.transcription` (results, word timings), :mod:`.model` (the loaded
models), :mod:`.files` and :mod:`.predict` (the command line's inputs and outputs).
"""

from __future__ import annotations

from typing import Any

__all__ = ["AsrEmotionModel", "SeparationModel", "Transcription", "Word", "load_model", "read_audio"]

_HOMES = {"AsrEmotionModel": "model", "SeparationModel": "model", "load_model": "model",
          "Transcription": "transcription", "Word": "transcription", "read_audio": "audio"}


def __getattr__(name: str) -> Any:
    """Import the module behind ``name`` when first used (torch loads only then)."""
    if name in _HOMES:
        import importlib  # noqa: PLC0415

        return getattr(importlib.import_module(f"speechexp.inference.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'speechexp.inference' has no attribute {name!r}")
