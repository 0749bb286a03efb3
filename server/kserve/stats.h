// Per-model inference statistics, as the protocol's ModelStatistics reports
// them: true counters of what the server did. A request is timed in four
// phases: queue (from the call's arrival until a compute thread takes it),
// compute_input (decode and Validate), compute_infer (the core) and
// compute_output (the response written and serialized). A request that
// succeeds counts once in each phase and in success (the sum of the
// phases); one that fails counts in fail only. actsvc has no response
// cache, so cache_hit and cache_miss stay zero; a model does not batch, so
// each request is one inference and one execution.
#ifndef ACTSVC_SERVER_KSERVE_STATS_H_
#define ACTSVC_SERVER_KSERVE_STATS_H_

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "inference/grpc_service.pb.h"

namespace actsvc::server::kserve {

// Nanoseconds of each phase of one request.
struct InferTiming {
  int64_t queue_ns = 0;
  int64_t input_ns = 0;
  int64_t infer_ns = 0;
  int64_t output_ns = 0;
};

class ModelStatsTable {
 public:
  // One entry per model of AllModels().
  ModelStatsTable();

  void RecordSuccess(int model_index, const InferTiming& timing);
  // `ns`: from the call's arrival until the request failed.
  void RecordFailure(int model_index, int64_t ns);

  // The statistics of model `model_index` as of now.
  inference::ModelStatistics Snapshot(int model_index) const;

 private:
  struct Duration {
    uint64_t count = 0;
    uint64_t ns = 0;
    void Add(int64_t t) {
      ++count;
      ns += static_cast<uint64_t>(t < 0 ? 0 : t);
    }
  };
  struct Counters {
    uint64_t last_inference_ms = 0;
    uint64_t inference_count = 0;
    uint64_t execution_count = 0;
    Duration success, fail, queue, compute_input, compute_infer, compute_output;
  };
  mutable std::mutex mu_;
  std::vector<Counters> counters_;  // guarded by mu_
};

}  // namespace actsvc::server::kserve

#endif  // ACTSVC_SERVER_KSERVE_STATS_H_
