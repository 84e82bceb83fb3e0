"""Train every run the report's tables and figures need, then write them (make reproduce).

    python scripts/reproduce.py                          # embedded scale, everything
    python scripts/reproduce.py --scale paper            # albert-base-v2 on SQuAD 2.0 (GPU)
    python scripts/reproduce.py --parts table1 --seeds 42
    python scripts/reproduce.py --dry-run                # list the runs and their state
    python scripts/reproduce.py --scale paper --launcher slurm_a100   # as SLURM jobs (submitit)
    python scripts/reproduce.py -- trainer.max_steps=2   # Hydra overrides for every run

Finished runs are skipped and killed ones resumed (resume=true). What each table and figure
uses: secondorder.report.paper; the seeds: configs/reproduce.yaml.
"""

from __future__ import annotations

import argparse
import sys

from secondorder.experiments.reproduce import reproduce

if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", choices=["demo", "paper"], default="demo")
    p.add_argument("--parts", default="table1,table3,figures",
                   help="comma-separated: table1, table3, figures")
    p.add_argument("--seeds", default=None, help="comma-separated (default: configs/reproduce.yaml)")
    p.add_argument("--dry-run", action="store_true", help="list the runs, train nothing")
    p.add_argument("--launcher", default=None,
                   help="submit through Hydra's submitit launcher configs/hydra/launcher/<name> "
                        "(slurm_a100, slurm_v100, local) instead of training here")
    p.add_argument("overrides", nargs="*", help="Hydra overrides passed to every run")
    a = p.parse_args()
    seeds = [int(s) for s in a.seeds.split(",")] if a.seeds else None
    sys.exit(reproduce(a.scale, tuple(a.parts.split(",")), seeds, a.overrides, dry_run=a.dry_run,
                       launcher=a.launcher))
