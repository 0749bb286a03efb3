// SoftmaxCrossEntropy: class indices or target probabilities, every
// reduction, label smoothing and ignore_index.
#include <algorithm>

#include "tests/fuzz/fuzz_util.h"

namespace actsvc::fuzz {
namespace {

void CheckCrossEntropy(const v1::SoftmaxCrossEntropyRequest& request,
                       const v1::SoftmaxCrossEntropyResponse& response) {
  const v1::Tensor& logits = request.logits();
  CheckTensor(response.loss(), "loss");
  Check(response.loss().dtype() == logits.dtype(),
        "loss: not the dtype of the logits");
  if (request.reduction() == v1::SoftmaxCrossEntropyRequest::NONE) {
    // One loss per row: the leading dims of the logits.
    Check(response.loss().shape_size() == logits.shape_size() - 1 &&
              std::equal(response.loss().shape().begin(),
                         response.loss().shape().end(), logits.shape().begin()),
          "loss: not the leading dims of the logits");
  } else {
    Check(response.loss().shape_size() == 0, "loss: not a scalar");
  }
  CheckSameLayout(response.grad_logits(), logits, "grad_logits");
  Check(response.has_probabilities() == request.return_probabilities(),
        "probabilities: set without return_probabilities or the reverse");
  if (request.return_probabilities()) {
    CheckSameLayout(response.probabilities(), logits, "probabilities");
  }
}

}  // namespace
}  // namespace actsvc::fuzz

ACTSVC_FUZZ_UNARY(SoftmaxCrossEntropy, CheckCrossEntropy)
