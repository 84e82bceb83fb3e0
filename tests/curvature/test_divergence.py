"""Jensen-Shannon distances: hand-computed values, bounds, degenerate inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon

from secondorder.curvature.divergence import JS_MAX, js0, js_distance, pairwise_js
from secondorder.curvature.lanczos import density
from secondorder.report.spectra import heatmap_figure


def gauss(grid, mu, sd):
    return np.exp(-0.5 * ((grid - mu) / sd) ** 2) / (sd * math.sqrt(2 * math.pi))


def test_three_point_hand_computed():
    grid = np.array([0.0, 1.0, 2.0])
    p = np.array([0.2, 0.3, 0.5])
    q = np.array([0.5, 0.3, 0.2])
    # M = (0.35, 0.3, 0.35); KL(P||M) = KL(Q||M) = 0.2 ln(0.2/0.35) + 0.5 ln(0.5/0.35)
    #   = 0.2 * (-0.5596158) + 0.5 * 0.3566749 = 0.0664143;  JS = sqrt(0.0664143)
    assert js_distance(p, q, grid) == pytest.approx(0.2577097483, abs=1e-9)
    # half-overlapping supports: JS^2 = ln(2) / 2
    assert js_distance([0.5, 0.5, 0.0], [0.0, 0.5, 0.5], grid) == pytest.approx(
        math.sqrt(math.log(2) / 2), abs=1e-12
    )
    # base 2: disjoint supports give exactly 1
    assert js_distance([1.0, 0.0, 0.0], [0.0, 0.0, 1.0], grid, base=2) == pytest.approx(1.0)


def test_identity_symmetry_bound_and_scipy_agreement():
    rng = np.random.default_rng(0)
    grid = np.sort(rng.uniform(-3, 3, 400))  # non-uniform: cell widths matter
    p = gauss(grid, -0.5, 0.7) + 0.1 * gauss(grid, 2.0, 0.2)
    q = gauss(grid, 0.4, 0.5)
    assert js_distance(p, p, grid) == 0.0
    assert js_distance(p, 3.7 * p, grid) == pytest.approx(0.0, abs=1e-7)  # scale-free
    d = js_distance(p, q, grid)
    assert d == js_distance(q, p, grid)
    assert 0.0 < d <= JS_MAX
    edges = np.concatenate([[grid[0]], 0.5 * (grid[1:] + grid[:-1]), [grid[-1]]])
    edges[0] = grid[0] - (edges[1] - grid[0])
    edges[-1] = grid[-1] + (grid[-1] - edges[-2])
    w = np.diff(edges)
    assert d == pytest.approx(jensenshannon(p * w, q * w), rel=1e-10)


def test_disjoint_supports_and_underflow_are_finite():
    grid = np.linspace(-1, 11, 5001)
    runs_a = [(np.array([0.0]), np.array([1.0]))]
    runs_b = [(np.array([10.0]), np.array([1.0]))]
    p = density(runs_a, grid, method="point")
    q = density(runs_b, grid, method="point")
    assert (p == 0).sum() > 4000 and (q == 0).sum() > 4000  # tails underflowed to exact 0
    with np.errstate(divide="raise", invalid="raise", over="raise"):
        d = js_distance(p, q, grid)
    assert math.isfinite(d)
    assert d == pytest.approx(JS_MAX, abs=1e-12)
    # tiny but positive densities (subnormal scale) give the same finite value
    tiny_p = gauss(grid, 0.0, 0.5) * 1e-310
    tiny_q = gauss(grid, 1.0, 0.5) * 1e-310
    ref = js_distance(gauss(grid, 0.0, 0.5), gauss(grid, 1.0, 0.5), grid)
    assert js_distance(tiny_p, tiny_q, grid) == pytest.approx(ref, rel=1e-6)
    assert math.isfinite(js_distance(p, q, grid, variant="grid_sum"))


def test_invalid_inputs_raise():
    grid = np.linspace(0, 1, 5)
    with pytest.raises(ValueError):
        js_distance(np.zeros(5), np.ones(5), grid)
    with pytest.raises(ValueError):
        js_distance(np.array([1, np.nan, 1, 1, 1.0]), np.ones(5), grid)
    with pytest.raises(ValueError):
        js_distance(np.array([1, -1, 1, 1, 1.0]), np.ones(5), grid)
    with pytest.raises(ValueError):
        js_distance(np.ones(5), np.ones(4), grid)


def test_grid_sum_variant_is_divergence_over_grid_step():
    grid = np.linspace(-2, 4, 3001)
    dx = grid[1] - grid[0]
    p = gauss(grid, 0.0, 0.3)
    q = gauss(grid, 1.0, 0.6)
    d = js_distance(p, q, grid)
    assert js_distance(p, q, grid, variant="grid_sum") == pytest.approx(d**2 / dx, rel=1e-9)
    disjoint = js_distance(
        (grid < 0).astype(float), (grid > 1).astype(float), grid, variant="grid_sum"
    )
    assert disjoint == pytest.approx(math.log(2) / dx, rel=1e-12)
    assert disjoint > JS_MAX  # the scale that exceeds sqrt(ln 2), as in the paper's tables
    with pytest.raises(ValueError):
        js_distance(
            p, q, np.sort(np.random.default_rng(1).uniform(-2, 4, 3001)), variant="grid_sum"
        )


def test_pairwise_and_js0(tmp_path):
    grid = np.array([0.0, 1.0, 2.0])
    dens = {
        "a": np.array([1.0, 0.0, 0.0]),
        "b": np.array([0.0, 0.0, 1.0]),
        "c": np.array([0.5, 0.5, 0.0]),
    }
    names, mat = pairwise_js(dens, grid)
    assert names == ["a", "b", "c"]
    np.testing.assert_array_equal(mat, mat.T)
    np.testing.assert_array_equal(np.diag(mat), 0.0)
    ab = math.sqrt(math.log(2))  # disjoint
    bc = math.sqrt(math.log(2))  # disjoint
    # a vs c: P=(1,0,0), Q=(.5,.5,0), M=(.75,.25,0):
    # KL(P||M) = ln(4/3), KL(Q||M) = .5 ln(2/3) + .5 ln 2
    ac = math.sqrt(0.5 * (math.log(4 / 3) + 0.5 * math.log(2 / 3) + 0.5 * math.log(2)))
    assert mat[0, 1] == pytest.approx(ab)
    assert mat[1, 2] == pytest.approx(bc)
    assert mat[0, 2] == pytest.approx(ac)
    assert js0(mat) == pytest.approx((ab + bc + ac) / 3)
    assert js0(dens, grid) == pytest.approx((ab + bc + ac) / 3)
    path = heatmap_figure(names, mat, tmp_path / "h.png", title="t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
