#include "server/method_table.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace actsvc::server {

void MethodTable::Add(Method method) { methods_.push_back(std::move(method)); }

const Method* MethodTable::Find(absl::string_view path) const {
  for (const Method& method : methods_) {
    if (method.path == path) return &method;
  }
  return nullptr;
}

absl::Status MethodTable::CallUnary(absl::string_view path,
                                    const grpc::ByteBuffer& request,
                                    const ComputeContext& context,
                                    int64_t* elements,
                                    grpc::ByteBuffer* response) const {
  const Method* method = Find(path);
  if (method == nullptr || !method->unary) {
    return absl::UnimplementedError(absl::StrCat("unknown method ", path));
  }
  return method->unary(request, context, elements, response);
}

}  // namespace actsvc::server
