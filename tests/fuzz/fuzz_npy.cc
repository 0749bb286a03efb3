// The CLI's .npy reader (client/npy.h), on any bytes: ParseNpy either
// rejects them with INVALID_ARGUMENT or returns an array whose data fills
// its shape exactly, and which survives EncodeNpy and ParseNpy unchanged.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "client/npy.h"
#include "client/tensor.h"

namespace {

// Aborts with `what` unless `condition` (as fuzz_util.h's Check, without the
// server code that library links).
void Check(bool condition, const char* what) {
  if (condition) return;
  std::fprintf(stderr, "fuzz check failed: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace actsvc;  // NOLINT: the fuzz entry point is outside it
  const absl::string_view contents(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<client::NpyArray> array = client::ParseNpy(contents);
  if (!array.ok()) {
    Check(array.status().code() == absl::StatusCode::kInvalidArgument,
          "a rejected file is not INVALID_ARGUMENT");
    return 0;
  }
  Check(array->dtype == v1::FLOAT32 || array->dtype == v1::FLOAT64 ||
            array->dtype == v1::FLOAT16 || array->dtype == v1::BFLOAT16,
        "a dtype other than float32, float64, float16 or bfloat16");
  absl::StatusOr<int64_t> count = client::ElementCount(array->shape);
  Check(count.ok(), "an accepted shape has no element count");
  Check(array->data.size() ==
            static_cast<size_t>(*count) * client::DtypeSize(array->dtype),
        "the data does not fill the shape");

  absl::StatusOr<std::string> encoded = client::EncodeNpy(*array);
  Check(encoded.ok(), "an accepted array cannot be written");
  absl::StatusOr<client::NpyArray> again = client::ParseNpy(*encoded);
  Check(again.ok(), "a written array does not parse");
  Check(again->shape == array->shape && again->dtype == array->dtype &&
            again->data == array->data,
        "a written array reads back different");
  return 0;
}
