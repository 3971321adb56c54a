# `make demo` and `make test` create the virtual environment at .venv/ on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed
DFT_STAMP := $(VENV)/.installed-dft
DFT_DEBS := libxc-dev libopenblas-dev libfftw3-dev

.PHONY: demo test install install-dft clean-venv

install: $(STAMP)
install-dft: $(DFT_STAMP)

# torch first, pinned to the CPU wheel: a looser pin pulled in by a dependency would fetch a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet torch==2.13.0
	$(VENV)/bin/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# GPAW for the follow-up physics (pccd-flows[dft]) builds against Debian's libxc, OpenBLAS and FFTW: installed here
# when missing and we may (root), else a clear message. The tests need it; the demo does not.
$(DFT_STAMP): $(STAMP)
	@dpkg -s $(DFT_DEBS) >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DFT_DEBS) >/dev/null; } || \
	  { echo "GPAW needs the Debian packages $(DFT_DEBS): apt-get install them as root"; exit 1; }
	GPAW_CONFIG=$(CURDIR)/gpaw-siteconfig.py $(VENV)/bin/python -m pip install --quiet -e ".[dev,dft]"
	touch $(DFT_STAMP)

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

test: $(DFT_STAMP)
	$(VENV)/bin/ruff check .
	OPENBLAS_NUM_THREADS=1 $(VENV)/bin/python -m pytest -n 2 -q --durations=15

clean-venv:
	rm -rf $(VENV)
