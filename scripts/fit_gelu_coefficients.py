#!/usr/bin/python3
"""Fits the float32 polynomial coefficients of core/gelu-inl.h.

Run: /usr/bin/python3 scripts/fit_gelu_coefficients.py (numpy, scipy).
References are scipy.special.erfcx / ndtr / expm1 in float64, about 1e-16
relative, far below the float32 ULP (6e-8) the fits aim at.

Each fit is a weighted (relative-error) least-squares fit at Chebyshev nodes.
The coefficients are then rounded to float32 one at a time, from the highest
order down, refitting the lower ones after each rounding, so that the
rounding of a coefficient is absorbed by the others instead of adding up to
a bias. The constant term is kept as a float32 pair hi + lo (the kernels add
lo inside the polynomial at no cost): its rounding alone would be 0.5 ULP.
"""
import numpy as np
from scipy.special import erfcx, ndtr
import scipy.optimize as so

f32 = np.float32


def cheb(lo, hi, n=600):
    k = np.arange(n)
    return (lo + hi) / 2 + (hi - lo) / 2 * np.cos(np.pi * (k + 0.5) / n)


def fit_rounded(t, y, deg, base=None, scale=None):
    """Coefficients [c0_lo, c0, c1, ..., c_deg] of sum c_i t^i ~ y, relative
    error, each rounded to float32, c0 = c0 + c0_lo a float32 pair. scale
    multiplies every column (default 1); base is added to the model."""
    base = np.zeros_like(y) if base is None else base
    scale = np.ones_like(y) if scale is None else scale
    fixed = {}
    for i in range(deg, -1, -1):
        resid = y - base - sum(c * scale * t**j for j, c in fixed.items())
        cols = np.stack([scale * t**j for j in range(0, i + 1)], axis=1)
        c = np.linalg.lstsq(cols / y[:, None], resid / y, rcond=None)[0]
        fixed[i] = float(f32(c[i]))
        if i == 0:
            lo = float(f32(c[0] - fixed[0]))
    return [lo] + [fixed[j] for j in range(deg + 1)]


def value(c, t):
    """The polynomial of fit_rounded's coefficients, in float64."""
    return np.polyval(c[:0:-1], t) + c[0]


def report(name, coeffs, err):
    print(f"// {name}: max relative fit error {err:.2e}")
    for c in coeffs:
        print(f"  {c:.9e}f")


def main():
    # 1. Erfcx: h(a) = erfcx(a/sqrt2)/2, so that Phi(-a) = e^(-a^2/2) h(a).
    #    h(a) = w P(s), w = 1/(a + 3), s = A w + B maps w over
    #    [1/(14.5 + 3), 1/3] onto [-1, 1] (A, B rounded to float32 first and
    #    the fit made in that s). h(a) > 0 down to where gelu underflows.
    c = 3.0
    wmin, wmax = 1 / (14.5 + c), 1 / c
    A = float(f32(2 / (wmax - wmin)))
    B = float(f32(-(wmax + wmin) / (wmax - wmin)))
    w = cheb(wmin, wmax)
    s = A * w + B
    h = erfcx((1 / w - c) / np.sqrt(2)) / 2
    P = fit_rounded(s, h / w, 10)
    ad = np.linspace(0, 14.5, 400001)
    wd = 1 / (ad + c)
    err = np.max(np.abs(wd * value(P, A * wd + B) /
                        (erfcx(ad / np.sqrt(2)) / 2) - 1))
    print(f"// Erfcx: A = {A:.9e}f, B = {B:.9e}f")
    report("P(s): lo of s^0, then s^0, s^1, ...", P, err)

    # 2. gelu'(x) = Phi(x) + x phi(x) = (x - z) G(x - z) on [-1.5, 0], z its
    #    root, z = zh + zl.
    phi = lambda x: np.exp(-x * x / 2) / np.sqrt(2 * np.pi)
    d1 = lambda x: ndtr(x) + x * phi(x)
    z = so.brentq(d1, -1, -0.5, xtol=1e-17)
    zh = f32(z)
    zl = f32(z - np.float64(zh))
    print(f"// z = {z:.17g}: zh = {zh:.9e}f, zl = {zl:.9e}f")
    x = cheb(-1.5, 0.0)
    y = x - z
    G = fit_rounded(y, d1(x) / y, 10)
    xd = np.linspace(-1.5, 0, 200001)
    xd = xd[np.abs(xd - z) > 1e-6]
    err = np.max(np.abs((xd - z) * value(G, xd - z) / d1(xd) - 1))
    report("G(y): lo of y^0, then y^0, y^1, ...", G, err)

    # 3. e^r = 1 + r + r^2 Q(r), |r| <= ln2/2 (plus the low part's 1%).
    L = np.log(2) / 2 * 1.01
    r = cheb(-L, L)
    Q = fit_rounded(r, np.expm1(r), 4, base=r, scale=r * r)
    rd = np.linspace(-L, L, 200000)
    err = np.max(np.abs((rd + rd * rd * value(Q, rd)) /
                        np.expm1(rd) - 1))
    report("Q(r): lo of r^0, then r^0, r^1, ... (relative to expm1)", Q, err)


if __name__ == "__main__":
    main()
