#include "client/calls.h"

#include <utility>
#include <vector>

namespace actsvc::client {

grpc::ByteBuffer Serialize(const google::protobuf::Message& message) {
  // Once per request: one copy into a slice that every call then shares.
  grpc::Slice slice(message.SerializeAsString());
  return grpc::ByteBuffer(&slice, 1);
}

grpc::ByteBuffer BytesBuffer(absl::string_view bytes) {
  grpc::Slice slice(bytes.data(), bytes.size());
  return grpc::ByteBuffer(&slice, 1);
}

bool Parse(const grpc::ByteBuffer& buffer, google::protobuf::Message* message) {
  std::vector<grpc::Slice> slices;
  if (!buffer.Dump(&slices).ok()) return false;
  std::string bytes;
  for (const grpc::Slice& s : slices) {
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return message->ParseFromString(bytes);
}

void StartUnaryCall(grpc::GenericStub& stub, const std::string& method,
                    const grpc::ByteBuffer& request,
                    std::shared_ptr<grpc::ClientContext> context,
                    UnaryDone done) {
  struct Call {
    std::shared_ptr<grpc::ClientContext> context;
    grpc::ByteBuffer response;
    UnaryDone done;
  };
  auto* call = new Call{std::move(context), {}, std::move(done)};
  stub.UnaryCall(call->context.get(), method, grpc::StubOptions(), &request,
                 &call->response, [call](grpc::Status status) {
                   // The call's context goes first: `done` may end the run
                   // (the closed loop's last call), after which the
                   // channels and gRPC itself may be torn down.
                   UnaryDone done = std::move(call->done);
                   grpc::ByteBuffer response;
                   response.Swap(&call->response);
                   delete call;
                   done(status, &response);
                 });
}

StreamCall::StreamCall(grpc::GenericStub& stub, const std::string& method,
                       std::shared_ptr<grpc::ClientContext> context,
                       Callbacks callbacks)
    : context_(std::move(context)), callbacks_(std::move(callbacks)) {
  stub.PrepareBidiStreamingCall(context_.get(), method, grpc::StubOptions(),
                                this);
}

void StreamCall::Start() {
  StartRead(&response_);
  StartCall();
}

bool StreamCall::Write(const grpc::ByteBuffer* request) {
  Action action = Action::kNone;
  const grpc::ByteBuffer* next = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (done_) return false;
    unwritten_.push_back(request);
    action = NextActionLocked();
    next = writing_;
  }
  Act(action, next);
  return true;
}

void StreamCall::Close() {
  Action action = Action::kNone;
  const grpc::ByteBuffer* next = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    closing_ = true;
    action = NextActionLocked();
    next = writing_;
  }
  Act(action, next);
}

StreamCall::Action StreamCall::NextActionLocked() {
  if (writing_ != nullptr || done_) return Action::kNone;
  if (!unwritten_.empty()) {
    writing_ = unwritten_.front();
    unwritten_.pop_front();
    return Action::kWrite;
  }
  if (closing_ && !half_closed_) {
    half_closed_ = true;
    return Action::kWritesDone;
  }
  return Action::kNone;
}

void StreamCall::Act(Action action, const grpc::ByteBuffer* request) {
  if (action == Action::kWrite) StartWrite(request);
  if (action == Action::kWritesDone) StartWritesDone();
}

void StreamCall::OnWriteDone(bool ok) {
  Action action = Action::kNone;
  const grpc::ByteBuffer* next = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    // After a failed write the call is ending: nothing more is written.
    if (ok) {
      writing_ = nullptr;
      action = NextActionLocked();
      next = writing_;
    }
  }
  Act(action, next);
}

void StreamCall::OnReadDone(bool ok) {
  if (!ok) return;  // OnDone follows
  if (callbacks_.on_response) callbacks_.on_response(response_);
  StartRead(&response_);
}

void StreamCall::OnDone(const grpc::Status& status) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    done_ = true;
  }
  // Moved out first: the callback may delete this call.
  std::function<void(const grpc::Status&)> done = std::move(callbacks_.on_done);
  if (done) done(status);
}

}  // namespace actsvc::client
