#!/usr/bin/python3
"""bench/plot_bench.py on a small real report: starts actsvc-server on a free
loopback port, runs `actsvc bench` (a 2-level sweep of about a second), and
checks that each picture is a non-empty PNG of the expected pixel size; then
the service and kernel figures from BENCHMARKS.md's tables, and the values
the script reads from the report and the tables.

Run by ctest; by hand:
  /usr/bin/python3 tests/bench/test_plot_bench.py \
      --server build/server/actsvc-server --cli build/client/actsvc \
      --out-dir /tmp/plots [-v]
"""

import argparse
import os
import socket
import struct
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SCRIPT = os.path.join(REPO, "bench", "plot_bench.py")
BENCHMARKS = os.path.join(REPO, "BENCHMARKS.md")
sys.path.insert(0, os.path.join(REPO, "bench"))
import plot_bench  # noqa: E402

SERVER = CLI = OUT_DIR = None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def png_size(path):
    """(width, height) from the IHDR chunk of a PNG file."""
    with open(path, "rb") as f:
        head = f.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise AssertionError("%s is not a PNG" % path)
    return struct.unpack(">II", head[16:24])


def run_plot(*args):
    r = subprocess.run([sys.executable, SCRIPT] + list(args),
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise AssertionError("plot_bench.py %s failed:\n%s%s" %
                             (" ".join(args), r.stdout, r.stderr))
    return r.stdout


class ReportPicturesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.report = os.path.join(OUT_DIR, "report.json")
        target = "127.0.0.1:%d" % free_port()
        with tempfile.TemporaryFile() as log:
            server = subprocess.Popen([SERVER, "--address=" + target],
                                      stdout=log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL)
            try:
                subprocess.run([CLI, "--target=" + target, "health",
                                "--wait_s=15"], check=True,
                               capture_output=True, timeout=30)
                bench = subprocess.run(
                    [CLI, "--target=" + target, "bench", "--function=sigmoid",
                     "--shape=4,256", "--concurrency=1,4", "--duration=0.5s",
                     "--warmup=0.1s", "--json", cls.report],
                    capture_output=True, text=True, timeout=60)
            finally:
                server.terminate()
                try:
                    code = server.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    server.kill()
                    code = server.wait()
            log.seek(0)
            if bench.returncode != 0 or code != 0:
                raise AssertionError(
                    "bench exited %d, server %d\n%s%s\n%s" %
                    (bench.returncode, code, bench.stdout, bench.stderr,
                     log.read().decode(errors="replace")))
        cls.stdout = run_plot("report", cls.report, "--out-dir", OUT_DIR)

    def test_every_picture_is_a_png_of_its_size(self):
        # 2 levels: the latency figure is 1.5 + 2.5 * 2 in high, at 100 dpi.
        expected = {"report-latency.png": (1200, 650),
                    "report-timeline.png": (1200, 700),
                    "report-sweep.png": (1200, 500)}
        for name, size in expected.items():
            path = os.path.join(OUT_DIR, name)
            with self.subTest(name):
                self.assertTrue(os.path.isfile(path), path)
                self.assertGreater(os.path.getsize(path), 10000)
                self.assertEqual(png_size(path), size)
                self.assertIn("wrote %s (%d x %d px)" % (path, *size),
                              self.stdout)

    def test_the_report_read_is_the_run(self):
        config, rows = plot_bench.load_report(self.report)
        self.assertEqual(config["function"], "sigmoid")
        self.assertEqual([int(d) for d in config["shape"]], [4, 256])
        self.assertEqual([r["concurrency"] for r in rows], [1, 4])
        self.assertEqual([plot_bench.level_label(config, r) for r in rows],
                         ["c=1", "c=4"])
        for r in rows:
            lat = r["latency"]
            self.assertGreater(int(r["ok"]), 0)
            self.assertEqual(int(r["errors"]), 0)
            self.assertEqual(sum(int(b["count"]) for b in r["histogram"]),
                             int(r["ok"]))
            self.assertLessEqual(lat["min_ms"], lat["p50_ms"])
            self.assertLessEqual(lat["p50_ms"], lat["p99_ms"])
            self.assertLessEqual(lat["p99_ms"], lat["p999_ms"])
            self.assertLessEqual(lat["p999_ms"], lat["max_ms"])


class TableFiguresTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(BENCHMARKS) as f:
            cls.text = f.read()

    def test_service_figure(self):
        path = os.path.join(OUT_DIR, "service.png")
        run_plot("service", "--table", BENCHMARKS, "--out", path)
        self.assertGreater(os.path.getsize(path), 10000)
        self.assertEqual(png_size(path), (1400, 1100))

    def test_kernels_figure(self):
        path = os.path.join(OUT_DIR, "kernels.png")
        run_plot("kernels", "--table", BENCHMARKS, "--out", path)
        self.assertGreater(os.path.getsize(path), 10000)
        self.assertEqual(png_size(path), (1400, 1000))

    def test_service_table_values(self):
        rows = plot_bench.service_rows(self.text)
        # echo and 4 functions x 3 shapes x 3 levels
        self.assertEqual(len(rows), 45)
        first = rows[0]
        self.assertEqual((first["function"], first["shape"],
                          first["concurrency"]), ("echo", "[1,1024]", 1))
        for r in rows:
            self.assertGreater(r["qps"], 0)
            self.assertLessEqual(r["p50_ms"], r["p99_ms"])
            if r["function"] == "identity":
                self.assertEqual(r["vs_identity"], 1.0)

    def test_kernel_table_values(self):
        rows = plot_bench.kernel_rows(self.text)
        cell = {(r["function"], r["op"], r["n"]): r for r in rows}
        self.assertEqual(cell[("memcpy", "copy", 16777216)]["actsvc"], 1.69)
        gelu = cell[("gelu", "fwd", 65536)]
        self.assertEqual((gelu["actsvc"], gelu["onednn"], gelu["ratio"]),
                         (1.83, 2.23, 0.82))
        self.assertIsNone(cell[("selu", "fwd", 65536)]["onednn"])
        # Only the float32 table: no "(f64)" rows, no softmax[...] layouts.
        self.assertFalse(any("(" in r["function"] or "[" in r["function"]
                             for r in rows))

    def test_number_cells(self):
        self.assertEqual(plot_bench.number("31,655"), 31655)
        self.assertEqual(plot_bench.number(" 1.45× "), 1.45)
        self.assertIsNone(plot_bench.number("–"))
        self.assertIsNone(plot_bench.number(""))


def main():
    global SERVER, CLI, OUT_DIR
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True)
    parser.add_argument("--cli", required=True)
    parser.add_argument("--out-dir", required=True)
    args, rest = parser.parse_known_args()
    SERVER, CLI = args.server, args.cli
    OUT_DIR = os.path.abspath(args.out_dir)
    os.makedirs(OUT_DIR, exist_ok=True)
    for name in os.listdir(OUT_DIR):  # a stale picture must not pass
        if name.endswith((".png", ".json")):
            os.unlink(os.path.join(OUT_DIR, name))
    unittest.main(argv=[sys.argv[0]] + rest)


if __name__ == "__main__":
    main()
