// What the service knows about each function, for ListFunctions and the CLI:
// parameters, formulas, ranges (the correct ones; SPEC.md §1 errata).
#ifndef ACTSVC_CORE_FUNCTIONS_H_
#define ACTSVC_CORE_FUNCTIONS_H_

#include <string>
#include <vector>

#include "core/activation.h"

namespace actsvc {

struct ParameterInfo {
  std::string name;
  double default_value = 0;
  std::string valid_range;
  std::string description;
};

struct FunctionInfo {
  Function function;
  std::string name;
  std::vector<std::string> aliases;
  bool elementwise = true;
  std::vector<ParameterInfo> parameters;
  std::string formula;
  std::string derivative_formula;
  std::string second_derivative_formula;
  std::string stable_form;
  std::string output_range;
  std::string derivative_range;
  bool saturates = false;
  std::string notes;
};

// One entry per Function, in enum order.
const std::vector<FunctionInfo>& AllFunctions();

}  // namespace actsvc

#endif  // ACTSVC_CORE_FUNCTIONS_H_
