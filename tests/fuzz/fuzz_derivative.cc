// Derivative (orders 1 and 2, and the VJP with upstream_grad).
#include "tests/fuzz/fuzz_util.h"

ACTSVC_FUZZ_UNARY(Derivative, CheckOutputLikeInput)
