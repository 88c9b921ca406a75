#!/usr/bin/env bash
# Check the declared lower bounds: a fresh venv gets every direct dependency at the minimum
# pyproject.toml allows (uv's --resolution lowest-direct; indirect ones resolve normally),
# then `pip check` and the fast tests run against it.
#   bash scripts/check_min_versions.sh [VENV_DIR]      (default /tmp/speechexp-min)
# Needs PyPI; torch at its minimum comes from PyPI as its default (CUDA) build, several GB.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-/tmp/speechexp-min}
python3 -m venv --clear "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check uv
"$VENV/bin/uv" pip install -q --python "$VENV/bin/python" --resolution lowest-direct -e ".[all,dev]"
echo "== lowest direct versions installed:"
"$VENV/bin/python" - <<'PY'
import re, tomllib
from importlib.metadata import version
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
for dep in deps:
    name = re.split(r"[<>=!;\[ ]", dep, maxsplit=1)[0]
    print(f"  {dep:<32} -> {version(name)}")
PY
"$VENV/bin/python" -m pip check
# the fast tests: configs, CTC, data, runs and a one-batch training of both studies
"$VENV/bin/python" -m pytest -q -x -m "not slow and not gpu" -p no:cacheprovider \
  tests/test_configs.py tests/test_ctc.py tests/test_corpora.py tests/test_emotional_speech.py \
  tests/test_runs.py tests/test_cli.py tests/test_decoders.py
