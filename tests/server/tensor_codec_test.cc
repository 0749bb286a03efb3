#include "server/tensor_codec.h"

#include <cstdint>
#include <limits>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/test_util.h"

namespace actsvc::server {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::MakeTensor;

MATCHER_P(IsInvalidArgumentWith, substring, "") {
  return arg.status().code() == absl::StatusCode::kInvalidArgument &&
         ::testing::Value(std::string(arg.status().message()),
                          HasSubstr(substring));
}

TEST(DecodeTensorTest, RawFloat32) {
  const v1::Tensor t = MakeTensor<float>({2, 2}, {1, 2, 3, 4}, Encoding::kRaw);
  absl::StatusOr<TensorView> view = DecodeTensor(t, "input");
  ASSERT_TRUE(view.ok()) << view.status();
  EXPECT_EQ(view->dtype(), v1::FLOAT32);
  EXPECT_EQ(view->encoding(), Encoding::kRaw);
  EXPECT_THAT(view->shape(), ElementsAre(2, 2));
  EXPECT_THAT(view->values<float>(), ElementsAre(1, 2, 3, 4));
}

TEST(DecodeTensorTest, TypedFloat64) {
  const v1::Tensor t = MakeTensor<double>({3}, {1, 2, 3}, Encoding::kTyped);
  absl::StatusOr<TensorView> view = DecodeTensor(t, "input");
  ASSERT_TRUE(view.ok()) << view.status();
  EXPECT_EQ(view->encoding(), Encoding::kTyped);
  EXPECT_THAT(view->values<double>(), ElementsAre(1, 2, 3));
}

TEST(DecodeTensorTest, ScalarHasOneElement) {
  const v1::Tensor t = MakeTensor<double>({}, {2.5}, Encoding::kRaw);
  absl::StatusOr<TensorView> view = DecodeTensor(t, "input");
  ASSERT_TRUE(view.ok()) << view.status();
  EXPECT_EQ(view->rank(), 0);
  EXPECT_THAT(view->values<double>(), ElementsAre(2.5));
}

TEST(DecodeTensorTest, EmptyTensorWithoutDataIsRaw) {
  v1::Tensor t;
  t.set_dtype(v1::FLOAT32);
  t.add_shape(3);
  t.add_shape(0);
  absl::StatusOr<TensorView> view = DecodeTensor(t, "input");
  ASSERT_TRUE(view.ok()) << view.status();
  EXPECT_EQ(view->size(), 0);
  EXPECT_EQ(view->encoding(), Encoding::kRaw);
}

TEST(DecodeTensorTest, ZeroDimWinsOverHugeDims) {
  v1::Tensor t;
  t.set_dtype(v1::FLOAT64);
  t.add_shape(int64_t{1} << 40);
  t.add_shape(int64_t{1} << 40);
  t.add_shape(0);
  absl::StatusOr<TensorView> view = DecodeTensor(t, "input");
  ASSERT_TRUE(view.ok()) << view.status();
  EXPECT_EQ(view->size(), 0);
}

TEST(DecodeTensorTest, DtypeUnspecified) {
  v1::Tensor t = MakeTensor<float>({1}, {1}, Encoding::kRaw);
  t.set_dtype(v1::DATA_TYPE_UNSPECIFIED);
  EXPECT_THAT(DecodeTensor(t, "input"),
              IsInvalidArgumentWith(
                  "input.dtype is DATA_TYPE_UNSPECIFIED, expected FLOAT32 or "
                  "FLOAT64"));
}

TEST(DecodeTensorTest, UnknownDtypeNumber) {
  v1::Tensor t = MakeTensor<float>({1}, {1}, Encoding::kRaw);
  t.set_dtype(static_cast<v1::DataType>(9));
  EXPECT_THAT(DecodeTensor(t, "x"), IsInvalidArgumentWith("x.dtype is 9"));
}

TEST(DecodeTensorTest, NegativeDim) {
  v1::Tensor t = MakeTensor<float>({2, -3}, {}, Encoding::kRaw);
  EXPECT_THAT(DecodeTensor(t, "input"),
              IsInvalidArgumentWith("input.shape[1] = -3 is negative"));
}

TEST(DecodeTensorTest, ShapeOverflow) {
  v1::Tensor t = MakeTensor<double>({int64_t{1} << 31, int64_t{1} << 31, 4},
                                    {1}, Encoding::kRaw);
  EXPECT_THAT(DecodeTensor(t, "input"),
              IsInvalidArgumentWith("has too many elements"));
}

TEST(DecodeTensorTest, RawByteCountMismatch) {
  const v1::Tensor t = MakeTensor<float>({2, 2}, {1, 2, 3}, Encoding::kRaw);
  EXPECT_THAT(DecodeTensor(t, "input"),
              IsInvalidArgumentWith("input.raw_data has 12 bytes, expected 16 "
                                    "(shape [2,2] x 4 bytes of FLOAT32)"));
}

TEST(DecodeTensorTest, TypedCountMismatch) {
  const v1::Tensor t = MakeTensor<double>({2, 2}, {1, 2, 3}, Encoding::kTyped);
  EXPECT_THAT(
      DecodeTensor(t, "upstream_grad"),
      IsInvalidArgumentWith(
          "upstream_grad.double_data has 3 values, expected 4 (shape [2,2])"));
}

TEST(DecodeTensorTest, FloatDataWithFloat64) {
  v1::Tensor t = MakeTensor<float>({2}, {1, 2}, Encoding::kTyped);
  t.set_dtype(v1::FLOAT64);
  EXPECT_THAT(DecodeTensor(t, "input"),
              IsInvalidArgumentWith(
                  "input.float_data is set but input.dtype is FLOAT64"));
}

TEST(DecodeTensorTest, DoubleDataWithFloat32) {
  v1::Tensor t = MakeTensor<double>({2}, {1, 2}, Encoding::kTyped);
  t.set_dtype(v1::FLOAT32);
  EXPECT_THAT(DecodeTensor(t, "input"),
              IsInvalidArgumentWith(
                  "input.double_data is set but input.dtype is FLOAT32"));
}

TEST(DecodeTensorTest, TwoEncodingsAtOnce) {
  v1::Tensor t = MakeTensor<float>({2}, {1, 2}, Encoding::kTyped);
  t.set_raw_data(std::string(8, '\0'));
  EXPECT_THAT(
      DecodeTensor(t, "input"),
      IsInvalidArgumentWith(
          "input has data in raw_data and float_data; set exactly one"));
}

TEST(DecodeTensorTest, NoDataForNonEmptyShape) {
  v1::Tensor t;
  t.set_dtype(v1::FLOAT32);
  t.add_shape(4);
  EXPECT_THAT(DecodeTensor(t, "input"),
              IsInvalidArgumentWith("input has no data, expected 16 bytes"));
}

TEST(OutputTensorTest, RawHasShapeDtypeAndBytes) {
  v1::Tensor out;
  OutputTensor<double> y(&out, std::vector<int64_t>{2, 3}, Encoding::kRaw, 6);
  ASSERT_EQ(y.values().size(), 6u);
  for (int i = 0; i < 6; ++i) y.values()[i] = i;
  y.Commit();
  EXPECT_THAT(out.shape(), ElementsAre(2, 3));
  EXPECT_EQ(out.dtype(), v1::FLOAT64);
  EXPECT_EQ(out.raw_data().size(), 6 * sizeof(double));
  EXPECT_THAT(testing::ValuesOf<double>(out), ElementsAre(0, 1, 2, 3, 4, 5));
}

TEST(OutputTensorTest, TypedUsesTheRepeatedField) {
  v1::Tensor out;
  OutputTensor<float> y(&out, std::vector<int64_t>{3}, Encoding::kTyped, 3);
  for (int i = 0; i < 3; ++i) y.values()[i] = i + 0.5f;
  y.Commit();
  EXPECT_TRUE(out.raw_data().empty());
  EXPECT_THAT(out.float_data(), ElementsAre(0.5f, 1.5f, 2.5f));
}

TEST(TensorWireBytesTest, GuardsOverflow) {
  EXPECT_EQ(TensorWireBytes(std::numeric_limits<int64_t>::max() / 2, 8, 1), -1);
  EXPECT_GE(TensorWireBytes(10, 4, 2), 40);
}

}  // namespace
}  // namespace actsvc::server
