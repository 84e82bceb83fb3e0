# secondorder — one command per job. `make help` lists the targets.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU build on machines without a GPU (it is on local disk here); on a GPU cluster pip takes
# the CUDA build of the same version.
TORCH_SPEC ?= torch==2.13.0
SCALE ?= demo
STAMP := $(VENV)/.installed

.PHONY: help install demo test lint bench reproduce-table1 reproduce-table3 report spectrum clean

help:
	@echo "make install            create $(VENV) and install torch + secondorder[dev]"
	@echo "make demo               AdamW on the embedded default: train, evaluate, print EM/F1 (CPU, minutes)"
	@echo "make test               the test suite (CPU only)"
	@echo "make lint               ruff"
	@echo "make reproduce-table1   Table I runs (SCALE=paper: albert-base-v2 on squad_v2, GPU; SCALE=demo: embedded) + table"
	@echo "make reproduce-table3   Table III hand-off runs (needs the table1 AdamW run's epoch-2 checkpoint) + table"
	@echo "make bench              per-step time and memory of every optimizer as ratios to AdamW (GPU if present)"
	@echo "make report             rebuild tables/figures in results/ from existing runs"
	@echo "make spectrum           blockwise Hessian spectra + JS0 of the table1 AdamW model at init and after training"

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev]"
	# curvlinops (the tests' independent Hessian reference): its backpack dependency asks for
	# torchvision, whose newest release would replace the pinned torch with a CUDA build, so
	# these come without dependencies and their pure-Python ones are named here.
	$(PY) -m pip install -q einops opt_einsum linear_operator
	$(PY) -m pip install -q --no-deps curvlinops-for-pytorch==3.0.1 backpack-for-pytorch einconv unfoldNd
	touch $(STAMP)

demo: $(STAMP)
	$(PY) scripts/train.py experiment=demo/table1_adamw

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m ruff check src tests scripts

bench: $(STAMP)
	$(PY) scripts/bench_step.py

reproduce-table1: $(STAMP)
	for exp in table1_adamw table1_adahessian_k05 table1_adahessian_k025 table3_handoff_lr3e-4; do \
	  $(PY) scripts/train.py experiment=$(SCALE)/$$exp resume=true || exit 1; \
	done
	$(PY) scripts/report.py table1 --scale $(SCALE)

reproduce-table3: $(STAMP)
	for exp in table3_handoff_lr3e-3 table3_handoff_lr3e-4 table3_handoff_lr3e-5; do \
	  $(PY) scripts/train.py experiment=$(SCALE)/$$exp resume=true || exit 1; \
	done
	$(PY) scripts/report.py table3 --scale $(SCALE)

report: $(STAMP)
	$(PY) scripts/report.py all --scale $(SCALE)

# Blockwise Hessian spectra of the Table I AdamW model (SCALE=demo: the `make demo` model) at
# initialisation and, if that run has been trained (its checkpoints/last.pt), after training;
# writes $(SPECTRUM_OUT)/<run>/{init,last}/ and prints JS0 for both. Settings: configs/spectrum.yaml,
# e.g. SPECTRUM_ARGS="spectrum.num_steps=100 spectrum.num_runs=10".
SPECTRUM_RUN = $(SCALE)/table1_adamw/adamw-seed42
SPECTRUM_OUT ?= results/spectrum
SPECTRUM_ARGS ?=

spectrum: $(STAMP)
	$(PY) scripts/spectrum.py experiment=$(SCALE)/table1_adamw spectrum.out_root=$(SPECTRUM_OUT) \
	  spectrum.name=$(SPECTRUM_RUN)/init $(SPECTRUM_ARGS)
	@ckpt=$${SECONDORDER_RESULTS:-results}/$(SPECTRUM_RUN)/checkpoints/last.pt; \
	dirs=$(SPECTRUM_OUT)/$(SPECTRUM_RUN)/init; \
	if [ -f "$$ckpt" ]; then \
	  echo "$(PY) scripts/spectrum.py experiment=$(SCALE)/table1_adamw spectrum.checkpoint=$$ckpt ..."; \
	  $(PY) scripts/spectrum.py experiment=$(SCALE)/table1_adamw spectrum.out_root=$(SPECTRUM_OUT) \
	    spectrum.checkpoint=$$ckpt spectrum.name=$(SPECTRUM_RUN)/last $(SPECTRUM_ARGS) || exit 1; \
	  dirs="$$dirs $(SPECTRUM_OUT)/$(SPECTRUM_RUN)/last"; \
	else \
	  echo "no checkpoint at $$ckpt: the run is not trained (make demo / make reproduce-table1)," \
	    "so the spectra are computed at initialisation only"; \
	fi; \
	echo "JS0 = mean pairwise JS distance between the blockwise Hessian spectra:"; \
	$(PY) -c 'import sys; from secondorder.analysis.run_spectrum import js0_report as r; print(r(sys.argv[1:]))' $$dirs

clean:
	rm -rf results/demo results/adhoc outputs .pytest_cache
