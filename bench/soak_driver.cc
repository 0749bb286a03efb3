#include "bench/soak_driver.h"

#include <algorithm>
#include <cstdio>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "client/calls.h"

namespace actsvc::soak {

const char* CodeName(int code) {
  static const char* const kNames[kCodes] = {"OK",
                                             "CANCELLED",
                                             "UNKNOWN",
                                             "INVALID_ARGUMENT",
                                             "DEADLINE_EXCEEDED",
                                             "NOT_FOUND",
                                             "ALREADY_EXISTS",
                                             "PERMISSION_DENIED",
                                             "RESOURCE_EXHAUSTED",
                                             "FAILED_PRECONDITION",
                                             "ABORTED",
                                             "OUT_OF_RANGE",
                                             "UNIMPLEMENTED",
                                             "INTERNAL",
                                             "UNAVAILABLE",
                                             "DATA_LOSS",
                                             "UNAUTHENTICATED"};
  return code >= 0 && code < kCodes ? kNames[code] : "?";
}

int64_t CaseTally::calls() const {
  int64_t n = 0;
  for (int64_t c : codes) n += c;
  return n;
}

CaseDriver::CaseDriver(const std::vector<Case>& cases,
                       std::shared_ptr<grpc::Channel> channel,
                       absl::Duration timeout, uint64_t seed, int show_failures)
    : cases_(cases),
      stub_(std::move(channel)),
      timeout_(timeout),
      rng_(seed),
      show_failures_(show_failures),
      tallies_(cases.size()) {
  std::vector<int> weights;
  for (const Case& c : cases_) weights.push_back(c.weight);
  draw_ = std::discrete_distribution<size_t>(weights.begin(), weights.end());
}

void CaseDriver::Run(int concurrency, absl::Duration duration, bool sequence,
                     int progress_s) {
  sequence_ = sequence;
  start_ = absl::Now();
  stop_at_ = start_ + duration;
  loop_.Run(
      concurrency,
      [this](int, std::function<void()> done) {
        return IssueNext(std::move(done));
      },
      absl::Seconds(progress_s), [this] { PrintProgress(); });
  end_ = absl::Now();
}

void CaseDriver::PrintProgress() {
  std::lock_guard<std::mutex> lock(mu_);
  const double elapsed = absl::ToDoubleSeconds(absl::Now() - start_);
  std::fprintf(stderr,
               "actsvc-soak: %6.1f s, %lld calls (%.0f/s), %lld "
               "unexpected, %d slots active\n",
               elapsed, static_cast<long long>(calls_),
               calls_ / std::max(elapsed, 1e-9),
               static_cast<long long>(failures_), loop_.active());
}

bool CaseDriver::IssueNext(std::function<void()> done) {
  size_t index;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const bool over = sequence_ ? next_in_sequence_ >= cases_.size()
                                : absl::Now() >= stop_at_;
    if (over) return false;
    index = sequence_ ? next_in_sequence_++ : draw_(rng_);
  }
  const Case& c = cases_[index];
  auto context = std::make_shared<grpc::ClientContext>();
  context->set_deadline(absl::ToChronoTime(
      absl::Now() +
      (c.deadline > absl::ZeroDuration() ? c.deadline : timeout_)));
  if (c.stream) {
    StartStream(index, std::move(context), std::move(done));
    return true;
  }
  client::StartUnaryCall(
      stub_, c.method, c.messages[0], context,
      [this, index, done = std::move(done)](const grpc::Status& status,
                                            grpc::ByteBuffer* response) {
        Outcome outcome;
        outcome.code = status.error_code();
        outcome.message = status.error_message();
        const Case& c = cases_[index];
        if (status.ok() && !c.checks.empty()) {
          outcome.wrong = c.checks[0](*response);
        }
        Finish(index, std::move(outcome));
        done();
      });
  if (c.cancel_after) Cancel(c, context);
  return true;
}

void CaseDriver::Cancel(const Case& c,
                        const std::shared_ptr<grpc::ClientContext>& context) {
  if (*c.cancel_after == absl::ZeroDuration()) {
    context->TryCancel();
  } else {
    canceller_.CancelAt(absl::Now() + *c.cancel_after, context);
  }
}

// Writes the case's messages in turn (then half-closes, unless the case
// cancels), reads and checks the responses, and may cancel after some of
// them.
void CaseDriver::StartStream(size_t index,
                             std::shared_ptr<grpc::ClientContext> context,
                             std::function<void()> done) {
  const Case& c = cases_[index];
  struct State {
    int responses = 0;  // touched by the read callbacks only
    std::string wrong;
    std::unique_ptr<client::StreamCall> call;
  };
  auto* state = new State;
  client::StreamCall::Callbacks callbacks;
  callbacks.on_response = [this, state, &c](const grpc::ByteBuffer& response) {
    const int i = state->responses++;
    if (state->wrong.empty()) {
      state->wrong = i < static_cast<int>(c.checks.size())
                         ? c.checks[i](response)
                         : absl::StrCat("an unexpected response #", i);
      if (!state->wrong.empty()) {
        state->wrong = absl::StrCat("response #", i, ": ", state->wrong);
      }
    }
    if (c.cancel_after && state->responses == c.cancel_after_responses) {
      Cancel(c, state->call->context());
    }
  };
  callbacks.on_done = [this, state, index,
                       done = std::move(done)](const grpc::Status& status) {
    Outcome outcome;
    outcome.code = status.error_code();
    outcome.message = status.error_message();
    outcome.wrong = std::move(state->wrong);
    outcome.responses = state->responses;
    delete state;  // and the call, whose last callback this is
    Finish(index, std::move(outcome));
    done();
  };
  state->call = std::make_unique<client::StreamCall>(
      stub_, c.method, std::move(context), std::move(callbacks));
  for (const grpc::ByteBuffer& message : c.messages) {
    state->call->Write(&message);
  }
  if (c.half_close) state->call->Close();
  state->call->Start();
}

namespace {

// What is wrong with a stream's number of responses, given its status.
std::string CheckResponseCount(const Case& c, const Outcome& outcome,
                               bool expected) {
  const int wanted = static_cast<int>(c.checks.size());
  if (outcome.responses == wanted) return "";
  if (outcome.code == 0) {
    return absl::StrCat("the stream ended OK after ", outcome.responses,
                        " responses, expected ", wanted);
  }
  if (expected && !c.fewer_responses_ok) {
    return absl::StrCat("the stream failed after ", outcome.responses,
                        " responses, expected ", wanted);
  }
  return "";
}

}  // namespace

void CaseDriver::Finish(size_t index, Outcome outcome) {
  const Case& c = cases_[index];
  const bool expected =
      std::find(c.expected.begin(), c.expected.end(),
                static_cast<Code>(outcome.code)) != c.expected.end();
  if (c.stream && outcome.wrong.empty()) {
    outcome.wrong = CheckResponseCount(c, outcome, expected);
  }
  const bool bad = !expected || !outcome.wrong.empty();
  std::lock_guard<std::mutex> lock(mu_);
  ++calls_;
  CaseTally& t = tallies_[index];
  if (outcome.code >= 0 && outcome.code < kCodes) ++t.codes[outcome.code];
  if (outcome.code != 0 && t.first_message.empty()) {
    t.first_message = outcome.message;
  }
  if (!bad) return;
  ++t.wrong;
  ++failures_;
  // The first failure of each case, up to show_failures_ of them.
  if (t.wrong > 1 || static_cast<int>(shown_.size()) >= show_failures_) return;
  std::vector<std::string> want;
  for (Code code : c.expected) want.push_back(CodeName(static_cast<int>(code)));
  shown_.push_back(absl::StrCat(
      c.name, ": got ", CodeName(outcome.code),
      outcome.message.empty() ? "" : absl::StrCat(" (", outcome.message, ")"),
      ", expected ", absl::StrJoin(want, " or "),
      outcome.wrong.empty() ? ""
                            : absl::StrCat("; wrong answer: ", outcome.wrong),
      absl::StrFormat(" [at %.1f s]",
                      absl::ToDoubleSeconds(absl::Now() - start_))));
}

}  // namespace actsvc::soak
