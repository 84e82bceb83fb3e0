"""Why AdaHessian does not answer: train every run of configs/ablation.yaml, then write
results/<scale>/ablation/ablation.{md,csv}, telemetry.csv and ablation.png (make ablate).

    python scripts/ablate.py                      # the screen and the confirmation
    python scripts/ablate.py --parts screen       # only the 3-epoch screen
    python scripts/ablate.py --dry-run            # list the runs and their state
    python scripts/ablate.py --report-only        # rebuild the table and figure from the runs
    python scripts/ablate.py --launcher slurm_a100    # as SLURM jobs (submitit)
    python scripts/ablate.py -- results_root=/tmp/fresh   # Hydra overrides for every run

Finished runs are skipped and killed ones resumed (resume=true).
"""

from __future__ import annotations

import argparse
import sys

from secondorder.experiments.ablation import ablate

if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--parts", default="screen,confirm", help="comma-separated: screen, confirm")
    p.add_argument("--dry-run", action="store_true", help="list the runs, train nothing")
    p.add_argument("--report-only", action="store_true", help="only write the table and figure")
    p.add_argument("--launcher", default=None,
                   help="submit through Hydra's submitit launcher configs/hydra/launcher/<name>")
    p.add_argument("--spec", default=None, help="another ablation config (default configs/ablation.yaml)")
    p.add_argument("overrides", nargs="*", help="Hydra overrides passed to every run")
    a = p.parse_args()
    sys.exit(ablate(a.overrides, parts=tuple(a.parts.split(",")), dry_run=a.dry_run,
                    launcher=a.launcher, spec_path=a.spec, report_only=a.report_only))
