# `make demo` and `make test` create the virtual environment at .venv/ on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test install clean-venv

install: $(STAMP)

# torch first, pinned to the CPU wheel: a looser pin pulled in by a dependency would fetch a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet torch==2.13.0
	$(VENV)/bin/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# The main job on the embedded default: data statistics, the codec round trip over the first 5,000 bundled crystals
# (`pccd codec check` without --limit checks all 50,788, ~15 min), then Ca-Sn-O crystals from the shipped model.
demo: $(STAMP)
	$(VENV)/bin/pccd data stats
	$(VENV)/bin/pccd codec check --limit 5000 --out demo_output/codec_check.json
	$(VENV)/bin/pccd generate --elements Ca Sn O --n 32 --seed 0 --out demo_output/Ca-Sn-O

test: $(STAMP)
	$(VENV)/bin/python -m pytest -n 2 -q

clean-venv:
	rm -rf $(VENV)
