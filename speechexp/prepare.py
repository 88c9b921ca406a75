"""Prepare a dataset folder: ``speechexp-prepare dataset=NAME [dataset.root=DIR]``, or
``speechexp-prepare experiment=NAME [overrides]`` for the folder that training with the same
arguments would prepare (``conf/prepare.yaml`` composes the training groups for that).

Generates (or indexes) the dataset into ``paths.data_dir/<name>-<fingerprint>/`` and
prints that folder; an existing folder for the same configuration is reused.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from speechexp.config import CONF_DIR  # importing registers schemas and resolvers
from speechexp.runs.entry import entry_point


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="prepare")
@entry_point
def main(cfg: DictConfig) -> None:
    from speechexp.runs.build import prepare_dataset  # noqa: PLC0415  (heavy: not for --help)

    print(prepare_dataset(cfg.dataset, cfg.paths.data_dir), flush=True)


if __name__ == "__main__":
    main()
