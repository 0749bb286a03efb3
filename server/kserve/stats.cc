#include "server/kserve/stats.h"

#include <chrono>
#include <string>

#include "server/kserve/models.h"

namespace actsvc::server::kserve {
namespace {

uint64_t NowMs() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::system_clock::now().time_since_epoch())
          .count());
}

}  // namespace

ModelStatsTable::ModelStatsTable() : counters_(AllModels().size()) {}

void ModelStatsTable::RecordSuccess(int model_index,
                                    const InferTiming& timing) {
  const uint64_t now = NowMs();
  std::lock_guard<std::mutex> lock(mu_);
  Counters& c = counters_[model_index];
  c.last_inference_ms = now;
  ++c.inference_count;
  ++c.execution_count;
  c.queue.Add(timing.queue_ns);
  c.compute_input.Add(timing.input_ns);
  c.compute_infer.Add(timing.infer_ns);
  c.compute_output.Add(timing.output_ns);
  c.success.Add(timing.queue_ns + timing.input_ns + timing.infer_ns +
                timing.output_ns);
}

void ModelStatsTable::RecordFailure(int model_index, int64_t ns) {
  const uint64_t now = NowMs();
  std::lock_guard<std::mutex> lock(mu_);
  Counters& c = counters_[model_index];
  c.last_inference_ms = now;
  c.fail.Add(ns);
}

inference::ModelStatistics ModelStatsTable::Snapshot(int model_index) const {
  Counters c;
  {
    std::lock_guard<std::mutex> lock(mu_);
    c = counters_[model_index];
  }
  inference::ModelStatistics out;
  out.set_name(AllModels()[model_index].name);
  out.set_version(std::string(kModelVersion));
  out.set_last_inference(c.last_inference_ms);
  out.set_inference_count(c.inference_count);
  out.set_execution_count(c.execution_count);
  inference::InferStatistics* s = out.mutable_inference_stats();
  const auto set = [](const Duration& d, inference::StatisticDuration* out) {
    out->set_count(d.count);
    out->set_ns(d.ns);
  };
  set(c.success, s->mutable_success());
  set(c.fail, s->mutable_fail());
  set(c.queue, s->mutable_queue());
  set(c.compute_input, s->mutable_compute_input());
  set(c.compute_infer, s->mutable_compute_infer());
  set(c.compute_output, s->mutable_compute_output());
  // Present, as zeros: no response cache.
  s->mutable_cache_hit();
  s->mutable_cache_miss();
  return out;
}

}  // namespace actsvc::server::kserve
