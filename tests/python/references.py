"""float64 references of the activation functions, from forms that keep
relative accuracy (SPEC §1), and float32 accuracy checks in units in the last
place (SPEC §4): numpy and scipy only, shared by test_service.py and
test_client.py."""

import math

import numpy as np
from scipy import special


SQRT2 = math.sqrt(2.0)
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
GELU_TANH_K = 0.044715
SELU_LAMBDA = 1.0507009873554805
SELU_ALPHA = 1.6732632423543772
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)

# ---------------------------------------------------------------------------
# float64 references, from forms that keep relative accuracy (SPEC §1).

def sech2(x):
    e = np.exp(-2.0 * np.abs(x))
    return 4.0 * e / (1.0 + e) ** 2


def dsigmoid(x):
    e = np.exp(-np.abs(x))
    return e / (1.0 + e) ** 2


def phi(x):
    return INV_SQRT_2PI * np.exp(-0.5 * x * x)


def Phi(x):
    return 0.5 * special.erfc(-x / SQRT2)


def gelu_tanh_parts(x):
    u = SQRT_2_OVER_PI * (x + GELU_TANH_K * x ** 3)
    du = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_TANH_K * x * x)
    d2u = SQRT_2_OVER_PI * 6.0 * GELU_TANH_K * x
    s = special.expit(2.0 * u)  # (1 + tanh u) / 2 without cancellation
    s1 = special.expit(-2.0 * u)  # 1 - s
    return u, du, d2u, s, s1


def ref_forward(name, x, alpha):
    if name == "identity":
        return x
    if name == "sigmoid":
        return special.expit(x)
    if name == "tanh":
        return np.tanh(x)
    if name == "relu":
        return np.where(x > 0, x, 0.0)
    if name == "leaky_relu":
        return np.where(x > 0, x, alpha * x)
    if name == "gelu":
        return x * Phi(x)
    if name == "gelu_tanh":
        _, _, _, s, _ = gelu_tanh_parts(x)
        return x * s
    if name == "silu":
        return x * special.expit(x)
    if name == "softplus":
        return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))
    if name == "elu":
        return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))
    if name == "selu":
        return SELU_LAMBDA * np.where(
            x > 0, x, SELU_ALPHA * np.expm1(np.minimum(x, 0)))
    raise KeyError(name)


def elu_family_derivative(name, x, alpha, positive_side):
    """ELU's or SELU's first or second derivative: alpha e^x on the negative
    side for both orders, positive_side (1 or 0) on the positive one."""
    if name == "selu":
        return SELU_LAMBDA * elu_family_derivative(
            "elu", x, SELU_ALPHA, positive_side)
    return np.where(x > 0, positive_side, alpha * np.exp(np.minimum(x, 0)))


def ref_derivative(name, x, alpha):
    if name == "identity":
        return np.ones_like(x)
    if name == "sigmoid":
        return dsigmoid(x)
    if name == "tanh":
        return sech2(x)
    if name == "relu":
        return np.where(x > 0, 1.0, 0.0)
    if name == "leaky_relu":
        return np.where(x > 0, 1.0, alpha)
    if name == "gelu":
        return Phi(x) + x * phi(x)
    if name == "gelu_tanh":
        _, du, _, s, s1 = gelu_tanh_parts(x)
        return s + 2.0 * x * du * s * s1
    if name == "silu":
        return special.expit(x) * (1.0 + x * special.expit(-x))
    if name == "softplus":
        return special.expit(x)
    if name in ("elu", "selu"):
        return elu_family_derivative(name, x, alpha, positive_side=1.0)
    raise KeyError(name)


def ref_second(name, x, alpha):
    if name in ("identity", "relu", "leaky_relu"):
        return np.zeros_like(x)
    if name == "sigmoid":
        return -dsigmoid(x) * np.tanh(0.5 * x)
    if name == "tanh":
        return -2.0 * np.tanh(x) * sech2(x)
    if name == "gelu":
        return phi(x) * (2.0 - x * x)
    if name == "gelu_tanh":
        u, du, d2u, s, s1 = gelu_tanh_parts(x)
        # d/dx [s + 2x u' s(1-s)], with d s/dx = 2u' s(1-s), 1-2s = -tanh u.
        return s * s1 * (4.0 * du + 2.0 * x * d2u
                         - 4.0 * x * du * du * np.tanh(u))
    if name == "silu":
        return dsigmoid(x) * (2.0 - x * np.tanh(0.5 * x))
    if name == "softplus":
        return dsigmoid(x)
    if name in ("elu", "selu"):
        return elu_family_derivative(name, x, alpha, positive_side=0.0)
    raise KeyError(name)


def softmax_ref(z, axis=-1):
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - np.max(z, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def logsumexp_ref(z, axis=-1):
    return special.logsumexp(np.asarray(z, dtype=np.float64), axis=axis)


# ---------------------------------------------------------------------------
# Accuracy in units in the last place (SPEC §4).

F32_MIN_NORMAL = 2.0 ** -126


def ulp32(truth):
    """The float32 ULP at |truth|, floored at the subnormal spacing."""
    a = np.abs(np.asarray(truth, dtype=np.float64))
    e = np.floor(np.log2(np.maximum(a, F32_MIN_NORMAL)))
    return np.exp2(e - 23)


def float32_ulp_errors(got, truth):
    got = np.asarray(got, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    return np.abs(got - truth) / ulp32(truth)


class AccuracyMixin:
    def assert_float32_close(self, x, got, truth, max_ulp, zeros=(),
                             abs_bound=4 * 2.0 ** -23, what=""):
        """Within max_ulp of truth; within abs_bound inside +-0.5 of an
        interior zero in `zeros`; a subnormal result within the smallest
        normal float; NaN where truth is NaN."""
        x = np.asarray(x, dtype=np.float64).ravel()
        got = np.asarray(got, dtype=np.float64).ravel()
        truth = np.asarray(truth, dtype=np.float64).ravel()
        nan = np.isnan(truth)
        np.testing.assert_array_equal(np.isnan(got), nan, err_msg=what)
        got, truth, x = got[~nan], truth[~nan], x[~nan]
        err = np.abs(got - truth)
        near_zero = np.zeros(x.shape, dtype=bool)
        for z in zeros:
            near_zero |= np.abs(x - z) <= 0.5
        subnormal = np.abs(truth) < F32_MIN_NORMAL
        ok = np.where(near_zero, err <= abs_bound,
                      np.where(subnormal, err <= F32_MIN_NORMAL,
                               err <= max_ulp * ulp32(truth)))
        ok |= got == truth  # infinities
        if not ok.all():
            i = np.argmax(~ok)
            self.fail("%s: %d of %d values out of bound; first at x=%r: got "
                      "%r, want %r (%.1f ulp)" % (
                          what, np.count_nonzero(~ok), ok.size, x[i], got[i],
                          truth[i], float32_ulp_errors(got[i], truth[i])))

    def assert_float64_close(self, got, truth, rtol=1e-12, atol=1e-300,
                             what=""):
        np.testing.assert_allclose(np.asarray(got, dtype=np.float64), truth,
                                   rtol=rtol, atol=atol, err_msg=what)


# Names and enum values of the elementwise functions, with their interior
# zeros of f' and f'' (where SPEC §4 allows an absolute bound).
ELEMENTWISE = {
    "identity": ((), ()),
    "sigmoid": ((), ()),
    "tanh": ((), ()),
    "relu": ((), ()),
    "leaky_relu": ((), ()),
    "gelu": ((-0.7517915,), (-SQRT2, SQRT2)),
    "gelu_tanh": ((-0.7524614,), (-1.4185040, 1.4185040)),
    "silu": ((-1.2784645,), (-2.3993572, 2.3993572)),
    "softplus": ((), ()),
    "elu": ((), ()),
    "selu": ((), ()),
}
DEFAULT_ALPHA = {"leaky_relu": 0.01, "elu": 1.0}


def grid32():
    """Dense over [-20, 20] plus the points around the breakpoints."""
    x = np.concatenate([np.linspace(-20, 20, 4001), [-1e-3, -1e-30, 0.0, 1e-30,
                                                     1e-3, -0.0]])
    return x.astype(np.float32)
