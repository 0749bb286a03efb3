// The load library's calls over gRPC's callback API, on a generic stub so
// that any method (the own API, KServe v2, health, an echo server) takes the
// same prebuilt bytes: one unary call, one bidirectional stream, and the
// message <-> buffer conversions. Shared by `actsvc bench` and the soak.
#ifndef ACTSVC_CLIENT_CALLS_H_
#define ACTSVC_CLIENT_CALLS_H_

#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"

namespace actsvc::client {

// A message as one slice that every call sending it shares (serialized once).
grpc::ByteBuffer Serialize(const google::protobuf::Message& message);
// Bytes as one slice (e.g. a message that does not parse).
grpc::ByteBuffer BytesBuffer(absl::string_view bytes);
// Parses a (possibly multi-slice) buffer into `message`; false when invalid.
bool Parse(const grpc::ByteBuffer& buffer, google::protobuf::Message* message);

// Starts one unary call of `method` sending `request` (alive until `done`
// runs). `done` runs once, on a gRPC thread, with the status and the
// response (empty unless OK), after the call has let go of `context` (a
// canceller may still hold it): so `done` may signal the end of a run.
using UnaryDone =
    std::function<void(const grpc::Status& status, grpc::ByteBuffer* response)>;
void StartUnaryCall(grpc::GenericStub& stub, const std::string& method,
                    const grpc::ByteBuffer& request,
                    std::shared_ptr<grpc::ClientContext> context,
                    UnaryDone done);

// One bidirectional stream call: writes the requests given to Write in
// order, one at a time as gRPC requires (each alive until the call ends),
// half-closes once Close was called and every request is written, and hands
// each response and then the final status to its callbacks.
class StreamCall
    : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  struct Callbacks {
    std::function<void(const grpc::ByteBuffer& response)> on_response;
    // The last callback: it may delete the StreamCall.
    std::function<void(const grpc::Status& status)> on_done;
  };

  // Prepares the call; requests may be written (and Close called) before
  // Start, which starts it: no callback runs before then.
  StreamCall(grpc::GenericStub& stub, const std::string& method,
             std::shared_ptr<grpc::ClientContext> context, Callbacks callbacks);
  void Start();

  // Queues a request; false when the call has ended (nothing is sent).
  bool Write(const grpc::ByteBuffer* request);
  // No more requests: half-closes once every queued one is written.
  void Close();
  // Stops writing and reading: the call ends CANCELLED (unless it has
  // ended).
  void Cancel() { context_->TryCancel(); }
  const std::shared_ptr<grpc::ClientContext>& context() const {
    return context_;
  }

  void OnWriteDone(bool ok) override;
  void OnReadDone(bool ok) override;
  void OnDone(const grpc::Status& status) override;

 private:
  enum class Action { kNone, kWrite, kWritesDone };
  // Decided under the lock, done outside it: a reaction may run inline.
  Action NextActionLocked();
  void Act(Action action, const grpc::ByteBuffer* request);

  std::shared_ptr<grpc::ClientContext> context_;
  Callbacks callbacks_;
  grpc::ByteBuffer response_;
  std::mutex mu_;
  std::deque<const grpc::ByteBuffer*> unwritten_;
  const grpc::ByteBuffer* writing_ = nullptr;
  bool closing_ = false;
  bool half_closed_ = false;
  bool done_ = false;
};

}  // namespace actsvc::client

#endif  // ACTSVC_CLIENT_CALLS_H_
