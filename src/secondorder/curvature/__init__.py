"""Curvature of a model's loss as a library: Hessian operators, block partitions, stochastic
Lanczos quadrature and the Jensen-Shannon distance between blockwise spectra (`002_*`).

    hutchinson.py  Hessian-vector products and the Hutchinson diagonal (also used by `optim`)
    operators.py   ModelHessian (H v, H_ll v over fixed batches), BlockOperator
    blocks.py      parameter partitions (default_albert_blocks, resolve_blocks)
    lanczos.py     Lanczos, SLQ, Gaussian-blurred densities and their grids
    blockwise.py   one SLQ spectrum per block on a common grid (blockwise_spectra)
    divergence.py  JS distance, pairwise matrices, JS0

Experiments that use it (the spectra of a trained run, the quadratic and MLP studies) are in
`secondorder.experiments`; their figures in `secondorder.report`.
"""
