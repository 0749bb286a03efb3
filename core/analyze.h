// Gradient-flow diagnostics of an elementwise activation over a batch of
// pre-activations (the seed's §3.2.1–3.2.5): how many units are sparse
// (f(x) = 0), saturated (|f'(x)| < ε) or dead (f'(x) = 0), the range and
// mean of f'(x), max |f'| (the gate of eq. 3.2.27) and (mean |f'|)^L, the
// attenuation over L layers. Plain C++ over absl::Span, computed from
// Evaluate and Derivative.
#ifndef ACTSVC_CORE_ANALYZE_H_
#define ACTSVC_CORE_ANALYZE_H_

#include <cstdint>
#include <optional>

#include "absl/types/span.h"
#include "core/activation.h"

namespace actsvc {

// The saturation threshold when the caller gives none.
inline constexpr double kDefaultSaturationEpsilon = 1e-3;

// Counts and sums over a set of units; partial results of disjoint ranges
// combine with Merge, so a caller may analyze a large array in chunks.
struct GradientFlowCounts {
  int64_t units = 0;         // analyzed: x, f(x) and f'(x) all not NaN
  int64_t nan_units = 0;     // left out of everything else
  int64_t zero_outputs = 0;  // f(x) == 0
  int64_t saturated = 0;     // |f'(x)| < epsilon
  int64_t dead = 0;          // f'(x) == 0
  // Over the analyzed units; +inf, -inf and 0 while there are none.
  double min_derivative;
  double max_derivative;
  double max_abs_derivative = 0;
  // Extended precision so that a mean over millions of units keeps the
  // digits of each term.
  long double sum_derivative = 0;
  long double sum_abs_derivative = 0;

  GradientFlowCounts();
  void Merge(const GradientFlowCounts& other);
};

// Accumulates the units of x into counts. Precondition: IsElementwise(f),
// alpha finite, epsilon >= 0 (a unit is saturated when |f'(x)| < epsilon).
template <typename T>
void AccumulateGradientFlow(Function f, double alpha, double epsilon,
                            absl::Span<const T> x, GradientFlowCounts* counts);

// What Analyze reports. Fractions divide by `units`; with no units every
// fraction and statistic is NaN.
struct GradientFlowReport {
  int64_t units = 0;
  int64_t nan_units = 0;
  int64_t zero_outputs = 0;
  int64_t saturated = 0;
  int64_t dead = 0;
  double sparsity;
  double saturated_fraction;
  double dead_fraction;
  double min_derivative;
  double max_derivative;
  double mean_derivative;
  double mean_abs_derivative;
  double max_abs_derivative;  // the gate of eq. 3.2.27
  // (mean |f'|)^layers when layers is given (1 for 0 layers, NaN without
  // units). Precondition: layers >= 0.
  std::optional<double> attenuation;
};

GradientFlowReport SummarizeGradientFlow(const GradientFlowCounts& counts,
                                         std::optional<int> layers);

}  // namespace actsvc

#endif  // ACTSVC_CORE_ANALYZE_H_
