// Helpers for the server tests: building request tensors in either encoding
// and reading response tensors back.
#ifndef ACTSVC_TESTS_SERVER_TEST_UTIL_H_
#define ACTSVC_TESTS_SERVER_TEST_UTIL_H_

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "actsvc/v1/activation.pb.h"
#include "core/half.h"
#include "gtest/gtest.h"
#include "server/v1/codec.h"

namespace actsvc::server::testing {

template <typename T>
v1::Tensor MakeTensor(const std::vector<int64_t>& shape,
                      const std::vector<T>& values, Encoding encoding) {
  v1::Tensor tensor;
  for (int64_t d : shape) tensor.add_shape(d);
  tensor.set_dtype(ToProto(kDTypeOf<T>));
  if (encoding == Encoding::kRaw) {
    tensor.set_raw_data(
        std::string(reinterpret_cast<const char*>(values.data()),
                    values.size() * sizeof(T)));
  } else if constexpr (std::is_same_v<T, float>) {
    tensor.mutable_float_data()->Add(values.begin(), values.end());
  } else if constexpr (kIsHalf<T>) {
    for (T v : values) tensor.add_float_data(HalfToFloat(v));  // exact
  } else {
    tensor.mutable_double_data()->Add(values.begin(), values.end());
  }
  return tensor;
}

inline Encoding EncodingOf(const v1::Tensor& tensor) {
  return tensor.float_data_size() > 0 || tensor.double_data_size() > 0
             ? Encoding::kTyped
             : Encoding::kRaw;
}

inline std::vector<int64_t> ShapeOf(const v1::Tensor& tensor) {
  return {tensor.shape().begin(), tensor.shape().end()};
}

// The values of a response tensor, whichever its encoding; fails the test
// when the dtype is not T's.
template <typename T>
std::vector<T> ValuesOf(const v1::Tensor& tensor) {
  EXPECT_EQ(tensor.dtype(), ToProto(kDTypeOf<T>));
  if (!tensor.raw_data().empty()) {
    std::vector<T> values(tensor.raw_data().size() / sizeof(T));
    std::memcpy(values.data(), tensor.raw_data().data(),
                values.size() * sizeof(T));
    return values;
  }
  if constexpr (std::is_same_v<T, float>) {
    return {tensor.float_data().begin(), tensor.float_data().end()};
  } else if constexpr (kIsHalf<T>) {
    // The half values widened: each must narrow back exactly.
    std::vector<T> values;
    for (float f : tensor.float_data()) {
      values.push_back(HalfFromDouble<T>(f));
      EXPECT_TRUE(std::isnan(f) || HalfToFloat(values.back()) == f) << f;
    }
    return values;
  } else {
    return {tensor.double_data().begin(), tensor.double_data().end()};
  }
}

// Deterministic test inputs in [lo, hi], not all representable exactly.
template <typename T>
std::vector<T> Ramp(int64_t n, double lo = -6, double hi = 6) {
  std::vector<T> values(n);
  for (int64_t i = 0; i < n; ++i) {
    values[i] = static_cast<T>(
        n == 1 ? lo : lo + (hi - lo) * static_cast<double>(i) / (n - 1) + 0.01);
  }
  return values;
}

}  // namespace actsvc::server::testing

#endif  // ACTSVC_TESTS_SERVER_TEST_UTIL_H_
