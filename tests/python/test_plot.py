#!/usr/bin/python3
"""examples/python/plot_activations.py, run as a user runs it: it starts the
server, regenerates the figure into --out-dir (the build tree, never docs/),
and the test checks that the PNG is valid and that every plotted curve
matches numpy/scipy.

Run by ctest; by hand:
  /usr/bin/python3 tests/python/test_plot.py --server build/server/actsvc-server \
      --stubs build/python --out-dir build/tests/python [-v]
"""

import argparse
import os
import struct
import subprocess
import sys
import unittest

import numpy as np
from scipy import special

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SCRIPT = os.path.join(REPO, "examples", "python", "plot_activations.py")
sys.path.insert(0, HERE)
from test_service import (ELEMENTWISE, DEFAULT_ALPHA, ref_forward,  # noqa: E402
                          ref_derivative, ref_second)

ARGS = None
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class PlotTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        os.makedirs(ARGS.out_dir, exist_ok=True)
        cls.png = os.path.join(ARGS.out_dir, "activations.png")
        cls.npz = os.path.join(ARGS.out_dir, "activations.npz")
        for path in (cls.png, cls.npz):
            if os.path.exists(path):
                os.unlink(path)
        # A coarser grid than the committed figure keeps the test fast.
        cls.process = subprocess.run(
            [sys.executable, SCRIPT, "--server", ARGS.server, "--stubs",
             ARGS.stubs, "--out", cls.png, "--data", cls.npz, "--points",
             "401"], capture_output=True, text=True, timeout=120)

    def test_script_succeeds(self):
        self.assertEqual(self.process.returncode, 0, self.process.stderr)
        self.assertIn("12 panels", self.process.stdout)

    def test_png_is_valid(self):
        with open(self.png, "rb") as f:
            data = f.read()
        self.assertEqual(data[:8], PNG_SIGNATURE)
        # The first chunk is IHDR: length 13, then width and height.
        length, kind, width, height = struct.unpack(">I4sII", data[8:24])
        self.assertEqual((length, kind), (13, b"IHDR"))
        self.assertGreaterEqual(width, 1200)
        self.assertGreaterEqual(height, 700)
        self.assertEqual(data[-12:-4], b"\x00\x00\x00\x00IEND")
        self.assertGreater(len(data), 50_000)  # 12 panels of curves

    def test_plotted_values_match_numpy(self):
        data = np.load(self.npz)
        x = data["x"]
        self.assertEqual(x.size, 401)
        np.seterr(over="ignore", under="ignore", invalid="ignore")
        for name in ELEMENTWISE:
            alpha = DEFAULT_ALPHA.get(name)
            with self.subTest(name):
                np.testing.assert_allclose(data[name + ".f"],
                                           ref_forward(name, x, alpha),
                                           rtol=1e-13, atol=1e-300)
                np.testing.assert_allclose(data[name + ".d1"],
                                           ref_derivative(name, x, alpha),
                                           rtol=1e-12, atol=1e-300)
                np.testing.assert_allclose(data[name + ".d2"],
                                           ref_second(name, x, alpha),
                                           rtol=1e-11, atol=1e-15)
        # softmax of (x, 0): p_1 = sigmoid(x), dp_1/dz_1 = p_1 (1 - p_1).
        p1 = special.expit(x)
        np.testing.assert_allclose(data["softmax.f"], p1, rtol=1e-14)
        np.testing.assert_allclose(data["softmax.d1"], p1 * special.expit(-x),
                                   rtol=1e-12)
        self.assertNotIn("softmax.d2", data.files)


def main():
    global ARGS
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server", required=True)
    parser.add_argument("--stubs", required=True)
    parser.add_argument("--out-dir", required=True)
    ARGS, unittest_args = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + unittest_args, verbosity=2)


if __name__ == "__main__":
    main()
