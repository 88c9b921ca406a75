"""Which options fit which task, checked before anything runs.

A task config lists the kinds of thing it can consume (``task.accepts``): per group, the
classes an option's target must be (or subclass). A dataset's kind is its datamodule;
a model's and a loss's, their own ``_target_``. So an option a user adds (a YAML in
``--config-dir``, or a subclass) fits every task that consumes its kind, with nothing
to register. The rule is checked twice: on the command line before Hydra composes
(:func:`check_command_line`; a model of another task would otherwise end in Hydra's
"Key ... not in ..." because the experiment preset sets keys the other model lacks), and
on the composed config (:func:`check_composed`) for every way of choosing options.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from speechexp.config.extras import check_extras
from speechexp.config.ranges import check_optimizer, check_ranges
from speechexp.config.registry import read_yaml
from speechexp.errors import IncompatibleOptions

CHECKED_GROUPS = ("dataset", "model", "loss")


def option_kind(group: str, node: dict | None) -> str | None:
    """The class path that decides where an option fits: a dataset's datamodule target,
    else the option's own ``_target_`` (``None`` when the config names none)."""
    node = node or {}
    if group == "dataset":
        node = node.get("datamodule") or {}
    target = node.get("_target_")
    return str(target) if target else None


def fits(kind: str | None, accepted: Iterable[str]) -> bool:
    """Whether an option of class ``kind`` is (a subclass of) one of the ``accepted`` classes."""
    accepted = list(accepted)
    if kind is None or kind in accepted:
        return True
    from hydra.utils import get_object  # noqa: PLC0415  (imports the classes: only off the common path)

    try:
        cls = get_object(kind)
        return any(isinstance(cls, type) and issubclass(cls, get_object(a)) for a in accepted)
    except Exception:  # noqa: BLE001 - an unimportable target is reported when it is instantiated
        return True


def _find(conf_dirs: Iterable[Path], group: str, option: str) -> Path | None:
    for conf_dir in conf_dirs:
        path = Path(conf_dir) / group / f"{option}.yaml"
        if path.is_file():
            return path
    return None


def _options(conf_dirs: Iterable[Path], group: str) -> dict[str, Path]:
    """Every option of ``group`` across the config dirs (the first dir's file wins)."""
    found: dict[str, Path] = {}
    for conf_dir in conf_dirs:
        for path in sorted((Path(conf_dir) / group).glob("*.yaml")):
            found.setdefault(path.stem, path)
    return found


def _default_choice(config_file: Path | None, group: str, conf_dirs: Iterable[Path] = (),
                    _seen: frozenset = frozenset()) -> str | None:
    """The option a config file's defaults list picks for ``group`` (plain or ``override
    /group``), also through the configs it includes (``- /recipe/asr_emotion``, or a
    sibling such as ``- asr_emotion``); a later entry wins, as in Hydra."""
    if config_file is None or config_file in _seen:
        return None
    found = None
    for entry in read_yaml(config_file).get("defaults") or []:
        if isinstance(entry, dict):
            for key, value in entry.items():
                if key.replace("override ", "").strip().lstrip("/") == group and isinstance(value, str):
                    found = value
        elif isinstance(entry, str) and entry != "_self_":
            name = entry.strip()
            if name.startswith("/"):
                included = _find(conf_dirs, str(Path(name.lstrip("/")).parent), Path(name).name)
            else:
                included = config_file.parent / f"{name}.yaml"
            found = _default_choice(included if included and included.is_file() else None, group,
                                    conf_dirs, _seen | {config_file}) or found
    return found


def _task_accepts(conf_dirs: list[Path], task: str | None) -> dict:
    return read_yaml(_find(conf_dirs, "task", task) or Path()).get("accepts") or {} if task else {}


def experiments_accepting(conf_dirs: list[Path], group: str, option: str, kind: str | None) -> list[str]:
    """Experiments (``experiment/*.yaml``) whose task consumes ``kind``; those that choose
    ``group=option`` themselves come first (``dataset=ravdess``: asr_emotion_ravdess)."""
    chooses, accepts_it = [], []
    for experiment, path in _options(conf_dirs, "experiment").items():
        accepted = _task_accepts(conf_dirs, _default_choice(path, "task", conf_dirs)).get(group)
        if accepted and kind and fits(kind, accepted):
            own = _default_choice(path, group, conf_dirs) == option
            (chooses if own else accepts_it).append(experiment)
    return chooses + accepts_it


def fitting_options(conf_dirs: list[Path], group: str, accepted: list[str]) -> list[str]:
    """The options of ``group`` whose kind the task consumes (for the error's advice)."""
    return [option for option, path in _options(conf_dirs, group).items()
            if option_kind(group, read_yaml(path)) in accepted]


def problem(group: str, chosen: str, kind: str | None, task: str, accepted: list[str],
            experiment: str | None, conf_dirs: list[Path]) -> str:
    """One sentence: why ``group=chosen`` does not fit ``task`` and what to choose instead."""
    where = f"experiment={experiment} (task={task})" if experiment else f"task={task}"
    fixes = [f"experiment={e}" for e in experiments_accepting(conf_dirs, group, chosen, kind)[:1]]
    options = ", ".join(f"{group}={o}" for o in fitting_options(conf_dirs, group, accepted))
    options = options or f"an option whose class is one of {', '.join(accepted)}"
    advice = (f"use {fixes[0]}, or choose one of {options}" if fixes
              else f"choose one of {options}, or pick an experiment whose task fits {group}={chosen}")
    return f"{group}={chosen} cannot be used with {where}; {advice}."


def check_choices(task: str, accepts: dict, chosen: dict[str, tuple[str, str | None]], experiment: str | None,
                  conf_dirs: list[Path]) -> None:
    """Raise :class:`SpeechexpError` for the first chosen option ``task`` cannot consume;
    ``chosen`` maps a group to ``(option, kind)``."""
    for group, accepted in accepts.items():
        option, kind = chosen.get(group, (None, None))
        if option is not None and not fits(kind, accepted):
            raise IncompatibleOptions(problem(group, option, kind, task, list(accepted), experiment, conf_dirs))


def config_dirs() -> list[Path]:
    """The file config folders of this Hydra run (``--config-dir`` ones first, then the package's)."""
    from hydra.core.hydra_config import HydraConfig  # noqa: PLC0415

    sources = HydraConfig.get().runtime.config_sources
    return [Path(s.path) for s in sources if s.schema == "file" and Path(s.path).is_dir()]


def check_composed(cfg) -> None:
    """Fail early when the composed config's dataset, model or loss does not fit its task."""
    from hydra.core.hydra_config import HydraConfig  # noqa: PLC0415

    check_ranges(cfg)
    check_optimizer(cfg)
    choices = dict(HydraConfig.get().runtime.choices)
    chosen = {g: (choices.get(g), option_kind(g, cfg.get(g))) for g in CHECKED_GROUPS}
    check_choices(choices.get("task") or cfg.task.name, cfg.task.accepts, chosen, choices.get("experiment"),
                  config_dirs())
    check_task_settings(cfg.task.module, choices.get("task") or cfg.task.name, choices.get("experiment"))
    if cfg.get("decoder") is not None:
        check_decoder(cfg.task.module.get("_target_"), choices.get("decoder") or "...",
                      choices.get("task") or cfg.task.name, choices.get("experiment"))
    check_phonemes(cfg, choices.get("decoder") or "...")
    check_dataset_requirements(cfg.get("dataset"), cfg.get("paths", {}).get("data_dir"))


def check_phonemes(cfg, decoder: str) -> None:
    """Refuse a phoneme loss or a phoneme decoder for a run whose data give no phoneme
    targets (so its model has no phoneme head)."""
    from hydra.utils import get_object  # noqa: PLC0415

    datamodule = (cfg.get("dataset") or {}).get("datamodule") or {}
    if datamodule.get("phonemes"):
        return
    if float((cfg.task.get("module") or {}).get("phoneme_weight") or 0):
        raise IncompatibleOptions("task.module.phoneme_weight needs phoneme targets; add "
                                  "dataset.datamodule.phonemes=true, or set task.module.phoneme_weight=0.")
    if cfg.get("decoder") is None:
        return
    try:
        reads = getattr(get_object(str(cfg.decoder.get("_target_"))), "reads_phonemes", False)
    except Exception:  # noqa: BLE001 - an unknown target is reported when it is instantiated
        return
    if reads:
        raise IncompatibleOptions(f"decoder={decoder} decodes a phoneme head, which only a model trained with "
                                  "dataset.datamodule.phonemes=true has; add it (with task.module.phoneme_weight=1), "
                                  "or use decoder=beam_english.")


def check_dataset_requirements(dataset_cfg, data_dir: str | None = None) -> None:
    """Refuse, before a run starts, a dataset whose preparer refuses its own settings (a
    sinusoid count too small for its splits) or whose build needs what is not there (a
    speech engine, a word list, a corpus folder), in the preparer's one sentence: preparers
    check their settings when built and may offer ``check_requirements()``. A dataset
    already prepared under ``data_dir`` needs nothing more (a corpus copied to a cluster
    trains without the engines that spoke it)."""
    from speechexp.runs.build import instantiate_checked  # noqa: PLC0415

    preparer = dataset_cfg.get("preparer") if dataset_cfg is not None else None
    if preparer is None or preparer.get("_target_") is None:
        return
    built = instantiate_checked(preparer, _convert_="all")  # its own checks' sentence, not Hydra's wrapping
    if not hasattr(built, "check_requirements") or (data_dir is not None and built.is_prepared(data_dir)):
        return
    built.check_requirements()


def check_decoder(task_target: str | None, decoder: str, task: str, experiment: str | None = None) -> None:
    """Refuse a CTC decoder for a task that has no CTC output (its class takes no ``decoder``)."""
    import inspect  # noqa: PLC0415

    from hydra.utils import get_object  # noqa: PLC0415

    try:
        takes = "decoder" in inspect.signature(get_object(str(task_target))).parameters
    except Exception:  # noqa: BLE001 - an unknown target is reported when it is instantiated
        return
    if not takes:
        where = f"experiment={experiment} (task={task})" if experiment else f"task={task}"
        raise IncompatibleOptions(f"decoder={decoder} cannot be used with {where}: it decodes CTC outputs, which "
                                  f"only task=asr_emotion has; drop decoder=..., or use experiment=asr_emotion.")


def check_checkpoint_decoder(run_config) -> None:
    """Refuse the command line's ``decoder=`` for a checkpoint whose saved config (a dict
    or DictConfig) is of a task without CTC outputs, before a run dir is made."""
    from speechexp.runs.build import hydra_choice  # noqa: PLC0415

    task = run_config.get("task") or {}
    check_decoder((task.get("module") or {}).get("_target_"), hydra_choice("decoder") or "...", task.get("name", "?"))


def check_task_settings(module, task: str, experiment: str | None) -> None:
    """Refuse ``task.module`` keys that the task's class does not take (e.g. the loss weights
    of ``+ablation=...`` on the separation task), naming them instead of a TypeError."""
    import inspect  # noqa: PLC0415

    from hydra.utils import get_object  # noqa: PLC0415

    try:
        params = inspect.signature(get_object(module._target_)).parameters
    except Exception:  # noqa: BLE001 - an unknown target is reported when it is instantiated
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    unknown = sorted(k for k in module if not str(k).startswith("_") and k not in params)
    if unknown:
        where = f"experiment={experiment} (task={task})" if experiment else f"task={task}"
        raise IncompatibleOptions(f"task.module.{unknown[0]} is not a setting of {where}; drop the option that "
                                  f"sets it (e.g. +ablation=..., made for task=asr_emotion) or pick an "
                                  f"experiment whose task has it.")


def check_command_line(argv: list[str], conf_dir: str | Path, config_name: str = "train") -> None:
    """Refuse ``group=option`` overrides that the chosen (or default) experiment's task cannot
    consume, or whose optional extra is not installed, before Hydra composes; anything it
    cannot read is left to Hydra."""
    from hydra._internal.utils import get_args_parser  # noqa: PLC0415  (Hydra's own CLI parser)
    from hydra.core.override_parser.overrides_parser import OverridesParser  # noqa: PLC0415

    try:
        args = get_args_parser().parse_args(argv)
        overrides = OverridesParser.create().parse_overrides(args.overrides)
    except (SystemExit, Exception):  # noqa: BLE001 - Hydra reports malformed command lines itself
        return
    conf_dirs = [Path(args.config_dir)] if args.config_dir else []
    conf_dirs.append(Path(conf_dir))
    check_extras([(o.key_or_group, o.value()) for o in overrides
                  if o.package is None and not o.is_sweep_override() and isinstance(o.value(), str)], conf_dirs)
    picked = {o.key_or_group: o.value() for o in overrides if o.package is None and not o.is_sweep_override()
              and isinstance(o.value(), str)}
    chosen = {g: v for g, v in picked.items() if g in (*CHECKED_GROUPS, "task", "experiment")}
    experiment = chosen.get("experiment") or _default_choice(_find(conf_dirs, "", config_name), "experiment", conf_dirs)
    task = chosen.get("task") or _default_choice(_find(conf_dirs, "experiment", experiment or ""), "task", conf_dirs)
    if task is None or _find(conf_dirs, "task", task) is None:
        return
    for group, option in picked.items():  # a preset made for another task (e.g. +recipe=asr_emotion)
        preset = _find(conf_dirs, group, option) if group not in ("task", "experiment") else None
        own_task = _default_choice(preset, "task", conf_dirs) if preset else None
        if own_task and own_task != task:
            raise IncompatibleOptions(f"{group}={option} sets task={own_task}, so it cannot be used with "
                                      f"experiment={experiment} (task={task}); use an experiment of task={own_task}.")
    for group, option in picked.items():  # a group inside another option, e.g. dataset/voices=natural
        parent, _, sub = group.partition("/")
        if not sub or "/" in sub or parent in ("hydra", "schema"):
            continue
        parent_option = picked.get(parent) or _default_choice(_find(conf_dirs, "experiment", experiment or ""),
                                                              parent, conf_dirs)
        owners = sorted(o for o, path in _options(conf_dirs, parent).items() if _default_choice(path, sub) is not None)
        if parent_option and parent_option not in owners and owners:
            raise IncompatibleOptions(f"{group}={option} is an option of {parent}={'|'.join(owners)}, so it cannot be "
                                      f"used with {parent}={parent_option}; choose {parent}={owners[0]} or drop it.")
    if not any(group in chosen for group in CHECKED_GROUPS):
        return
    kinds = {g: (chosen[g], option_kind(g, read_yaml(_find(conf_dirs, g, chosen[g]) or Path())))
             for g in CHECKED_GROUPS if g in chosen}
    check_choices(task, _task_accepts(conf_dirs, task), kinds, experiment, conf_dirs)
