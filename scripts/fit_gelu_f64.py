#!/usr/bin/python3
"""Fits the float64 coefficients of core/gelu_f64-inl.h (GeluF64K, ExpLo64).

Run: /usr/bin/python3 scripts/fit_gelu_f64.py (python3-mpmath). Prints the
C++ constants; takes about a minute.

The reference is mpmath at 40 digits (erfc, exp), far below the float64 ULP
(1.1e-16) the fits aim at; scipy's float64 erfcx would itself be off by about
one float64 ULP. Every fit is a weighted least-squares fit at Chebyshev nodes
(close to minimax), solved by QR in 40-digit arithmetic; the error printed is
the maximum over a dense grid, before the coefficients are rounded to float64.

1. ExpLo64: e^r = 1 + r + r^2 E(r) for |r| <= ln2/2 (+ margin), E of degree
   10; error relative to e^r.
2. gelu for |x| < 3/4, u = x^2 (Phi the normal CDF, phi its density):
   Phi(x) - 1/2 = x P(u)         (so gelu = x (1/2 + x P(u))),
   gelu'(x)     = 1/2 + x S(u),  S(u) = P(u) + phi(x)  (degrees 9 and 10).
   Relative error of P and S.
3. gelu for |x| >= 3/4: h(a) = erfcx(a/sqrt2)/2 = Phi(-a) e^(a^2/2), as
   h = k / (a + g(a)), k = 1/sqrt(2 pi), g = N/D rational in y = a - 3/4
   (N of degree 9, D of degree 10, D(0) = 1), on a in [3/4, 40]; fitted by
   iterated linearized least squares (each pass weights by 1/D of the last),
   with the error measured in h: |dg| / (a + g). All coefficients come out
   positive, so Horner's rule adds only positive terms.
4. Constants: k, sqrt(2/pi) and 0.044715 products as float64 pairs hi + lo.
"""
import mpmath as mp

mp.mp.dps = 40
K = 1 / mp.sqrt(2 * mp.pi)


def cheb_nodes(lo, hi, n):
    return [lo + (hi - lo) * (mp.cos(mp.pi * (j + mp.mpf(0.5)) / n) + 1) / 2
            for j in range(n)]


def lsq(rows, rhs):
    x, _ = mp.qr_solve(mp.matrix(rows), mp.matrix(rhs))
    return [x[i] for i in range(len(rows[0]))]


def poly_fit(f, lo, hi, deg, var=lambda t: t, n=None):
    """c with sum c_i var(t)^i ~ f(t) on [lo, hi], relative error."""
    n = n or 4 * deg
    rows, rhs = [], []
    for t in cheb_nodes(lo, hi, n):
        y = f(t)
        v = var(t)
        rows.append([v**i / y for i in range(deg + 1)])
        rhs.append(mp.mpf(1))
    c = lsq(rows, rhs)
    err = max(abs(mp.polyval(c[::-1], var(t)) / f(t) - 1)
              for t in [lo + (hi - lo) * j / 999 for j in range(1000)])
    return c, err


def h_exact(a):
    t = a / mp.sqrt(2)
    return mp.erfc(t) * mp.exp(t * t) / 2


def rational_g(a0, a1, n, nodes=240, passes=8):
    wlo, whi = 1 / (a1 + 1), 1 / (a0 + 1)
    data = []
    for w in cheb_nodes(wlo, whi, nodes):  # dense at small a
        a = 1 / w - 1
        g = K / h_exact(a) - a
        data.append((a, g, 1 / (a + g)))
    dprev = [mp.mpf(1)] * len(data)
    for _ in range(passes):
        rows, rhs = [], []
        for i, (a, g, wt) in enumerate(data):
            y = a - a0
            s = wt / dprev[i]
            rows.append([s * y**j for j in range(n)] +
                        [-s * g * y**j for j in range(1, n + 1)])
            rhs.append(s * g)
        x = lsq(rows, rhs)
        num = x[:n]
        den = [mp.mpf(1)] + x[n:]
        dprev = [mp.polyval(den[::-1], a - a0) for (a, _, _) in data]
    err = 0
    for j in range(3000):
        a = a0 + (a1 - a0) * mp.mpf(j) / 2999
        y = a - a0
        g = mp.polyval(num[::-1], y) / mp.polyval(den[::-1], y)
        err = max(err, abs(K / (a + g) / h_exact(a) - 1))
    return num, den, err


def pair(v):
    hi = float(v)
    lo = float(v - mp.mpf(hi))
    return hi, lo


def show(name, coeffs, err):
    print(f"// {name}: max relative fit error {float(err):.2e}")
    for c in coeffs:
        print(f"    {float(c):.17g},")


def main():
    ln2h = mp.log(2) / 2 * mp.mpf("1.0001")
    ec, err = poly_fit(lambda r: (mp.exp(r) - 1 - r) / r**2 if r else
                       mp.mpf(0.5), -ln2h, ln2h, 10)
    show("ExpLo64 E(r), e^r = 1 + r + r^2 E(r)", ec[::-1], err)

    a0 = mp.mpf("0.75")
    u1 = a0 * a0

    def phi_minus_half_over_x(u):
        if u == 0:
            return K
        x = mp.sqrt(u)
        return (mp.ncdf(x) - mp.mpf(0.5)) / x

    pc, err = poly_fit(phi_minus_half_over_x, mp.mpf(0), u1, 9)
    show("P(u), Phi(x) - 1/2 = x P(x^2), |x| < 3/4", pc[::-1], err)
    sc, err = poly_fit(lambda u: phi_minus_half_over_x(u) + K * mp.exp(-u / 2),
                       mp.mpf(0), u1, 10)
    show("S(u), gelu'(x) = 1/2 + x S(x^2), |x| < 3/4", sc[::-1], err)

    num, den, err = rational_g(a0, mp.mpf(40), 10)
    show("g numerator N(y), y = a - 3/4, highest first", num[::-1], err)
    show("g denominator D(y), highest first (D(0) = 1)", den[::-1], err)

    c1 = 2 * mp.sqrt(2 / mp.pi)
    consts = {
        "k = 1/sqrt(2 pi)": K,
        "c1 = 2 sqrt(2/pi)": c1,
        "c3 = 0.044715 c1": mp.mpf("0.044715") * c1,
        "d3 = 3 c3": 3 * mp.mpf("0.044715") * c1,
        "6 c3": 6 * mp.mpf("0.044715") * c1,
        "ln2": mp.log(2),
    }
    for name, v in consts.items():
        hi, lo = pair(v)
        print(f"// {name}: {hi:.17g}, {lo:.17g}")


if __name__ == "__main__":
    main()
