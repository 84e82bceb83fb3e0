"""Experiments built on the library: each computes numbers and writes them with its figures.

    spectrum.py       blockwise Hessian spectra and JS0 of a run's model (scripts/spectrum.py)
    quadratic.py      GD vs Adam on heterogeneous / homogeneous quadratics (`002_*` Figure 8)
    mlp.py            the scaled MLP on digits (`002_*` Figure 5 / Table 3)
    heterogeneity.py  runs quadratic.py and mlp.py with their figures (scripts/heterogeneity.py)
    bench.py          the per-step cost of every optimizer setting (scripts/bench_step.py)
"""
