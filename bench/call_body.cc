// What actsvc-server does to a unary call between gRPC's read and its write:
// the method body (MethodTable::CallUnary: parse, decode, validate, compute,
// serialize), on one thread, without gRPC or the network. The service
// table's small-call gap ("x echo" at [1,1024]) is this plus what it costs
// gRPC's threads; BENCHMARKS.md, "Small calls", has the commands and runs.
//
//   taskset -c 1 build/bench/call_body_bench --benchmark_min_time=0.2
#include <benchmark/benchmark.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/slice.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

#include "actsvc/v1/activation.pb.h"
#include "server/memory.h"
#include "server/method_table.h"
#include "server/options.h"
#include "server/v1/service.h"

namespace actsvc::server {
namespace {

const MethodTable& Methods() {
  static const MethodTable* table = [] {
    auto* t = new MethodTable;
    RegisterActivationService(t);
    return t;
  }();
  return *table;
}

// An Evaluate request of `n` float32 values of `function`, raw or typed.
std::string EvaluateBytes(v1::Function function, int64_t n, bool raw) {
  v1::EvaluateRequest request;
  request.mutable_spec()->set_function(function);
  v1::Tensor* x = request.mutable_input();
  x->set_dtype(v1::FLOAT32);
  x->add_shape(1);
  x->add_shape(n);
  std::string values(static_cast<size_t>(n) * 4, '\0');
  for (int64_t i = 0; i < n; ++i) {
    const float v = std::sin(static_cast<float>(i)) * 4.0f;
    if (raw) {
      std::memcpy(&values[static_cast<size_t>(i) * 4], &v, 4);
    } else {
      x->add_float_data(v);
    }
  }
  if (raw) x->set_raw_data(values);
  return request.SerializeAsString();
}

// One call body per iteration, on a fresh copy of the request's bytes (the
// server owns and may overwrite what it received: request_writable), with
// small messages whole (the server's default) or every value on the wire
// (small_message_bytes 0).
void BM_Evaluate(benchmark::State& state, v1::Function function, bool raw,
                 bool whole_when_small) {
  const std::string bytes = EvaluateBytes(function, state.range(0), raw);
  ComputeContext context;
  context.request_writable = true;
  if (!whole_when_small) context.small_message_bytes = 0;
  int64_t elements = 0;
  for (auto _ : state) {
    grpc::Slice slice(bytes.data(), bytes.size());  // a copy, as received
    const grpc::ByteBuffer request(&slice, 1);
    grpc::ByteBuffer response;
    const absl::Status status =
        Methods().CallUnary("/actsvc.v1.ActivationService/Evaluate", request,
                            context, &elements, &response);
    if (!status.ok()) {
      state.SkipWithError(std::string(status.message()).c_str());
      break;
    }
    benchmark::DoNotOptimize(response);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
  state.SetBytesProcessed(state.iterations() *
                          static_cast<int64_t>(bytes.size()));
}

// The floor under every body: the request's copy into a slice and a
// ByteBuffer's life, no method.
void BM_CopyOnly(benchmark::State& state) {
  const std::string bytes = EvaluateBytes(v1::IDENTITY, state.range(0), true);
  for (auto _ : state) {
    grpc::Slice slice(bytes.data(), bytes.size());
    grpc::ByteBuffer request(&slice, 1);
    benchmark::DoNotOptimize(request);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}

void Sizes(benchmark::internal::Benchmark* b) {
  for (int64_t n = 256; n <= 65536; n *= 2) b->Arg(n);
}

BENCHMARK(BM_CopyOnly)->Apply(Sizes);
BENCHMARK_CAPTURE(BM_Evaluate, identity_raw, v1::IDENTITY, true, true)
    ->Apply(Sizes);
BENCHMARK_CAPTURE(BM_Evaluate, identity_raw_wire, v1::IDENTITY, true, false)
    ->Apply(Sizes);
BENCHMARK_CAPTURE(BM_Evaluate, sigmoid_raw, v1::SIGMOID, true, true)
    ->Apply(Sizes);
BENCHMARK_CAPTURE(BM_Evaluate, sigmoid_raw_wire, v1::SIGMOID, true, false)
    ->Apply(Sizes);
BENCHMARK_CAPTURE(BM_Evaluate, identity_typed, v1::IDENTITY, false, true)
    ->Apply(Sizes);
BENCHMARK_CAPTURE(BM_Evaluate, identity_typed_wire, v1::IDENTITY, false, false)
    ->Apply(Sizes);

}  // namespace
}  // namespace actsvc::server

int main(int argc, char** argv) {
  // actsvc-server's allocator settings (server/main.cc).
  actsvc::server::ConfigureAllocator(
      int64_t{actsvc::server::kDefaultMemoryCacheMb} << 20);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
