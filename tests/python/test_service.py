#!/usr/bin/python3
"""A Python client against the real actsvc-server: every RPC, raw bytes on the
wire, results compared with numpy/scipy references in float64.

Run by ctest; by hand:
  /usr/bin/python3 tests/python/test_service.py \
      --server build/server/actsvc-server --stubs build/python [-v] [-k gelu]

Needs python3-grpcio, python3-numpy and python3-scipy (Debian 12): use
/usr/bin/python3, not a bare interpreter earlier on PATH.
"""

import argparse
import math
import os
import sys
import unittest

import numpy as np
from scipy import special

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)),
                                "examples", "python"))
sys.path.insert(0, HERE)
import actsvc_client  # noqa: E402 (its LocalServer runs the server)
from references import *  # noqa: E402,F401,F403 (references and checks)


# Set by main() before the tests import the stubs.
pb = None
pb_grpc = None
grpc = None
SERVER_BINARY = None
SERVER = None  # the running actsvc_client.LocalServer
STUB = None


def setUpModule():
    global SERVER, STUB
    SERVER = actsvc_client.LocalServer(SERVER_BINARY,
                                       ["--shutdown_grace_s=5"]).start()
    channel = grpc.insecure_channel(
        SERVER.target,
        options=[("grpc.max_receive_message_length", -1),
                 ("grpc.max_send_message_length", -1)])
    STUB = pb_grpc.ActivationServiceStub(channel)


def tearDownModule():
    if SERVER is None:
        return
    code = SERVER.stop()
    log = SERVER.read_log()
    os.unlink(SERVER.log.name)
    if code != 0:
        raise AssertionError(
            "actsvc-server exited with %s on SIGTERM\nlog:\n%s" % (code, log))


# ---------------------------------------------------------------------------
# Tensors.

# numpy dtype -> (proto dtype name, typed field, little-endian raw format);
# names, as the stubs (pb) are imported once the arguments are parsed.
TENSOR_DTYPES = {
    np.dtype(np.float32): ("FLOAT32", "float_data", "<f4"),
    np.dtype(np.float64): ("FLOAT64", "double_data", "<f8"),
}


def to_tensor(x, typed=False):
    x = np.asarray(x)
    if x.dtype not in TENSOR_DTYPES:
        raise TypeError(x.dtype)
    dtype, typed_field, raw_format = TENSOR_DTYPES[x.dtype]
    t = pb.Tensor(shape=list(x.shape), dtype=getattr(pb, dtype))
    if typed:
        getattr(t, typed_field).extend(x.ravel().tolist())
    else:
        t.raw_data = x.astype(raw_format).tobytes()
    return t


def from_tensor(t, expect_typed=None):
    """The tensor's values; checks the encoding when expect_typed is set."""
    dtype = {pb.FLOAT32: np.dtype("<f4"), pb.FLOAT64: np.dtype("<f8")}[t.dtype]
    typed = t.float_data if t.dtype == pb.FLOAT32 else t.double_data
    if expect_typed is not None and len(t.raw_data) + len(typed) > 0:
        assert (len(t.raw_data) == 0) == expect_typed, (
            "the response encoding differs from the request's")
    if len(t.raw_data) > 0 or len(typed) == 0:
        values = np.frombuffer(t.raw_data, dtype=dtype)
    else:
        values = np.array(typed, dtype=dtype)
    return values.reshape(tuple(t.shape))


def spec(function, alpha=None, axis=None):
    s = pb.FunctionSpec(function=function)
    if alpha is not None:
        s.alpha = alpha
    if axis is not None:
        s.axis = axis
    return s


def enum(name):
    return pb.Function.Value(name.upper())


# ---------------------------------------------------------------------------
# The tests.

class EvaluateTest(AccuracyMixin, unittest.TestCase):
    def test_every_elementwise_function_float32(self):
        x = grid32()
        for name in ELEMENTWISE:
            with self.subTest(name):
                alpha = DEFAULT_ALPHA.get(name)
                r = STUB.Evaluate(pb.EvaluateRequest(
                    spec=spec(enum(name)), input=to_tensor(x)))
                self.assertEqual(r.output.dtype, pb.FLOAT32)
                self.assertEqual(list(r.output.shape), [x.size])
                self.assertGreater(len(r.output.raw_data), 0)
                got = from_tensor(r.output)
                truth = ref_forward(name, x.astype(np.float64), alpha)
                self.assert_float32_close(x, got, truth, 4, what=name)

    def test_every_elementwise_function_float64_typed(self):
        x = np.linspace(-30, 30, 601)
        for name in ELEMENTWISE:
            with self.subTest(name):
                alpha = 0.2 if name in DEFAULT_ALPHA else None
                r = STUB.Evaluate(pb.EvaluateRequest(
                    spec=spec(enum(name), alpha=alpha),
                    input=to_tensor(x, typed=True)))
                self.assertEqual(r.output.dtype, pb.FLOAT64)
                got = from_tensor(r.output, expect_typed=True)
                truth = ref_forward(name, x, alpha)
                self.assert_float64_close(got, truth, what=name)

    def test_tails_keep_relative_accuracy(self):
        # The textbook forms round these to 0.
        r = STUB.Evaluate(pb.EvaluateRequest(
            spec=spec(pb.GELU), input=to_tensor(np.float32([-8.0]))))
        gelu_m8 = from_tensor(r.output)[0]
        self.assertNotEqual(gelu_m8, 0.0)
        self.assertAlmostEqual(gelu_m8 / -4.9767684594e-15, 1.0, places=6)
        r = STUB.Derivative(pb.DerivativeRequest(
            spec=spec(pb.SIGMOID), input=to_tensor(np.float32([20.0]))))
        dsig20 = from_tensor(r.output)[0]
        self.assertNotEqual(dsig20, 0.0)
        self.assertAlmostEqual(dsig20 / 2.0611536181902037e-09, 1.0, places=6)

    def test_ieee_special_values(self):
        x = np.array([np.inf, -np.inf, np.nan, -0.0])
        want = {
            "sigmoid": [1.0, 0.0, np.nan, 0.5],
            "tanh": [1.0, -1.0, np.nan, -0.0],
            "gelu": [np.inf, 0.0, np.nan, 0.0],
            "relu": [np.inf, 0.0, np.nan, 0.0],
            "softplus": [np.inf, 0.0, np.nan, math.log(2.0)],
        }
        for name, values in want.items():
            with self.subTest(name):
                r = STUB.Evaluate(pb.EvaluateRequest(
                    spec=spec(enum(name)), input=to_tensor(x)))
                np.testing.assert_array_equal(from_tensor(r.output), values)
        r = STUB.Derivative(pb.DerivativeRequest(
            spec=spec(pb.SIGMOID), input=to_tensor(x)))
        np.testing.assert_array_equal(from_tensor(r.output)[:3],
                                      [0.0, 0.0, np.nan])

    def test_softmax_and_log_softmax_along_axes(self):
        rng = np.random.default_rng(1)
        z = rng.normal(scale=5, size=(3, 4, 5))
        for axis in (-1, 0, 1, 2, -2):
            with self.subTest(axis=axis):
                r = STUB.Evaluate(pb.EvaluateRequest(
                    spec=spec(pb.SOFTMAX, axis=axis), input=to_tensor(z)))
                self.assert_float64_close(from_tensor(r.output),
                                          softmax_ref(z, axis), rtol=1e-14)
                r = STUB.Evaluate(pb.EvaluateRequest(
                    spec=spec(pb.LOG_SOFTMAX, axis=axis), input=to_tensor(z)))
                want = z - np.expand_dims(logsumexp_ref(z, axis), axis)
                self.assert_float64_close(from_tensor(r.output), want,
                                          rtol=1e-13, atol=1e-14)
        # Default axis is the last; float32 as well.
        z32 = z.astype(np.float32)
        r = STUB.Evaluate(pb.EvaluateRequest(spec=spec(pb.SOFTMAX),
                                             input=to_tensor(z32)))
        self.assert_float32_close(z32, from_tensor(r.output),
                                  softmax_ref(z32.astype(np.float64)), 4,
                                  what="softmax float32")

    def test_softmax_infinities(self):
        z = np.array([[0.0, np.inf, 1.0], [-np.inf, -np.inf, -np.inf]])
        r = STUB.Evaluate(pb.EvaluateRequest(spec=spec(pb.SOFTMAX),
                                             input=to_tensor(z)))
        got = from_tensor(r.output)
        np.testing.assert_array_equal(got[0], [0.0, 1.0, 0.0])
        self.assertTrue(np.isnan(got[1]).all())

    def test_empty_and_scalar_tensors(self):
        r = STUB.Evaluate(pb.EvaluateRequest(
            spec=spec(pb.TANH), input=to_tensor(np.zeros((0, 3), np.float32))))
        self.assertEqual(list(r.output.shape), [0, 3])
        r = STUB.Evaluate(pb.EvaluateRequest(
            spec=spec(pb.TANH), input=to_tensor(np.float64(0.5).reshape(()))))
        self.assertEqual(list(r.output.shape), [])
        self.assertAlmostEqual(float(from_tensor(r.output)), math.tanh(0.5),
                               places=15)


class GeluAcceptanceTest(AccuracyMixin, unittest.TestCase):
    """The issue's acceptance check: gelu'(x) of a [64, 1000] float32 tensor
    spanning the tails, sent as raw bytes, within 4 ULP of the truth."""

    def test_gelu_derivative_within_4_ulp(self):
        f32 = np.finfo(np.float32)
        specials = np.array(
            [0.0, -0.0, np.inf, -np.inf, np.nan, f32.max, -f32.max,
             f32.tiny, -f32.tiny, 1e-45, -1e-45, 2.0 ** -130, -0.75179,
             -SQRT2, SQRT2, -13.0, -13.5, -14.0, 1e-8, -1e-8],
            dtype=np.float32)
        x = np.linspace(-40, 40, 64 * 1000, dtype=np.float32)
        x[:specials.size] = specials
        x = x.reshape(64, 1000)

        r = STUB.Derivative(pb.DerivativeRequest(
            spec=spec(pb.GELU), input=to_tensor(x), order=1))
        self.assertEqual(list(r.output.shape), [64, 1000])
        self.assertEqual(r.output.dtype, pb.FLOAT32)
        self.assertEqual(len(r.output.raw_data), 64 * 1000 * 4)
        got = from_tensor(r.output)

        xd = x.astype(np.float64)
        finite = np.isfinite(xd)
        truth = np.empty_like(xd)
        xf = xd[finite]
        # Φ(x) = ½ erfc(−x/√2) keeps relative accuracy for x ≪ 0, where
        # 1 + erf cancels; x φ(x) underflows cleanly to 0.
        truth[finite] = 0.5 * special.erfc(-xf / SQRT2) + xf * phi(xf)
        truth[xd == np.inf] = 1.0
        truth[xd == -np.inf] = 0.0
        truth[np.isnan(xd)] = np.nan
        self.assert_float32_close(x, got, truth, 4, zeros=(-0.7517915,),
                                  what="gelu'(x), [64, 1000] float32")
        errors = float32_ulp_errors(got[finite & (np.abs(xd + 0.75179) > 0.5)],
                                    truth[finite & (np.abs(xd + 0.75179) > 0.5)])
        print("\ngelu' float32: max error %.2f ulp outside the zero"
              % np.max(errors), file=sys.stderr)


class DerivativeTest(AccuracyMixin, unittest.TestCase):
    def test_first_and_second_derivatives_float32(self):
        x = grid32()
        for name, (zeros1, zeros2) in ELEMENTWISE.items():
            alpha = DEFAULT_ALPHA.get(name)
            for order, ref, budget, zeros, abs_bound in (
                    (1, ref_derivative, 4, zeros1, 4 * 2.0 ** -23),
                    (2, ref_second, 16, zeros2, 16 * 2.0 ** -23)):
                with self.subTest(name=name, order=order):
                    r = STUB.Derivative(pb.DerivativeRequest(
                        spec=spec(enum(name)), input=to_tensor(x),
                        order=order))
                    truth = ref(name, x.astype(np.float64), alpha)
                    self.assert_float32_close(
                        x, from_tensor(r.output), truth, budget, zeros=zeros,
                        abs_bound=abs_bound, what="%s order %d" % (name, order))

    def test_first_and_second_derivatives_float64(self):
        x = np.linspace(-25, 25, 501)
        for name in ELEMENTWISE:
            alpha = 0.3 if name in DEFAULT_ALPHA else None
            for order, ref in ((1, ref_derivative), (2, ref_second)):
                with self.subTest(name=name, order=order):
                    r = STUB.Derivative(pb.DerivativeRequest(
                        spec=spec(enum(name), alpha=alpha),
                        input=to_tensor(x, typed=True), order=order))
                    got = from_tensor(r.output, expect_typed=True)
                    self.assert_float64_close(got, ref(name, x, alpha),
                                              rtol=1e-11, atol=1e-15)

    def test_order_zero_means_one(self):
        x = np.array([-1.0, 0.5, 3.0])
        r0 = STUB.Derivative(pb.DerivativeRequest(
            spec=spec(pb.TANH), input=to_tensor(x), order=0))
        r1 = STUB.Derivative(pb.DerivativeRequest(
            spec=spec(pb.TANH), input=to_tensor(x), order=1))
        np.testing.assert_array_equal(from_tensor(r0.output),
                                      from_tensor(r1.output))

    def test_elementwise_vjp(self):
        rng = np.random.default_rng(2)
        x = rng.normal(scale=4, size=(4, 6))
        g = rng.normal(size=(4, 6))
        for name in ("sigmoid", "gelu", "silu", "elu"):
            with self.subTest(name):
                r = STUB.Derivative(pb.DerivativeRequest(
                    spec=spec(enum(name)), input=to_tensor(x),
                    upstream_grad=to_tensor(g)))
                want = g * ref_derivative(name, x, DEFAULT_ALPHA.get(name))
                self.assert_float64_close(from_tensor(r.output), want,
                                          rtol=1e-12, atol=1e-15)

    def test_softmax_and_log_softmax_vjp(self):
        rng = np.random.default_rng(3)
        z = rng.normal(scale=3, size=(3, 5))
        g = rng.normal(size=(3, 5))
        p = softmax_ref(z)
        r = STUB.Derivative(pb.DerivativeRequest(
            spec=spec(pb.SOFTMAX), input=to_tensor(z),
            upstream_grad=to_tensor(g)))
        want = p * (g - np.sum(g * p, axis=-1, keepdims=True))
        self.assert_float64_close(from_tensor(r.output), want, rtol=1e-12,
                                  atol=1e-15)
        r = STUB.Derivative(pb.DerivativeRequest(
            spec=spec(pb.LOG_SOFTMAX), input=to_tensor(z),
            upstream_grad=to_tensor(g)))
        want = g - p * np.sum(g, axis=-1, keepdims=True)
        self.assert_float64_close(from_tensor(r.output), want, rtol=1e-12,
                                  atol=1e-15)
        # Along axis 0.
        r = STUB.Derivative(pb.DerivativeRequest(
            spec=spec(pb.SOFTMAX, axis=0), input=to_tensor(z),
            upstream_grad=to_tensor(g)))
        p0 = softmax_ref(z, axis=0)
        want = p0 * (g - np.sum(g * p0, axis=0, keepdims=True))
        self.assert_float64_close(from_tensor(r.output), want, rtol=1e-12,
                                  atol=1e-15)

    def test_softmax_derivative_needs_the_upstream_gradient(self):
        with self.assertRaises(grpc.RpcError) as cm:
            STUB.Derivative(pb.DerivativeRequest(
                spec=spec(pb.SOFTMAX), input=to_tensor(np.zeros(3))))
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("Jacobian", cm.exception.details())


class JacobianTest(AccuracyMixin, unittest.TestCase):
    def test_softmax_dense(self):
        rng = np.random.default_rng(4)
        z = rng.normal(scale=2, size=(2, 4))
        r = STUB.Jacobian(pb.JacobianRequest(spec=spec(pb.SOFTMAX),
                                             input=to_tensor(z)))
        self.assertFalse(r.diagonal)
        self.assertEqual(list(r.jacobian.shape), [2, 4, 4])
        j = from_tensor(r.jacobian)
        p = softmax_ref(z)
        want = np.stack([np.diag(row) - np.outer(row, row) for row in p])
        self.assert_float64_close(j, want, rtol=1e-13, atol=1e-16)
        # The seed's errata: symmetric, J·1 = 0, positive semidefinite.
        np.testing.assert_allclose(j, np.swapaxes(j, 1, 2), atol=1e-16)
        np.testing.assert_allclose(j.sum(axis=2), 0.0, atol=1e-15)
        for m in j:
            self.assertGreaterEqual(np.linalg.eigvalsh(m).min(), -1e-15)

    def test_softmax_dense_along_axis_0(self):
        z = np.arange(6, dtype=np.float64).reshape(3, 2)
        r = STUB.Jacobian(pb.JacobianRequest(spec=spec(pb.SOFTMAX, axis=0),
                                             input=to_tensor(z)))
        # The input shape without the axis, then [C, C].
        self.assertEqual(list(r.jacobian.shape), [2, 3, 3])
        p = softmax_ref(z, axis=0)
        want = np.stack([np.diag(p[:, k]) - np.outer(p[:, k], p[:, k])
                         for k in range(2)])
        self.assert_float64_close(from_tensor(r.jacobian), want, rtol=1e-13,
                                  atol=1e-16)

    def test_log_softmax_dense(self):
        z = np.array([[1.0, 2.0, 3.0]])
        r = STUB.Jacobian(pb.JacobianRequest(spec=spec(pb.LOG_SOFTMAX),
                                             input=to_tensor(z)))
        p = softmax_ref(z)[0]
        want = np.eye(3) - np.outer(np.ones(3), p)
        self.assert_float64_close(from_tensor(r.jacobian)[0], want,
                                  rtol=1e-13, atol=1e-16)

    def test_elementwise_diagonal_and_dense(self):
        x = np.array([[-1.0, 0.0, 2.0], [0.5, -3.0, 4.0]], dtype=np.float32)
        r = STUB.Jacobian(pb.JacobianRequest(spec=spec(pb.TANH),
                                             input=to_tensor(x)))
        self.assertTrue(r.diagonal)
        self.assertEqual(list(r.jacobian.shape), [2, 3])
        truth = sech2(x.astype(np.float64))
        self.assert_float32_close(x, from_tensor(r.jacobian), truth, 4)
        r = STUB.Jacobian(pb.JacobianRequest(spec=spec(pb.TANH),
                                             input=to_tensor(x), dense=True))
        self.assertFalse(r.diagonal)
        self.assertEqual(list(r.jacobian.shape), [2, 3, 3])
        dense = from_tensor(r.jacobian)
        for row in range(2):
            self.assert_float32_close(x[row], np.diag(dense[row]), truth[row], 4)
            np.testing.assert_array_equal(
                dense[row] - np.diag(np.diag(dense[row])), 0.0)

    def test_dense_jacobian_over_the_limit_is_resource_exhausted(self):
        # 8192² float32 = 256 MiB of output from a 32 KiB request.
        with self.assertRaises(grpc.RpcError) as cm:
            STUB.Jacobian(pb.JacobianRequest(
                spec=spec(pb.SOFTMAX),
                input=to_tensor(np.zeros(8192, np.float32))))
        self.assertEqual(cm.exception.code(),
                         grpc.StatusCode.RESOURCE_EXHAUSTED)


class CrossEntropyTest(AccuracyMixin, unittest.TestCase):
    def setUp(self):
        rng = np.random.default_rng(5)
        self.z = rng.normal(scale=3, size=(4, 5))
        self.p = softmax_ref(self.z)
        self.lse = logsumexp_ref(self.z)

    def test_class_indices_mean(self):
        labels = [0, 4, 2, 1]
        r = STUB.SoftmaxCrossEntropy(pb.SoftmaxCrossEntropyRequest(
            logits=to_tensor(self.z), class_indices=labels,
            return_probabilities=True))
        y = np.eye(5)[labels]
        rows = self.lse - np.sum(y * self.z, axis=-1)
        self.assertEqual(list(r.loss.shape), [])
        self.assert_float64_close(from_tensor(r.loss), rows.mean(), rtol=1e-14)
        self.assert_float64_close(from_tensor(r.grad_logits),
                                  (self.p - y) / 4, rtol=1e-13, atol=1e-17)
        self.assert_float64_close(from_tensor(r.probabilities), self.p,
                                  rtol=1e-14)

    def test_ignore_index_and_sum_and_none(self):
        labels = [0, -100, 2, -100]
        y = np.zeros((4, 5))
        y[0, 0] = y[2, 2] = 1
        counted = np.array([1.0, 0.0, 1.0, 0.0])
        rows = (self.lse - np.sum(y * self.z, axis=-1)) * counted
        grad = (self.p - y) * counted[:, None]
        for reduction, loss, scale in (
                (pb.SoftmaxCrossEntropyRequest.MEAN, rows.sum() / 2, 0.5),
                (pb.SoftmaxCrossEntropyRequest.SUM, rows.sum(), 1.0),
                (pb.SoftmaxCrossEntropyRequest.NONE, rows, 1.0)):
            with self.subTest(reduction=reduction):
                r = STUB.SoftmaxCrossEntropy(pb.SoftmaxCrossEntropyRequest(
                    logits=to_tensor(self.z), class_indices=labels,
                    reduction=reduction, ignore_index=-100))
                self.assertEqual(r.probabilities.ByteSize(), 0)
                self.assert_float64_close(from_tensor(r.loss), loss,
                                          rtol=1e-14)
                self.assert_float64_close(from_tensor(r.grad_logits),
                                          grad * scale, rtol=1e-13, atol=1e-17)

    def test_target_probabilities(self):
        rng = np.random.default_rng(6)
        y = rng.random((4, 5))
        y /= y.sum(axis=-1, keepdims=True)
        y[3] *= 2  # unnormalized: loss = lse·Σy − Σ y z, grad = p·Σy − y
        sy = y.sum(axis=-1)
        r = STUB.SoftmaxCrossEntropy(pb.SoftmaxCrossEntropyRequest(
            logits=to_tensor(self.z), target_probs=to_tensor(y),
            reduction=pb.SoftmaxCrossEntropyRequest.SUM))
        loss = np.sum(self.lse * sy - np.sum(y * self.z, axis=-1))
        self.assert_float64_close(from_tensor(r.loss), loss, rtol=1e-13)
        self.assert_float64_close(from_tensor(r.grad_logits),
                                  self.p * sy[:, None] - y, rtol=1e-12,
                                  atol=1e-16)

    def test_label_smoothing(self):
        eps = 0.1
        labels = [1, 3, 0, 4]
        y = (1 - eps) * np.eye(5)[labels] + eps / 5  # as PyTorch
        r = STUB.SoftmaxCrossEntropy(pb.SoftmaxCrossEntropyRequest(
            logits=to_tensor(self.z), class_indices=labels,
            label_smoothing=eps, reduction=pb.SoftmaxCrossEntropyRequest.NONE))
        self.assert_float64_close(from_tensor(r.loss),
                                  self.lse - np.sum(y * self.z, axis=-1),
                                  rtol=1e-13)
        self.assert_float64_close(from_tensor(r.grad_logits), self.p - y,
                                  rtol=1e-12, atol=1e-16)

    def test_float32_typed(self):
        z = self.z.astype(np.float32)
        r = STUB.SoftmaxCrossEntropy(pb.SoftmaxCrossEntropyRequest(
            logits=to_tensor(z, typed=True), class_indices=[0, 1, 2, 3]))
        self.assertEqual(r.loss.dtype, pb.FLOAT32)
        zd = z.astype(np.float64)
        want = np.mean(logsumexp_ref(zd) - zd[np.arange(4), [0, 1, 2, 3]])
        self.assertAlmostEqual(float(from_tensor(r.loss, expect_typed=True)),
                               want, delta=4e-7 * abs(want))

    def test_label_out_of_range_is_invalid(self):
        with self.assertRaises(grpc.RpcError) as cm:
            STUB.SoftmaxCrossEntropy(pb.SoftmaxCrossEntropyRequest(
                logits=to_tensor(self.z), class_indices=[0, 5, 1, 1]))
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)


class ListFunctionsTest(unittest.TestCase):
    def test_lists_every_function_with_metadata(self):
        r = STUB.ListFunctions(pb.ListFunctionsRequest())
        by_name = {f.name: f for f in r.functions}
        self.assertEqual(set(by_name), set(ELEMENTWISE) | {"softmax",
                                                           "log_softmax"})
        for name, info in by_name.items():
            self.assertEqual(info.function, enum(name), name)
            self.assertTrue(info.formula, name)
            self.assertTrue(info.derivative_formula, name)
            self.assertTrue(info.derivative_range, name)
        self.assertEqual(by_name["softmax"].elementwise, False)
        self.assertEqual(by_name["gelu"].elementwise, True)
        self.assertIn("swish", by_name["silu"].aliases)
        alpha = {p.name: p.default_value for p in by_name["leaky_relu"].parameters}
        self.assertEqual(alpha, {"alpha": 0.01})
        alpha = {p.name: p.default_value for p in by_name["elu"].parameters}
        self.assertEqual(alpha, {"alpha": 1.0})
        # The corrected range (SPEC §1 errata 3): GELU' is not inside (0, 1).
        self.assertIn("0.1289", by_name["gelu"].derivative_range)
        self.assertIn("1.1289", by_name["gelu"].derivative_range)
        self.assertTrue(by_name["sigmoid"].saturates)
        self.assertTrue(by_name["tanh"].saturates)


class StreamTest(AccuracyMixin, unittest.TestCase):
    def test_responses_in_order(self):
        x = np.array([-2.0, 0.0, 20.0])
        g = np.array([1.0, 0.0, 0.0])
        requests = [
            pb.StreamRequest(evaluate=pb.EvaluateRequest(
                spec=spec(pb.SIGMOID), input=to_tensor(x))),
            pb.StreamRequest(derivative=pb.DerivativeRequest(
                spec=spec(pb.SIGMOID), input=to_tensor(x))),
            pb.StreamRequest(derivative=pb.DerivativeRequest(
                spec=spec(pb.TANH), input=to_tensor(x), order=2)),
            pb.StreamRequest(derivative=pb.DerivativeRequest(
                spec=spec(pb.SOFTMAX), input=to_tensor(x),
                upstream_grad=to_tensor(g))),
            pb.StreamRequest(evaluate=pb.EvaluateRequest(
                spec=spec(pb.GELU), input=to_tensor(x.astype(np.float32),
                                                    typed=True))),
        ]
        responses = list(STUB.Stream(iter(requests)))
        self.assertEqual([r.WhichOneof("response") for r in responses],
                         ["evaluate", "derivative", "derivative", "derivative",
                          "evaluate"])
        got = [from_tensor(r.evaluate.output if r.HasField("evaluate")
                           else r.derivative.output) for r in responses]
        self.assert_float64_close(got[0], special.expit(x), rtol=1e-15)
        self.assert_float64_close(got[1], dsigmoid(x), rtol=1e-14)
        self.assert_float64_close(got[2], ref_second("tanh", x, None),
                                  rtol=1e-13, atol=1e-300)
        p = softmax_ref(x)
        self.assert_float64_close(got[3], p * (g - np.dot(g, p)), rtol=1e-13,
                                  atol=1e-30)
        self.assertEqual(responses[4].evaluate.output.dtype, pb.FLOAT32)
        self.assertGreater(len(responses[4].evaluate.output.float_data), 0)

    def test_bad_request_ends_the_stream_with_its_status(self):
        good = pb.StreamRequest(evaluate=pb.EvaluateRequest(
            spec=spec(pb.RELU), input=to_tensor(np.ones(2))))
        bad = pb.StreamRequest(evaluate=pb.EvaluateRequest(
            spec=spec(pb.RELU), input=pb.Tensor(shape=[3], dtype=pb.FLOAT64,
                                                raw_data=b"\0" * 16)))
        received = []
        with self.assertRaises(grpc.RpcError) as cm:
            for response in STUB.Stream(iter([good, bad, good])):
                received.append(response)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertEqual(len(received), 1)


class ErrorsTest(unittest.TestCase):
    def assert_status(self, code, call, request, *fragments):
        with self.assertRaises(grpc.RpcError) as cm:
            call(request)
        self.assertEqual(cm.exception.code(), code, cm.exception.details())
        for fragment in fragments:
            self.assertIn(fragment, cm.exception.details())

    def test_invalid_arguments_name_the_problem(self):
        invalid = grpc.StatusCode.INVALID_ARGUMENT
        # byte count != product(shape) * 4: both numbers in the message.
        self.assert_status(invalid, STUB.Evaluate, pb.EvaluateRequest(
            spec=spec(pb.SIGMOID),
            input=pb.Tensor(shape=[4], dtype=pb.FLOAT32, raw_data=b"\0" * 12)),
            "12", "16")
        self.assert_status(invalid, STUB.Evaluate, pb.EvaluateRequest(
            spec=spec(pb.SIGMOID),
            input=pb.Tensor(shape=[1], raw_data=b"\0" * 4)))  # no dtype
        self.assert_status(invalid, STUB.Evaluate, pb.EvaluateRequest(
            spec=spec(pb.SIGMOID),
            input=pb.Tensor(shape=[-1], dtype=pb.FLOAT32)))
        self.assert_status(invalid, STUB.Evaluate, pb.EvaluateRequest(
            spec=spec(99), input=to_tensor(np.zeros(2))))
        self.assert_status(invalid, STUB.Evaluate, pb.EvaluateRequest(
            spec=spec(pb.LEAKY_RELU, alpha=float("nan")),
            input=to_tensor(np.zeros(2))), "alpha")
        self.assert_status(invalid, STUB.Evaluate, pb.EvaluateRequest(
            spec=spec(pb.SOFTMAX, axis=2), input=to_tensor(np.zeros(2))),
            "axis")
        self.assert_status(invalid, STUB.Derivative, pb.DerivativeRequest(
            spec=spec(pb.TANH), input=to_tensor(np.zeros(2)), order=3),
            "order")
        self.assert_status(invalid, STUB.Evaluate, pb.EvaluateRequest(
            spec=spec(pb.TANH)))  # no input

    def test_server_keeps_serving_after_errors(self):
        r = STUB.Evaluate(pb.EvaluateRequest(spec=spec(pb.RELU),
                                             input=to_tensor(np.ones(1))))
        self.assertEqual(from_tensor(r.output)[0], 1.0)


def main():
    global pb, pb_grpc, grpc, SERVER_BINARY
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server", default=os.environ.get("ACTSVC_SERVER"),
                        help="path of actsvc-server")
    parser.add_argument("--stubs", default=os.environ.get("ACTSVC_PYTHON_OUT"),
                        help="directory holding actsvc/v1/activation_pb2*.py")
    args, unittest_args = parser.parse_known_args()
    if not args.server or not args.stubs:
        parser.error("--server and --stubs are required")
    SERVER_BINARY = args.server
    pb, pb_grpc = actsvc_client.load_stubs(args.stubs)
    grpc = actsvc_client.grpc
    np.seterr(over="ignore", under="ignore", invalid="ignore", divide="ignore")
    unittest.main(argv=[sys.argv[0]] + unittest_args, verbosity=2)


if __name__ == "__main__":
    main()
