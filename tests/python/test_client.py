#!/usr/bin/python3
"""examples/python/actsvc_client.py against the real actsvc-server: every RPC
with numpy arrays in and out (dtypes, shapes, both encodings), compared with
numpy/scipy; Analyze's exactly known answers; the `actsvc analyze` CLI; and
examples/python/examples.py end to end.

Run by ctest; by hand:
  /usr/bin/python3 tests/python/test_client.py --server build/server/actsvc-server \
      --stubs build/python [--cli build/client/actsvc] [-v]
"""

import argparse
import json
import os
import subprocess
import sys
import unittest

import numpy as np
from scipy import special

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
EXAMPLES = os.path.join(REPO, "examples", "python")
sys.path.insert(0, EXAMPLES)
sys.path.insert(0, HERE)
import actsvc_client  # noqa: E402
# The float64 references (numpy/scipy only).
from references import (ELEMENTWISE, DEFAULT_ALPHA, ref_forward,  # noqa: E402
                        ref_derivative, ref_second, softmax_ref,
                        logsumexp_ref)

SERVER_BINARY = None
CLI_BINARY = None
SERVER = None
CLIENT = None
grpc = None


def setUpModule():
    global SERVER, CLIENT
    SERVER = actsvc_client.LocalServer(SERVER_BINARY,
                                       ["--shutdown_grace_s=5"]).start()
    CLIENT = actsvc_client.Client(SERVER.target)


def tearDownModule():
    if CLIENT is not None:
        CLIENT.close()
    if SERVER is not None:
        code = SERVER.stop()
        log = SERVER.read_log()
        os.unlink(SERVER.log.name)
        if code != 0:
            raise AssertionError("actsvc-server exited with %s\n%s" %
                                 (code, log))


def rng():
    return np.random.default_rng(7)


class HalfTest(unittest.TestCase):
    """float16 (numpy's own) and bfloat16 (uint16 bit patterns) in and out,
    raw and typed: results correctly rounded from a float64 reference."""

    def clients(self):
        return [CLIENT, actsvc_client.Client(SERVER.target, typed=True)]

    def test_float16_in_and_out(self):
        x = np.linspace(-8, 8, 1001).astype(np.float16)
        want = special.expit(x.astype(np.float64)).astype(np.float16)
        for client in self.clients():
            y = client.evaluate("sigmoid", x)
            self.assertEqual(y.dtype, np.float16)
            np.testing.assert_array_equal(y, want)
            g = np.float16(0.5) * np.ones_like(x)
            d = client.vjp("sigmoid", x, g)
            self.assertEqual(d.dtype, np.float16)
            s = special.expit(x.astype(np.float64))
            np.testing.assert_array_equal(d, (0.5 * s * (1 - s)).astype(
                np.float16))
        # dtype="float16" rounds a float array on the client.
        self.assertEqual(CLIENT.evaluate("identity", [1 + 2.0 ** -11],
                                         dtype="float16")[0], 1.0)

    def test_bfloat16_helpers(self):
        x = np.float32([1.0, 1.00390625, 1.01171875, -3e38, np.inf, 1e-40])
        bits = actsvc_client.to_bfloat16_bits(x)
        self.assertEqual(bits.dtype, np.uint16)
        np.testing.assert_array_equal(
            bits, [0x3F80, 0x3F80, 0x3F82, 0xFF62, 0x7F80, 0x0001])
        back = actsvc_client.from_bfloat16_bits(bits)
        self.assertEqual(back.dtype, np.float32)
        np.testing.assert_array_equal(actsvc_client.to_bfloat16_bits(back),
                                      bits)
        self.assertTrue(np.isnan(actsvc_client.from_bfloat16_bits(
            actsvc_client.to_bfloat16_bits(np.float32([np.nan])))[0]))

    def test_bfloat16_every_rpc(self):
        bf = actsvc_client.to_bfloat16_bits
        wide = actsvc_client.from_bfloat16_bits
        x = bf(np.linspace(-6, 6, 240, dtype=np.float32)).reshape(4, 60)
        xd = wide(x).astype(np.float64)
        for client in self.clients():
            y = client.evaluate("tanh", x, dtype="bfloat16")
            self.assertEqual(y.dtype, np.uint16)
            self.assertEqual(y.shape, (4, 60))
            # Within 1 bfloat16 ULP (2^-7 relative) of tanh; all but a rare
            # near-midpoint value correctly rounded from float32 tanh.
            err = np.abs(wide(y) - np.tanh(xd))
            self.assertTrue(np.all(err <= 2.0 ** -7 * np.abs(np.tanh(xd))))
            p = client.evaluate("softmax", x, dtype="bfloat16")
            np.testing.assert_allclose(wide(p), softmax_ref(xd, -1),
                                       rtol=2.0 ** -7, atol=1e-30)
            g = bf(np.ones((4, 60), dtype=np.float32))
            d = client.vjp("silu", x, g, dtype="bfloat16")
            self.assertEqual(d.dtype, np.uint16)
            np.testing.assert_allclose(wide(d), ref_derivative("silu", xd, None),
                                       rtol=2.0 ** -7, atol=1e-30)
            j = client.jacobian("softmax", x[:1, :5], dtype="bfloat16")
            self.assertEqual((j.dtype, j.shape), (np.uint16, (1, 5, 5)))
            ce = client.softmax_cross_entropy(x, labels=[0, 5, 59, 30],
                                              dtype="bfloat16")
            lse = logsumexp_ref(xd, -1)
            want = np.mean(lse - xd[np.arange(4), [0, 5, 59, 30]])
            self.assertEqual(ce.grad.dtype, np.uint16)
            self.assertLessEqual(abs(wide(np.uint16([ce.loss]))[0] - want),
                                 2.0 ** -7 * want)
            report = client.analyze("relu", x, dtype="bfloat16")
            self.assertEqual(report["dead_fraction"], 0.5)
            out = list(client.stream([("evaluate", "relu", x,
                                       {"dtype": "bfloat16"})]))
            np.testing.assert_array_equal(out[0], np.where(xd > 0, x, 0))

    def test_half_companions_of_another_dtype_are_invalid(self):
        x = np.float16([1, 2])
        with self.assertRaises(grpc.RpcError) as e:
            CLIENT.stub.Derivative(actsvc_client.pb.DerivativeRequest(
                spec=CLIENT.spec("sigmoid"),
                input=actsvc_client.to_tensor(x),
                upstream_grad=actsvc_client.to_tensor(x, dtype="bfloat16")))
        self.assertEqual(e.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("upstream_grad.dtype is BFLOAT16, expected FLOAT16",
                      e.exception.details())


class TensorsTest(unittest.TestCase):
    def test_dtype_and_shape_round_trip(self):
        for dtype in (np.float32, np.float64):
            for shape in ((), (0,), (5,), (2, 3, 4)):
                with self.subTest(dtype=dtype, shape=shape):
                    x = rng().standard_normal(shape).astype(dtype)
                    y = CLIENT.evaluate("identity", x)
                    self.assertEqual(y.dtype, dtype)
                    self.assertEqual(y.shape, shape)
                    np.testing.assert_array_equal(y, x)
                    if y.size:
                        y.flat[0] = 1  # writable

    def test_other_dtypes_are_converted(self):
        self.assertEqual(CLIENT.evaluate("relu", [1, -2]).dtype, np.float64)
        self.assertEqual(
            CLIENT.evaluate("relu", np.int16([1, -2])).dtype, np.float64)
        big_endian = np.array([1.5, -2.5], dtype=">f8")
        np.testing.assert_array_equal(CLIENT.evaluate("relu", big_endian),
                                      [1.5, 0.0])
        transposed = np.arange(6.0).reshape(2, 3).T  # not C-contiguous
        np.testing.assert_array_equal(CLIENT.evaluate("identity", transposed),
                                      transposed)
        with self.assertRaises(TypeError):
            CLIENT.evaluate("relu", np.array(["a"]))

    def test_typed_encoding(self):
        with actsvc_client.Client(SERVER.target, typed=True) as typed:
            x = np.float32([[-1, 0.5], [2, 3]])
            r = typed.stub.Evaluate(typed.evaluate_request("tanh", x))
            self.assertGreater(len(r.output.float_data), 0)
            np.testing.assert_allclose(typed.evaluate("tanh", x), np.tanh(x),
                                       rtol=4 * 2.0 ** -23)


class EveryRpcTest(unittest.TestCase):
    x = np.linspace(-12, 12, 97).reshape(97)

    def test_evaluate_and_derivatives_of_every_elementwise_function(self):
        x = self.x.reshape(97, 1) * np.ones((1, 2))  # rank 2
        for name in ELEMENTWISE:
            alpha = DEFAULT_ALPHA.get(name)
            with self.subTest(name):
                np.testing.assert_allclose(
                    CLIENT.evaluate(name, x), ref_forward(name, x, alpha),
                    rtol=1e-13, atol=1e-300)
                np.testing.assert_allclose(
                    CLIENT.derivative(name, x), ref_derivative(name, x, alpha),
                    rtol=1e-12, atol=1e-300)
                np.testing.assert_allclose(
                    CLIENT.derivative(name, x, order=2),
                    ref_second(name, x, alpha), rtol=1e-11, atol=1e-15)

    def test_float32_and_alpha(self):
        x = self.x.astype(np.float32)
        got = CLIENT.derivative("elu", x, alpha=0.3)
        self.assertEqual(got.dtype, np.float32)
        np.testing.assert_allclose(got, ref_derivative("elu", x.astype(float),
                                                       0.3), rtol=1e-6)
        # An alias resolves through ListFunctions.
        np.testing.assert_array_equal(CLIENT.evaluate("swish", x),
                                      CLIENT.evaluate("silu", x))

    def test_vjp(self):
        x = rng().standard_normal((3, 4))
        g = rng().standard_normal((3, 4))
        np.testing.assert_allclose(CLIENT.vjp("gelu", x, g),
                                   g * ref_derivative("gelu", x, None),
                                   rtol=1e-13)
        for axis in (0, -1):
            p = softmax_ref(x, axis)
            want = p * (g - np.sum(g * p, axis=axis, keepdims=True))
            np.testing.assert_allclose(CLIENT.vjp("softmax", x, g, axis=axis),
                                       want, rtol=1e-12, atol=1e-16)
        want = g - softmax_ref(x) * np.sum(g, axis=-1, keepdims=True)
        np.testing.assert_allclose(CLIENT.vjp("log_softmax", x, g), want,
                                   rtol=1e-12, atol=1e-15)

    def test_jacobian(self):
        z = rng().standard_normal((2, 5))
        jac = CLIENT.jacobian("softmax", z)
        self.assertEqual(jac.shape, (2, 5, 5))
        for row in range(2):
            p = softmax_ref(z[row])
            np.testing.assert_allclose(jac[row], np.diag(p) - np.outer(p, p),
                                       rtol=1e-12, atol=1e-17)
        jac = CLIENT.jacobian("softmax", z, axis=0)  # along the 2-long axis
        self.assertEqual(jac.shape, (5, 2, 2))
        diag = CLIENT.jacobian("tanh", z)
        np.testing.assert_allclose(diag, ref_derivative("tanh", z, None),
                                   rtol=1e-13)
        dense = CLIENT.jacobian("tanh", z, dense=True)
        self.assertEqual(dense.shape, (2, 5, 5))
        np.testing.assert_array_equal(
            dense, np.stack([np.diag(d) for d in diag]))

    def test_softmax_cross_entropy(self):
        z = rng().standard_normal((4, 3))
        labels = np.array([0, 2, 1, 2])
        lse = logsumexp_ref(z)
        rows = lse - z[np.arange(4), labels]
        onehot = np.eye(3)[labels]
        r = CLIENT.softmax_cross_entropy(z, labels=labels,
                                         return_probabilities=True)
        self.assertAlmostEqual(float(r.loss), rows.mean(), places=13)
        np.testing.assert_allclose(r.grad, (softmax_ref(z) - onehot) / 4,
                                   rtol=1e-12, atol=1e-17)
        np.testing.assert_allclose(r.probs, softmax_ref(z), rtol=1e-13)
        r = CLIENT.softmax_cross_entropy(z, labels=labels, reduction="none")
        np.testing.assert_allclose(r.loss, rows, rtol=1e-13)
        self.assertIsNone(r.probs)
        r = CLIENT.softmax_cross_entropy(z, target_probs=onehot,
                                         reduction="sum")
        self.assertAlmostEqual(float(r.loss), rows.sum(), places=12)
        r = CLIENT.softmax_cross_entropy(z, labels=[0, -1, 1, -1],
                                         ignore_index=-1)
        self.assertAlmostEqual(float(r.loss), (rows[0] + rows[2]) / 2,
                               places=13)
        with self.assertRaises(ValueError):
            CLIENT.softmax_cross_entropy(z)

    def test_list_functions(self):
        functions = CLIENT.list_functions()
        self.assertEqual(list(functions)[:3], ["identity", "sigmoid", "tanh"])
        self.assertEqual(set(functions),
                         set(ELEMENTWISE) | {"softmax", "log_softmax"})
        self.assertFalse(functions["softmax"]["elementwise"])
        self.assertIn("swish", functions["silu"]["aliases"])

    def test_stream(self):
        x = self.x
        got = list(CLIENT.stream([
            ("evaluate", "sigmoid", x),
            ("derivative", "sigmoid", x),
            ("derivative", "sigmoid", x, {"order": 2}),
            ("derivative", "softmax", x, {"upstream_grad": np.ones_like(x)}),
        ]))
        self.assertEqual(len(got), 4)
        np.testing.assert_allclose(got[0], special.expit(x), rtol=1e-15)
        np.testing.assert_allclose(got[1], ref_derivative("sigmoid", x, None),
                                   rtol=1e-14)
        np.testing.assert_allclose(got[2], ref_second("sigmoid", x, None),
                                   rtol=1e-12, atol=1e-300)
        np.testing.assert_allclose(got[3], 0, atol=1e-15)  # J 1 = 0

    def test_health(self):
        self.assertEqual(CLIENT.health(), "SERVING")
        self.assertEqual(CLIENT.health("actsvc.v1.ActivationService"),
                         "SERVING")

    def test_errors_are_rpc_errors(self):
        with self.assertRaises(grpc.RpcError) as cm:
            CLIENT.derivative("tanh", [1.0], order=3)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("order", cm.exception.details())
        with self.assertRaises(ValueError):
            CLIENT.evaluate("no_such_function", [1.0])


class AnalyzeTest(unittest.TestCase):
    def test_relu_known_answers(self):
        r = CLIENT.analyze("relu", [-2, -1, 0, 1, 2], layers=3)
        self.assertEqual(r["units"], 5)
        self.assertEqual((r["zero_outputs"], r["dead_units"],
                          r["saturated_units"]), (3, 3, 3))
        self.assertAlmostEqual(r["sparsity"], 0.6, places=15)
        self.assertAlmostEqual(r["dead_fraction"], 0.6, places=15)
        self.assertAlmostEqual(r["mean_derivative"], 0.4, places=15)
        self.assertEqual(r["max_abs_derivative"], 1.0)
        self.assertAlmostEqual(r["attenuation"], 0.4 ** 3, places=15)
        self.assertEqual(r["epsilon"], 1e-3)
        self.assertNotIn("attenuation",
                         CLIENT.analyze("relu", [1.0]))  # no layers

    def test_sigmoid_gate_and_attenuation(self):
        for layers in (1, 5, 20):
            r = CLIENT.analyze("sigmoid", np.float32([0]), layers=layers)
            self.assertEqual(r["max_abs_derivative"], 0.25)
            self.assertEqual(r["attenuation"], 0.25 ** layers)

    def test_seed_saturation_bounds_and_numpy(self):
        x = np.linspace(-10, 10, 2001)
        for name, eps, edge in (("sigmoid", 0.0025, 6.0), ("tanh", 0.01, 3.0)):
            with self.subTest(name):
                r = CLIENT.analyze(name, x, epsilon=eps, layers=4)
                d = ref_derivative(name, x, None)
                self.assertEqual(r["saturated_units"],
                                 np.count_nonzero(np.abs(d) < eps))
                # Every |x| >= edge is saturated (the seed's bound).
                self.assertTrue(np.all(np.abs(d[np.abs(x) >= edge]) < eps))
                self.assertAlmostEqual(r["mean_derivative"], d.mean(),
                                       places=14)
                self.assertAlmostEqual(r["min_derivative"], d.min(),
                                       delta=1e-15 * abs(d.min()) + 1e-300)
                self.assertAlmostEqual(r["attenuation"],
                                       np.abs(d).mean() ** 4, places=14)

    def test_nan_and_empty(self):
        r = CLIENT.analyze("gelu", [np.nan, 0.0, np.nan])
        self.assertEqual((r["units"], r["nan_count"]), (1, 2))
        self.assertEqual(r["mean_derivative"], 0.5)
        r = CLIENT.analyze("gelu", np.zeros(0))
        self.assertEqual(r["units"], 0)
        self.assertTrue(np.isnan(r["sparsity"]))

    def test_invalid_arguments(self):
        for kwargs in ({"function": "softmax"}, {"epsilon": -1.0},
                       {"epsilon": float("nan")}, {"layers": -2}):
            call = {"function": "tanh", "x": [1.0, 2.0]}
            call.update(kwargs)
            with self.subTest(**kwargs), self.assertRaises(grpc.RpcError) as cm:
                CLIENT.analyze(**call)
            self.assertEqual(cm.exception.code(),
                             grpc.StatusCode.INVALID_ARGUMENT)


class CliAnalyzeTest(unittest.TestCase):
    def setUp(self):
        if not CLI_BINARY:
            self.skipTest("no --cli given")

    def run_cli(self, *args):
        return subprocess.run([CLI_BINARY, "--target=" + SERVER.target] +
                              list(args), capture_output=True, text=True,
                              timeout=30)

    def test_json_and_text(self):
        p = self.run_cli("--json", "analyze", "--function=relu",
                         "--x=-2,-1,0,1,2", "--layers=3")
        self.assertEqual(p.returncode, 0, p.stderr)
        r = json.loads(p.stdout)
        self.assertEqual(r["deadUnits"], "3")
        self.assertAlmostEqual(r["meanDerivative"], 0.4, places=6)
        self.assertAlmostEqual(r["attenuation"], 0.064, places=6)
        p = self.run_cli("analyze", "--function=sigmoid", "--x=-6,0,6",
                         "--epsilon=0.0025")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stdout, r"saturated .*2 \(0\.666666667\)")
        self.assertRegex(p.stdout, r"max \|f'\| \(gradient gate.*0\.25")
        p = self.run_cli("analyze", "--function=softmax", "--x=1,2")
        self.assertEqual(p.returncode, 1)
        self.assertIn("INVALID_ARGUMENT", p.stderr)


class ExamplesTest(unittest.TestCase):
    def test_examples_script_runs(self):
        env = dict(os.environ, ACTSVC_STUBS=actsvc_client.pb.__file__.rsplit(
            os.sep + "actsvc" + os.sep, 1)[0])
        p = subprocess.run([sys.executable, os.path.join(EXAMPLES,
                                                         "examples.py"),
                            "--target", SERVER.target],
                           capture_output=True, text=True, timeout=60, env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        for rpc in ("Health", "Evaluate", "Derivative", "Jacobian",
                    "SoftmaxCrossEntropy", "ListFunctions", "Stream",
                    "Analyze"):
            self.assertIn("== " + rpc, p.stdout)


def main():
    global SERVER_BINARY, CLI_BINARY, grpc
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server", default=os.environ.get("ACTSVC_SERVER"))
    parser.add_argument("--stubs", default=os.environ.get("ACTSVC_STUBS"))
    parser.add_argument("--cli", default=os.environ.get("ACTSVC_CLI"))
    args, unittest_args = parser.parse_known_args()
    SERVER_BINARY, CLI_BINARY = args.server, args.cli
    actsvc_client.load_stubs(args.stubs)
    grpc = actsvc_client.grpc
    np.seterr(over="ignore", under="ignore", invalid="ignore", divide="ignore")
    unittest.main(argv=[sys.argv[0]] + unittest_args, verbosity=2)


if __name__ == "__main__":
    main()
