// The table of core/functions.h. MakeAll is one data table, an entry per
// function, and so longer than a function should be.
#include "core/functions.h"

namespace actsvc {
namespace {

std::vector<FunctionInfo> MakeAll() {
  std::vector<FunctionInfo> all;
  auto add = [&all](FunctionInfo info) { all.push_back(std::move(info)); };

  add({Function::kIdentity,
       "identity",
       {"linear"},
       true,
       {},
       "x",
       "1",
       "0",
       "exact",
       "(-inf, inf)",
       "{1}",
       false,
       "The transport baseline: its cost is the cost of the service itself."});

  add({Function::kSigmoid,
       "sigmoid",
       {"logistic"},
       true,
       {},
       "1 / (1 + e^-x)",
       "sigma(x) sigma(-x)",
       "-sigma'(x) tanh(x/2)",
       "sigma'(x) = e^-|x| / (1 + e^-|x|)^2, never sigma(1 - sigma), which "
       "rounds to 0 once sigma rounds to 1",
       "(0, 1)",
       "(0, 0.25], maximum at x = 0",
       true,
       "Saturates on both sides: sigma'(x) <= 0.002 only for |x| >= 6.2106 "
       "(sigma'(6) = 0.0024665, sigma'(6.2) = 0.0020212); sigma'(20) = "
       "2.06e-9."});

  add({Function::kTanh,
       "tanh",
       {},
       true,
       {},
       "tanh x",
       "sech^2 x",
       "-2 tanh x sech^2 x",
       "sech^2 x = 4 e^-2|x| / (1 + e^-2|x|)^2, never 1 - tanh^2",
       "(-1, 1)",
       "(0, 1], maximum at x = 0",
       true,
       "tanh(x) = 2 sigma(2x) - 1; tanh'(x) < 0.01 for |x| >= 3; "
       "tanh'(10) = 8.24e-9."});

  add({Function::kRelu,
       "relu",
       {},
       true,
       {},
       "max(0, x)",
       "1 if x > 0 else 0",
       "0",
       "exact",
       "[0, inf)",
       "{0, 1}",
       false,
       "The subgradient at 0 is 0 (PyTorch's convention). Units with x <= 0 "
       "are dead: their gradient is exactly 0."});

  add({Function::kLeakyRelu,
       "leaky_relu",
       {"leakyrelu"},
       true,
       {{"alpha", 0.01, "finite", "slope for x <= 0"}},
       "x if x > 0 else alpha x",
       "1 if x > 0 else alpha",
       "0",
       "exact (one rounding of alpha x)",
       "(-inf, inf) for alpha > 0",
       "{alpha, 1}",
       false,
       "The derivative at 0 is alpha."});

  add({Function::kGelu,
       "gelu",
       {"gelu_erf"},
       true,
       {},
       "x Phi(x), Phi(x) = erfc(-x/sqrt2)/2",
       "Phi(x) + x phi(x)",
       "phi(x) (2 - x^2)",
       "Phi(x) = erfc(-x/sqrt2)/2: 1 + erf cancels for x < -3; gelu(-8) = "
       "-4.98e-15, not 0",
       "[-0.16997, inf), minimum at x = -0.75179",
       "[-0.12890, 1.12890]: negative for x < -0.7518 (minimum at -sqrt2), "
       "above 1 for x > 0.7518 (maximum at sqrt2); gelu'(-x) = 1 - gelu'(x)",
       true,
       "Not monotonic, and its derivative is neither always positive nor "
       "inside (0, 1); it saturates to 0 for x << 0."});

  add({Function::kGeluTanh,
       "gelu_tanh",
       {"gelu_new"},
       true,
       {},
       "x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))",
       "exact derivative of f",
       "exact second derivative of f",
       "x sigma(2u), u = sqrt(2/pi)(x + 0.044715 x^3): 1 + tanh u cancels "
       "for x << 0",
       "[-0.17004, inf), minimum at x = -0.75246",
       "[-0.12899, 1.12899] (extrema near -1.4185 and 1.4185)",
       true,
       "The approximation GPT-2 and BERT code use."});

  add({Function::kSilu,
       "silu",
       {"swish"},
       true,
       {},
       "x sigma(x)",
       "sigma(x) (1 + x sigma(-x))",
       "sigma'(x) (2 + x (1 - 2 sigma(x)))",
       "sigma(x) = 1/(1 + e^-x); 1 - 2 sigma(x) as -tanh(x/2)",
       "[-0.27846, inf), minimum at x = -1.27846",
       "about [-0.0998, 1.0998]: negative for x < -1.27846",
       true,
       "Swish with beta = 1."});

  add({Function::kSoftplus,
       "softplus",
       {},
       true,
       {},
       "log(1 + e^x)",
       "sigma(x)",
       "sigma'(x)",
       "max(x, 0) + log1p(e^-|x|)",
       "(0, inf)",
       "(0, 1)",
       true,
       "A smooth relu; its derivative is sigma."});

  add({Function::kElu,
       "elu",
       {},
       true,
       {{"alpha", 1.0, "finite", "scale of the negative branch"}},
       "x if x > 0 else alpha (e^x - 1)",
       "1 if x > 0 else alpha e^x",
       "0 if x > 0 else alpha e^x",
       "alpha expm1(x) for x <= 0",
       "(-alpha, inf) for alpha > 0",
       "(0, max(1, alpha)] for alpha > 0",
       true,
       "The derivative at 0 is alpha (the x > 0 branch is strict)."});

  add({Function::kSelu,
       "selu",
       {},
       true,
       {},
       "lambda elu_alpha(x), lambda = 1.0507009873554805, alpha = "
       "1.6732632423543772",
       "lambda (1 if x > 0 else alpha e^x)",
       "lambda (0 if x > 0 else alpha "
       "e^x)",
       "lambda alpha expm1(x) for x <= 0",
       "(-1.7580993408473766, inf)",
       "(0, 1.7580993408473766]",
       true,
       "Self-normalizing; fixed constants, no parameters."});

  add({Function::kSoftmax,
       "softmax",
       {},
       false,
       {{"axis", -1, "[-rank, rank)", "the axis normalized over"}},
       "p_i = e^(z_i - max z) / sum_j e^(z_j - max z)",
       "J = diag(p) - p p^T; VJP p (g - <g, p>)",
       "not provided (the Jacobian is a matrix; use Jacobian or the VJP)",
       "shifted by max z, so no exp overflows",
       "(0, 1), each row sums to 1",
       "J is symmetric and positive semidefinite (v^T J v = Var_p(v) >= 0); "
       "J 1 = 0 (eigenvalue 0, not -1); eigenvalues in [0, max p_i]; rank "
       "C - 1 when every p_i > 0",
       true,
       "One +inf entry gives a one-hot row; a row of all -inf gives NaN."});

  add({Function::kLogSoftmax,
       "log_softmax",
       {"logsoftmax"},
       false,
       {{"axis", -1, "[-rank, rank)", "the axis normalized over"}},
       "z - logsumexp(z)",
       "J = I - 1 p^T (row i: delta_ij - p_j); VJP g - "
       "p sum(g)",
       "not provided (use Jacobian or the VJP)",
       "(z - max z) - log1p(sum of e^(z_j - max z) over all but one maximum)",
       "(-inf, 0]",
       "J 1 = 0 (eigenvalue 0 on the ones vector); eigenvalue 1 on every v "
       "with p^T v = 0",
       false,
       "Never the log of a rounded probability."});
  return all;
}

}  // namespace

const std::vector<FunctionInfo>& AllFunctions() {
  static const std::vector<FunctionInfo>* const kAll =
      new std::vector<FunctionInfo>(MakeAll());
  return *kAll;
}

}  // namespace actsvc
