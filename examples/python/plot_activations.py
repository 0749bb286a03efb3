#!/usr/bin/python3
"""Renders docs/activations.png: every activation with f, f' and f'' computed
by actsvc on a grid, one panel per function, saturation shaded.

    /usr/bin/python3 examples/python/plot_activations.py

starts the build's actsvc-server on a free port (or --server BINARY, or uses
--target HOST:PORT), computes the curves through the service (a Stream call
per function: f, f', f''; an Analyze call for the saturated fraction), and
writes the PNG (--out, default docs/activations.png). --data FILE.npz also
saves the plotted arrays. This is the figure the textbook section (docs/accuracy.md) cites as
fig_activation_functions.png.

Panels: the 11 elementwise functions, and softmax in its 2-class case: p_1 as
a function of z_1 - z_2 (which is sigmoid, the textbook's §3.2.4), with f' the Jacobian
entry dp_1/dz_1 = p_1 (1 - p_1). The service serves no second derivative of a
vector function, so that panel has no f''. log_softmax is left out (its
2-class case is log sigmoid, with nothing new to see).

Needs python3-matplotlib (Agg backend, no display), python3-numpy,
python3-grpcio.
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import actsvc_client  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
DEFAULT_OUT = os.path.join(REPO, "docs", "activations.png")
SOFTMAX_PANEL = "softmax"  # the 2-class case


def grid(half_width=8.0, points=1601):
    return np.linspace(-half_width, half_width, points)


def compute_curves(client, x, epsilon):
    """{name: {"f", "d1", "d2" (None for softmax), "saturated_fraction"}}
    on the float64 grid x, all computed by the service."""
    curves = {}
    for name, info in client.list_functions().items():
        if not info["elementwise"]:
            continue
        f, d1, d2 = client.stream([
            ("evaluate", name, x),
            ("derivative", name, x),
            ("derivative", name, x, {"order": 2}),
        ])
        report = client.analyze(name, x, epsilon=epsilon)
        curves[name] = {"f": f, "d1": d1, "d2": d2,
                        "saturated_fraction": report["saturated_fraction"]}
    # softmax over rows (z_1, z_2) = (x, 0): p_1 = sigmoid(x), and the
    # diagonal entry J[0, 0] = dp_1/dz_1.
    z = np.stack([x, np.zeros_like(x)], axis=-1)
    p1 = client.evaluate("softmax", z)[:, 0]
    j11 = client.jacobian("softmax", z)[:, 0, 0]
    curves[SOFTMAX_PANEL] = {
        "f": p1, "d1": j11, "d2": None,
        "saturated_fraction": float(np.mean(np.abs(j11) < epsilon))}
    return curves


def _runs(mask):
    """[(begin, end)] index ranges where mask is True."""
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[::2], edges[1::2] - 1))


def render(curves, x, epsilon, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(curves)
    cols = 4
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.3 * rows),
                             sharex=True)
    dx = x[1] - x[0]
    for ax, name in zip(axes.ravel(), names):
        c = curves[name]
        for begin, end in _runs(np.abs(c["d1"]) < epsilon):
            ax.axvspan(x[begin] - dx / 2, x[end] + dx / 2, color="0.85",
                       lw=0, zorder=0)
        ax.axhline(0, color="0.6", lw=0.6, zorder=1)
        ax.axvline(0, color="0.6", lw=0.6, zorder=1)
        ax.plot(x, c["f"], color="C0", lw=1.8, label="f(x)")
        ax.plot(x, c["d1"], color="C1", lw=1.5, ls="--", label="f′(x)")
        if c["d2"] is not None:
            ax.plot(x, c["d2"], color="C2", lw=1.2, ls=":", label="f″(x)")
        values = [c["f"], c["d1"]] + ([c["d2"]] if c["d2"] is not None
                                      else [])
        lo = max(-1.6, min(float(np.min(v)) for v in values))
        hi = min(3.2, max(float(np.max(v)) for v in values))
        pad = 0.08 * (hi - lo)
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_xlim(x[0], x[-1])
        title = name
        if name == SOFTMAX_PANEL:
            title = "softmax, 2 classes: p₁ vs z₁−z₂"
        ax.set_title("%s\nsaturated on %.0f%% of the grid" % (
            title, 100 * c["saturated_fraction"]), fontsize=10)
        if name == SOFTMAX_PANEL:
            ax.text(0.03, 0.95, "f′ = ∂p₁/∂z₁\n(no f″ for vector functions)",
                    transform=ax.transAxes, fontsize=8, va="top")
        if ax in axes[-1]:
            ax.set_xlabel("x" if name != SOFTMAX_PANEL else "z₁ − z₂",
                          fontsize=9)
        ax.grid(True, lw=0.3, alpha=0.5)
        ax.tick_params(labelsize=8)
    for ax in axes.ravel()[len(names):]:
        ax.axis("off")
    handles, labels = axes.ravel()[0].get_legend_handles_labels()
    from matplotlib.patches import Patch
    handles.append(Patch(color="0.85", label="|f′(x)| < ε (saturated)"))
    fig.legend(handles, labels + [handles[-1].get_label()], loc="lower center",
               ncol=4, frameon=False, fontsize=10)
    fig.suptitle("Activation functions and their derivatives, computed by "
                 "actsvc (float64); shaded: |f′(x)| < ε = %g" % epsilon,
                 fontsize=13)
    fig.tight_layout(rect=(0, 0.04, 1, 0.96))
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)


def save_data(curves, x, epsilon, path):
    arrays = {"x": x, "epsilon": np.float64(epsilon)}
    for name, c in curves.items():
        arrays[name + ".f"] = c["f"]
        arrays[name + ".d1"] = c["d1"]
        if c["d2"] is not None:
            arrays[name + ".d2"] = c["d2"]
    np.savez(path, **arrays)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target", help="a running server, host:port")
    parser.add_argument("--server", help="start this actsvc-server binary "
                        "(default: the build's)")
    parser.add_argument("--stubs", help="directory of the generated stubs")
    parser.add_argument("--out", default=DEFAULT_OUT, help="the PNG to write")
    parser.add_argument("--data", help="also save the plotted arrays (.npz)")
    parser.add_argument("--epsilon", type=float, default=0.01,
                        help="saturation threshold for the shading (the "
                        "textbook: tanh' < 0.01 from |x| >= 3)")
    parser.add_argument("--half-width", type=float, default=8.0)
    parser.add_argument("--points", type=int, default=1601)
    args = parser.parse_args(argv)
    actsvc_client.load_stubs(args.stubs)
    x = grid(args.half_width, args.points)

    def run(client):
        curves = compute_curves(client, x, args.epsilon)
        render(curves, x, args.epsilon, args.out)
        if args.data:
            save_data(curves, x, args.epsilon, args.data)
        print("wrote %s (%d panels)" % (args.out, len(curves)))

    if args.target:
        with actsvc_client.Client(args.target) as client:
            run(client)
    else:
        with actsvc_client.LocalServer(args.server) as server, \
                actsvc_client.Client(server.target) as client:
            run(client)


if __name__ == "__main__":
    main()
