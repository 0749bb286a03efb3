#!/usr/bin/python3
"""Piecewise polynomials for the AVX-512 gelu kernels (core/gelu-inl.h).

GeluPieces: 32 pieces of width 1/4 centred on c_k = (k - 10)/4, k = 0..31,
covering [-2.625, 5.375); on each, Phi(c_k + y) ~ P_k(y) for |y| <= 1/8, P_k
of degree 6, fit by relative least squares at Chebyshev nodes against
scipy's ndtr and rounded to float32 from the highest order down, refitting
the lower ones after each rounding. Prints the C++ table (row = order, from
the highest; column = piece) and the maximum error of x P_k(y) in float32
(emulated FMA Horner) against x ndtr(x) over a dense grid.

GeluTailPieces: h(a) = erfcx(a/sqrt2)/2 for a in (2.625, 10.625) on 32
pieces of width 1/4 centred on m/4, m = round(4a) = 11..42, stored in
column m mod 32, of degree 4, fit the same way against scipy's erfcx;
prints its table and its maximum error in float32.

GeluPrimePieces: gelu'(x) = Phi(x) + x phi(x) for x in (-1.875, 6.125) on
32 pieces of width 1/4 centred on m/4, m = round(4x) = -7..24, in column m
mod 32, of degree 6; the three pieces m = -4..-2 around the root z =
-0.7518 are polynomials in y' = x - z (zh + zl, as the kernel forms it)
with a zero constant term, so that gelu' keeps its relative accuracy up to
the root; prints zh, zl, the table and its maximum error in float32.

GeluTanhPrimePieces: the same for gelu_tanh'(x) = s + x v' s (1 - s), s =
sigma(v), v = c1 x + c3 x^3 (beyond 6.125 it too rounds to 1).

GeluTanhPieces: gelu_tanh f on the same 32 pieces as GeluPieces: sigma(v(c_k +
y)) ~ P_k(y), v = c1 x + c3 x^3, degree 5, fit the same way; prints its
table and the maximum error of x P_k(y) against x sigma(v(x)).

GeluTanhTailPieces: below that range gelu_tanh'(x) = e q(x), e = e^v,
q(x) = (1 + e + x v') / (1 + e)^2, for x in [-17.5, -1.875] on 32 pieces of
width 1/2 centred on m/2, m = round(2x) = -35..-4, in column m mod 32, of
degree 5 (the kernel forms e from the exact pair v); prints the table and
the maximum error of q in float32.

  /usr/bin/python3 scripts/fit_gelu_pieces.py
"""
import numpy as np
import scipy.optimize as so
from scipy.special import erfcx, ndtr

F32, F64 = np.float32, np.float64
WIDTH, PIECES, K0, DEG = 0.25, 32, 10, 5


def fit_relative(fun, c, deg, n):
    """Float32 coefficients of fun on the piece centred at c, highest order
    first, each refitted (relative least squares at Chebyshev nodes) after
    the higher ones are rounded."""
    y = np.cos(np.pi * (np.arange(n) + 0.5) / n) * WIDTH / 2
    v = fun(c + y)
    coef, fixed = [], np.zeros_like(y)
    for k in range(deg, -1, -1):
        vm = np.vander(y, k + 1) / v[:, None]
        ck, *_ = np.linalg.lstsq(vm, (v - fixed) / v, rcond=None)
        cr = F32(ck[0])
        coef.append(cr)
        fixed = fixed + F64(cr) * y**k
    return coef


def fma32(a, b, c):
    return (a.astype(F64) * b.astype(F64) + c.astype(F64)).astype(F32)


def piece_index(x, width, first=0):
    """As the kernels form them in float32: t = x / width + the 1.5 * 2^23
    shifter (+ first), whose low bits are each lane's column, n = round(x /
    width) and y = x - n width."""
    shifter = F32(1.5 * 2**23 + first)
    t = fma32(x, np.full_like(x, F32(1 / width)), np.full_like(x, shifter))
    n = (t - shifter).astype(F32)
    return t, n, fma32(n, np.full_like(x, F32(-width)), x)


def horner_pieces(table, t, y):
    """Each lane's piece (column t mod 32 of table) at y, by Horner with
    FMA in float32, as the kernels evaluate it."""
    j = t.view(np.int32) & 31
    p = table[j, 0]
    for k in range(1, table.shape[1]):
        p = fma32(p, y, table[j, k])
    return p


def ulp_errors(p, ref):
    """|p - ref| in float32 ULPs of ref."""
    ulp = np.spacing(np.abs(ref).astype(F32)).astype(F64)
    return np.abs(p.astype(F64) - ref) / ulp


def print_table(table):
    """The C++ rows: one per order from the highest, a column per piece."""
    for k in range(table.shape[1]):
        print("{%s}," % ", ".join("%.9ef" % v for v in table[:, k]))


def h(a):
    return erfcx(a / np.sqrt(2)) / 2


def fit_tail_piece(c, deg=4):
    return fit_relative(h, c, deg, 100)


def tail_table(deg=4):
    table = np.zeros((PIECES, deg + 1), dtype=F32)
    for m in range(11, 43):
        table[m % 32] = fit_tail_piece(m * WIDTH, deg)
    a = np.linspace(2.625, 10.625, 2000001, endpoint=False).astype(F32)[1:]
    t, _, y = piece_index(a, 0.25)
    err = ulp_errors(horner_pieces(table, t, y), h(a.astype(F64)))
    print("// GeluTailPieces: max %.3f ULP at a = %.9g (every 1/250000)"
          % (err.max(), a[np.argmax(err)]))
    print_table(table)


def gelu_prime(x):
    return ndtr(x) + x * np.exp(-x * x / 2) / np.sqrt(2 * np.pi)


def gelu_tanh_prime(x):
    c1 = 2 * np.sqrt(2 / np.pi)
    c3 = 0.044715 * c1
    v = c1 * x + c3 * x**3
    s = 1 / (1 + np.exp(-v))
    return s + x * (c1 + 3 * c3 * x * x) * s / (1 + np.exp(v))


def fit_prime_piece(c, off, root, deg=6, fun=gelu_prime):
    """gelu'(c + y) for y in off +- (1/8 + 0.003), or, with root, y times a
    polynomial (constant term 0)."""
    n = 200
    y = off + np.cos(np.pi * (np.arange(n) + 0.5) / n) * (WIDTH / 2 + 0.003)
    v = fun(c + y)
    low = 1 if root else 0
    coef, fixed = [], np.zeros_like(y)
    for k in range(deg, low - 1, -1):
        vm = np.vander(y, k + 1)[:, :k + 1 - low] / v[:, None]
        ck, *_ = np.linalg.lstsq(vm, (v - fixed) / v, rcond=None)
        cr = F32(ck[0])
        coef.append(cr)
        fixed = fixed + F64(cr) * y**k
    if root:
        coef.append(F32(0))
    return coef


def prime_table(deg=6, fun=gelu_prime, name="GeluPrimePieces"):
    z = so.brentq(fun, -0.8, -0.7, xtol=1e-17)
    zh = F32(z)
    zl = F32(z - F64(zh))
    near_root = (-4, -3, -2)
    table = np.zeros((PIECES, deg + 1), dtype=F32)
    for m in range(-7, 25):
        if m in near_root:
            table[m % 32] = fit_prime_piece(F64(zh) + F64(zl), m * WIDTH - z,
                                            True, deg, fun)
        else:
            table[m % 32] = fit_prime_piece(m * WIDTH, 0.0, False, deg, fun)
    x = np.linspace(-1.875, 6.125, 4000001, endpoint=False).astype(F32)[1:]
    t, n, y = piece_index(x, 0.25)
    yr = ((x - zh).astype(F32) - zl).astype(F32)
    y = np.where(np.abs(n + 3) <= 1, yr, y)
    err = ulp_errors(horner_pieces(table, t, y), fun(x.astype(F64)))
    print("// %s: max %.3f ULP at x = %.9g (every 1/500000); "
          "zh = %.9ef, zl = %.9ef" % (name, err.max(), x[np.argmax(err)], zh, zl))
    print_table(table)


def gelu_tanh_tail_q(x):
    c1 = 2 * np.sqrt(2 / np.pi)
    c3 = 0.044715 * c1
    e = np.exp(c1 * x + c3 * x**3)
    return (1 + e + x * (c1 + 3 * c3 * x * x)) / (1 + e)**2


def gelu_tanh_tail_table(deg=5, width=0.5):
    global WIDTH
    saved, WIDTH = WIDTH, width
    table = np.zeros((PIECES, deg + 1), dtype=F32)
    for m in range(-35, -3):
        table[m % 32] = fit_relative(gelu_tanh_tail_q, m * width, deg, 200)
    WIDTH = saved
    x = np.linspace(-17.5, -1.875, 4000001).astype(F32)
    t, _, y = piece_index(x, width)
    err = ulp_errors(horner_pieces(table, t, y),
                     gelu_tanh_tail_q(x.astype(F64)))
    print("// GeluTanhTailPieces: max %.3f ULP at x = %.9g (4,000,001 points)"
          % (err.max(), x[np.argmax(err)]))
    print_table(table)


def gelu_tanh_sigma(x):
    c1 = 2 * np.sqrt(2 / np.pi)
    c3 = 0.044715 * c1
    return 1 / (1 + np.exp(-(c1 * x + c3 * x**3)))


def value_table(fun, name, deg=DEG):
    """x fun(x) on the pieces of GeluPieces: fun's table and its error."""
    table = np.array([fit_relative(fun, (k - K0) * WIDTH, deg, 200)
                      for k in range(PIECES)], dtype=F32)
    x = np.linspace(-2.625, 5.375, 4000001, endpoint=False).astype(F32)
    t, _, y = piece_index(x, WIDTH, K0)
    f = (x * horner_pieces(table, t, y)).astype(F32)
    ref = x.astype(F64) * fun(x.astype(F64))
    ok = np.abs(ref) > 1.2e-38
    err = ulp_errors(f[ok], ref[ok])
    print("// %s: max |x P(y) - f(x)| = %.3f ULP at x = %.9g (every 1/500000)"
          % (name, err.max(), x[ok][np.argmax(err)]))
    print_table(table)


def main():
    value_table(ndtr, "GeluPieces")
    value_table(gelu_tanh_sigma, "GeluTanhPieces")
    tail_table()
    prime_table()
    prime_table(fun=gelu_tanh_prime, name="GeluTanhPrimePieces")
    gelu_tanh_tail_table()


if __name__ == "__main__":
    main()
