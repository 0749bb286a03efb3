// The text the CLI prints for responses that are not tensors: the function
// table of `actsvc list`, one function in full, and the statistics of
// `actsvc analyze`. Each ends with a newline.
#ifndef ACTSVC_CLIENT_REPORT_H_
#define ACTSVC_CLIENT_REPORT_H_

#include <cstdint>
#include <string>

#include "actsvc/v1/activation.pb.h"

namespace actsvc::client {

// One row per function (name and aliases, parameters, saturation, f', the
// range of f'), columns aligned by display width, and a closing hint.
std::string FormatFunctionTable(const actsvc::v1::ListFunctionsResponse& list);

// Every field of one function, one per line.
std::string FormatFunctionDetails(const actsvc::v1::FunctionInfo& info);

// The Analyze statistics, one per line; the attenuation line names
// `layers` when the response has one.
std::string FormatAnalysis(const actsvc::v1::AnalyzeResponse& response,
                           int32_t layers);

}  // namespace actsvc::client

#endif  // ACTSVC_CLIENT_REPORT_H_
