"""Experiments built on the library: each computes numbers and writes them with its figures.

    spectrum.py       blockwise Hessian spectra and JS0 of a run's model (scripts/spectrum.py)
    quadratic.py      GD vs Adam on heterogeneous / homogeneous quadratics (`002_*` Figure 8)
    mlp.py            the scaled MLP on digits (`002_*` Figure 5 / Table 3)
    controlled.py     runs quadratic.py and mlp.py with their figures (scripts/heterogeneity.py)
    bench.py          the per-step cost of every optimizer setting (scripts/bench_step.py)
    reproduce.py      trains what Tables I, III and Figures 1-5 need, then reports them (make reproduce)
    ablation.py       the AdaHessian ablation's runs, then its report (make ablate)

Experiments orchestrate: they use the library (`runs`, `optim`, `curvature`, ...) and write with
`secondorder.report`; nothing below them imports them.
"""
