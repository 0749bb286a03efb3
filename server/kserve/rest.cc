#include "server/kserve/rest.h"

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "server/kserve/json.h"
#include "server/status.h"

namespace actsvc::server::kserve {
namespace {

constexpr absl::string_view kModels = "/v2/models/";
constexpr absl::string_view kJson = "application/json";

HttpResponse JsonResponse(std::string body) {
  HttpResponse response;
  response.content_type = std::string(kJson);
  response.body = std::move(body);
  return response;
}

HttpResponse ErrorResponse(const absl::Status& status) {
  HttpResponse response = JsonResponse(ErrorJson(status.message()));
  response.status = ToHttpStatus(status.code());
  return response;
}

template <typename Message>
HttpResponse Answer(const absl::Status& status, const Message& message) {
  if (!status.ok()) return ErrorResponse(status);
  return JsonResponse(ToJson(message));
}

// /v2/models/{model}[/versions/{version}][/{action}], split.
struct ModelPath {
  std::string model;
  std::string version;
  std::string action;  // "", "ready", "config", "stats", "infer"
};

std::optional<ModelPath> ParseModelPath(absl::string_view path) {
  if (!absl::ConsumePrefix(&path, kModels)) return std::nullopt;
  const std::vector<std::string> parts = absl::StrSplit(path, '/');
  ModelPath parsed;
  if (parts.empty() || parts[0].empty()) return std::nullopt;
  parsed.model = parts[0];
  size_t next = 1;
  if (parts.size() > 2 && parts[1] == "versions") {
    parsed.version = parts[2];
    next = 3;
  }
  if (next < parts.size()) parsed.action = parts[next++];
  if (next != parts.size()) return std::nullopt;
  return parsed;
}

// The KServe request (metadata, ready, config, statistics) of the model and
// version that `path` names.
template <typename Request>
Request ModelRequest(const ModelPath& path) {
  Request request;
  request.set_name(path.model);
  request.set_version(path.version);
  return request;
}

HttpResponse NoSuchPath(const HttpRequest& request) {
  return ErrorResponse(absl::NotFoundError(
      absl::StrCat("no such path: ", request.method, " ", request.path)));
}

HttpResponse ModelGet(const InferenceService& service,
                      const HttpRequest& request) {
  // GET /v2/models/stats: every model's.
  if (request.path == absl::StrCat(kModels, "stats")) {
    inference::ModelStatisticsResponse statistics;
    return Answer(service.ModelStatistics(inference::ModelStatisticsRequest(),
                                          &statistics),
                  statistics);
  }
  const std::optional<ModelPath> path = ParseModelPath(request.path);
  if (!path) return NoSuchPath(request);
  if (path->action.empty()) {
    inference::ModelMetadataResponse metadata;
    return Answer(
        service.ModelMetadata(
            ModelRequest<inference::ModelMetadataRequest>(*path), &metadata),
        metadata);
  }
  if (path->action == "ready") {
    // As the protocol says: 200 when ready, 4xx otherwise.
    if (!service.ModelReady(
            ModelRequest<inference::ModelReadyRequest>(*path))) {
      return ErrorResponse(absl::NotFoundError(
          absl::StrCat("model '", path->model, "' version '", path->version,
                       "' is not ready: there is no such model or version")));
    }
    return JsonResponse(
        absl::StrCat("{\"name\":\"", path->model, "\",\"ready\":true}"));
  }
  if (path->action == "config") {
    inference::ModelConfigResponse config;
    return Answer(
        service.ModelConfig(ModelRequest<inference::ModelConfigRequest>(*path),
                            &config),
        config);
  }
  if (path->action == "stats") {
    inference::ModelStatisticsResponse statistics;
    return Answer(service.ModelStatistics(
                      ModelRequest<inference::ModelStatisticsRequest>(*path),
                      &statistics),
                  statistics);
  }
  return NoSuchPath(request);
}

HttpResponse Infer(InferenceService* service, const ComputeContext& compute,
                   const HttpRequest& request) {
  const std::optional<ModelPath> path = ParseModelPath(request.path);
  if (!path || path->action != "infer") return NoSuchPath(request);
  std::optional<int64_t> header_length;
  if (const std::string* header =
          request.Header("Inference-Header-Content-Length")) {
    int64_t length;
    if (!absl::SimpleAtoi(*header, &length)) {
      return ErrorResponse(absl::InvalidArgumentError(
          absl::StrCat("Inference-Header-Content-Length is \"", *header,
                       "\", not a byte count")));
    }
    header_length = length;
  }
  inference::ModelInferRequest message;
  message.set_model_name(path->model);
  message.set_model_version(path->version);
  OutputFormat format;
  if (absl::Status s =
          ParseInferRequest(request.body, header_length, &message, &format);
      !s.ok()) {
    return ErrorResponse(s);
  }
  ComputeContext context = compute;
  context.queued_at = request.received;
  inference::ModelInferResponse response;
  int64_t elements = 0;
  int64_t json_length = -1;
  HttpResponse answer;
  const absl::Status status =
      service->Infer(message, context, &elements, &response, [&] {
        answer.body = WriteInferResponse(response, format, &json_length);
        return absl::OkStatus();
      });
  if (!status.ok()) return ErrorResponse(status);
  if (json_length >= 0) {
    answer.content_type = "application/octet-stream";
    answer.headers.emplace_back("Inference-Header-Content-Length",
                                absl::StrCat(json_length));
  } else {
    answer.content_type = std::string(kJson);
  }
  return answer;
}

}  // namespace

std::vector<HttpRoute> RestRoutes(InferenceService* service,
                                  const ComputeContext& compute) {
  std::vector<HttpRoute> routes;
  routes.push_back({"GET", "/v2/health/live", [](const HttpRequest&) {
                      return JsonResponse("{\"live\":true}");
                    }});
  routes.push_back({"GET", "/v2/health/ready", [](const HttpRequest&) {
                      return JsonResponse("{\"ready\":true}");
                    }});
  routes.push_back({"GET", "/v2", [service](const HttpRequest&) {
                      inference::ServerMetadataResponse metadata;
                      service->ServerMetadata(&metadata);
                      return JsonResponse(ToJson(metadata));
                    }});
  routes.push_back(
      {"POST", "/v2/repository/index", [service](const HttpRequest&) {
         inference::RepositoryIndexResponse index;
         service->RepositoryIndex(&index);
         return JsonResponse(ToJson(index));
       }});
  routes.push_back(
      {"GET", std::string(kModels), [service](const HttpRequest& request) {
         return ModelGet(*service, request);
       }});
  routes.push_back({"POST", std::string(kModels),
                    [service, compute](const HttpRequest& request) {
                      return Infer(service, compute, request);
                    },
                    /*compute=*/true, "ModelInfer"});
  return routes;
}

}  // namespace actsvc::server::kserve
