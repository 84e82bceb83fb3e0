"""Block-heterogeneity experiments of `002_*`: the quadratic cases (Figure 8) and the scaled MLP
(Figure 5 / Table 3).

    python scripts/heterogeneity.py              # default run (a few minutes on 2 CPUs)
    python scripts/heterogeneity.py --quick      # smoke test (seconds)
    python scripts/heterogeneity.py --help       # every setting

Writes results/heterogeneity/ (quadratic.json, figure8.png, mlp.json, figure5.png,
summary.json). What is computed and how: secondorder.experiments.controlled.
"""

import sys

from secondorder.experiments.controlled import main

if __name__ == "__main__":
    sys.exit(main())
