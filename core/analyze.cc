#include "core/analyze.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

#include "core/half.h"

namespace actsvc {
namespace {

// f and f' are computed a block at a time into stack buffers: the array API
// stays vectorized and the scratch stays in L1.
constexpr size_t kBlock = 1024;

}  // namespace

GradientFlowCounts::GradientFlowCounts()
    : min_derivative(std::numeric_limits<double>::infinity()),
      max_derivative(-std::numeric_limits<double>::infinity()) {}

void GradientFlowCounts::Merge(const GradientFlowCounts& other) {
  units += other.units;
  nan_units += other.nan_units;
  zero_outputs += other.zero_outputs;
  saturated += other.saturated;
  dead += other.dead;
  min_derivative = std::min(min_derivative, other.min_derivative);
  max_derivative = std::max(max_derivative, other.max_derivative);
  max_abs_derivative = std::max(max_abs_derivative, other.max_abs_derivative);
  sum_derivative += other.sum_derivative;
  sum_abs_derivative += other.sum_abs_derivative;
}

template <typename T>
void AccumulateGradientFlow(Function f, double alpha, double epsilon,
                            absl::Span<const T> x, GradientFlowCounts* counts) {
  std::array<T, kBlock> y;
  std::array<T, kBlock> d;
  GradientFlowCounts& c = *counts;
  for (size_t begin = 0; begin < x.size(); begin += kBlock) {
    const size_t n = std::min(kBlock, x.size() - begin);
    const absl::Span<const T> xs = x.subspan(begin, n);
    Evaluate<T>(f, alpha, xs, absl::MakeSpan(y.data(), n));
    Derivative<T>(f, alpha, 1, xs, absl::MakeSpan(d.data(), n));
    for (size_t i = 0; i < n; ++i) {
      if (std::isnan(ToDouble(xs[i])) || std::isnan(ToDouble(y[i])) ||
          std::isnan(ToDouble(d[i]))) {
        ++c.nan_units;
        continue;
      }
      // T -> double is exact, so the comparisons are those of T.
      const double derivative = ToDouble(d[i]);
      const double magnitude = std::fabs(derivative);
      ++c.units;
      c.zero_outputs += ToDouble(y[i]) == 0;
      c.saturated += magnitude < epsilon;
      c.dead += derivative == 0;
      c.min_derivative = std::min(c.min_derivative, derivative);
      c.max_derivative = std::max(c.max_derivative, derivative);
      c.max_abs_derivative = std::max(c.max_abs_derivative, magnitude);
      c.sum_derivative += derivative;
      c.sum_abs_derivative += magnitude;
    }
  }
}

GradientFlowReport SummarizeGradientFlow(const GradientFlowCounts& counts,
                                         std::optional<int> layers) {
  constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  GradientFlowReport r;
  r.units = counts.units;
  r.nan_units = counts.nan_units;
  r.zero_outputs = counts.zero_outputs;
  r.saturated = counts.saturated;
  r.dead = counts.dead;
  if (counts.units == 0) {
    r.sparsity = r.saturated_fraction = r.dead_fraction = kNaN;
    r.min_derivative = r.max_derivative = r.mean_derivative = kNaN;
    r.mean_abs_derivative = r.max_abs_derivative = kNaN;
    if (layers) r.attenuation = kNaN;
    return r;
  }
  const double n = static_cast<double>(counts.units);
  r.sparsity = counts.zero_outputs / n;
  r.saturated_fraction = counts.saturated / n;
  r.dead_fraction = counts.dead / n;
  r.min_derivative = counts.min_derivative;
  r.max_derivative = counts.max_derivative;
  r.mean_derivative =
      static_cast<double>(counts.sum_derivative / static_cast<long double>(n));
  r.mean_abs_derivative = static_cast<double>(counts.sum_abs_derivative /
                                              static_cast<long double>(n));
  r.max_abs_derivative = counts.max_abs_derivative;
  if (layers) r.attenuation = std::pow(r.mean_abs_derivative, *layers);
  return r;
}

#define ACTSVC_INSTANTIATE(T)              \
  template void AccumulateGradientFlow<T>( \
      Function, double, double, absl::Span<const T>, GradientFlowCounts*);
ACTSVC_INSTANTIATE(float)
ACTSVC_INSTANTIATE(double)
ACTSVC_INSTANTIATE(Float16)
ACTSVC_INSTANTIATE(BFloat16)
#undef ACTSVC_INSTANTIATE

}  // namespace actsvc
