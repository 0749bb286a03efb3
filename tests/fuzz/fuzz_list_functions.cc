// ListFunctions: any request that parses gets every function, once each.
#include <set>
#include <string>

#include "server/v1/service.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace actsvc;  // NOLINT: the fuzz entry point is outside it
  v1::ListFunctionsRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;
  v1::ListFunctionsResponse response;
  server::HandleListFunctions(&response);
  v1::ListFunctionsResponse parsed;
  fuzz::Check(parsed.ParseFromString(response.SerializeAsString()),
              "the response does not parse");
  std::set<int> functions;
  for (const v1::FunctionInfo& info : parsed.functions()) {
    fuzz::Check(v1::Function_IsValid(info.function()) &&
                    info.function() != v1::FUNCTION_UNSPECIFIED,
                "an unknown function");
    fuzz::Check(functions.insert(info.function()).second,
                "a function listed twice");
    fuzz::Check(!info.name().empty(), "a function without a name");
  }
  fuzz::Check(functions.size() == v1::Function_ARRAYSIZE - 1,
              "not every function is listed");
  return 0;
}
