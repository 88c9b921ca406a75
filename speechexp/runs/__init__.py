"""The machinery around one run: its run dir as a unit of work (:mod:`.plan`), the
:class:`~speechexp.runs.run.Run` that owns its lifecycle, building its parts
(:mod:`.build`), checkpoints as data, provenance, W&B tracking, loggers and callbacks."""
