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
from scipy.special import erf, erfcx, ndtr
import scipy.optimize as so

f32 = np.float32


def cheb(lo, hi, n=600):
    k = np.arange(n)
    return (lo + hi) / 2 + (hi - lo) / 2 * np.cos(np.pi * (k + 0.5) / n)


def fit_rounded(t, y, deg, base=None, scale=None, weight=None):
    """Coefficients [c0_lo, c0, c1, ..., c_deg] of sum c_i t^i ~ y, relative
    error, each rounded to float32, c0 = c0 + c0_lo a float32 pair. scale
    multiplies every column (default 1); base is added to the model; the
    error is relative to weight (default y)."""
    base = np.zeros_like(y) if base is None else base
    scale = np.ones_like(y) if scale is None else scale
    fixed = {}
    for i in range(deg, -1, -1):
        resid = y - base - sum(c * scale * t**j for j, c in fixed.items())
        cols = np.stack([scale * t**j for j in range(0, i + 1)], axis=1)
        wy = y if weight is None else weight
        c = np.linalg.lstsq(cols / wy[:, None], resid / wy, rcond=None)[0]
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
    # 1. Erfcx: h(a) = erfcx(a/sqrt2)/2, so that Phi(-a) = e^(-a^2/2) h(a),
    #    as h = k / (a + g(a)), k = 1/sqrt(2 pi), g = P/Q, that is
    #    h = k Q / (a Q + P): P of degree 4, Q of degree 5, Q(0) = 1, on
    #    [0, 14.5] (where gelu underflows). Linearized fit of
    #    k Q - h (a Q + P) = 0, reweighted by 1/(h (a Q + P)) of the previous
    #    step (Sanathanan-Koerner) and then by its own error (Lawson) toward
    #    the minimax; then Q is rounded to float32 and P refit for that Q
    #    (top-down rounding, P(0) as a pair).
    k = 1 / np.sqrt(2 * np.pi)
    h = lambda a: erfcx(a / np.sqrt(2)) / 2
    a = cheb(0, 14.5, 1500)
    y = h(a)
    den = np.ones_like(a)
    lw = np.ones_like(a)
    best = None
    for it in range(60):
        cols = [-y * a**j for j in range(5)]
        cols += [(k - y * a) * a**j for j in range(1, 6)]
        m = np.stack(cols, 1) / (y * den)[:, None] * np.sqrt(lw)[:, None]
        rhs = -(k - y * a) / (y * den) * np.sqrt(lw)
        c = np.linalg.lstsq(m, rhs, rcond=None)[0]
        p, q = c[:5], np.concatenate([[1.0], c[5:]])
        qv = np.polyval(q[::-1], a)
        den = a * qv + np.polyval(p[::-1], a)
        rel = np.abs(k * qv / den / y - 1)
        if it >= 15:
            lw = lw * rel / np.sum(lw * rel) * len(a)
        if best is None or rel.max() < best[0]:
            best = (rel.max(), q.copy())
    q = [float(f32(v)) for v in best[1]]
    qv = np.polyval(q[::-1], a)
    target = k * qv / y - a * qv  # the P that makes h exact
    P = fit_rounded(a, target, 4, weight=a * qv + target)
    ad = np.linspace(0, 14.5, 400001)
    qd = np.polyval(q[::-1], ad)
    err = np.max(np.abs(k * qd / (ad * qd + value(P, ad)) / h(ad) - 1))
    print(f"// ErfcxHalf: max relative fit error {err:.2e}; Q(a), a^0 first:")
    for v in q:
        print(f"  {v:.9e}f")
    report("P(a): lo of a^0, then a^0, a^1, ...", P, err)

    # 1b. Phi(x) = 1/2 + x R(x^2) for |x| <= 1/2 (gelu's f there).
    x = cheb(1e-4, 0.5)
    R = fit_rounded(x * x, erf(x / np.sqrt(2)) / 2 / x, 4)
    xd = np.linspace(1e-4, 0.5, 100001)
    err = np.max(np.abs(value(R, xd * xd) / (erf(xd / np.sqrt(2)) / 2 / xd) - 1))
    report("R(s): lo of s^0, then s^0, s^1, ...", R, err)

    # 2. gelu'(x) = Phi(x) + x phi(x) = (x - z) G(x - z) on [-1.5, 0.5], z
    #    its root, z = zh + zl.
    phi = lambda x: np.exp(-x * x / 2) / np.sqrt(2 * np.pi)
    d1 = lambda x: ndtr(x) + x * phi(x)
    z = so.brentq(d1, -1, -0.5, xtol=1e-17)
    zh = f32(z)
    zl = f32(z - np.float64(zh))
    print(f"// z = {z:.17g}: zh = {zh:.9e}f, zl = {zl:.9e}f")
    x = cheb(-1.5, 0.5)
    y = x - z
    G = fit_rounded(y, d1(x) / y, 13)
    xd = np.linspace(-1.5, 0.5, 200001)
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
