"""Blockwise Hessian spectra of a run's QA model, at initialisation or at a saved checkpoint.

    python scripts/spectrum.py experiment=demo/table1_adamw                     # at init
    python scripts/spectrum.py experiment=demo/table1_adamw spectrum.checkpoint=last
    python scripts/spectrum.py experiment=demo/table1_adamw \\
        spectrum.checkpoint=results/demo/table1_adamw/adamw-seed42/checkpoints/epoch2.pt
    python scripts/spectrum.py experiment=demo/table1_adamw spectrum.num_steps=100 \\
        spectrum.num_runs=10                                                   # paper's SLQ

Writes results/spectrum/<spectrum.name>/ (default name <experiment>/<run>/<init|checkpoint>):
densities.npz, eigenvalues.json, js.csv, js_heatmap.png, densities.png, summary.json.
See configs/spectrum.yaml and secondorder.experiments.spectrum.
"""

from __future__ import annotations

import logging
import sys

import hydra
from omegaconf import DictConfig

from secondorder.experiments.spectrum import js0_report, run_spectrum  # registers spectrum_tag
from secondorder.hub import HubUnavailableError

log = logging.getLogger("secondorder")


@hydra.main(config_path="../configs", config_name="spectrum", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        result = run_spectrum(cfg)
    except (HubUnavailableError, FileNotFoundError, ValueError) as err:
        log.error("%s", err)
        sys.exit(2)
    print(js0_report([result.out_dir]))


if __name__ == "__main__":
    main()
