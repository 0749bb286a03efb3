#include "client/cli_flags.h"

#include "absl/flags/flag.h"

// Global flags.
ABSL_FLAG(std::string, target, "localhost:50051", "server address, host:port");
ABSL_FLAG(double, timeout_s, 30, "deadline of each call, in seconds");
ABSL_FLAG(std::string, tls_ca, "",
          "connect with TLS, verifying the server with this PEM CA bundle "
          "(any --tls_* flag turns TLS on; without --tls_ca: system roots)");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM client certificate, for servers that require one (mutual TLS)");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert");
ABSL_FLAG(std::string, tls_server_name, "",
          "the name the server's certificate must carry, when not the "
          "--target host (e.g. when connecting by IP address)");
ABSL_FLAG(bool, json, false,
          "print the response as JSON (protobuf's mapping; tensors as "
          "floatData/doubleData)");
ABSL_FLAG(std::string, dtype, "float32",
          "float32, float64, float16 or bfloat16 (default for --x_npy: the "
          "file's dtype; a '<u2' .npy holds bfloat16 bit patterns, and any "
          "float .npy is rounded to --dtype by the client)");
ABSL_FLAG(
    std::string, encoding, "raw",
    "raw (packed bytes, the fast path) or typed (float_data/double_data)");

// Command flags.
ABSL_FLAG(double, wait_s, 0,
          "retry until SERVING or this many seconds have passed");
ABSL_FLAG(std::string, function, "",
          "function name or alias, e.g. sigmoid, gelu, swish, softmax");
ABSL_FLAG(double, alpha, 0,
          "parameter of leaky_relu and elu (default: the function's own)");
ABSL_FLAG(int32_t, axis, -1,
          "axis of softmax and log_softmax (default: the server's, -1)");
ABSL_FLAG(int32_t, order, 1, "1 for f'(x), 2 for f''(x) (default: 1)");
ABSL_FLAG(std::string, shape, "",
          "shape of --x, e.g. 2,3 or [] (default: 1-D of the values)");
ABSL_FLAG(std::string, x, "", "input values, e.g. 1,-2.5,inf,nan");
ABSL_FLAG(std::string, x_npy, "", "input from a .npy file (<f4 or <f8)");
ABSL_FLAG(std::string, grad, "",
          "upstream gradient (shape of x): returns the VJP g * f'(x)");
ABSL_FLAG(std::string, grad_npy, "", "upstream gradient from a .npy file");
ABSL_FLAG(bool, dense, false,
          "elementwise functions: the dense [..., C, C] Jacobian instead of "
          "the diagonal");
ABSL_FLAG(std::string, labels, "", "class index per row, e.g. 0,2");
ABSL_FLAG(std::string, target_probs, "",
          "target probabilities, shape of the logits");
ABSL_FLAG(std::string, target_probs_npy, "",
          "target probabilities from a .npy file");
ABSL_FLAG(std::string, reduction, "mean", "mean, sum or none");
ABSL_FLAG(double, label_smoothing, 0, "in [0, 1)");
ABSL_FLAG(int64_t, ignore_index, -100,
          "rows with this class index count for nothing (sent only when "
          "given)");
ABSL_FLAG(bool, probs, false, "also return softmax(logits)");
ABSL_FLAG(std::string, ops, "evaluate,derivative",
          "stream: the requests sent for the input, in order: evaluate, "
          "derivative, derivative2 (f'')");
ABSL_FLAG(int32_t, repeat, 1,
          "stream: send the --ops sequence this many times");
ABSL_FLAG(double, epsilon, 0,
          "analyze: a unit is saturated when |f'(x)| < epsilon (default: "
          "the server's, 1e-3)");
ABSL_FLAG(int32_t, layers, 0,
          "analyze: depth L for the attenuation (mean |f'|)^L (sent only "
          "when given)");
ABSL_FLAG(std::string, out_npy, "",
          "save the main output tensor (xent: grad_logits) to a .npy file");
