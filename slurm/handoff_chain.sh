#!/bin/bash
# Table I and Table III with job dependencies: the AdamW baseline first (it keeps its epoch
# checkpoints), then the three AdaHessian hand-offs from its epoch-2 checkpoint, and the two
# AdaHessian-only runs in parallel with the baseline. Finally the tables. Like make reproduce,
# the runs go to results/ (the published runs), where the report reads them.
#   bash slurm/handoff_chain.sh [--partition=v100 ...extra sbatch options]
set -euo pipefail
cd "$(dirname "$0")/.."
opts=("$@")
submit() { sbatch --parsable "${opts[@]}" "$@"; }
root=results_root=${SECONDORDER_RESULTS:-results}
adamw=$(submit slurm/train.sbatch experiment=paper/table1_adamw "$root")
k05=$(submit slurm/train.sbatch experiment=paper/table1_adahessian_k05 "$root")
k025=$(submit slurm/train.sbatch experiment=paper/table1_adahessian_k025 "$root")
deps=$adamw:$k05:$k025
for lr in 3e-3 3e-4 3e-5; do
  id=$(submit --dependency=afterok:$adamw slurm/train.sbatch \
    experiment=paper/table3_handoff_lr$lr "$root")
  deps=$deps:$id
done
report=$(submit --dependency=afterok:$deps --gres=gpu:0 --time=00:20:00 --wrap \
  ".venv/bin/python scripts/report.py all --scale paper --results ${root#results_root=}")
echo "submitted: adamw=$adamw k0.5=$k05 k0.25=$k025 report=$report (after $deps)"
