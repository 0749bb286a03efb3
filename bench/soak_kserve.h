// The soak's KServe v2 cases (bench/soak_table.cc adds them to its table):
// valid ModelInfer calls of each kind of model, FP32 and FP64, raw and
// typed, with NaN and infinities among the inputs, each answer checked
// against the client's core; invalid ones with the status each must get;
// and ModelStreamInfer streams with a failing request in the middle,
// answered in place while the stream goes on.
#ifndef ACTSVC_BENCH_SOAK_KSERVE_H_
#define ACTSVC_BENCH_SOAK_KSERVE_H_

#include <cstdint>
#include <vector>

#include "bench/soak_table.h"

namespace actsvc::soak {

// `max_elements`: the server's --max_elements (a call just over it must be
// refused with RESOURCE_EXHAUSTED).
std::vector<Case> KServeCases(uint64_t seed, int64_t max_elements);

}  // namespace actsvc::soak

#endif  // ACTSVC_BENCH_SOAK_KSERVE_H_
