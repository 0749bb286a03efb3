// Evaluate: decode, validate and compute a request as the server does.
#include "tests/fuzz/fuzz_util.h"

ACTSVC_FUZZ_UNARY(Evaluate, CheckOutputLikeInput)
