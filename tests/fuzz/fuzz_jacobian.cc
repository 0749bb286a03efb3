// Jacobian: the diagonal, and the dense [..., C, C] matrices.
#include "absl/strings/str_cat.h"
#include "tests/fuzz/fuzz_util.h"

namespace actsvc::fuzz {
namespace {

void CheckJacobian(const v1::JacobianRequest& request,
                   const v1::JacobianResponse& response) {
  const v1::Tensor& jacobian = response.jacobian();
  if (response.diagonal()) {
    CheckSameLayout(jacobian, request.input(), "jacobian");
    return;
  }
  CheckTensor(jacobian, "jacobian");
  Check(jacobian.dtype() == request.input().dtype(),
        "jacobian: not the dtype of the input");
  const int rank = jacobian.shape_size();
  Check(rank >= 2 && jacobian.shape(rank - 1) == jacobian.shape(rank - 2),
        "jacobian: not [..., C, C]");
  // C^2 values per row of C inputs: as many values as C times the input's.
  const int64_t c = jacobian.shape(rank - 1);
  int64_t expected = 0;
  Check(!__builtin_mul_overflow(c, Elements(request.input()), &expected) &&
            Elements(jacobian) == expected,
        absl::StrCat("jacobian: ", Elements(jacobian), " values for ",
                     Elements(request.input()), " inputs, C = ", c));
}

}  // namespace
}  // namespace actsvc::fuzz

ACTSVC_FUZZ_UNARY(Jacobian, CheckJacobian)
