"""Refuse numbers no run can use (a batch of 0 utterances, a negative learning rate, a
window of 0 samples) before anything is written, instead of a traceback from deep inside
PyTorch once the data are prepared.

Keys are checked by their name wherever they sit in the config, so a user's own model or
dataset that names its batch size ``batch_size`` is checked alike; ``null`` means "not set"
and passes.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

from omegaconf import DictConfig, ListConfig, OmegaConf

from speechexp.errors import SpeechexpError

# name -> (the rule, what the value must be, in the refusal's words)
RULES: dict[str, tuple[Callable[[float], bool], str]] = {
    **{name: ((lambda v: v > 0), "greater than 0")
       for name in ("batch_size", "units", "layers", "n_fft", "hop_length", "win_length", "n_mels", "sample_rate",
                    "fs", "frame_size", "n_src", "conv_channels", "chunk_seconds", "check_val_every_n_epoch")},
    # a negative clip norm would flip every gradient; negative strengths and spreads mirror them
    **{name: ((lambda v: v >= 0), "0 or more")
       for name in ("weight_decay", "overlap_seconds", "gradient_clip_val", "n_figures", "n_media", "jitter",
                    "emotion_strength", "tolerance")},
    "num_workers": ((lambda v: v >= 0), "0 or more (0 reads the data in the main process)"),
    "threads": ((lambda v: v >= 0), "0 or more (0 or null: torch's default, all cores)"),
    "lr": ((lambda v: v >= 0), "0 or more (0 trains nothing, as PyTorch's optimizers allow)"),
    "dropout": ((lambda v: 0 <= v < 1), "at least 0 and below 1"),
    # shares of the utterances (or of the batches' speakers): above 1 would silently mean "all"
    **{name: ((lambda v: 0 <= v <= 1), "a share from 0 to 1")
       for name in ("speaker_mean_dropout", "degrade", "general_text", "general_sentences", "raised_fraction")},
    **{name: ((lambda v: 0 <= v < 1), "a share from 0 up to (not including) 1")
       for name in ("val_fraction", "test_fraction")},
}

SKIPPED = ("hydra",)  # Hydra's own settings are Hydra's to check


def numbers(node: Any, path: str = "") -> Iterator[tuple[str, str, float]]:
    """``(dotted path, key, value)`` for every number under ``node`` (bools and missing or
    unresolvable values left out)."""
    if isinstance(node, ListConfig):
        for index, value in enumerate(node):
            if isinstance(value, (DictConfig, ListConfig)):
                yield from numbers(value, f"{path}[{index}].")
        return
    for key in node.keys():
        if (not path and key in SKIPPED) or OmegaConf.is_missing(node, key):
            continue
        try:
            value = node[key]
        except Exception:  # noqa: BLE001 - an interpolation that cannot resolve is reported where it is used
            continue
        if isinstance(value, (DictConfig, ListConfig)):
            yield from numbers(value, f"{path}{key}" + ("." if isinstance(value, DictConfig) else ""))
        elif is_number(value):
            yield f"{path}{key}", str(key), value


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_ranges(cfg: DictConfig) -> None:
    """Raise :class:`SpeechexpError` naming the first value outside its key's range."""
    for path, key, value in numbers(cfg):
        rule = RULES.get(key)
        if rule is not None and not rule[0](value):
            raise SpeechexpError(f"{path}={value} is out of range: {key} must be {rule[1]}; set {path} to such a "
                                 "value.")


def check_optimizer(cfg: DictConfig) -> None:
    """Build the run's optimizer and schedule for one stand-in weight, so that settings they
    refuse (a negative ``eps``, a ``pct_start`` above 1) are one sentence before the data are
    prepared, not a traceback from inside Lightning's fit (which builds them)."""
    if cfg.get("optimizer") is None:
        return
    import torch  # noqa: PLC0415

    from speechexp.runs.build import hydra_choice, instantiate_checked  # noqa: PLC0415
    from speechexp.tasks.schedules import takes_steps_from_trainer  # noqa: PLC0415

    group = "optimizer"
    try:
        optimizer = instantiate_checked(cfg.optimizer, _convert_="all")(params=[torch.nn.Parameter(torch.zeros(1))])
        if cfg.get("scheduler") is not None:
            group = "scheduler"
            schedule = instantiate_checked(cfg.scheduler, _convert_="all")
            # a count the trainer fills in later: any number stands in for it
            schedule(optimizer=optimizer, **({"total_steps": 10} if takes_steps_from_trainer(schedule) else {}))
    except (ValueError, TypeError, ZeroDivisionError) as exc:
        name = hydra_choice(group) or cfg[group].get("_target_", "?")
        raise SpeechexpError(f"{group}={name} refuses its settings: {exc}; change the {group}.* value it "
                             "names.") from None
