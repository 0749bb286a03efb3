// Unit tests of the CLI's library: .npy files, value and shape parsing,
// tensor encodings and the readable output. No server needed.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "client/args.h"
#include "client/format.h"
#include "client/npy.h"
#include "client/report.h"
#include "client/tensor.h"
#include "client/values.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

ABSL_FLAG(std::string, test_text, "", "a string flag for the parser tests");
ABSL_FLAG(bool, test_switch, false, "a bool flag for the parser tests");
ABSL_FLAG(int, test_count, 0, "an int flag for the parser tests");
ABSL_FLAG(absl::Duration, test_wait, absl::Seconds(1),
          "a duration flag for the parser tests");

namespace actsvc::client {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr double kInf = std::numeric_limits<double>::infinity();

// A version 1.0 file as np.save(f, np.array([[1, 2, 3], [4, 5, 6]],
// dtype='<f4')) writes it: the header padded with spaces to a multiple of 64
// bytes.
std::string NumpyWrittenFile() {
  std::string header =
      "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
  header.append(128 - 10 - header.size() - 1, ' ');
  header.push_back('\n');
  std::string file("\x93NUMPY\x01\x00", 8);
  file.push_back(static_cast<char>(header.size() & 0xff));
  file.push_back(static_cast<char>(header.size() >> 8));
  file += header;
  for (float v : {1.f, 2.f, 3.f, 4.f, 5.f, 6.f}) {
    file.append(reinterpret_cast<const char*>(&v), sizeof(v));
  }
  return file;
}

TEST(NpyTest, ParsesAFileAsNumpyWritesIt) {
  const std::string path = absl::StrCat(::testing::TempDir(), "/np_saved.npy");
  {
    std::ofstream out(path, std::ios::binary);
    const std::string bytes = NumpyWrittenFile();
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  absl::StatusOr<NpyArray> array = ReadNpyFile(path);
  ASSERT_TRUE(array.ok()) << array.status();
  EXPECT_THAT(array->shape, ElementsAre(2, 3));
  EXPECT_EQ(array->dtype, actsvc::v1::FLOAT32);
  ASSERT_EQ(array->data.size(), 6 * sizeof(float));
  float last;
  std::memcpy(&last, array->data.data() + 5 * sizeof(float), sizeof(float));
  EXPECT_EQ(last, 6.f);
  std::remove(path.c_str());
}

TEST(NpyTest, ParsesVersion2AndScalarAndOneDim) {
  for (const std::vector<int64_t>& shape :
       std::vector<std::vector<int64_t>>{{}, {4}, {0, 3}, {2, 1, 2}}) {
    NpyArray array;
    array.shape = shape;
    array.dtype = actsvc::v1::FLOAT64;
    const int64_t n = *ElementCount(shape);
    for (int64_t i = 0; i < n; ++i) {
      const double v = 0.5 * static_cast<double>(i);
      array.data.append(reinterpret_cast<const char*>(&v), sizeof(v));
    }
    absl::StatusOr<std::string> encoded = EncodeNpy(array);
    ASSERT_TRUE(encoded.ok());
    EXPECT_EQ((encoded->size() - array.data.size()) % 64, 0u);
    absl::StatusOr<NpyArray> decoded = ParseNpy(*encoded);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(decoded->shape, shape);
    EXPECT_EQ(decoded->dtype, actsvc::v1::FLOAT64);
    EXPECT_EQ(decoded->data, array.data);

    // The same header in a version 2.0 file (4-byte header length).
    std::string v2 = *encoded;
    const size_t header_len =
        static_cast<uint8_t>(v2[8]) | (static_cast<uint8_t>(v2[9]) << 8);
    v2[6] = 2;
    v2.insert(10, std::string(2, '\0'));
    v2[8] = static_cast<char>(header_len & 0xff);
    v2[9] = static_cast<char>(header_len >> 8);
    decoded = ParseNpy(v2);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(decoded->shape, shape);
  }
}

TEST(NpyTest, RejectsWhatItCannotRead) {
  std::string file = NumpyWrittenFile();
  EXPECT_EQ(ParseNpy("not an npy file").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseNpy(file.substr(0, file.size() - 1)).status().code(),
            absl::StatusCode::kInvalidArgument);

  std::string big_endian = file;
  big_endian.replace(big_endian.find("<f4"), 3, ">f4");
  EXPECT_THAT(ParseNpy(big_endian).status().message(), HasSubstr("big-endian"));

  std::string ints = file;
  ints.replace(ints.find("<f4"), 3, "<i4");
  EXPECT_THAT(ParseNpy(ints).status().message(), HasSubstr("'<i4'"));

  std::string fortran = file;
  fortran.replace(fortran.find("False"), 5, "True ");
  EXPECT_THAT(ParseNpy(fortran).status().message(), HasSubstr("Fortran"));

  EXPECT_EQ(ReadNpyFile("/nonexistent/x.npy").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_THAT(ReadNpyFile("/nonexistent/x.npy").status().message(),
              HasSubstr("No such file or directory"));
}

// A directory used to be read as a file of size -1 (std::length_error).
TEST(NpyTest, DirectoriesAreNotFiles) {
  const std::string dir = ::testing::TempDir();
  absl::StatusOr<NpyArray> read = ReadNpyFile(dir);
  EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(read.status().message(), HasSubstr("is a directory"));

  // A device need not end (/dev/zero); /dev/null stands in for it.
  EXPECT_THAT(ReadNpyFile("/dev/null").status().message(),
              HasSubstr("/dev/null is not a regular file"));

  EXPECT_THAT(CheckNpyWritable(dir).message(), HasSubstr("is a directory"));
  EXPECT_THAT(CheckNpyWritable("").message(), HasSubstr("no file name"));
  EXPECT_THAT(CheckNpyWritable("/nonexistent/out.npy").message(),
              HasSubstr("no directory /nonexistent"));
  EXPECT_TRUE(CheckNpyWritable(absl::StrCat(dir, "/new.npy")).ok());
  NpyArray array;
  array.shape = {1};
  array.data = std::string(4, '\0');
  EXPECT_FALSE(WriteNpyFile(dir, array).ok());
}

TEST(ValuesTest, ParsesNumbersAndSpecials) {
  absl::StatusOr<std::vector<double>> v = ParseValues(
      " 1, -2.5 ,inf,-inf,+Infinity, NaN, 1e-40, 0x1p-3", actsvc::v1::FLOAT64);
  ASSERT_TRUE(v.ok()) << v.status();
  ASSERT_EQ(v->size(), 8u);
  EXPECT_EQ((*v)[0], 1);
  EXPECT_EQ((*v)[1], -2.5);
  EXPECT_EQ((*v)[2], kInf);
  EXPECT_EQ((*v)[3], -kInf);
  EXPECT_EQ((*v)[4], kInf);
  EXPECT_TRUE(std::isnan((*v)[5]));
  EXPECT_EQ((*v)[6], 1e-40);
  EXPECT_EQ((*v)[7], 0.125);

  EXPECT_THAT(*ParseValues("[1,2]", actsvc::v1::FLOAT32), ElementsAre(1, 2));
  EXPECT_TRUE(ParseValues("", actsvc::v1::FLOAT32)->empty());
}

TEST(ValuesTest, Float32IsRoundedOnceFromTheDecimal) {
  // 0.1 as float32 directly, not float64 then float32 (which can differ).
  absl::StatusOr<std::vector<double>> v =
      ParseValues("0.1,1e-40", actsvc::v1::FLOAT32);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ((*v)[0], static_cast<double>(0.1f));
  EXPECT_EQ((*v)[1], static_cast<double>(1e-40f));  // a float32 subnormal
  EXPECT_GT((*v)[1], 0);
}

TEST(ValuesTest, RejectsBadValues) {
  for (const char* text : {"1,,2", "abc", "1,2x", "1e39", "inf2"}) {
    EXPECT_EQ(ParseValues(text, actsvc::v1::FLOAT32).status().code(),
              absl::StatusCode::kInvalidArgument)
        << text;
  }
  // 1e39 fits in float64.
  EXPECT_TRUE(ParseValues("1e39", actsvc::v1::FLOAT64).ok());
}

TEST(ShapeTest, ParsesTheForms) {
  EXPECT_THAT(*ParseShape("2,3"), ElementsAre(2, 3));
  EXPECT_THAT(*ParseShape("[2, 3]"), ElementsAre(2, 3));
  EXPECT_THAT(*ParseShape("2x3x4"), ElementsAre(2, 3, 4));
  EXPECT_THAT(*ParseShape("0"), ElementsAre(0));
  EXPECT_TRUE(ParseShape("[]")->empty());
  EXPECT_TRUE(ParseShape("scalar")->empty());
}

TEST(ShapeTest, RejectsBadShapes) {
  for (const char* text : {"-1", "2,-3", "2.5", "a,b", "2,,3", "[2,3"}) {
    EXPECT_EQ(ParseShape(text).status().code(),
              absl::StatusCode::kInvalidArgument)
        << text;
  }
  EXPECT_THAT(ParseShape("2,-3").status().message(), HasSubstr("negative"));
}

TEST(IntegersTest, ParsesClassIndices) {
  EXPECT_THAT(*ParseIntegers("0, 2,-100"), ElementsAre(0, 2, -100));
  EXPECT_FALSE(ParseIntegers("1.5").ok());
}

TEST(TensorTest, RawAndTypedRoundTrip) {
  const std::vector<double> values = {1.5, -kInf, 0.25};
  for (Encoding encoding : {Encoding::kRaw, Encoding::kTyped}) {
    for (auto dtype : {actsvc::v1::FLOAT32, actsvc::v1::FLOAT64}) {
      actsvc::v1::Tensor t = MakeTensor({3}, dtype, values, encoding);
      EXPECT_EQ(t.raw_data().empty(), encoding == Encoding::kTyped);
      absl::StatusOr<std::vector<double>> back = TensorValues(t);
      ASSERT_TRUE(back.ok()) << back.status();
      EXPECT_EQ(*back, values);
      ASSERT_TRUE(ConvertToTyped(&t).ok());
      EXPECT_TRUE(t.raw_data().empty());
      EXPECT_EQ(*TensorValues(t), values);
    }
  }
}

TEST(TensorTest, ConvertsBetweenDtypes) {
  const double x[] = {0.1, 3};
  actsvc::v1::Tensor t = MakeTensorFromBytes(
      {2}, actsvc::v1::FLOAT64,
      absl::string_view(reinterpret_cast<const char*>(x), sizeof(x)),
      actsvc::v1::FLOAT32, Encoding::kTyped);
  EXPECT_EQ(t.dtype(), actsvc::v1::FLOAT32);
  EXPECT_THAT(t.float_data(), ElementsAre(0.1f, 3.f));
}

TEST(TensorTest, DetectsDataThatDoesNotFitTheShape) {
  actsvc::v1::Tensor t =
      MakeTensor({2}, actsvc::v1::FLOAT32, {1, 2, 3}, Encoding::kRaw);
  EXPECT_EQ(TensorValues(t).status().code(), absl::StatusCode::kDataLoss);
}

TEST(FormatTest, FullPrecisionPerDtype) {
  EXPECT_EQ(FormatValue(0.1f, actsvc::v1::FLOAT32), "0.100000001");
  EXPECT_EQ(FormatValue(0.1, actsvc::v1::FLOAT64), "0.10000000000000001");
  EXPECT_EQ(FormatValue(2.0611536e-9f, actsvc::v1::FLOAT32), "2.06115369e-09");
  EXPECT_EQ(FormatValue(-kInf, actsvc::v1::FLOAT32), "-inf");
  EXPECT_EQ(FormatValue(std::nan(""), actsvc::v1::FLOAT64), "nan");
}

// ---------------------------------------------------------------------------
// float16 and bfloat16 (issue 14).

TEST(HalfTest, DtypeNamesAndSizes) {
  EXPECT_EQ(*DtypeFromName("float16"), actsvc::v1::FLOAT16);
  EXPECT_EQ(*DtypeFromName("half"), actsvc::v1::FLOAT16);
  EXPECT_EQ(*DtypeFromName("BFloat16"), actsvc::v1::BFLOAT16);
  EXPECT_EQ(*DtypeFromName("bf16"), actsvc::v1::BFLOAT16);
  EXPECT_THAT(DtypeFromName("int8").status().message(),
              HasSubstr("float32, float64, float16 or bfloat16"));
  EXPECT_EQ(DtypeSize(actsvc::v1::FLOAT16), 2u);
  EXPECT_EQ(DtypeSize(actsvc::v1::BFLOAT16), 2u);
  EXPECT_EQ(DtypeName(actsvc::v1::BFLOAT16), "bfloat16");
}

TEST(HalfTest, ValuesAreRoundedOnceAndOverflowIsAnError) {
  // 0.1 in float16 is 0.0999755859375; in bfloat16 0.10009765625.
  EXPECT_THAT(*ParseValues("0.1,-inf", actsvc::v1::FLOAT16),
              ElementsAre(0.0999755859375, -kInf));
  EXPECT_THAT(*ParseValues("0.1", actsvc::v1::BFLOAT16),
              ElementsAre(0.10009765625));
  // 65519 rounds to 65504; 65520 is the midpoint to 2^16 and overflows.
  EXPECT_THAT(*ParseValues("65519", actsvc::v1::FLOAT16), ElementsAre(65504));
  EXPECT_THAT(ParseValues("65520", actsvc::v1::FLOAT16).status().message(),
              HasSubstr("overflows float16"));
  EXPECT_TRUE(ParseValues("1e38", actsvc::v1::BFLOAT16).ok());
}

TEST(HalfTest, RawIsTwoBytesAndTypedIsFloatData) {
  const std::vector<double> values = {1.5, -kInf, 0.25, 6.103515625e-05};
  for (auto dtype : {actsvc::v1::FLOAT16, actsvc::v1::BFLOAT16}) {
    actsvc::v1::Tensor raw = MakeTensor({4}, dtype, values, Encoding::kRaw);
    EXPECT_EQ(raw.raw_data().size(), 8u);
    actsvc::v1::Tensor typed = MakeTensor({4}, dtype, values, Encoding::kTyped);
    EXPECT_THAT(typed.float_data(),
                ElementsAre(1.5f, -INFINITY, 0.25f, 6.103515625e-05f));
    for (actsvc::v1::Tensor* t : {&raw, &typed}) {
      EXPECT_EQ(*TensorValues(*t), values) << DtypeName(dtype);
      EXPECT_EQ(*TensorBytes(*t), raw.raw_data());
    }
    ASSERT_TRUE(ConvertToTyped(&raw).ok());
    EXPECT_EQ(*TensorValues(raw), values);
  }
  // float16 1.0 is 0x3c00, little-endian.
  EXPECT_EQ(
      MakeTensor({1}, actsvc::v1::FLOAT16, {1.0}, Encoding::kRaw).raw_data(),
      std::string("\x00\x3c", 2));
}

TEST(HalfTest, Float32BytesAreRoundedToBFloat16) {
  const float x[] = {1.00390625f, 1.01171875f};  // 1 + 2^-8 ties to 1
  actsvc::v1::Tensor t = MakeTensorFromBytes(
      {2}, actsvc::v1::FLOAT32,
      absl::string_view(reinterpret_cast<const char*>(x), sizeof(x)),
      actsvc::v1::BFLOAT16, Encoding::kRaw);
  EXPECT_THAT(*TensorValues(t), ElementsAre(1.0, 1.015625));
}

TEST(HalfTest, NpyFloat16AndBFloat16BitPatterns) {
  for (auto dtype : {actsvc::v1::FLOAT16, actsvc::v1::BFLOAT16}) {
    NpyArray array;
    array.shape = {2};
    array.dtype = dtype;
    array.data = std::string("\x00\x3c\x80\x3f", 4);
    absl::StatusOr<std::string> file = EncodeNpy(array);
    ASSERT_TRUE(file.ok()) << file.status();
    EXPECT_THAT(*file,
                HasSubstr(dtype == actsvc::v1::FLOAT16 ? "'descr': '<f2'"
                                                       : "'descr': '<u2'"));
    absl::StatusOr<NpyArray> back = ParseNpy(*file);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(back->dtype, dtype);
    EXPECT_EQ(back->data, array.data);
  }
}

TEST(HalfTest, FormatsWithTheDigitsOfTheType) {
  EXPECT_EQ(FormatValue(0.0999755859375, actsvc::v1::FLOAT16), "0.099976");
  EXPECT_EQ(FormatValue(0.10009765625, actsvc::v1::BFLOAT16), "0.1001");
}

TEST(FormatTest, NestedBrackets) {
  EXPECT_EQ(FormatValues({}, {7}, actsvc::v1::FLOAT32), "7");
  EXPECT_EQ(FormatValues({0}, {}, actsvc::v1::FLOAT32), "[]");
  EXPECT_EQ(FormatValues({3}, {1, 2, 3}, actsvc::v1::FLOAT32), "[1, 2, 3]");
  EXPECT_EQ(FormatValues({2, 2}, {1, 2, 3, 4}, actsvc::v1::FLOAT32),
            "[[1, 2],\n [3, 4]]");
  EXPECT_EQ(FormatValues({2, 1, 2}, {1, 2, 3, 4}, actsvc::v1::FLOAT32),
            "[[[1, 2]],\n\n [[3, 4]]]");
}

TEST(FormatTest, SummarizesLargeTensors) {
  std::vector<double> values(2000);
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<double>(i);
  EXPECT_EQ(FormatValues({2000}, values, actsvc::v1::FLOAT32),
            "[0, 1, 2, ..., 1997, 1998, 1999]");
  EXPECT_EQ(FormatValues({1000, 2}, values, actsvc::v1::FLOAT32),
            "[[0, 1],\n [2, 3],\n [4, 5],\n ...,\n [1994, 1995],\n"
            " [1996, 1997],\n [1998, 1999]]");
  EXPECT_THAT(FormatNamedTensor("output", {2000}, values, actsvc::v1::FLOAT32),
              HasSubstr("output: float32 [2000] (2000 values;"));
}

TEST(FormatTest, WrapsLongRows) {
  std::vector<double> values(40, 0.125);
  const std::string text = FormatValues({40}, values, actsvc::v1::FLOAT64);
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    EXPECT_LE(line.size(), 80u) << line;
  }
}

TEST(ArgsTest, ParsesFlagFormsAndPositionals) {
  const char* argv[] = {"actsvc",        "--test_text",   "-1,2", "evaluate",
                        "--test_switch", "-test_count=3", "--",   "--literal"};
  absl::StatusOr<ParsedArgs> args = ParseArgs(8, argv);
  ASSERT_TRUE(args.ok()) << args.status();
  EXPECT_THAT(args->positional, ElementsAre("evaluate", "--literal"));
  EXPECT_EQ(absl::GetFlag(FLAGS_test_text), "-1,2");
  EXPECT_TRUE(absl::GetFlag(FLAGS_test_switch));
  EXPECT_EQ(absl::GetFlag(FLAGS_test_count), 3);
  EXPECT_EQ(args->specified,
            (std::set<std::string>{"test_text", "test_switch", "test_count"}));

  const char* negated[] = {"actsvc", "--notest_switch", "--help"};
  args = ParseArgs(3, negated);
  ASSERT_TRUE(args.ok());
  EXPECT_FALSE(absl::GetFlag(FLAGS_test_switch));
  EXPECT_TRUE(args->help);
  EXPECT_FALSE(args->version);

  const char* version[] = {"actsvc", "--version"};
  args = ParseArgs(2, version);
  ASSERT_TRUE(args.ok()) << args.status();
  EXPECT_TRUE(args->version);
  EXPECT_TRUE(args->positional.empty());
}

TEST(ArgsTest, ReportsUsageErrors) {
  // {the one flag given, what the error says}.
  const std::pair<const char*, const char*> errors[] = {
      {"--nope=1", "unknown flag --nope"},
      {"--test_count=many", "--test_count"},
      {"--test_text", "needs a value"},
      {"--test_wait=1", "--test_wait: a duration is a number with a unit"},
  };
  for (const auto& [flag, message] : errors) {
    const char* argv[] = {"actsvc", flag};
    EXPECT_THAT(ParseArgs(2, argv).status().message(), HasSubstr(message))
        << flag;
  }
  const char* with_unit[] = {"actsvc", "--test_wait=250ms"};
  ASSERT_TRUE(ParseArgs(2, with_unit).ok());
  EXPECT_EQ(absl::GetFlag(FLAGS_test_wait), absl::Milliseconds(250));
}

TEST(ArgsTest, TargetWithoutAPortGetsTheDefault) {
  EXPECT_EQ(TargetWithPort("localhost", 50051), "localhost:50051");
  EXPECT_EQ(TargetWithPort("[::1]", 50051), "[::1]:50051");
  for (const char* kept :
       {"localhost:7", "[::1]:7", "::1", "unix:/tmp/s",
        "dns:///svc.cluster.local:50051", "ipv4:1.2.3.4:5"}) {
    EXPECT_EQ(TargetWithPort(kept, 50051), kept);
  }
}

// Display columns of UTF-8 text up to byte `end`.
size_t Columns(absl::string_view text, size_t end) {
  size_t columns = 0;
  for (size_t i = 0; i < end; ++i) {
    columns += (static_cast<unsigned char>(text[i]) & 0xc0) != 0x80;
  }
  return columns;
}

TEST(ReportTest, FunctionTableAlignsByDisplayWidth) {
  actsvc::v1::ListFunctionsResponse list;
  actsvc::v1::FunctionInfo* sigmoid = list.add_functions();
  sigmoid->set_name("sigmoid");
  sigmoid->add_aliases("logistic");
  sigmoid->set_saturates(true);
  sigmoid->set_derivative_formula("σ(x) σ(−x)");  // multi-byte characters
  sigmoid->set_derivative_range("(0, 0.25]");
  actsvc::v1::FunctionInfo* elu = list.add_functions();
  elu->set_name("elu");
  actsvc::v1::Parameter* alpha = elu->add_parameters();
  alpha->set_name("alpha");
  alpha->set_default_value(1);
  elu->set_derivative_formula("1 if x > 0 else alpha e^x");
  elu->set_derivative_range("(0, max(1, alpha)]");

  const std::string table = FormatFunctionTable(list);
  std::vector<std::string> lines = absl::StrSplit(table, '\n');
  ASSERT_GE(lines.size(), 3u) << table;
  EXPECT_THAT(lines[1], ::testing::StartsWith("sigmoid (logistic)  -  "));
  EXPECT_THAT(lines[2], ::testing::StartsWith("elu  "));
  EXPECT_THAT(lines[2], HasSubstr("alpha=1"));
  // The last column starts at the same display column on every row.
  const size_t header = Columns(lines[0], lines[0].find("f' RANGE"));
  EXPECT_EQ(Columns(lines[1], lines[1].find("(0, 0.25]")), header) << table;
  EXPECT_EQ(Columns(lines[2], lines[2].find("(0, max")), header) << table;
  EXPECT_THAT(table, ::testing::EndsWith(
                         "'actsvc list --function=NAME' shows one function "
                         "in full.\n"));

  const std::string details = FormatFunctionDetails(*elu);
  EXPECT_THAT(details, ::testing::StartsWith("elu\n  kind "));
  EXPECT_THAT(details, HasSubstr("  f' range           (0, max(1, alpha)]\n"));
  EXPECT_THAT(details, ::testing::Not(HasSubstr("notes")));  // empty: left out
}

TEST(ReportTest, AnalysisNamesTheLayersOfTheAttenuation) {
  actsvc::v1::AnalyzeResponse response;
  response.set_units(5);
  response.set_zero_outputs(3);
  response.set_sparsity(0.6);
  response.set_max_abs_derivative(0.25);
  std::string text = FormatAnalysis(response, 0);
  EXPECT_THAT(text, HasSubstr("sparsity (f(x) = 0)            3 (0.6)\n"));
  EXPECT_THAT(text, HasSubstr("max |f'| (gradient gate)       0.25\n"));
  EXPECT_THAT(text, ::testing::Not(HasSubstr("attenuation")));
  response.set_attenuation(std::pow(0.25, 10));
  text = FormatAnalysis(response, 10);
  EXPECT_THAT(text,
              HasSubstr("attenuation (mean |f'|)^10     9.53674316e-07\n"));
}

}  // namespace
}  // namespace actsvc::client
