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

# The main job on the embedded default: the screening demo through FireWorks with no server. An embedded LaunchPad
# (mongomock + MontyDB stores) in demo_output/fw, Ca-Sn-O and Mg-O candidates from the shipped checkpoint, relaxed
# with CHGNet by `rlaunch rapidfire`, judged against the offline hull, and the most stable ones printed.
DEMO := demo_output/fw
demo: $(STAMP)
	rm -rf $(DEMO) && $(VENV)/bin/pccd launchpad init --embedded $(DEMO)
	cd $(DEMO) && . ./env.sh && export PATH="$(CURDIR)/$(VENV)/bin:$$PATH" && \
	  lpad reset --password "$$(date +%Y-%m-%d)" && \
	  pccd screen --chemsys Ca-Sn-O Mg-O --n 4 --seed 0 --relax-steps 200 --launchpad my_launchpad.yaml && \
	  rlaunch rapidfire && \
	  lpad get_wflows && \
	  pccd query --max-ehull 0.25

test: $(STAMP)
	$(VENV)/bin/python -m pytest -n 2 -q

clean-venv:
	rm -rf $(VENV)
