// Kernel benchmarks: actsvc's dispatched SIMD kernels against the scalar
// reference loop and oneDNN's eltwise and softmax primitives, on the same
// arrays, one thread. Names: <impl>/<op>/<function>/<dtype>/<n>, impl in
// {actsvc, scalar, onednn}, op in {fwd, d1, d2, vjp}, dtype f32 (f64 for the
// elementwise actsvc and scalar rows too; f16 and bf16 for the elementwise
// actsvc rows, the same values rounded once; f32n for the elementwise
// float32 rows on normal(0, 1) inputs instead of uniform ones, what a
// network's pre-activations look like); softmax rows have 1000
// classes, and their vjp rows take the forward output y and dy as oneDNN's
// backward does (actsvc's from-logits VJP is op vjp_logits; the scalar vjp
// rows recompute p from x; op fwd_cold, f16 and bf16 at 4096 and 65536:
// one forward call that builds its half table on an empty cache and looks
// up; --half_tables=off and --half_lookup=scalar|gather choose the half
// path, core/activation_half_table.cc). Throughput is reported as
// items_per_second (elements). bench/kernels_table.py turns
// --benchmark_format=json into BENCHMARKS.md.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/types/span.h"
#include "core/activation.h"
#include "core/activation_half.h"
#include "core/half.h"
#include "core/reference.h"
#include "core/softmax.h"
#include "core/stores.h"

#ifdef ACTSVC_HAVE_ONEDNN
#include "oneapi/dnnl/dnnl.hpp"
#endif

namespace actsvc {
namespace {

constexpr int64_t kSizes[] = {4096, 65536, 16777216};
constexpr int64_t kClasses = 1000;

// The distribution of the inputs x: uniform on [-10, 10] (tails included;
// the rows without a suffix), normal(0, 1) (dtype suffix "n": f32n) or
// uniform on [-8, 8] (suffix "u8": f32u8, the range issue 17 names).
enum class Dist { kUniform, kNormal, kUniform8 };

// The generator of every input: a 32-bit LCG, so that each run and each
// implementation sees the same values.
struct Lcg {
  uint32_t s = 12345;
  // Uniform in [0, 1), 24 bits.
  double Next() {
    s = s * 1664525u + 1013904223u;
    return static_cast<double>(s >> 8) / 16777216.0;
  }
};

template <typename T>
T Round(double v) {
  if constexpr (kIsHalf<T>) {
    return HalfFromDouble<T>(static_cast<float>(v));
  } else {
    return static_cast<T>(static_cast<float>(v));
  }
}

// Uniform in [lo, hi], or normal(0, 1) by Box-Muller (both values of each
// pair); the same float32 values in float32 and float64 arrays (rounded once
// more in the half ones).
template <typename T = float>
std::vector<T> Inputs(int64_t n, float lo, float hi,
                      Dist dist = Dist::kUniform) {
  std::vector<T> v(n);
  Lcg lcg;
  if (dist == Dist::kUniform) {
    for (auto& x : v) {
      x = Round<T>(lo + (hi - lo) * static_cast<float>(lcg.Next()));
    }
    return v;
  }
  for (int64_t i = 0; i < n; i += 2) {
    const double r = std::sqrt(-2.0 * std::log(1.0 - lcg.Next()));
    const double t = 6.283185307179586 * lcg.Next();
    v[i] = Round<T>(r * std::cos(t));
    if (i + 1 < n) v[i + 1] = Round<T>(r * std::sin(t));
  }
  return v;
}

// The inputs x and g, the output y and p (a second output, for softmax's
// forward result) of one benchmark, laid out alike in every process and for
// every implementation: in one buffer, each array on a cache line and at its
// own offset within a 4 KiB page (0, 1 KiB + 64, 2 KiB + 128, 3 KiB + 192),
// so that loads of one and stores to another never alias in the low 12
// address bits. (Vectors allocated one by one land where glibc's mmap
// threshold of the moment puts them. oneDNN's eltwise VJP speed still
// varies from one process to the next with this layout: BENCHMARKS.md.)
template <typename T>
struct ArraysOf {
  std::vector<T> storage;
  absl::Span<T> x, g, y, p;
  explicit ArraysOf(int64_t n, Dist dist = Dist::kUniform) {
    constexpr size_t kPage = 4096, kStagger = 1024 + 64;
    const size_t bytes = static_cast<size_t>(n) * sizeof(T);
    const size_t stride = (bytes + kPage - 1) / kPage * kPage + kStagger;
    storage.resize((4 * stride + kPage) / sizeof(T) + 1);
    const uintptr_t at = reinterpret_cast<uintptr_t>(storage.data());
    char* base = reinterpret_cast<char*>(storage.data()) +
                 ((kPage - at % kPage) % kPage);
    absl::Span<T>* arrays[] = {&x, &g, &y, &p};
    for (size_t k = 0; k < 4; ++k) {
      *arrays[k] = absl::MakeSpan(reinterpret_cast<T*>(base + k * stride),
                                  static_cast<size_t>(n));
    }
    const std::vector<T> xs = dist == Dist::kUniform8
                                  ? Inputs<T>(n, -8, 8)
                                  : Inputs<T>(n, -10, 10, dist);
    const std::vector<T> gs = Inputs<T>(n, -1, 1);
    std::copy(xs.begin(), xs.end(), x.begin());
    std::copy(gs.begin(), gs.end(), g.begin());
  }
};
using Arrays = ArraysOf<float>;

template <typename T = float>
void Finish(benchmark::State& state, int64_t n) {
  state.SetItemsProcessed(state.iterations() * n);
  state.SetBytesProcessed(state.iterations() * n * sizeof(T));
}

struct Fn {
  const char* name;
  Function f;
  double alpha;
};
const Fn kFunctions[] = {
    {"identity", Function::kIdentity, 0},
    {"sigmoid", Function::kSigmoid, 0},
    {"tanh", Function::kTanh, 0},
    {"relu", Function::kRelu, 0},
    {"leaky_relu", Function::kLeakyRelu, 0.01},
    {"gelu", Function::kGelu, 0},
    {"gelu_tanh", Function::kGeluTanh, 0},
    {"silu", Function::kSilu, 0},
    {"softplus", Function::kSoftplus, 0},
    {"elu", Function::kElu, 1.0},
    {"selu", Function::kSelu, 0},
};
// The op segment of a name, by ElementwiseKind.
const char* const kOps[] = {"fwd", "d1", "d2", "vjp"};
constexpr ElementwiseKind kKinds[] = {
    ElementwiseKind::kValue, ElementwiseKind::kDerivative1,
    ElementwiseKind::kDerivative2, ElementwiseKind::kVjp};
const char* OpName(ElementwiseKind kind) {
  return kOps[static_cast<int>(kind)];
}

template <typename T>
void ActsvcElementwise(benchmark::State& state, Fn fn, ElementwiseKind kind,
                       int64_t n, Dist dist) {
  ArraysOf<T> a(n, dist);
  const auto x = absl::MakeConstSpan(a.x);
  const auto y = absl::MakeSpan(a.y);
  for (auto _ : state) {
    switch (kind) {
      case ElementwiseKind::kValue:
        Evaluate<T>(fn.f, fn.alpha, x, y);
        break;
      case ElementwiseKind::kDerivative1:
      case ElementwiseKind::kDerivative2:
        Derivative<T>(fn.f, fn.alpha, OrderOf(kind), x, y);
        break;
      case ElementwiseKind::kVjp:
        Vjp<T>(fn.f, fn.alpha, x, absl::MakeConstSpan(a.g), y);
        break;
    }
    benchmark::DoNotOptimize(a.y.data());
    benchmark::ClobberMemory();
  }
  Finish<T>(state, n);
}

// One call of f that builds its table (core/activation_half_table.cc): each
// iteration drops every table first, then builds (a general-path pass over
// all 65,536 patterns) and looks up, as the call that reaches a key's
// threshold does.
template <typename T>
void ActsvcElementwiseCold(benchmark::State& state, Fn fn, int64_t n) {
  ArraysOf<T> a(n);
  for (auto _ : state) {
    internal::ClearHalfTables();
    internal::ElementwiseHalfTable(fn.f, ElementwiseKind::kValue, fn.alpha,
                                   /*native_bf16=*/true, a.x.data(), a.y.data(),
                                   n, /*force=*/true);
    benchmark::DoNotOptimize(a.y.data());
    benchmark::ClobberMemory();
  }
  Finish<T>(state, n);
}

// The scalar reference loop (core/reference.h, computed in double for
// float32, long double for float64); the VJP is g times its f'.
template <typename T>
void ScalarElementwise(benchmark::State& state, Fn fn, ElementwiseKind kind,
                       int64_t n, Dist dist) {
  ArraysOf<T> a(n, dist);
  const auto x = absl::MakeConstSpan(a.x);
  const auto y = absl::MakeSpan(a.y);
  for (auto _ : state) {
    ReferenceEvaluate<T>(fn.f, fn.alpha, OrderOf(kind), x, y);
    if (kind == ElementwiseKind::kVjp) {
      for (int64_t i = 0; i < n; ++i) a.y[i] *= a.g[i];
    }
    benchmark::DoNotOptimize(a.y.data());
    benchmark::ClobberMemory();
  }
  Finish<T>(state, n);
}

// fwd: SoftmaxForward from x. vjp: SoftmaxVjpFromOutput, given y = the
// forward output and dy = g, as oneDNN's backward below (one pass for
// <g, y> or Σg, one for the output). vjp_logits: SoftmaxVjp from x (what
// the Derivative RPC runs: it recomputes p, four passes, one with exp, and
// keeps 1 − p_max accurate where y alone cannot).
enum class SoftmaxBench { kForward, kVjpFromOutput, kVjpFromLogits };

void ActsvcSoftmax(benchmark::State& state, Function f, SoftmaxBench op,
                   AxisView v) {
  const int64_t n = v.elements();
  Arrays a(n);
  const absl::Span<float> out = a.p;
  SoftmaxForward<float>(f, v, a.x, out);
  for (auto _ : state) {
    switch (op) {
      case SoftmaxBench::kForward:
        SoftmaxForward<float>(f, v, a.x, absl::MakeSpan(a.y));
        break;
      case SoftmaxBench::kVjpFromOutput:
        SoftmaxVjpFromOutput<float>(f, v, out, a.g, absl::MakeSpan(a.y));
        break;
      case SoftmaxBench::kVjpFromLogits:
        SoftmaxVjp<float>(f, v, a.x, a.g, absl::MakeSpan(a.y));
        break;
    }
    benchmark::DoNotOptimize(a.y.data());
    benchmark::ClobberMemory();
  }
  Finish(state, n);
}

// The scalar reference rows (core/reference.h, computed in double), as
// core/softmax.cc ran before the SIMD kernels.
void ScalarSoftmax(benchmark::State& state, Function f, bool vjp, int64_t n) {
  Arrays a(n);
  const bool log = f == Function::kLogSoftmax;
  std::vector<double> p, log_p;
  for (auto _ : state) {
    for (int64_t off = 0; off < n; off += kClasses) {
      reference::SoftmaxRowProbabilities(a.x.data() + off, kClasses, 1, p,
                                         log_p);
      if (!vjp) {
        for (int64_t c = 0; c < kClasses; ++c) {
          a.y[off + c] = static_cast<float>(log ? log_p[c] : p[c]);
        }
        continue;
      }
      double acc = 0;
      for (int64_t c = 0; c < kClasses; ++c) {
        acc += log ? a.g[off + c] : a.g[off + c] * p[c];
      }
      for (int64_t c = 0; c < kClasses; ++c) {
        const double gc = a.g[off + c];
        a.y[off + c] =
            static_cast<float>(log ? gc - p[c] * acc : p[c] * (gc - acc));
      }
    }
    benchmark::DoNotOptimize(a.y.data());
    benchmark::ClobberMemory();
  }
  Finish(state, n);
}

void Memcpy(benchmark::State& state, int64_t n) {
  Arrays a(n);
  for (auto _ : state) {
    std::memcpy(a.y.data(), a.x.data(), n * sizeof(float));
    benchmark::DoNotOptimize(a.y.data());
    benchmark::ClobberMemory();
  }
  Finish(state, n);
}

#ifdef ACTSVC_HAVE_ONEDNN
dnnl::engine& Engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// Runs prim once an iteration and waits for it. The argument map is built in
// every iteration: that cost is in the oneDNN rows of BENCHMARKS.md.
void ExecuteEachIteration(
    benchmark::State& state, const dnnl::primitive& prim, dnnl::stream& s,
    std::initializer_list<std::pair<const int, dnnl::memory>> args) {
  for (auto _ : state) {
    prim.execute(s, std::unordered_map<int, dnnl::memory>(args));
    s.wait();
  }
}

struct DnnlEltwise {
  const char* name;
  dnnl::algorithm alg;
  float alpha, beta;
};

// oneDNN forward (forward_inference) and backward from src (use_src
// algorithms, diff_src = diff_dst * f'(src)).
void OnednnEltwise(benchmark::State& state, DnnlEltwise e, bool backward,
                   int64_t n, Dist dist) {
  using namespace dnnl;
  Arrays a(n, dist);
  const memory::desc md({n}, memory::data_type::f32, memory::format_tag::a);
  memory src(md, Engine(), a.x.data()), dst(md, Engine(), a.y.data()),
      diff_dst(md, Engine(), a.g.data());
  stream s(Engine());
  eltwise_forward::primitive_desc fwd_pd(
      eltwise_forward::desc(prop_kind::forward_training, e.alg, md, e.alpha,
                            e.beta),
      Engine());
  if (!backward) {
    eltwise_forward::primitive_desc inf_pd(
        eltwise_forward::desc(prop_kind::forward_inference, e.alg, md, e.alpha,
                              e.beta),
        Engine());
    ExecuteEachIteration(state, eltwise_forward(inf_pd), s,
                         {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}});
  } else {
    eltwise_backward::primitive_desc bwd_pd(
        eltwise_backward::desc(e.alg, md, md, e.alpha, e.beta), Engine(),
        fwd_pd);
    ExecuteEachIteration(state, eltwise_backward(bwd_pd), s,
                         {{DNNL_ARG_SRC, src},
                          {DNNL_ARG_DIFF_DST, diff_dst},
                          {DNNL_ARG_DIFF_SRC, dst}});
  }
  Finish(state, n);
}

// oneDNN softmax_v2 forward (forward_training), and backward from dst (the
// forward output) and diff_dst.
void OnednnSoftmax(benchmark::State& state, bool log, bool backward,
                   AxisView v) {
  using namespace dnnl;
  const int64_t n = v.elements();
  Arrays a(n);
  const absl::Span<float> p = a.p;
  // [outer, size, inner], softmax along axis 1 (dense, row-major).
  const memory::desc md({v.outer, v.size, v.inner}, memory::data_type::f32,
                        memory::format_tag::abc);
  memory src(md, Engine(), a.x.data()), dst(md, Engine(), p.data()),
      diff_dst(md, Engine(), a.g.data()), diff_src(md, Engine(), a.y.data());
  stream s(Engine());
  const algorithm alg =
      log ? algorithm::softmax_log : algorithm::softmax_accurate;
  softmax_v2_forward::primitive_desc fwd_pd(
      softmax_v2_forward::desc(prop_kind::forward_training, alg, md, md, 1),
      Engine());
  softmax_v2_forward fwd(fwd_pd);
  fwd.execute(s, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}});
  s.wait();
  if (!backward) {
    ExecuteEachIteration(state, fwd, s,
                         {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}});
  } else {
    softmax_v2_backward::primitive_desc bwd_pd(
        softmax_v2_backward::desc(alg, md, md, md, 1), Engine(), fwd_pd);
    ExecuteEachIteration(state, softmax_v2_backward(bwd_pd), s,
                         {{DNNL_ARG_DST, dst},
                          {DNNL_ARG_DIFF_DST, diff_dst},
                          {DNNL_ARG_DIFF_SRC, diff_src}});
  }
  Finish(state, n);
}
#endif  // ACTSVC_HAVE_ONEDNN

std::string Name(const char* impl, const char* op, const char* fn, int64_t n,
                 const char* dtype = "f32") {
  return std::string(impl) + "/" + op + "/" + fn + "/" + dtype + "/" +
         std::to_string(n);
}

// The elementwise families: one implementation on one dtype and one
// distribution of the inputs, in the order they are registered (and
// listed) for each size, function and op.
struct ElementwiseFamily {
  const char* impl;
  const char* dtype;
  void (*run)(benchmark::State&, Fn, ElementwiseKind, int64_t, Dist);
  Dist dist;
};
const ElementwiseFamily kElementwiseFamilies[] = {
    {"actsvc", "f32", ActsvcElementwise<float>, Dist::kUniform},
    {"scalar", "f32", ScalarElementwise<float>, Dist::kUniform},
    {"actsvc", "f32n", ActsvcElementwise<float>, Dist::kNormal},
    {"scalar", "f32n", ScalarElementwise<float>, Dist::kNormal},
    {"actsvc", "f32u8", ActsvcElementwise<float>, Dist::kUniform8},
    {"actsvc", "f64", ActsvcElementwise<double>, Dist::kUniform},
    {"scalar", "f64", ScalarElementwise<double>, Dist::kUniform},
    {"actsvc", "f16", ActsvcElementwise<Float16>, Dist::kUniform},
    {"actsvc", "bf16", ActsvcElementwise<BFloat16>, Dist::kUniform},
};

void RegisterElementwise(int64_t n) {
  for (const Fn& fn : kFunctions) {
    for (ElementwiseKind kind : kKinds) {
      for (const ElementwiseFamily& family : kElementwiseFamilies) {
        benchmark::RegisterBenchmark(
            Name(family.impl, OpName(kind), fn.name, n, family.dtype).c_str(),
            family.run, fn, kind, n, family.dist);
      }
    }
  }
}

// The op segment of a forward or VJP row, and the actsvc softmax run for it.
const char* FwdOrVjp(bool vjp) { return vjp ? "vjp" : "fwd"; }
SoftmaxBench ForwardOrVjpFromOutput(bool vjp) {
  return vjp ? SoftmaxBench::kVjpFromOutput : SoftmaxBench::kForward;
}

// Rows of kClasses along the last axis: actsvc (and its VJP from the
// logits), the scalar rows and oneDNN.
void RegisterSoftmaxRows(int64_t n) {
  const AxisView rows{n / kClasses, kClasses, 1};
  for (bool log : {false, true}) {
    const char* name = log ? "log_softmax" : "softmax";
    const Function f = log ? Function::kLogSoftmax : Function::kSoftmax;
    benchmark::RegisterBenchmark(Name("actsvc", "vjp_logits", name, n).c_str(),
                                 ActsvcSoftmax, f, SoftmaxBench::kVjpFromLogits,
                                 rows);
    for (bool vjp : {false, true}) {
      const char* op = FwdOrVjp(vjp);
      benchmark::RegisterBenchmark(Name("actsvc", op, name, n).c_str(),
                                   ActsvcSoftmax, f,
                                   ForwardOrVjpFromOutput(vjp), rows);
      benchmark::RegisterBenchmark(Name("scalar", op, name, n).c_str(),
                                   ScalarSoftmax, f, vjp, n - n % kClasses);
#ifdef ACTSVC_HAVE_ONEDNN
      benchmark::RegisterBenchmark(Name("onednn", op, name, n).c_str(),
                                   OnednnSoftmax, log, vjp, rows);
#endif
    }
  }
}

#ifdef ACTSVC_HAVE_ONEDNN
// oneDNN's eltwise algorithms for actsvc's functions, by actsvc's name.
const DnnlEltwise kDnnlEltwise[] = {
    {"sigmoid", dnnl::algorithm::eltwise_logistic, 0, 0},
    {"tanh", dnnl::algorithm::eltwise_tanh, 0, 0},
    {"relu", dnnl::algorithm::eltwise_relu, 0, 0},
    {"leaky_relu", dnnl::algorithm::eltwise_relu, 0.01f, 0},
    {"gelu", dnnl::algorithm::eltwise_gelu_erf, 0, 0},
    {"gelu_tanh", dnnl::algorithm::eltwise_gelu_tanh, 0, 0},
    {"silu", dnnl::algorithm::eltwise_swish, 1, 0},
    {"softplus", dnnl::algorithm::eltwise_soft_relu, 0, 0},
    {"elu", dnnl::algorithm::eltwise_elu, 1, 0},
};

void RegisterOnednnEltwise(int64_t n) {
  for (const DnnlEltwise& e : kDnnlEltwise) {
    for (Dist dist : {Dist::kUniform, Dist::kNormal, Dist::kUniform8}) {
      const char* f32 = dist == Dist::kUniform  ? "f32"
                        : dist == Dist::kNormal ? "f32n"
                                                : "f32u8";
      for (bool vjp : {false, true}) {
        benchmark::RegisterBenchmark(
            Name("onednn", FwdOrVjp(vjp), e.name, n, f32).c_str(),
            OnednnEltwise, e, vjp, n, dist);
      }
    }
  }
}
#endif  // ACTSVC_HAVE_ONEDNN

// Softmax along other axes and over short rows: [outer, size, inner],
// along axis 1 (actsvc: tiles of the row kernel for long strided rows,
// the column kernel for rows of up to 32 values; oneDNN: softmax_v2 on
// the same dense tensor and axis).
struct SoftmaxShape {
  const char* name;
  AxisView v;
};
const SoftmaxShape kSoftmaxShapes[] = {
    {"softmax[64x1000x16:1]", {64, 1000, 16}},
    {"softmax[4x2x65536:1]", {4, 2, 65536}},
    {"softmax[262144x2]", {262144, 2, 1}},
    {"softmax[65536x16]", {65536, 16, 1}},
};

void RegisterSoftmaxShapes() {
  for (const SoftmaxShape& sh : kSoftmaxShapes) {
    for (bool vjp : {false, true}) {
      const char* op = FwdOrVjp(vjp);
      benchmark::RegisterBenchmark(
          Name("actsvc", op, sh.name, sh.v.elements()).c_str(), ActsvcSoftmax,
          Function::kSoftmax, ForwardOrVjpFromOutput(vjp), sh.v);
#ifdef ACTSVC_HAVE_ONEDNN
      benchmark::RegisterBenchmark(
          Name("onednn", op, sh.name, sh.v.elements()).c_str(), OnednnSoftmax,
          false, vjp, sh.v);
#endif
    }
  }
}

void RegisterAll() {
  for (int64_t n : kSizes) {
    RegisterElementwise(n);
    if (n <= 65536) {
      for (const Fn& fn : kFunctions) {
        benchmark::RegisterBenchmark(
            Name("actsvc", "fwd_cold", fn.name, n, "f16").c_str(),
            ActsvcElementwiseCold<Float16>, fn, n);
        benchmark::RegisterBenchmark(
            Name("actsvc", "fwd_cold", fn.name, n, "bf16").c_str(),
            ActsvcElementwiseCold<BFloat16>, fn, n);
      }
    }
    RegisterSoftmaxRows(n);
#ifdef ACTSVC_HAVE_ONEDNN
    RegisterOnednnEltwise(n);
#endif
  }
  RegisterSoftmaxShapes();
  benchmark::RegisterBenchmark("memcpy/copy/-/f32/16777216", Memcpy,
                               int64_t{16777216});
}

}  // namespace
}  // namespace actsvc

int main(int argc, char** argv) {
  // oneDNN must run on one thread, as our kernels: libgomp reads
  // OMP_NUM_THREADS when it is loaded, before main, so set it in the
  // environment of the command (see BENCHMARKS.md); this is a reminder.
  if (const char* t = std::getenv("OMP_NUM_THREADS");
      !t || std::string(t) != "1") {
    std::fprintf(stderr,
                 "warning: OMP_NUM_THREADS is not 1: oneDNN rows may use "
                 "several threads\n");
  }
  // This benchmark's own flags, taken out before Google Benchmark reads the
  // rest, so that two processes can compare both ways of a choice:
  // --nt_stores=on|off overrides the CPU vendor's choices of non-temporal
  // stores for large outputs (core/stores.h); --half_tables=off runs the
  // half functions that round on their general path, without tables, and
  // --half_lookup=scalar|gather overrides the CPU's choice of table lookup
  // loop (core/activation_half_table.cc).
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--nt_stores=on") {
      actsvc::SetNonTemporalStores(actsvc::NonTemporalStores::kOn);
    } else if (arg == "--nt_stores=off") {
      actsvc::SetNonTemporalStores(actsvc::NonTemporalStores::kOff);
    } else if (arg == "--half_tables=off") {
      actsvc::internal::UseHalfTables(false);
    } else if (arg == "--half_lookup=gather") {
      actsvc::internal::SetHalfTableLoop(
          actsvc::internal::HalfTableLoop::kGather);
    } else if (arg == "--half_lookup=scalar") {
      actsvc::internal::SetHalfTableLoop(
          actsvc::internal::HalfTableLoop::kScalar);
    } else if (arg.rfind("--nt_stores", 0) == 0 ||
               arg.rfind("--half_", 0) == 0) {
      std::fprintf(stderr,
                   "%s: expected --nt_stores=on|off, --half_tables=off or "
                   "--half_lookup=scalar|gather\n",
                   arg.c_str());
      return 2;
    } else {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;
  using actsvc::StoreUse;
  std::fprintf(stderr,
               "actsvc kernels: %s; non-temporal stores (%s): elementwise "
               "%s, softmax rows %s, half tables %s; half lookups by %s\n",
               actsvc::KernelTargetName(), actsvc::StoreVendorName(),
               UseNonTemporalStores(StoreUse::kElementwise) ? "on" : "off",
               UseNonTemporalStores(StoreUse::kSoftmaxRows) ? "on" : "off",
               UseNonTemporalStores(StoreUse::kHalfTables) ? "on" : "off",
               actsvc::PreferGathers() ? "gathers" : "scalar loads");
  actsvc::RegisterAll();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
