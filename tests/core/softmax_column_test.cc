// Softmax rows that are not one contiguous long row, on every instruction
// set compiled in and supported here:
//  - strided rows (inner > 1, run in tiles through the row kernels, or on
//    the column kernel for C <= kSoftmaxColumnMaxClasses in both layouts)
//    equal bit for bit to the contiguous rows, in place and by outer
//    sub-ranges (CheckStrided);
//  - the column kernel for every C <= kSoftmaxColumnMaxClasses, contiguous
//    and strided, against __float128 with the budgets of
//    tests/core/ulp_budgets.h, special rows bit for bit (CheckColumns).
#include <quadmath.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "core/activation.h"
#include "core/reference.h"
#include "core/softmax.h"
#include "gtest/gtest.h"
#include "hwy/targets.h"
#include "tests/core/softmax_test_util.h"
#include "tests/core/test_util.h"
#include "tests/core/ulp_budgets.h"

namespace actsvc {
namespace test {
namespace {

// ---------------------------------------------------------------------------
// Strided rows (inner > 1), which run the contiguous kernels on tiles
// gathered from the tensor: every op on [3, C, K] along axis 1 gives, bit
// for bit, the contiguous (inner == 1) result of the same rows after
// transposing, on the same target; special rows included (a +inf, a NaN,
// all −inf, a range that overflows; for the VJPs from the output NaN and inf
// in y or g). Also in place (y aliasing x or g; dx aliasing y or g) and for
// outer sub-ranges, which give the bits of the whole call. K = 70 spans
// more than one tile (at most 64 columns).

template <typename T>
void CheckStrided() {
  using L = std::numeric_limits<T>;
  const T inf = L::infinity();
  constexpr int64_t kOuter = 3;
  ForEachTarget([&](int64_t target) {
    Random rng(29);
    size_t checked = 0;
    // C up to kSoftmaxColumnMaxClasses runs the column kernel (both layouts
    // alike), longer rows the row kernel in tiles.
    for (int64_t c :
         {int64_t{1}, int64_t{2}, int64_t{3}, int64_t{4}, int64_t{7},
          int64_t{8}, int64_t{16}, int64_t{31}, kSoftmaxColumnMaxClasses,
          kSoftmaxColumnMaxClasses + 1, int64_t{1000}, int64_t{1001}}) {
      for (int64_t k : {2, 5, 17, 33, 70}) {
        const AxisView strided{kOuter, c, k};
        const AxisView contiguous{kOuter * k, c, 1};
        const size_t total = static_cast<size_t>(strided.elements());
        // Logits (ordinary rows of the MakeRow kinds, and special ones),
        // upstream gradients, and the forward outputs of the logits.
        std::vector<T> xt(total), gt(total);  // transposed: [outer, K, C]
        for (int64_t r = 0; r < kOuter * k; ++r) {
          const std::vector<T> row =
              MakeRow<T>(static_cast<int>(r % kRowKinds), c, rng);
          std::copy(row.begin(), row.end(), xt.begin() + r * c);
        }
        for (T& v : gt) v = static_cast<T>(rng.Uniform(-2, 2));
        // Row 1: one +inf; row 2: all −inf; row 3: a NaN; row k + 1: max and
        // lowest (x − m overflows).
        xt[1 * c + c / 2] = inf;
        for (int64_t i = 0; i < c; ++i) xt[2 * c + i] = -inf;
        xt[3 * c + c - 1] = L::quiet_NaN();
        xt[(k + 1) * c] = L::max();
        xt[(k + 1) * c + c - 1] = c > 1 ? L::lowest() : L::max();
        for (int op = 0; op < kAllOps; ++op) {
          std::vector<T> in_t = xt, g_t = gt;
          if (op >= 4) {  // the VJPs from y take a forward output
            std::vector<T> y_t(total);
            RunView<T>(op % 2, contiguous, xt.data(), nullptr, y_t.data());
            in_t = y_t;
            // y special rows: a NaN in y (row 0), +inf in y (row k), a
            // NaN in g (row 2k), −inf in g (row 2k + 1).
            in_t[c / 2] = L::quiet_NaN();
            in_t[k * c + c - 1] = inf;
            g_t[2 * k * c] = L::quiet_NaN();
            g_t[(2 * k + 1) * c + c / 3] = -inf;
          }
          std::vector<T> want_t(total, L::quiet_NaN());
          RunView<T>(op, contiguous, in_t.data(), g_t.data(), want_t.data());
          const std::vector<T> in = Transpose(in_t, kOuter, k, c);
          const std::vector<T> g = Transpose(g_t, kOuter, k, c);
          const std::vector<T> want = Transpose(want_t, kOuter, k, c);
          // 0: out of place; 1: y aliasing x (or y); 2: y aliasing g;
          // 3: out of place by outer sub-ranges [0, 1), [1, 3).
          for (int mode = 0; mode < 4; ++mode) {
            if (mode == 2 && op < 2) continue;
            std::vector<T> xb = in, gb = g, yb(total, L::quiet_NaN());
            T* yp = mode == 1 ? xb.data() : mode == 2 ? gb.data() : yb.data();
            if (mode == 3) {
              RunView<T>(op, strided, xb.data(), gb.data(), yp, 0, 1);
              RunView<T>(op, strided, xb.data(), gb.data(), yp, 1, kOuter);
            } else {
              RunView<T>(op, strided, xb.data(), gb.data(), yp);
            }
            for (size_t i = 0; i < total; ++i) {
              ASSERT_TRUE(SameBits(yp[i], want[i]))
                  << hwy::TargetName(target) << " " << kAllOpNames[op] << " "
                  << Dtype<T>() << " C=" << c << " K=" << k << " mode=" << mode
                  << " o=" << i / (c * k) << " c=" << i / k % c
                  << " i=" << i % k << " got=" << yp[i] << " want=" << want[i];
            }
            checked += total;
          }
        }
      }
    }
    std::printf("%-8s strided %s: %zu values equal to the contiguous rows\n",
                hwy::TargetName(target), Dtype<T>(), checked);
  });
}

TEST(SoftmaxSimdTest, StridedRowsFloat32) { CheckStrided<float>(); }
TEST(SoftmaxSimdTest, StridedRowsFloat64) { CheckStrided<double>(); }

// ---------------------------------------------------------------------------
// The column kernel (rows of C <= kSoftmaxColumnMaxClasses values, a vector
// of rows at once) on every target, float32 and float64, every C, both
// layouts: contiguous [75, C] (tiles of 64 rows and a partial one) and
// strided [2, C, 37] along axis 1 (full vectors and a partial one). Rows of
// the MakeRow kinds (ties, a dominant logit with rest tiny, large offsets),
// all equal, a range wide enough that most e^(x − m) underflow, and special
// rows. Ops 0-3 against the __float128 oracle with the budgets of
// CheckAccuracy; the VJPs from the output against the formula at the y given
// with those of CheckFromOutput. Special rows: the formula in Wider<T> on
// the reference's p, bit for bit. In place (y aliasing x, or g for the VJPs
// from x) gives the same bits. The maxima are printed per target and layout.
// The rows of one column-kernel case: row r of kind r % kColumnKinds (the
// MakeRow kinds, all equal, a wide range, special) at element at(r, i);
// special[r] marks the rows the kernel leaves to the reference.
constexpr int kColumnKinds = kRowKinds + 3;

template <typename T, class At>
void MakeColumnRows(int64_t c, int64_t rows, const At& at, Random& rng,
                    std::vector<T>& x, std::vector<bool>& special) {
  using L = std::numeric_limits<T>;
  const T inf = L::infinity();
  const double wide = sizeof(T) == 4 ? 60 : 400;
  special.assign(rows, false);
  for (int64_t r = 0; r < rows; ++r) {
    const int kind = static_cast<int>(r % kColumnKinds);
    std::vector<T> row;
    if (kind < kRowKinds) {
      row = MakeRow<T>(kind, c, rng);
    } else if (kind == kRowKinds) {  // all equal: ties count 1 each
      row.assign(c, static_cast<T>(rng.Uniform(-3, 3)));
    } else if (kind == kRowKinds + 1) {  // wide: most e_i underflow
      row.resize(c);
      for (T& a : row) a = static_cast<T>(rng.Uniform(-wide, wide));
      row[rng.Int(0, c - 1)] = static_cast<T>(wide);
    } else {  // special
      row = MakeRow<T>(0, c, rng);
      const int which = static_cast<int>(r / kColumnKinds % 5);
      if (which == 0) row[c / 2] = inf;
      if (which == 1) row.assign(c, -inf);
      if (which == 2) row[c - 1] = L::quiet_NaN();
      if (which == 3) row[0] = -inf;
      if (which == 4) {
        row[0] = L::max();
        row[c - 1] = c > 1 ? L::lowest() : L::max();
      }
      special[r] = which != 4 || c > 1;
    }
    for (int64_t i = 0; i < c; ++i) x[at(r, i)] = row[i];
  }
}

// What op of one row xr (g: gr) should give, in __float128, with the scale
// of its condition (want, scale); false for a row whose expected bits are
// the formula in Wider<T> (ExactRow): a special row of the ops from x, or
// NaN or inf in the y of the VJPs from the output.
template <typename T>
bool ExpectedRow(int op, bool special, const std::vector<T>& xr,
                 const std::vector<T>& gr, std::vector<Q>& want,
                 std::vector<Q>& scale) {
  const size_t c = xr.size();
  want.assign(c, 0);
  scale.assign(c, 0);
  if (!IsVjpFromOutputOp(kOpOfIndex[op])) {
    if (special) return false;
    const QuadRow q = Oracle(xr.data(), gr.data(), c);
    for (size_t i = 0; i < c; ++i) {
      want[i] = op == 0   ? q.p[i]
                : op == 1 ? q.log_p[i]
                : op == 2 ? q.vjp[i]
                          : q.log_vjp[i];
      scale[i] = op == 2 ? q.vjp_scale[i] : op == 3 ? q.log_vjp_scale[i] : 0;
    }
    return true;
  }
  const bool log = IsLogOp(kOpOfIndex[op]);
  const T inf = std::numeric_limits<T>::infinity();
  for (size_t i = 0; i < c; ++i) {
    if (std::isnan(xr[i]) || (xr[i] == inf) || (!log && xr[i] == -inf)) {
      return false;
    }
  }
  Q acc = 0, abs_acc = 0;
  for (size_t i = 0; i < c; ++i) {
    const Q p = log ? expq(Q(xr[i])) : Q(xr[i]);
    acc += log ? Q(gr[i]) : Q(gr[i]) * p;
    abs_acc += log ? fabsq(gr[i]) : fabsq(gr[i]) * p;
  }
  for (size_t i = 0; i < c; ++i) {
    const Q p = log ? expq(Q(xr[i])) : Q(xr[i]);
    want[i] = log ? gr[i] - p * acc : p * (gr[i] - acc);
    scale[i] = p * abs_acc;
  }
  return true;
}

// The bits op gives for a row ExpectedRow leaves out: the formula in
// Wider<T> on the reference's p (ops from x) or on y (from the output).
template <typename T>
std::vector<T> ExactRow(int op, const std::vector<T>& xr,
                        const std::vector<T>& gr) {
  using W = reference::Wider<T>;
  const int64_t c = static_cast<int64_t>(xr.size());
  const SoftmaxOp o = kOpOfIndex[op];
  std::vector<W> p(c), log_p(c);
  if (!IsVjpFromOutputOp(o)) {
    reference::SoftmaxRowProbabilities(xr.data(), c, 1, p, log_p);
  } else {
    for (int64_t i = 0; i < c; ++i) {
      p[i] = IsLogOp(o) ? std::exp(W(xr[i])) : W(xr[i]);
    }
  }
  W acc = 0;
  for (int64_t i = 0; i < c; ++i) {
    acc += IsLogOp(o) && IsVjpOp(o) ? W(gr[i]) : W(gr[i]) * p[i];
  }
  std::vector<T> w(c);
  for (int64_t i = 0; i < c; ++i) {
    const W gi = gr[i];
    w[i] = static_cast<T>(op == 0      ? p[i]
                          : op == 1    ? log_p[i]
                          : IsLogOp(o) ? gi - p[i] * acc
                                       : p[i] * (gi - acc));
  }
  return w;
}

// The largest error of one (layout, op) and the first failure.
struct ColumnTally {
  double max_ulp = 0;
  size_t failures = 0;
  std::string first;
};

template <typename T>
void TallyRow(int op, int64_t r, const std::vector<T>& xr,
              const std::vector<T>& gr, const std::vector<T>& yr,
              const std::vector<Q>& want, const std::vector<Q>& scale,
              ColumnTally& t) {
  const Q eps = std::numeric_limits<T>::epsilon();
  const int64_t c = static_cast<int64_t>(xr.size());
  for (int64_t i = 0; i < c; ++i) {
    const double u = UlpError(yr[i], want[i], 8 * eps * scale[i]);
    t.max_ulp = std::max(t.max_ulp, u);
    if (u > OpBudget<T>(op) && t.failures++ == 0) {
      char buf[200];
      std::snprintf(buf, sizeof(buf),
                    " first: C=%lld row=%lld kind=%lld i=%lld "
                    "x=%.17g got=%.17g want=%.17g (%.3g ulp)",
                    static_cast<long long>(c), static_cast<long long>(r),
                    static_cast<long long>(r % kColumnKinds),
                    static_cast<long long>(i), static_cast<double>(xr[i]),
                    static_cast<double>(yr[i]), static_cast<double>(want[i]),
                    u);
      t.first = buf;
      for (int64_t j = 0; j < c; ++j) {
        std::snprintf(buf, sizeof(buf), " (x%lld=%a g=%a)",
                      static_cast<long long>(j), static_cast<double>(xr[j]),
                      static_cast<double>(gr[j]));
        t.first += buf;
      }
    }
  }
}

// ---------------------------------------------------------------------------
// The column kernel (rows of C <= kSoftmaxColumnMaxClasses values, a vector
// of rows at once) on every target, float32 and float64, every C, both
// layouts: contiguous [75, C] (tiles of 64 rows and a partial one) and
// strided [2, C, 37] along axis 1 (full vectors and a partial one). Rows of
// the MakeRow kinds (ties, a dominant logit with rest tiny, large offsets),
// all equal, a range wide enough that most e^(x − m) underflow, and special
// rows. Ops 0-3 against the __float128 oracle with the budgets of
// CheckAccuracy; the VJPs from the output against the formula at the y given
// with those of CheckFromOutput. Special rows: the formula in Wider<T> on
// the reference's p, bit for bit. In place (y aliasing x, or g for the VJPs
// from x) gives the same bits. The maxima are printed per target and layout.
// One (C, layout) on the current target.
template <typename T>
void CheckColumnCase(int64_t c, int layout, Random& rng,
                     ColumnTally (&tally)[kAllOps], size_t& specials) {
  using L = std::numeric_limits<T>;
  const AxisView v = layout ? AxisView{2, c, 37} : AxisView{75, c, 1};
  const int64_t rows = v.rows();
  const size_t total = static_cast<size_t>(v.elements());
  const auto at = [&](int64_t r, int64_t i) {
    return static_cast<size_t>((r / v.inner * c + i) * v.inner + r % v.inner);
  };
  std::vector<T> x(total), g(total);
  std::vector<bool> special;
  MakeColumnRows<T>(c, rows, at, rng, x, special);
  for (T& a : g) a = static_cast<T>(rng.Uniform(-2, 2));
  // The forward outputs, the y of the VJPs from the output.
  std::vector<T> fwd[2];
  for (int op = 0; op < 2; ++op) {
    fwd[op].assign(total, L::quiet_NaN());
    RunView<T>(op, v, x.data(), nullptr, fwd[op].data());
  }
  for (int op = 0; op < kAllOps; ++op) {
    const SoftmaxOp o = kOpOfIndex[op];
    const std::vector<T>& in = !IsVjpFromOutputOp(o) ? x : fwd[IsLogOp(o)];
    std::vector<T> y(total, L::quiet_NaN());
    RunView<T>(op, v, in.data(), g.data(), y.data());
    // In place: the same bits.
    std::vector<T> xa = in, ga = g;
    T* ya = IsVjpOp(o) && !IsVjpFromOutputOp(o) ? ga.data() : xa.data();
    RunView<T>(op, v, xa.data(), ga.data(), ya);
    for (size_t i = 0; i < total; ++i) {
      ASSERT_TRUE(SameBits(ya[i], y[i]))
          << kAllOpNames[op] << " " << Dtype<T>() << " C=" << c
          << " layout=" << layout << " in place, element " << i;
    }
    std::vector<T> xr(c), gr(c), yr(c);
    std::vector<Q> want, scale;
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t i = 0; i < c; ++i) {
        xr[i] = in[at(r, i)];
        gr[i] = g[at(r, i)];
        yr[i] = y[at(r, i)];
      }
      if (ExpectedRow<T>(op, special[r], xr, gr, want, scale)) {
        TallyRow<T>(op, r, xr, gr, yr, want, scale, tally[op]);
        continue;
      }
      if (!IsVjpFromOutputOp(o)) ++specials;
      const std::vector<T> w = ExactRow<T>(op, xr, gr);
      for (int64_t i = 0; i < c; ++i) {
        ASSERT_TRUE(SameBits(yr[i], w[i]))
            << kAllOpNames[op] << " " << Dtype<T>() << " C=" << c
            << " layout=" << layout << " special row " << r << " i=" << i
            << " got=" << yr[i] << " want=" << w[i];
      }
    }
  }
}

template <typename T>
void CheckColumns() {
  ForEachTarget([&](int64_t target) {
    Random rng(53);
    ColumnTally tally[2][kAllOps];
    size_t specials = 0;
    for (int64_t c = 1; c <= kSoftmaxColumnMaxClasses; ++c) {
      for (int layout = 0; layout < 2; ++layout) {
        CheckColumnCase<T>(c, layout, rng, tally[layout], specials);
        if (::testing::Test::HasFatalFailure()) return;
      }
    }
    for (int layout = 0; layout < 2; ++layout) {
      for (int op = 0; op < kAllOps; ++op) {
        std::printf("%-8s columns %-10s %-18s %s max %.3f ULP (budget %.0f)\n",
                    hwy::TargetName(target), layout ? "strided" : "contiguous",
                    kAllOpNames[op], Dtype<T>(), tally[layout][op].max_ulp,
                    OpBudget<T>(op));
        EXPECT_EQ(tally[layout][op].failures, 0u)
            << hwy::TargetName(target) << " " << kAllOpNames[op] << " "
            << Dtype<T>() << " layout " << layout << tally[layout][op].first;
      }
    }
    EXPECT_GT(specials, 0u);
  });
}

// Tensors without rows ([2, 3, 0] along axis 1; [0, 3] along the last)
// touch nothing.
TEST(SoftmaxSimdTest, ColumnsWithoutRows) {
  for (const AxisView v : {AxisView{2, 3, 0}, AxisView{0, 3, 1}}) {
    for (int op = 0; op < kAllOps; ++op) {
      RunView<float>(op, v, nullptr, nullptr, nullptr);
    }
  }
}

TEST(SoftmaxSimdTest, ColumnsFloat32) { CheckColumns<float>(); }
TEST(SoftmaxSimdTest, ColumnsFloat64) { CheckColumns<double>(); }

}  // namespace
}  // namespace test
}  // namespace actsvc
