"""A small numpy client of the actsvc activation service.

    import numpy as np
    import actsvc_client

    with actsvc_client.Client("localhost:50051") as client:
        y = client.evaluate("gelu", np.linspace(-3, 3, 7))
        dy = client.derivative("sigmoid", np.float32([0, 6, 20]))
        report = client.analyze("tanh", x, epsilon=0.01, layers=10)

Arrays go both ways as raw little-endian bytes (the service's fast path) and
keep their dtype (float32, float64 or float16) and shape; other numeric
arrays are sent as float64. Errors are grpc.RpcError, with the server's
status code and message.

bfloat16, which numpy lacks, travels as its bit patterns in uint16 arrays:
pass dtype="bfloat16" to an RPC, with x either such bits or any float array
(rounded to bfloat16 by the client, to nearest even), and a bfloat16 result
comes back as uint16 bits. to_bfloat16_bits() and from_bfloat16_bits()
convert to and from float32 (ml_dtypes users: arr.view(np.uint16) and back).
dtype="float16" likewise rounds a float array to float16 before sending.

The generated stubs (actsvc/v1/activation_pb2*.py) live in the build tree,
<build>/python. This module finds them, in order: the `stubs` argument of
load_stubs() or Client(), the ACTSVC_STUBS environment variable, an
importable `actsvc.v1` package already on sys.path, then build/python and
build-*/python beside this repository. Needs python3-grpcio, python3-protobuf
and python3-numpy (Debian: run /usr/bin/python3).
"""

import collections
import glob
import importlib
import os
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np

__all__ = ["Client", "CrossEntropy", "LocalServer", "from_bfloat16_bits",
           "load_stubs", "to_bfloat16_bits"]

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

pb = None  # actsvc.v1.activation_pb2, once load_stubs() has run
pb_grpc = None  # actsvc.v1.activation_pb2_grpc
grpc = None


def load_stubs(stubs=None):
    """Imports the generated modules; `stubs` is the directory holding
    actsvc/v1/activation_pb2.py. Returns (activation_pb2, activation_pb2_grpc).
    """
    global pb, pb_grpc, grpc
    if pb is not None:
        return pb, pb_grpc
    candidates = []
    if stubs:
        candidates.append(stubs)
    if os.environ.get("ACTSVC_STUBS"):
        candidates.append(os.environ["ACTSVC_STUBS"])
    candidates.append(None)  # whatever sys.path already offers
    candidates += [os.path.join(_REPO, "build", "python")]
    candidates += sorted(glob.glob(os.path.join(_REPO, "build-*", "python")))
    errors = []
    for path in candidates:
        if path is not None:
            if not os.path.isfile(os.path.join(path, "actsvc", "v1",
                                               "activation_pb2.py")):
                errors.append("%s: no actsvc/v1/activation_pb2.py" % path)
                continue
            if path not in sys.path:
                sys.path.insert(0, path)
        try:
            pb = importlib.import_module("actsvc.v1.activation_pb2")
            pb_grpc = importlib.import_module("actsvc.v1.activation_pb2_grpc")
            grpc = importlib.import_module("grpc")
            return pb, pb_grpc
        except ImportError as e:
            if path is not None:
                raise
            errors.append("sys.path: %s" % e)
    raise ImportError(
        "actsvc stubs not found; build them (cmake --build build --target "
        "actsvc_python_stubs) and set ACTSVC_STUBS=<build>/python or pass "
        "stubs=...\n  " + "\n  ".join(errors))


# ---------------------------------------------------------------------------
# Tensors.

def to_bfloat16_bits(x):
    """x (any float array) rounded to bfloat16, to nearest even, as uint16
    bit patterns; NaN stays NaN, beyond the range gives +-inf."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounded = (bits + np.uint32(0x7FFF) + ((bits >> 16) & np.uint32(1))) >> 16
    nan = np.isnan(np.asarray(x, dtype=np.float32))
    quiet = (bits >> 16) | np.uint32(0x40)
    return np.where(nan, quiet, rounded).astype(np.uint16)


def from_bfloat16_bits(bits):
    """uint16 bfloat16 bit patterns as float32 values (exact)."""
    bits = np.ascontiguousarray(bits, dtype=np.uint16)
    return (bits.astype(np.uint32) << 16).view(np.float32)


def _wire_dtype(dtype):
    """None, "float16" or "bfloat16" (numpy dtypes accepted) -> a name."""
    if dtype is None:
        return None
    if isinstance(dtype, str) and dtype.lower() in ("bfloat16", "bf16"):
        return "bfloat16"
    if np.dtype(dtype) == np.float16:
        return "float16"
    if np.dtype(dtype) in (np.float32, np.float64):
        return np.dtype(dtype).name
    raise TypeError("dtype must be float16, bfloat16, float32 or float64; "
                    "got %r" % (dtype,))


def _as_wire_array(x, dtype=None):
    """(x as an array of a dtype the service takes, its wire dtype name).
    dtype None keeps float32, float64 and float16 and sends other numbers as
    float64; "bfloat16" takes uint16 bits or rounds floats to them."""
    x = np.asarray(x)
    dtype = _wire_dtype(dtype)
    if dtype == "bfloat16":
        if x.dtype == np.uint16:
            return x, dtype
        return to_bfloat16_bits(x), dtype
    if dtype is not None:
        return x.astype(dtype, copy=False), dtype
    if x.dtype in (np.float32, np.float64, np.float16):
        return x, x.dtype.name
    if x.dtype.kind in "biuf":
        return x.astype(np.float64), "float64"
    raise TypeError("actsvc computes float32, float64, float16 and bfloat16 "
                    "tensors; got dtype %s" % x.dtype)


# name: (DataType, little-endian raw layout)
_WIRE = {"float32": ("FLOAT32", "<f4"), "float64": ("FLOAT64", "<f8"),
         "float16": ("FLOAT16", "<f2"), "bfloat16": ("BFLOAT16", "<u2")}


def to_tensor(x, typed=False, dtype=None):
    """A Tensor message holding x: raw bytes, or float_data/double_data
    (float16 and bfloat16: their values in float_data)."""
    x, name = _as_wire_array(x, dtype)
    t = pb.Tensor(shape=list(x.shape))
    enum, little = _WIRE[name]
    t.dtype = pb.DataType.Value(enum)
    if typed:
        if name == "float64":
            t.double_data.extend(x.ravel().tolist())
        else:
            values = from_bfloat16_bits(x) if name == "bfloat16" else x
            t.float_data.extend(values.astype(np.float32).ravel().tolist())
    else:
        t.raw_data = np.ascontiguousarray(x, dtype=little).tobytes()
    return t


def from_tensor(t):
    """The values of a Tensor message, as a writable array of its shape
    (bfloat16: uint16 bit patterns)."""
    names = {pb.FLOAT32: "float32", pb.FLOAT64: "float64",
             pb.FLOAT16: "float16", pb.BFLOAT16: "bfloat16"}
    if t.dtype not in names:
        raise ValueError("unsupported dtype %d in the response" % t.dtype)
    name = names[t.dtype]
    dtype = np.dtype(_WIRE[name][1])
    native = dtype.newbyteorder("=")
    typed = t.double_data if name == "float64" else t.float_data
    if len(typed) > 0:
        values = np.array(typed, dtype=np.float64 if name == "float64"
                          else np.float32)
        if name == "bfloat16":
            values = to_bfloat16_bits(values)  # exact: half values widened
        else:
            values = values.astype(native)
    else:  # astype copies: the result is writable and native-endian
        values = np.frombuffer(t.raw_data, dtype=dtype).astype(native)
    return values.reshape(tuple(t.shape))


CrossEntropy = collections.namedtuple("CrossEntropy", "loss grad probs")


# ---------------------------------------------------------------------------
# The client.

class Client:
    """One channel to actsvc-server; every RPC takes and returns numpy."""

    def __init__(self, target="localhost:50051", timeout=30.0, typed=False,
                 stubs=None, channel=None):
        """timeout: seconds per call (None: no deadline). typed: send
        float_data/double_data instead of raw bytes (responses then come
        typed too). channel: an existing grpc.Channel to use instead."""
        load_stubs(stubs)
        self.target = target
        self.timeout = timeout
        self.typed = typed
        self._own_channel = channel is None
        self.channel = channel or grpc.insecure_channel(
            target, options=[("grpc.max_receive_message_length", -1),
                             ("grpc.max_send_message_length", -1)])
        self.stub = pb_grpc.ActivationServiceStub(self.channel)
        self._aliases = None

    def close(self):
        if self._own_channel:
            self.channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- helpers ------------------------------------------------------------

    def function_enum(self, function):
        """The Function enum value of a name ("gelu", "SWISH") or number."""
        if isinstance(function, (int, np.integer)):
            return int(function)
        name = str(function).strip().upper().replace("-", "_")
        try:
            return pb.Function.Value(name)
        except ValueError:
            pass
        if self._aliases is None:  # the server's table of aliases
            self._aliases = {}
            for info in self.stub.ListFunctions(
                    pb.ListFunctionsRequest(), timeout=self.timeout).functions:
                for alias in info.aliases:
                    self._aliases[alias.upper()] = info.function
        if name in self._aliases:
            return self._aliases[name]
        raise ValueError("unknown function %r; list_functions() has the names"
                         % function)

    def spec(self, function, alpha=None, axis=None):
        s = pb.FunctionSpec(function=self.function_enum(function))
        if alpha is not None:
            s.alpha = float(alpha)
        if axis is not None:
            s.axis = int(axis)
        return s

    def _tensor(self, x, dtype=None):
        return to_tensor(x, typed=self.typed, dtype=dtype)

    def evaluate_request(self, function, x, alpha=None, axis=None,
                         dtype=None):
        return pb.EvaluateRequest(spec=self.spec(function, alpha, axis),
                                  input=self._tensor(x, dtype))

    def derivative_request(self, function, x, order=1, upstream_grad=None,
                           alpha=None, axis=None, dtype=None):
        x, name = _as_wire_array(x, dtype)
        r = pb.DerivativeRequest(spec=self.spec(function, alpha, axis),
                                 input=self._tensor(x, name), order=order)
        if upstream_grad is not None:
            # The upstream gradient in x's dtype (a float array of bfloat16
            # values is rounded, uint16 taken as bits).
            r.upstream_grad.CopyFrom(self._tensor(upstream_grad, name))
        return r

    # -- the RPCs -----------------------------------------------------------

    # Every RPC below takes dtype=None, "float16" or "bfloat16" (see the
    # module docstring): the dtype x is sent in, and the results come in.

    def evaluate(self, function, x, alpha=None, axis=None, dtype=None):
        """f(x), same shape and dtype as x (softmax/log_softmax along axis)."""
        r = self.stub.Evaluate(
            self.evaluate_request(function, x, alpha, axis, dtype),
            timeout=self.timeout)
        return from_tensor(r.output)

    def derivative(self, function, x, order=1, upstream_grad=None, alpha=None,
                   axis=None, dtype=None):
        """f'(x) (order 1) or f''(x) (order 2); with upstream_grad g, the VJP
        g * f'(x) (the only form softmax/log_softmax accept)."""
        r = self.stub.Derivative(
            self.derivative_request(function, x, order, upstream_grad, alpha,
                                    axis, dtype), timeout=self.timeout)
        return from_tensor(r.output)

    def vjp(self, function, x, upstream_grad, alpha=None, axis=None,
            dtype=None):
        """The vector-Jacobian product g^T J(x), shape of x."""
        return self.derivative(function, x, 1, upstream_grad, alpha, axis,
                               dtype)

    def jacobian(self, function, x, dense=False, alpha=None, axis=None,
                 dtype=None):
        """softmax/log_softmax: J[..., i, j] = dy_i/dx_j along the axis (the
        other axes first). Elementwise: the diagonal f'(x) (shape of x), or
        with dense=True one [C, C] matrix per last-axis row."""
        r = self.stub.Jacobian(pb.JacobianRequest(
            spec=self.spec(function, alpha, axis),
            input=self._tensor(x, dtype), dense=dense), timeout=self.timeout)
        return from_tensor(r.jacobian)

    def softmax_cross_entropy(self, logits, labels=None, target_probs=None,
                              reduction="mean", label_smoothing=0.0,
                              ignore_index=None, return_probabilities=False,
                              dtype=None):
        """Loss and gradient of softmax cross-entropy over logits [..., C].
        labels: integer class indices of shape [...]; or target_probs of the
        shape of logits. reduction: "mean", "sum" or "none". Returns
        CrossEntropy(loss, grad, probs); probs is None unless asked for."""
        logits, name = _as_wire_array(logits, dtype)
        r = pb.SoftmaxCrossEntropyRequest(
            logits=self._tensor(logits, name),
            reduction=pb.SoftmaxCrossEntropyRequest.Reduction.Value(
                reduction.upper()),
            label_smoothing=label_smoothing,
            return_probabilities=return_probabilities)
        if (labels is None) == (target_probs is None):
            raise ValueError("give exactly one of labels and target_probs")
        if labels is not None:
            labels = np.asarray(labels)
            if labels.dtype.kind not in "iu":
                raise TypeError("labels are class indices (integers); use "
                                "target_probs for probabilities")
            r.class_indices.extend(labels.ravel().tolist())
        else:
            r.target_probs.CopyFrom(self._tensor(target_probs, name))
        if ignore_index is not None:
            r.ignore_index = int(ignore_index)
        out = self.stub.SoftmaxCrossEntropy(r, timeout=self.timeout)
        loss = from_tensor(out.loss)
        probs = from_tensor(out.probabilities) if out.HasField(
            "probabilities") else None
        return CrossEntropy(loss[()] if loss.ndim == 0 else loss,
                            from_tensor(out.grad_logits), probs)

    def list_functions(self):
        """{name: dict of the FunctionInfo fields}, in the service's order."""
        from google.protobuf import json_format
        r = self.stub.ListFunctions(pb.ListFunctionsRequest(),
                                    timeout=self.timeout)
        return collections.OrderedDict(
            (f.name, json_format.MessageToDict(
                f, preserving_proto_field_name=True,
                **_include_defaults())) for f in r.functions)

    def stream(self, calls):
        """One Stream call. calls: an iterable of (op, function, x) or
        (op, function, x, kwargs), op "evaluate" or "derivative" (kwargs as
        derivative()'s: order, upstream_grad, alpha, axis, dtype). Yields one array
        per call, in order; a bad call ends the stream with grpc.RpcError."""
        def requests():
            for call in calls:
                op, function, x = call[:3]
                kwargs = call[3] if len(call) > 3 else {}
                if op == "evaluate":
                    yield pb.StreamRequest(evaluate=self.evaluate_request(
                        function, x, **kwargs))
                elif op == "derivative":
                    yield pb.StreamRequest(derivative=self.derivative_request(
                        function, x, **kwargs))
                else:
                    raise ValueError("op %r is not evaluate or derivative" %
                                     op)
        for r in self.stub.Stream(requests(), timeout=self.timeout):
            yield from_tensor(r.evaluate.output if r.HasField("evaluate")
                              else r.derivative.output)

    def analyze(self, function, x, epsilon=None, layers=None, alpha=None,
                dtype=None):
        """Gradient-flow diagnostics of an elementwise f over x (see
        AnalyzeResponse in activation.proto): a dict with units, nan_count,
        epsilon, zero_outputs, saturated_units, dead_units, sparsity,
        saturated_fraction, dead_fraction, min/max/mean_derivative,
        mean_abs_derivative, max_abs_derivative and, when layers is given,
        attenuation = mean_abs_derivative ** layers."""
        r = pb.AnalyzeRequest(spec=self.spec(function, alpha),
                              input=self._tensor(x, dtype))
        if epsilon is not None:
            r.epsilon = float(epsilon)
        if layers is not None:
            r.layers = int(layers)
        out = self.stub.Analyze(r, timeout=self.timeout)
        report = {}
        for field in out.DESCRIPTOR.fields:
            if field.has_presence and not out.HasField(field.name):
                continue
            report[field.name] = getattr(out, field.name)
        return report

    def health(self, service=""):
        """The grpc.health.v1 status name: "SERVING", "NOT_SERVING", ...
        (the health messages are a string and an enum, encoded by hand: their
        generated package would shadow grpcio's `grpc`)."""
        check = self.channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=lambda m: m,
            response_deserializer=lambda b: b)
        name = service.encode()
        request = (b"\x0a" + _varint(len(name)) + name) if name else b""
        response = check(request, timeout=self.timeout)
        status = 0
        if response[:1] == b"\x08":
            status, _ = _read_varint(response, 1)
        return {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING",
                3: "SERVICE_UNKNOWN"}.get(status, str(status))


def _include_defaults():
    # protobuf >= 5.26 renamed the flag that keeps fields at their defaults.
    from google.protobuf import json_format
    import inspect
    params = inspect.signature(json_format.MessageToDict).parameters
    if "always_print_fields_with_no_presence" in params:
        return {"always_print_fields_with_no_presence": True}
    return {"including_default_value_fields": True}


def _varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _read_varint(data, pos):
    value, shift = 0, 0
    while pos < len(data):
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            break
        shift += 7
    return value, pos


# ---------------------------------------------------------------------------
# A server for scripts and tests.

def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_server_binary():
    """actsvc-server from $ACTSVC_SERVER or a build directory of this repo."""
    if os.environ.get("ACTSVC_SERVER"):
        return os.environ["ACTSVC_SERVER"]
    for path in [os.path.join(_REPO, "build", "server", "actsvc-server")] + \
            sorted(glob.glob(os.path.join(_REPO, "build-*", "server",
                                          "actsvc-server"))):
        if os.access(path, os.X_OK):
            return path
    raise FileNotFoundError("actsvc-server not found: build it, or set "
                            "ACTSVC_SERVER")


class LocalServer:
    """actsvc-server on a free loopback port, for the length of a `with`:

        with LocalServer() as server, Client(server.target) as client: ...

    It is stopped with SIGTERM (then SIGKILL) however the block ends."""

    def __init__(self, binary=None, flags=(), startup_timeout=15.0):
        load_stubs()
        self.binary = binary or find_server_binary()
        self.flags = list(flags)
        self.startup_timeout = startup_timeout
        self.proc = None
        self.target = None
        self.log = None

    def start(self):
        self.log = tempfile.NamedTemporaryFile(
            prefix="actsvc-server-", suffix=".log", delete=False)
        for attempt in range(3):  # another process may take the port
            self.target = "127.0.0.1:%d" % _free_port()
            self.proc = subprocess.Popen(
                [self.binary, "--address=" + self.target] + self.flags,
                stdout=self.log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL)
            if self._wait_serving():
                return self
            if self.proc.poll() is None or attempt == 2:
                break
        log = self.read_log()
        self.stop()
        raise RuntimeError("actsvc-server did not start serving on %s\n%s" %
                           (self.target, log))

    def _wait_serving(self):
        deadline = time.monotonic() + self.startup_timeout
        with Client(self.target, timeout=0.5) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    return False
                try:
                    if client.health() == "SERVING":
                        return True
                except grpc.RpcError:
                    pass
                time.sleep(0.05)
        return False

    def stop(self, grace_s=10.0):
        """SIGTERM, SIGKILL after grace_s; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def read_log(self):
        if self.log is None:
            return ""
        with open(self.log.name, "r", errors="replace") as f:
            return f.read()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        if self.log is not None:
            os.unlink(self.log.name)
