"""Per-step cost of every optimizer setting, as ratios to AdamW measured in the same run.

    python scripts/bench_step.py                  # GPU if there is one: batch 16, length 384
    python scripts/bench_step.py --bf16           # and every setting again under bf16 autocast
    python scripts/bench_step.py --device cpu     # CPU: batch 4, length 128 by default
    python scripts/bench_step.py --settings adamw,adahessian --steps 20

Settings: configs/bench/step_cost.yaml. Writes results/bench/step_cost_<device>.{json,md}.
What is measured and how: secondorder.experiments.bench.
"""

from secondorder.experiments.bench import main

if __name__ == "__main__":
    main()
