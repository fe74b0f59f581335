"""Where the float32 normal distribution function's coefficients come from, and how accurate it is.

    python benchmarks/fit_normal_cdf.py [--json benchmarks/results/normal_cdf_float32.json]

``handgrad.functions.normal_cdf`` computes float32 input with one formula for all x (a float32
GPT's exact GELU is its main caller): with ``a = |x|`` and ``t = 1 / (1 + c a)``, which maps
a in [0, inf) onto t in (0, 1],

    Phi(-a) = t exp(-a^2 / 2) P(t),    Phi(x) = Phi(-a) left of 0 and 1 - Phi(-a) right of it,

with P a polynomial of degree 8. ``P(t) = Phi(-a) / (t exp(-a^2 / 2))`` is smooth on the whole
interval (as a -> inf, Phi(-a) ~ exp(-a^2 / 2) / (a sqrt(2 pi)), so P(0) = c / sqrt(2 pi)), so a
polynomial fits it to float32's precision. This script fits P by least squares on Chebyshev
nodes, reweighted towards the largest relative errors (a few rounds of Lawson's iteration, which
approaches the minimax fit), against the float64 Phi (Cody's rational approximations, ~1e-16),
prints the coefficients that ``functions.py`` holds, the fit's largest relative error in float64,
and the float32 implementation's error in units in the last place (ulp) by range of x, beside
the float64 formula's evaluated in float32 (what float32 input went through before).
"""

from __future__ import annotations

import argparse
import os

import numpy as np

import handgrad.functions as F
from machine import machine_line, write_results

C = 0.35  # t = 1 / (1 + C a); with degree 8 the smallest error among C in 0.25..0.7 tried
DEGREE = 8
A_MAX = 14.0  # beyond it Phi(-a) < 1e-44: zero or subnormal in float32


def fit(c: float = C, degree: int = DEGREE, nodes: int = 4000, rounds: int = 30) -> np.ndarray:
    """P's coefficients, lowest power first, fitted on t in [1 / (1 + c A_MAX), 1]."""
    t_min = 1.0 / (1.0 + c * A_MAX)
    k = np.arange(nodes)
    t = (t_min + 1) / 2 + (1 - t_min) / 2 * np.cos(np.pi * (k + 0.5) / nodes)
    a = (1.0 / t - 1.0) / c
    target = F.normal_cdf(-a) / (t * np.exp(-a * a / 2))
    powers = np.vander(t, degree + 1, increasing=True)
    weight = 1.0 / target  # relative error
    for _ in range(rounds):
        coef, *_ = np.linalg.lstsq(powers * weight[:, None], target * weight, rcond=None)
        error = np.abs(powers @ coef / target - 1)
        weight = weight * np.sqrt(error / error.max() + 1e-3)
    return coef


def fit_error(coef: np.ndarray, c: float = C) -> float:
    a = np.linspace(0, A_MAX, 200_001)
    t = 1.0 / (1.0 + c * a)
    p = np.polynomial.polynomial.polyval(t, coef)
    return float(np.max(np.abs(p * t * np.exp(-a * a / 2) / F.normal_cdf(-a) - 1)))


RANGES = [(-13, -5), (-5, -1), (-1, 1), (1, 5), (5, 13)]


def ulp_errors(values32: np.ndarray, x: np.ndarray, exact: np.ndarray) -> dict:
    ulp = np.abs(values32.astype(np.float64) - exact) / np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    return {f"[{lo}, {hi})": float(ulp[(x >= lo) & (x < hi)].max()) for lo, hi in RANGES}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", default=os.path.join(os.path.dirname(__file__), "results", "normal_cdf_float32.json"))
    args = parser.parse_args()
    print(machine_line(), flush=True)
    coef = fit()
    print(f"c = {C}, P's coefficients (lowest power first):")
    for value in coef:
        print(f"    {float(value)!r},")
    print(f"largest relative error of the fit (float64, a in [0, {A_MAX}]): {fit_error(coef):.2e}")
    rng = np.random.default_rng(0)
    x = np.concatenate([np.linspace(-13, 13, 400_001), rng.standard_normal(100_000) * 3]).astype(np.float32)
    exact = F.normal_cdf(x.astype(np.float64))
    shipped = ulp_errors(F.normal_cdf(x), x, exact)
    chunks = [x[i:i + F._CHUNK] for i in range(0, x.size, F._CHUNK)]
    cody = np.concatenate([F._by_chunks(F._normal_cdf_into, piece) for piece in chunks])
    before = ulp_errors(cody, x, exact)
    print("\nlargest error of float32 Phi(x), in float32 ulp (500,001 points):")
    print("| x in | this formula | Cody's, in float32 |")
    print("|---|---|---|")
    for key in shipped:
        print(f"| {key} | {shipped[key]:.2f} | {before[key]:.2f} |")
    write_results(args.json, {"c": C, "degree": DEGREE, "coefficients": coef.tolist(), "fit_relative_error": fit_error(coef),
                              "float32_ulp": shipped, "cody_in_float32_ulp": before})


if __name__ == "__main__":
    main()
