"""Writing a loaded model as ONNX or TorchScript, and checking the written file against PyTorch.

The graphs (:mod:`speechexp.inference.graphs`) take the raw waveform at the model's
sample rate with dynamic batch and time axes. What a deployment needs beside the graph
(the sample rate, the CTC labels, the emotion names, whether ``speaker_mean`` is an
input) is stored in the file (ONNX ``metadata_props``; TorchScript ``extra_files``
``speechexp.json``) and in a ``<file>.json`` beside it.

Inputs and outputs, by name:

- separation: ``mixture [batch, time]`` float32 → ``sources [batch, n_src, time]``;
- asr_emotion: ``audio [batch, samples]`` float32 (zero-padded), ``lengths [batch]`` int64,
  and, when ``speaker_norm`` is true, ``speaker_mean [batch, speaker_mean_size]`` float32 →
  ``log_probs [frames, batch, classes]`` (CTC layout, blank 0), ``out_lengths [batch]``,
  ``emotion_logits [batch, emotions]``, ``mean_features [batch, speaker_mean_size]``
  (``speaker_mean_size``: ``n_mels``, or ``n_mels + 6`` when the model reads prosody,
  ``n_mels + 9`` when that includes pitch).
"""

from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from speechexp.errors import SpeechexpError
from speechexp.inference.graphs import AsrEmotionGraph, SeparatorGraph
from speechexp.io import atomic_path, write_text_atomic

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
OPSET = 17


def graph_of(model: Any) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The export graph of a :func:`speechexp.inference.model.load_model` result (on the CPU,
    in eval mode) and its description (``metadata``)."""
    task = model.task
    if model.kind == "separation":
        graph = SeparatorGraph(task.model)
        meta = {"kind": "separation", "sample_rate": model.sample_rate, "n_sources": model.n_sources,
                "inputs": ["mixture"], "outputs": ["sources"]}
    else:
        graph = AsrEmotionGraph(task.model, model.logmel, model.speaker_norm, task.reads_prosody, task.reads_pitch)
        inputs = ["audio", "lengths"] + (["speaker_mean"] if model.speaker_norm else [])
        meta = {"kind": "asr_emotion", "sample_rate": model.sample_rate, "n_mels": model.logmel.n_mels,
                "labels": ["<blank>", *task.tokenizer.chars], "blank": 0, "emotions": model.emotion_names,
                "speaker_norm": model.speaker_norm, "speaker_mean_size": model.speaker_mean_size, "inputs": inputs,
                # the speaker_mean for a recording with no other recording of its speaker (null: its own mean_features)
                "lone_speaker_mean": None if getattr(task, "lone_mean", None) is None else task.lone_mean.tolist(),
                "outputs": ["log_probs", "out_lengths", "emotion_logits", "mean_features"]}
    return graph.cpu().eval(), meta


def example_inputs(meta: dict[str, Any], batch: int = 2, seconds: float = 1.0, seed: int = 0
                   ) -> dict[str, torch.Tensor]:
    """Inputs by name for a graph described by ``meta``: ``batch`` noise recordings of
    about ``seconds``, of different lengths where the graph takes lengths."""
    gen = torch.Generator().manual_seed(seed)
    samples = max(1, int(seconds * meta["sample_rate"]))
    audio = 0.1 * torch.randn(batch, samples, generator=gen)
    if meta["kind"] == "separation":
        return {"mixture": audio}
    lengths = torch.tensor([samples - i * samples // (2 * batch) for i in range(batch)], dtype=torch.long)
    audio = audio * (torch.arange(samples)[None, :] < lengths[:, None])
    inputs = {"audio": audio, "lengths": lengths}
    if meta["speaker_norm"]:
        inputs["speaker_mean"] = torch.randn(batch, meta.get("speaker_mean_size", meta["n_mels"]), generator=gen)
    return inputs


def dynamic_axes(meta: dict[str, Any]) -> dict[str, dict[int, str]]:
    if meta["kind"] == "separation":
        return {"mixture": {0: "batch", 1: "time"}, "sources": {0: "batch", 2: "time"}}
    axes = {"audio": {0: "batch", 1: "samples"}, "lengths": {0: "batch"}, "log_probs": {0: "frames", 1: "batch"},
            "out_lengths": {0: "batch"}, "emotion_logits": {0: "batch"}, "mean_features": {0: "batch"}}
    if meta["speaker_norm"]:
        axes["speaker_mean"] = {0: "batch"}
    return axes


def export_model(model: Any, path: str | Path, format: str = "onnx") -> Path:
    """Write ``model`` (from :func:`~speechexp.inference.model.load_model`) to ``path`` as
    ``format`` (``onnx`` or ``torchscript``), with ``<path>.json`` describing it; return ``path``.

    Raises:
        SpeechexpError: an unknown format, or ONNX without the ``onnx`` package installed.
    """
    if format not in FORMATS:
        raise SpeechexpError(f"format={format} is not one of {sorted(FORMATS)}; pass format=onnx or "
                             "format=torchscript.")
    if format == "onnx" and importlib.util.find_spec("onnx") is None:
        raise SpeechexpError("format=onnx needs the onnx package; install it with pip install 'speechexp[export]'.")
    path = Path(path)
    graph, meta = graph_of(model)
    inputs = example_inputs(meta)
    args = tuple(inputs.values())
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), torch.no_grad(), atomic_path(path) as tmp:
        warnings.simplefilter("ignore")  # the exporters' deprecation and tracer notes say nothing about this graph
        if format == "onnx":
            torch.onnx.export(graph, args, str(tmp), dynamo=False, opset_version=OPSET, input_names=list(inputs),
                              output_names=meta["outputs"], dynamic_axes=dynamic_axes(meta))
            _add_onnx_metadata(tmp, meta)
        else:
            traced = torch.jit.trace(graph, args, check_trace=False)
            torch.jit.save(traced, str(tmp), _extra_files={"speechexp.json": json.dumps(meta)})
    write_text_atomic(sidecar(path), json.dumps({**meta, "format": format}, indent=2) + "\n")
    return path


def sidecar(path: Path) -> Path:
    """``<file>.json``, the description :func:`export_model` writes beside the exported file."""
    return path.with_name(path.name + ".json")


def _add_onnx_metadata(path: Path, meta: dict[str, Any]) -> None:
    import onnx  # noqa: PLC0415

    proto = onnx.load(str(path))
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    onnx.save(proto, str(path))


def run_exported(path: str | Path, inputs: dict[str, torch.Tensor | np.ndarray]) -> list[np.ndarray]:
    """Run an exported file (``.onnx`` with onnxruntime, else TorchScript) on ``inputs`` by name."""
    arrays = {name: np.asarray(value) for name, value in inputs.items()}
    if str(path).endswith(".onnx"):
        if importlib.util.find_spec("onnxruntime") is None:
            raise SpeechexpError("Running an ONNX model needs onnxruntime; install it with "
                                 "pip install 'speechexp[export]'.")
        import onnxruntime  # noqa: PLC0415

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(None, arrays)
    module = torch.jit.load(str(path), map_location="cpu")
    with torch.no_grad():
        outputs = module(*(torch.from_numpy(a) for a in arrays.values()))
    return [o.numpy() for o in (outputs if isinstance(outputs, (tuple, list)) else (outputs,))]


def reference_outputs(model: Any, inputs: dict[str, torch.Tensor]) -> list[np.ndarray]:
    """What the PyTorch model returns for the graph's ``inputs``, through the task's own
    front end (``torch.stft`` / librosa log-mel features), not the graph's."""
    task = model.task
    with torch.no_grad():
        if model.kind == "separation":
            return [task.model(inputs["mixture"].to(model.device)).cpu().numpy()]
        from speechexp.inference.transcription import collate_features  # noqa: PLC0415

        audio, lengths = inputs["audio"].numpy(), inputs["lengths"].tolist()
        fronts = [model.front(audio[i, :n], model.sample_rate) for i, n in enumerate(lengths)]
        batch = collate_features([{"features": torch.from_numpy(f), "pitch": p} for f, p in fronts])
        x, frames = batch["features"], batch["feature_lengths"]
        means = torch.stack([model.statistics_of([front]) for front in fronts])
        x, prosody = task.normalised(x, frames, list(inputs["speaker_mean"]) if model.speaker_norm else None,
                                     batch.get("pitch"))
        log_probs, out_lengths, emotion_logits = task(x.to(model.device), frames.to(model.device),
                                                      None if prosody is None else prosody.to(model.device))
        return [log_probs.cpu().numpy(), out_lengths.cpu().numpy(), emotion_logits.cpu().numpy(), means.numpy()]


def max_differences(model: Any, path: str | Path, inputs: dict[str, torch.Tensor]) -> dict[str, float]:
    """Largest absolute difference between the exported file's outputs and PyTorch's, per
    output name, on ``inputs`` (log-probs and emotion logits on valid frames only)."""
    _, meta = graph_of(model)
    got, want = run_exported(path, inputs), reference_outputs(model, inputs)
    differences = {}
    for name, a, b in zip(meta["outputs"], got, want):
        if a.shape != b.shape:
            differences[name] = float("inf")
            continue
        if name == "log_probs":  # (T, N, C): padding frames are not part of the answer
            valid = np.arange(a.shape[0])[:, None] < want[1][None, :]
            a, b = a[valid], b[valid]
        differences[name] = float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max()) if a.size else 0.0
    return differences
