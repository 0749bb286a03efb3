#!/usr/bin/python3
"""Writes the seed corpus of the fuzz targets: tests/fuzz/corpus/<target>/.

Small binary protobuf requests: valid ones for every function, dtype and
encoding the API has, and invalid ones (bad shapes, wrong byte counts,
unknown enum values, NaN/inf, axes out of range, huge shapes without data).
Deterministic: re-running it rewrites the same files. It replaces the whole
corpus/ directory; crash inputs belong in regressions/, which it leaves alone.

Usage: /usr/bin/python3 tests/fuzz/make_corpus.py  (needs protoc and Debian's
python3-protobuf; the Python module is generated into a temporary directory).
"""
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(HERE, "corpus")


def load_pb2():
    out = tempfile.mkdtemp(prefix="actsvc-corpus-")
    subprocess.run(["protoc", "--proto_path=" + os.path.join(ROOT, "proto"),
                    "--python_out=" + out, "actsvc/v1/activation.proto",
                    "inference/model_config.proto",
                    "inference/grpc_service.proto"],
                   check=True)
    sys.path.insert(0, out)
    from actsvc.v1 import activation_pb2  # noqa: E402
    from inference import grpc_service_pb2  # noqa: E402
    return activation_pb2, grpc_service_pb2


pb, kpb = load_pb2()

ELEMENTWISE = ["IDENTITY", "SIGMOID", "TANH", "RELU", "LEAKY_RELU", "GELU",
               "GELU_TANH", "SILU", "SOFTPLUS", "ELU", "SELU"]
AXIS_FUNCTIONS = ["SOFTMAX", "LOG_SOFTMAX"]
FUNCTIONS = ELEMENTWISE + AXIS_FUNCTIONS
# Ordinary values, the tails where the stable forms take over, and specials.
VALUES = [-30.0, -6.0, -3.0, -1.0, -0.5, -0.0, 0.0, 1e-8, 0.5, 1.0, 3.0, 6.0,
          30.0, 90.0, -800.0, 1e-40]
SPECIALS = [math.nan, math.inf, -math.inf, -0.0, 3.4e38, -3.4e38, 1e-45, 5.0]


def values(n, pool=VALUES):
    return [pool[i % len(pool)] for i in range(n)]


def tensor(shape, vals=None, dtype="FLOAT32", encoding="raw"):
    """A Tensor; vals defaults to the first prod(shape) of VALUES."""
    t = pb.Tensor(shape=shape, dtype=pb.DataType.Value(dtype)
                  if isinstance(dtype, str) else dtype)
    if vals is None:
        vals = values(math.prod(shape))
    if encoding == "raw":
        if dtype == "FLOAT16":
            t.raw_data = b"".join(f16_bytes(v) for v in vals)
        elif dtype == "BFLOAT16":
            t.raw_data = b"".join(bf16_bytes(v) for v in vals)
        else:
            fmt = "<%d%s" % (len(vals), "f" if dtype == "FLOAT32" else "d")
            t.raw_data = struct.pack(fmt, *vals)
    elif dtype == "FLOAT64":
        t.double_data.extend(vals)
    else:  # FLOAT32, and float_data rounded by the server for the halves
        t.float_data.extend(vals)
    return t


def f16_bytes(v):
    """v as IEEE binary16, little-endian, rounded to nearest even."""
    if math.isfinite(v) and abs(v) >= 65520:
        v = math.copysign(math.inf, v)
    return struct.pack("<e", v)


def bf16_bytes(v):
    """v as bfloat16, little-endian: float32 rounded to nearest even."""
    bits = struct.unpack("<I", struct.pack("<f", v))[0]
    if math.isnan(v):
        return struct.pack("<H", (bits >> 16) | 0x40)
    return struct.pack("<H", (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16)


def spec(function, alpha=None, axis=None):
    s = pb.FunctionSpec(function=pb.Function.Value(function)
                        if isinstance(function, str) else function)
    if alpha is not None:
        s.alpha = alpha
    if axis is not None:
        s.axis = axis
    return s


def variants():
    """(dtype, encoding) pairs, all four."""
    return [("FLOAT32", "raw"), ("FLOAT64", "raw"), ("FLOAT32", "typed"),
            ("FLOAT64", "typed")]


def half_variants():
    """(dtype, encoding) pairs of the half types (issue 14), all four."""
    return [("FLOAT16", "raw"), ("BFLOAT16", "raw"), ("FLOAT16", "typed"),
            ("BFLOAT16", "typed")]


def short(dtype, encoding):
    return {"FLOAT32": "f32", "FLOAT64": "f64", "FLOAT16": "f16",
            "BFLOAT16": "bf16"}[dtype] + "_" + encoding


# Invalid input tensors shared by every RPC that takes one.
def bad_tensors():
    bad = {}
    bad["negative_dim"] = tensor([2, -3], [])
    t = tensor([4]); t.raw_data = t.raw_data[:-1]
    bad["raw_short_by_one_byte"] = t
    bad["typed_count_mismatch"] = tensor([5], values(4), encoding="typed")
    bad["unknown_dtype"] = tensor([2], [1.0, 2.0]); bad["unknown_dtype"].dtype = 7
    t = tensor([2], [1.0, 2.0]); t.dtype = 0
    bad["dtype_unspecified"] = t
    t = tensor([2], [1.0, 2.0], "FLOAT64", "typed")
    t.float_data.extend([1.0, 2.0])
    bad["two_encodings"] = t
    t = pb.Tensor(shape=[2], dtype=pb.FLOAT64); t.float_data.extend([1.0, 2.0])
    bad["float_data_in_float64"] = t
    t = pb.Tensor(shape=[2], dtype=pb.FLOAT32); t.double_data.extend([1.0, 2.0])
    bad["double_data_in_float32"] = t
    bad["huge_shape_no_data"] = pb.Tensor(shape=[1 << 40, 1 << 20],
                                          dtype=pb.FLOAT32)
    bad["shape_overflows"] = pb.Tensor(shape=[1 << 62, 4], dtype=pb.FLOAT64,
                                       raw_data=b"\0" * 8)
    bad["over_max_elements"] = pb.Tensor(shape=[1 << 17], dtype=pb.FLOAT32)
    t = tensor([3], None, "FLOAT16"); t.raw_data = t.raw_data[:-1]
    bad["f16_raw_odd_bytes"] = t
    t = tensor([3], None, "BFLOAT16"); t.raw_data = tensor([3]).raw_data
    bad["bf16_raw_float32_sized"] = t
    t = pb.Tensor(shape=[2], dtype=pb.FLOAT16); t.double_data.extend([1.0, 2.0])
    bad["double_data_in_float16"] = t
    bad["f16_typed_count_mismatch"] = tensor([5], values(4), "FLOAT16", "typed")
    return bad


def evaluate_corpus():
    out = {}
    for i, f in enumerate(FUNCTIONS):
        # Two opposite variants each: every function in both dtypes and both
        # encodings, and every combination across functions.
        for dtype, enc in (variants()[i % 4], variants()[3 - i % 4]):
            out["%s_%s" % (f.lower(), short(dtype, enc))] = pb.EvaluateRequest(
                spec=spec(f), input=tensor([2, 8], None, dtype, enc))
    for i, f in enumerate(FUNCTIONS):
        dtype, enc = half_variants()[i % 4]
        out["%s_%s" % (f.lower(), short(dtype, enc))] = pb.EvaluateRequest(
            spec=spec(f), input=tensor([2, 8], None, dtype, enc))
    out["sigmoid_specials_f16"] = pb.EvaluateRequest(
        spec=spec("SIGMOID"), input=tensor([8], SPECIALS, "FLOAT16"))
    out["softmax_specials_bf16_typed"] = pb.EvaluateRequest(
        spec=spec("SOFTMAX"), input=tensor([2, 4], SPECIALS, "BFLOAT16",
                                           "typed"))
    out["leaky_relu_alpha"] = pb.EvaluateRequest(
        spec=spec("LEAKY_RELU", alpha=0.2), input=tensor([8]))
    out["elu_alpha_negative"] = pb.EvaluateRequest(
        spec=spec("ELU", alpha=-1.5), input=tensor([8], None, "FLOAT64"))
    out["softmax_axis0_rank3"] = pb.EvaluateRequest(
        spec=spec("SOFTMAX", axis=0), input=tensor([2, 3, 2]))
    out["log_softmax_axis_minus2"] = pb.EvaluateRequest(
        spec=spec("LOG_SOFTMAX", axis=-2), input=tensor([3, 2, 2], None,
                                                        "FLOAT64", "typed"))
    out["softmax_specials"] = pb.EvaluateRequest(
        spec=spec("SOFTMAX"), input=tensor([2, 4], SPECIALS))
    out["gelu_specials_f64"] = pb.EvaluateRequest(
        spec=spec("GELU"), input=tensor([8], SPECIALS, "FLOAT64"))
    out["tanh_chunks_300"] = pb.EvaluateRequest(
        spec=spec("TANH"), input=tensor([300]))
    out["softmax_chunks_40x10"] = pb.EvaluateRequest(
        spec=spec("SOFTMAX"), input=tensor([40, 10], None, "FLOAT64"))
    out["scalar"] = pb.EvaluateRequest(spec=spec("SILU"), input=tensor([], [2.0]))
    out["empty"] = pb.EvaluateRequest(spec=spec("RELU"),
                                      input=pb.Tensor(shape=[0, 1 << 40],
                                                      dtype=pb.FLOAT32))
    out["softmax_empty_axis"] = pb.EvaluateRequest(
        spec=spec("SOFTMAX", axis=1), input=pb.Tensor(shape=[3, 0],
                                                      dtype=pb.FLOAT64))
    out["bad_function_99"] = pb.EvaluateRequest(spec=spec(99),
                                                input=tensor([2]))
    out["bad_function_unspecified"] = pb.EvaluateRequest(input=tensor([2]))
    out["bad_alpha_on_relu"] = pb.EvaluateRequest(spec=spec("RELU", alpha=1.0),
                                                  input=tensor([2]))
    out["bad_alpha_nan"] = pb.EvaluateRequest(
        spec=spec("ELU", alpha=math.nan), input=tensor([2]))
    out["bad_axis_out_of_range"] = pb.EvaluateRequest(
        spec=spec("SOFTMAX", axis=2), input=tensor([2, 2]))
    out["bad_axis_min_int"] = pb.EvaluateRequest(
        spec=spec("LOG_SOFTMAX", axis=-(1 << 31)), input=tensor([2, 2]))
    out["bad_softmax_scalar"] = pb.EvaluateRequest(spec=spec("SOFTMAX"),
                                                   input=tensor([], [1.0]))
    out["bad_missing_input"] = pb.EvaluateRequest(spec=spec("GELU"))
    for name, t in bad_tensors().items():
        out["bad_" + name] = pb.EvaluateRequest(spec=spec("SIGMOID"), input=t)
    return out


def derivative_corpus():
    out = {}
    for i, f in enumerate(FUNCTIONS):
        dtype, enc = variants()[i % 4]
        x = tensor([2, 6], None, dtype, enc)
        if f in AXIS_FUNCTIONS:
            g = tensor([2, 6], values(12, SPECIALS[3:] + VALUES), dtype, enc)
            out["%s_vjp_%s" % (f.lower(), short(dtype, enc))] = \
                pb.DerivativeRequest(spec=spec(f), input=x, upstream_grad=g)
            continue
        for order in (1, 2):
            out["%s_order%d_%s" % (f.lower(), order, short(dtype, enc))] = \
                pb.DerivativeRequest(spec=spec(f), input=x, order=order)
        g = tensor([2, 6], values(12)[::-1], dtype, "raw")
        out["%s_vjp_%s" % (f.lower(), short(dtype, enc))] = \
            pb.DerivativeRequest(spec=spec(f), input=x, upstream_grad=g)
    for i, f in enumerate(FUNCTIONS):
        dtype, enc = half_variants()[i % 4]
        x = tensor([2, 6], None, dtype, enc)
        g = tensor([2, 6], values(12)[::-1], dtype, enc)
        out["%s_vjp_%s" % (f.lower(), short(dtype, enc))] = \
            pb.DerivativeRequest(spec=spec(f), input=x, upstream_grad=g)
        if f not in AXIS_FUNCTIONS:
            out["%s_order2_%s" % (f.lower(), short(dtype, enc))] = \
                pb.DerivativeRequest(spec=spec(f), input=x, order=2)
    out["bad_vjp_half_dtype_mismatch"] = pb.DerivativeRequest(
        spec=spec("SILU"), input=tensor([2], None, "FLOAT16"),
        upstream_grad=tensor([2], None, "BFLOAT16"))
    out["softmax_vjp_axis0"] = pb.DerivativeRequest(
        spec=spec("SOFTMAX", axis=0), input=tensor([3, 2, 2]),
        upstream_grad=tensor([3, 2, 2], encoding="typed"))
    out["elu_order2_specials"] = pb.DerivativeRequest(
        spec=spec("ELU", alpha=0.5), input=tensor([8], SPECIALS, "FLOAT64"),
        order=2)
    out["silu_chunks_200"] = pb.DerivativeRequest(spec=spec("SILU"),
                                                  input=tensor([200]))
    out["bad_order_3"] = pb.DerivativeRequest(spec=spec("TANH"),
                                              input=tensor([2]), order=3)
    out["bad_order_negative"] = pb.DerivativeRequest(
        spec=spec("TANH"), input=tensor([2]), order=-1)
    out["bad_vjp_order2"] = pb.DerivativeRequest(
        spec=spec("TANH"), input=tensor([2]), order=2,
        upstream_grad=tensor([2]))
    out["bad_vjp_shape_mismatch"] = pb.DerivativeRequest(
        spec=spec("GELU"), input=tensor([2, 3]), upstream_grad=tensor([3, 2]))
    out["bad_vjp_dtype_mismatch"] = pb.DerivativeRequest(
        spec=spec("GELU"), input=tensor([2]),
        upstream_grad=tensor([2], None, "FLOAT64"))
    out["bad_softmax_no_upstream"] = pb.DerivativeRequest(
        spec=spec("SOFTMAX"), input=tensor([2, 2]))
    out["bad_softmax_axis"] = pb.DerivativeRequest(
        spec=spec("SOFTMAX", axis=-3), input=tensor([2, 2]),
        upstream_grad=tensor([2, 2]))
    for name, t in bad_tensors().items():
        out["bad_input_" + name] = pb.DerivativeRequest(spec=spec("RELU"),
                                                        input=t)
    out["bad_upstream_raw_short"] = pb.DerivativeRequest(
        spec=spec("RELU"), input=tensor([4]),
        upstream_grad=bad_tensors()["raw_short_by_one_byte"])
    return out


def jacobian_corpus():
    out = {}
    for i, f in enumerate(FUNCTIONS):
        dtype, enc = variants()[i % 4]
        for dense in (False, True):
            if f in AXIS_FUNCTIONS and not dense:
                continue
            out["%s_%s_%s" % (f.lower(), "dense" if dense else "diag",
                              short(dtype, enc))] = pb.JacobianRequest(
                spec=spec(f), input=tensor([2, 4], None, dtype, enc),
                dense=dense)
    for i, f in enumerate(FUNCTIONS):
        dtype, enc = half_variants()[i % 4]
        out["%s_dense_%s" % (f.lower(), short(dtype, enc))] = \
            pb.JacobianRequest(spec=spec(f),
                               input=tensor([2, 4], None, dtype, enc),
                               dense=True)
    out["softmax_axis0_rank3"] = pb.JacobianRequest(
        spec=spec("SOFTMAX", axis=0), input=tensor([3, 2, 2], None, "FLOAT64"))
    out["log_softmax_specials"] = pb.JacobianRequest(
        spec=spec("LOG_SOFTMAX"), input=tensor([2, 4], SPECIALS))
    out["gelu_dense_chunks_12x12"] = pb.JacobianRequest(
        spec=spec("GELU"), input=tensor([12, 12]), dense=True)
    out["scalar_diag"] = pb.JacobianRequest(spec=spec("TANH"),
                                            input=tensor([], [0.5]))
    out["dense_empty_rows"] = pb.JacobianRequest(
        spec=spec("SIGMOID"), input=pb.Tensor(shape=[0, 1 << 30],
                                               dtype=pb.FLOAT32), dense=True)
    out["softmax_empty_huge_axis"] = pb.JacobianRequest(
        spec=spec("SOFTMAX", axis=1), input=pb.Tensor(shape=[0, 1 << 31],
                                                      dtype=pb.FLOAT32))
    out["dense_last_dim_zero"] = pb.JacobianRequest(
        spec=spec("RELU"), input=pb.Tensor(shape=[5, 0], dtype=pb.FLOAT64),
        dense=True)
    out["bad_dense_scalar"] = pb.JacobianRequest(
        spec=spec("TANH"), input=tensor([], [0.5]), dense=True)
    out["bad_dense_too_large"] = pb.JacobianRequest(
        spec=spec("SIGMOID"), input=tensor([1500]), dense=True)
    out["bad_softmax_too_large"] = pb.JacobianRequest(
        spec=spec("SOFTMAX"), input=tensor([1, 1500]))
    out["bad_axis"] = pb.JacobianRequest(spec=spec("SOFTMAX", axis=5),
                                         input=tensor([2, 2]))
    out["bad_function"] = pb.JacobianRequest(spec=spec(14),
                                             input=tensor([2]))
    for name, t in bad_tensors().items():
        out["bad_" + name] = pb.JacobianRequest(spec=spec("ELU"), input=t,
                                                dense=True)
    return out


def cross_entropy_corpus():
    Req = pb.SoftmaxCrossEntropyRequest
    out = {}
    reductions = [Req.MEAN, Req.SUM, Req.NONE]
    for i, (dtype, enc) in enumerate(variants() + half_variants()):
        for r in reductions:
            name = "indices_%s_%s" % (Req.Reduction.Name(r).lower(),
                                      short(dtype, enc))
            out[name] = Req(logits=tensor([3, 4], None, dtype, enc),
                            class_indices=[0, 3, 1], reduction=r,
                            return_probabilities=(r == Req.NONE))
        probs = [0.25] * 4 + [1.0, 0, 0, 0] + [0.1, 0.2, 0.3, 0.4]
        out["target_probs_%s" % short(dtype, enc)] = Req(
            logits=tensor([3, 4], None, dtype, enc),
            target_probs=tensor([3, 4], probs, dtype, "raw"),
            reduction=reductions[i % 3], label_smoothing=0.1 * i)
    out["ignore_index"] = Req(logits=tensor([2, 2, 3]),
                              class_indices=[2, -100, 0, -100],
                              ignore_index=-100, reduction=Req.MEAN)
    out["all_ignored_mean"] = Req(logits=tensor([2, 3]),
                                  class_indices=[7, 7], ignore_index=7)
    out["smoothing_specials"] = Req(logits=tensor([2, 4], SPECIALS, "FLOAT64"),
                                    class_indices=[1, 2],
                                    label_smoothing=0.999,
                                    return_probabilities=True)
    out["one_class"] = Req(logits=tensor([3, 1]), class_indices=[0, 0, 0])
    out["rank1"] = Req(logits=tensor([5]), class_indices=[4],
                       reduction=Req.NONE)
    out["chunks_50x4"] = Req(logits=tensor([50, 4], None, "FLOAT64"),
                             class_indices=[i % 4 for i in range(50)])
    out["empty_batch"] = Req(logits=pb.Tensor(shape=[0, 3], dtype=pb.FLOAT32))
    out["bad_scalar"] = Req(logits=tensor([], [1.0]), class_indices=[0])
    out["bad_zero_classes"] = Req(logits=pb.Tensor(shape=[2, 0],
                                                   dtype=pb.FLOAT32),
                                  class_indices=[0, 0])
    out["bad_reduction_9"] = Req(logits=tensor([1, 2]), class_indices=[0],
                                 reduction=9)
    out["bad_smoothing_one"] = Req(logits=tensor([1, 2]), class_indices=[0],
                                   label_smoothing=1.0)
    out["bad_smoothing_nan"] = Req(logits=tensor([1, 2]), class_indices=[0],
                                   label_smoothing=math.nan)
    out["bad_class_out_of_range"] = Req(logits=tensor([2, 2]),
                                        class_indices=[0, 2])
    out["bad_class_negative"] = Req(logits=tensor([2, 2]),
                                    class_indices=[-1, 0], ignore_index=5)
    out["bad_class_count"] = Req(logits=tensor([2, 2]), class_indices=[0])
    out["bad_ignore_with_probs"] = Req(logits=tensor([1, 2]),
                                       target_probs=tensor([1, 2], [0.5, 0.5]),
                                       ignore_index=0)
    out["bad_probs_shape"] = Req(logits=tensor([2, 2]),
                                 target_probs=tensor([4], [0.25] * 4))
    out["bad_probs_dtype"] = Req(logits=tensor([1, 2]),
                                 target_probs=tensor([1, 2], [0.5, 0.5],
                                                     "FLOAT64"))
    out["bad_probs_half_dtype"] = Req(
        logits=tensor([1, 2], None, "FLOAT16"),
        target_probs=tensor([1, 2], [0.5, 0.5], "BFLOAT16"))
    out["bad_too_large"] = Req(logits=pb.Tensor(shape=[1 << 40, 1 << 20],
                                                dtype=pb.FLOAT32))
    for name, t in bad_tensors().items():
        out["bad_logits_" + name] = Req(logits=t, class_indices=[0, 1])
    return out


def analyze_corpus():
    out = {}
    for i, f in enumerate(ELEMENTWISE):
        dtype, enc = variants()[i % 4]
        r = pb.AnalyzeRequest(spec=spec(f),
                              input=tensor([4, 5], None, dtype, enc))
        if i % 3 == 0:
            r.layers = i
        if i % 2 == 0:
            r.epsilon = 10.0 ** -(1 + i % 5)
        out["%s_%s" % (f.lower(), short(dtype, enc))] = r
    for i, f in enumerate(ELEMENTWISE):
        dtype, enc = half_variants()[i % 4]
        out["%s_%s" % (f.lower(), short(dtype, enc))] = pb.AnalyzeRequest(
            spec=spec(f), input=tensor([4, 5], None, dtype, enc))
    out["specials"] = pb.AnalyzeRequest(spec=spec("SIGMOID"),
                                        input=tensor([8], SPECIALS), layers=3)
    out["only_nan"] = pb.AnalyzeRequest(spec=spec("TANH"),
                                        input=tensor([3], [math.nan] * 3,
                                                     "FLOAT64"), layers=0)
    out["empty"] = pb.AnalyzeRequest(spec=spec("RELU"),
                                     input=pb.Tensor(shape=[0],
                                                     dtype=pb.FLOAT32))
    out["chunks_150"] = pb.AnalyzeRequest(spec=spec("GELU_TANH"),
                                          input=tensor([150]), layers=100)
    out["leaky_relu_alpha_zero"] = pb.AnalyzeRequest(
        spec=spec("LEAKY_RELU", alpha=0.0), input=tensor([8]))
    out["bad_softmax"] = pb.AnalyzeRequest(spec=spec("SOFTMAX"),
                                           input=tensor([2, 2]))
    out["bad_epsilon_negative"] = pb.AnalyzeRequest(
        spec=spec("TANH"), input=tensor([2]), epsilon=-1e-3)
    out["bad_epsilon_inf"] = pb.AnalyzeRequest(
        spec=spec("TANH"), input=tensor([2]), epsilon=math.inf)
    out["bad_epsilon_nan"] = pb.AnalyzeRequest(
        spec=spec("TANH"), input=tensor([2]), epsilon=math.nan)
    out["bad_layers_negative"] = pb.AnalyzeRequest(
        spec=spec("TANH"), input=tensor([2]), layers=-1)
    out["bad_function"] = pb.AnalyzeRequest(spec=spec(-5), input=tensor([2]))
    for name, t in bad_tensors().items():
        out["bad_" + name] = pb.AnalyzeRequest(spec=spec("SOFTPLUS"), input=t)
    return out


def stream_corpus():
    out = {}
    ev, de = evaluate_corpus(), derivative_corpus()
    for name in sorted(ev)[::3]:
        out["evaluate_" + name] = pb.StreamRequest(evaluate=ev[name])
    for name in sorted(de)[::3]:
        out["derivative_" + name] = pb.StreamRequest(derivative=de[name])
    out["bad_empty"] = pb.StreamRequest()
    return out


def list_functions_corpus():
    # The request has no fields: unknown fields must be ignored.
    return {"empty": pb.ListFunctionsRequest(),
            "unknown_fields": b"\x08\x01\x12\x03abc\x19" + b"\0" * 8}


def npy_file(header, data=b""):
    """A version 1.0 .npy file of the header dictionary `header`, padded as
    np.save pads it, followed by `data`."""
    text = header.encode("latin1")
    total = (10 + len(text) + 1 + 63) // 64 * 64
    text += b" " * (total - 10 - len(text) - 1) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text + data


def npy_corpus():
    # The CLI's .npy reader (client/npy.cc): files as np.save writes them
    # (versions 1.0 and 2.0) and ones it must refuse.
    def f4(*v):
        return struct.pack("<%df" % len(v), *v)

    def f8(*v):
        return struct.pack("<%dd" % len(v), *v)

    def dict_text(descr, shape, fortran=False):
        return "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (
            descr, fortran, shape)

    vector = npy_file(dict_text("<f4", "(4,)"), f4(-1.5, 0, 2, math.inf))
    version2_text = dict_text("<f8", "(3,)").encode("latin1")
    total = (12 + len(version2_text) + 1 + 63) // 64 * 64
    version2_text += b" " * (total - 12 - len(version2_text) - 1) + b"\n"
    return {
        "f4_vector": vector,
        "f8_matrix": npy_file(dict_text("<f8", "(2, 3)"), f8(0, 1, 2, 3, 4, 5)),
        "f4_scalar": npy_file(dict_text("<f4", "()"), f4(3)),
        "f4_empty": npy_file(dict_text("<f4", "(0, 3)")),
        "f8_native_order": npy_file(dict_text("=f8", "(1,)"), f8(7)),
        "f4_fortran_column": npy_file(dict_text("<f4", "(3, 1)", True),
                                      f4(1, 2, 3)),
        "f8_version2": b"\x93NUMPY\x02\x00" +
        struct.pack("<I", len(version2_text)) + version2_text + f8(1, 2, 3),
        "f4_python2_long": npy_file(dict_text("<f4", "(2L,)"), f4(1, 2)),
        "bad_fortran_matrix": npy_file(dict_text("<f4", "(2, 2)", True),
                                       f4(1, 2, 3, 4)),
        "bad_big_endian": npy_file(dict_text(">f4", "(1,)"), b"\0" * 4),
        "bad_int32": npy_file(dict_text("<i4", "(1,)"), b"\0" * 4),
        "bad_huge_shape": npy_file(dict_text("<f8", "(4294967296, 4294967296)")),
        "bad_negative_dim": npy_file(dict_text("<f4", "(-1,)")),
        "bad_no_shape": npy_file("{'descr': '<f4', 'fortran_order': False, }"),
        "bad_truncated_data": vector[:-1],
        "bad_truncated_header": vector[:20],
        "bad_magic": b"\x93NUMPZ" + vector[6:],
        "bad_version_9": vector[:6] + b"\x09\x00" + vector[8:],
        "bad_header_length_past_end": vector[:8] + b"\xff\xff" + vector[10:],
    }


def infer_request(model, inputs, raw=True, parameters=None, outputs=(),
                  request_id="seed"):
    """A KServe v2 ModelInferRequest; inputs: (name, datatype, shape, vals)."""
    r = kpb.ModelInferRequest(model_name=model, id=request_id)
    fmt = {"FP32": "f", "FP64": "d", "INT64": "q", "INT32": "i"}
    for name, datatype, shape, vals in inputs:
        t = r.inputs.add(name=name, datatype=datatype, shape=shape)
        if raw:
            r.raw_input_contents.append(
                struct.pack("<%d%s" % (len(vals), fmt[datatype]), *vals))
        elif datatype == "FP32":
            t.contents.fp32_contents.extend(vals)
        elif datatype == "FP64":
            t.contents.fp64_contents.extend(vals)
        elif datatype == "INT64":
            t.contents.int64_contents.extend(vals)
        else:
            t.contents.int_contents.extend(vals)
    for key, value in (parameters or {}).items():
        p = r.parameters[key]
        if isinstance(value, bool):
            p.bool_param = value
        elif isinstance(value, int):
            p.int64_param = value
        elif isinstance(value, float):
            p.double_param = value
        else:
            p.string_param = value
    for name in outputs:
        r.outputs.add(name=name)
    return r


def kserve_requests():
    """name -> ModelInferRequest: every model kind, both encodings and
    float datatypes, each parameter type, and the errors."""
    x = values(6)
    g = values(6, SPECIALS)
    c = {}
    for dtype in ("FP32", "FP64"):
        for raw in (True, False):
            k = "%s_%s" % (dtype.lower(), "raw" if raw else "typed")
            for model in ("gelu", "sigmoid.d1", "tanh.d2", "identity"):
                c["%s_%s" % (model, k)] = infer_request(
                    model, [("x", dtype, [2, 3], x)], raw)
            c["silu_vjp_" + k] = infer_request(
                "silu.vjp", [("x", dtype, [2, 3], x), ("grad", dtype, [2, 3], g)],
                raw)
            c["softmax_jacobian_" + k] = infer_request(
                "softmax.jacobian", [("x", dtype, [2, 3], x)], raw)
            c["elu_jacobian_" + k] = infer_request(
                "elu.jacobian", [("x", dtype, [2, 3], x)], raw)
            c["cross_entropy_" + k] = infer_request(
                "softmax_cross_entropy",
                [("logits", dtype, [2, 3], x), ("labels", "INT64", [2], [0, 2])],
                raw, {"reduction": "none", "label_smoothing": 0.1})
            c["cross_entropy_probs_" + k] = infer_request(
                "softmax_cross_entropy.probs",
                [("logits", dtype, [2, 3], x),
                 ("target_probs", dtype, [2, 3], values(6, [0.5, 0.25, 0.25]))],
                raw, outputs=["loss"])
    c["cross_entropy_int32_labels"] = infer_request(
        "softmax_cross_entropy",
        [("logits", "FP32", [2, 3], x), ("labels", "INT32", [2], [1, -100])],
        parameters={"ignore_index": "-100", "reduction": "sum"})
    c["leaky_relu_alpha_double"] = infer_request(
        "leaky_relu", [("x", "FP32", [6], x)], parameters={"alpha": 0.2})
    c["leaky_relu_alpha_string"] = infer_request(
        "leaky_relu", [("x", "FP32", [6], x)], parameters={"alpha": "0.2"})
    c["log_softmax_axis_int"] = infer_request(
        "log_softmax", [("x", "FP32", [2, 3], x)], parameters={"axis": 0})
    c["specials"] = infer_request("softplus", [("x", "FP32", [8], SPECIALS)])
    c["empty"] = infer_request("relu", [("x", "FP32", [0, 3], [])])
    c["bad_model"] = infer_request("gleu", [("x", "FP32", [6], x)])
    c["bad_version"] = infer_request("gelu", [("x", "FP32", [6], x)])
    c["bad_version"].model_version = "2"
    c["bad_input_name"] = infer_request("gelu", [("z", "FP32", [6], x)])
    c["bad_missing_grad"] = infer_request("gelu.vjp", [("x", "FP32", [6], x)])
    c["bad_datatype"] = infer_request("gelu", [("x", "INT64", [6], [1] * 6)])
    c["bad_byte_count"] = infer_request("gelu", [("x", "FP32", [7], x)])
    c["bad_huge_shape"] = infer_request("gelu", [("x", "FP32", [1 << 40, 1 << 30], [])])
    c["bad_negative_dim"] = infer_request("gelu", [("x", "FP32", [-1], [])])
    c["bad_alpha_bool"] = infer_request(
        "elu", [("x", "FP32", [6], x)], parameters={"alpha": True})
    c["bad_axis"] = infer_request(
        "softmax", [("x", "FP32", [2, 3], x)], parameters={"axis": 5})
    c["bad_label"] = infer_request(
        "softmax_cross_entropy",
        [("logits", "FP32", [2, 3], x), ("labels", "INT64", [2], [0, 3])])
    c["bad_output"] = infer_request("gelu", [("x", "FP32", [6], x)],
                                    outputs=["dy"])
    both = infer_request("gelu", [("x", "FP32", [6], x)])
    both.inputs[0].contents.fp32_contents.extend(x)
    c["bad_raw_and_typed"] = both
    return c


def rest_bodies():
    """name -> fuzz_rest_infer input: model byte, header length (int32 LE,
    -1: none), body."""
    def entry(model_index, body, binary=b""):
        header = len(body) if binary else -1
        return bytes([model_index]) + struct.pack("<i", header) + body + binary
    # Model indices in server/kserve/models.cc's order (five per elementwise
    # function): 0 identity, 5 sigmoid, 20 leaky_relu, 25 gelu.
    x = b'{"name":"x","datatype":"FP32","shape":[2,3]'
    c = {
        "json_flat": entry(0, b'{"id":"a","inputs":[' + x +
                           b',"data":[1,-2,3.5,NaN,Infinity,-0.0]}]}'),
        "json_nested": entry(5, b'{"inputs":[' + x +
                             b',"data":[[1,2,3],[4,5,6]]}],'
                             b'"outputs":[{"name":"y"}]}'),
        "json_fp64_params": entry(20, b'{"inputs":[{"name":"x","datatype":'
                                  b'"FP64","shape":[3],"data":[1e300,-1,0]}],'
                                  b'"parameters":{"alpha":0.5,"priority":1}}'),
        "binary": entry(25, b'{"inputs":[' + x +
                        b',"parameters":{"binary_data_size":24}}],'
                        b'"parameters":{"binary_data_output":true}}',
                        struct.pack("<6f", *values(6))),
        "bad_json": entry(0, b'{"inputs":[1,'),
        "bad_no_inputs": entry(0, b'{"id":"a"}'),
        "bad_data_type": entry(0, b'{"inputs":[' + x + b',"data":["a"]}]}'),
        "bad_deep": entry(0, b'{"inputs":[' + x + b',"data":' + b"[" * 100 +
                          b"]" * 100 + b"}]}"),
    }
    return c


def main():
    corpora = {
        "fuzz_evaluate": evaluate_corpus(),
        "fuzz_derivative": derivative_corpus(),
        "fuzz_jacobian": jacobian_corpus(),
        "fuzz_softmax_cross_entropy": cross_entropy_corpus(),
        "fuzz_analyze": analyze_corpus(),
        "fuzz_stream": stream_corpus(),
        "fuzz_list_functions": list_functions_corpus(),
        "fuzz_npy": npy_corpus(),
        "fuzz_model_infer": kserve_requests(),
        "fuzz_rest_infer": rest_bodies(),
    }
    # Not protobuf at all, or truncated: every target gets these too.
    garbage = {"garbage_truncated_varint": b"\x0a\xff",
               "garbage_bad_wire_type": b"\x0f\x01\x02",
               "garbage_length_past_end": b"\x12\x7f\x08\x01"}
    shutil.rmtree(CORPUS, ignore_errors=True)
    total = 0
    for target, messages in corpora.items():
        os.makedirs(os.path.join(CORPUS, target))
        messages = dict(messages, **garbage)
        for name, message in sorted(messages.items()):
            data = message if isinstance(message, bytes) else \
                message.SerializeToString(deterministic=True)
            with open(os.path.join(CORPUS, target, name), "wb") as f:
                f.write(data)
            total += len(data)
        print("%s: %d files" % (target, len(messages)))
    print("total: %d bytes" % total)


if __name__ == "__main__":
    main()
