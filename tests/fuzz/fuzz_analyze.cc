// Analyze: gradient-flow diagnostics; the counts must add up.
#include <cmath>

#include "tests/fuzz/fuzz_util.h"

namespace actsvc::fuzz {
namespace {

bool IsFraction(double f) { return std::isnan(f) || (f >= 0 && f <= 1); }

void CheckAnalyze(const v1::AnalyzeRequest& request,
                  const v1::AnalyzeResponse& response) {
  const int64_t elements = Elements(request.input());
  Check(response.units() >= 0 && response.nan_count() >= 0 &&
            response.units() + response.nan_count() == elements,
        "units + nan_count is not the input's size");
  Check(response.dead_units() <= response.saturated_units() &&
            response.saturated_units() <= response.units() &&
            response.zero_outputs() <= response.units() &&
            response.dead_units() >= 0 && response.zero_outputs() >= 0,
        "the counts are out of order");
  Check(IsFraction(response.sparsity()) &&
            IsFraction(response.saturated_fraction()) &&
            IsFraction(response.dead_fraction()),
        "a fraction outside [0, 1]");
  Check(response.epsilon() > 0, "epsilon is not positive");
  Check(response.has_attenuation() == request.has_layers(),
        "attenuation is set without layers or the reverse");
}

}  // namespace
}  // namespace actsvc::fuzz

ACTSVC_FUZZ_UNARY(Analyze, CheckAnalyze)
