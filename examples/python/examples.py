#!/usr/bin/python3
"""One example per RPC of actsvc, through actsvc_client, against a live server.

    /usr/bin/python3 examples/python/examples.py --target localhost:50051
    /usr/bin/python3 examples/python/examples.py --server build/server/actsvc-server

With --server (or neither flag, when a build directory has actsvc-server) it
starts its own server on a free port and stops it at the end. The stubs are
found as actsvc_client.load_stubs() says (ACTSVC_STUBS or --stubs).
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import actsvc_client  # noqa: E402


def show(title, value):
    print("== %s" % title)
    print(value)
    print()


def run_examples(client):
    show("Health", client.health())

    x = np.linspace(-3, 3, 7)
    show("Evaluate gelu (float64)", client.evaluate("gelu", x))
    show("Evaluate softmax along axis 0 of a 2x3 float32 array",
         client.evaluate("softmax", np.float32([[1, 2, 3], [1, 1, 1]]),
                         axis=0))

    # The tails keep their digits: sigma'(20) = 2.06e-9, not 0.
    show("Derivative sigmoid' at 0, 6, 20 (float32)",
         client.derivative("sigmoid", np.float32([0, 6, 20])))
    show("Derivative tanh'' (order 2)", client.derivative("tanh", x, order=2))
    show("Derivative with upstream_grad: the VJP g * gelu'(x)",
         client.vjp("gelu", [-2.0, 0.0, 2.0], [1.0, 0.5, 0.25]))
    show("VJP of softmax: p * (g - <g, p>)",
         client.vjp("softmax", [1.0, 2.0, 3.0], [1.0, 0.0, 0.0]))

    show("Jacobian of softmax [C, C] = diag(p) - p p^T",
         client.jacobian("softmax", [1.0, 2.0, 3.0]))
    show("Jacobian of elu, dense per last-axis row",
         client.jacobian("elu", [[-1.0, 1.0]], dense=True, alpha=0.5))

    logits = np.array([[2.0, 0.5, -1.0], [0.0, 0.0, 0.0]])
    show("SoftmaxCrossEntropy, class indices, mean",
         client.softmax_cross_entropy(logits, labels=[0, 2],
                                      return_probabilities=True))
    show("SoftmaxCrossEntropy, target probabilities, none, smoothing 0.1",
         client.softmax_cross_entropy(
             logits, target_probs=[[0.7, 0.2, 0.1], [0, 0, 1]],
             reduction="none", label_smoothing=0.1))

    functions = client.list_functions()
    show("ListFunctions", "\n".join(
        "%-12s f' in %s" % (name, info["derivative_range"])
        for name, info in functions.items()))

    show("Stream: evaluate, f', f'' of silu in one call",
         list(client.stream([
             ("evaluate", "silu", x),
             ("derivative", "silu", x),
             ("derivative", "silu", x, {"order": 2}),
         ])))

    # The textbook's numbers: sigma' < 0.0025 for |x| >= 6; (1/4)^L at best.
    show("Analyze sigmoid, epsilon 0.0025, 10 layers",
         client.analyze("sigmoid", np.linspace(-8, 8, 17), epsilon=0.0025,
                        layers=10))
    show("Analyze relu on [-2, -1, 0, 1, 2]",
         client.analyze("relu", [-2, -1, 0, 1, 2], layers=3))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target", help="a running server, host:port")
    parser.add_argument("--server", help="start this actsvc-server binary")
    parser.add_argument("--stubs", help="directory of the generated stubs")
    args = parser.parse_args()
    actsvc_client.load_stubs(args.stubs)
    if args.target:
        with actsvc_client.Client(args.target) as client:
            run_examples(client)
        return
    with actsvc_client.LocalServer(args.server) as server, \
            actsvc_client.Client(server.target) as client:
        run_examples(client)


if __name__ == "__main__":
    main()
