// Messages as gRPC hands them over: bytes cut into slices, for the tests of
// the wire path (server/wire.h) of every protocol.
#ifndef ACTSVC_TESTS_SERVER_BYTE_BUFFERS_H_
#define ACTSVC_TESTS_SERVER_BYTE_BUFFERS_H_

#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/slice.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "gtest/gtest.h"

namespace actsvc::server::testing {

// `bytes` cut at `cuts` (offsets, ascending) into slices of their own.
inline grpc::ByteBuffer Sliced(const std::string& bytes,
                               std::vector<size_t> cuts) {
  std::vector<grpc::Slice> slices;
  size_t from = 0;
  cuts.push_back(bytes.size());
  for (size_t cut : cuts) {
    if (cut <= from || cut > bytes.size()) continue;
    slices.emplace_back(bytes.data() + from, cut - from);
    from = cut;
  }
  return grpc::ByteBuffer(slices.data(), slices.size());
}

// The bytes of `buffer`, its slices joined.
inline std::string Flatten(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  EXPECT_TRUE(buffer.Dump(&slices).ok());
  std::string bytes;
  for (const grpc::Slice& s : slices) {
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return bytes;
}

// Whether one of `buffer`'s slices begins at `data`: the bytes there were
// sent in place, not copied.
inline ::testing::AssertionResult SentInPlace(const grpc::ByteBuffer& buffer,
                                              const void* data) {
  std::vector<grpc::Slice> slices;
  if (!buffer.Dump(&slices).ok()) {
    return ::testing::AssertionFailure() << "the buffer does not dump";
  }
  for (const grpc::Slice& s : slices) {
    if (s.begin() == data) return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure()
         << "no slice of " << slices.size() << " begins there";
}

// Ways to cut a message of `size` bytes: whole; in two at every `step`-th
// byte; in slices of 1 to 13 bytes (odd sizes, so values straddle slices
// and sit misaligned).
inline std::vector<std::vector<size_t>> Cuts(size_t size, size_t step = 7) {
  std::vector<std::vector<size_t>> ways = {{}};
  for (size_t at = 1; at < size; at += step) ways.push_back({at});
  std::mt19937 random(static_cast<uint32_t>(size));
  std::vector<size_t> small;
  for (size_t at = 1 + random() % 13; at < size; at += 1 + random() % 13) {
    small.push_back(at);
  }
  ways.push_back(small);
  return ways;
}

// Ways to cut a request whose values to compute in place start at `at`
// (`bytes` of them, values of `element` bytes): Cuts' ways, slices of one
// byte, and cuts inside the values at every offset within a value, a few
// values apart.
inline std::vector<std::vector<size_t>> InPlaceCuts(size_t size, size_t at,
                                                    size_t bytes, int element,
                                                    size_t step) {
  std::vector<std::vector<size_t>> ways = Cuts(size, step);
  std::vector<size_t> ones;
  for (size_t c = 1; c < size; ++c) ones.push_back(c);
  ways.push_back(ones);
  for (int offset = 0; offset < element; ++offset) {
    std::vector<size_t> inside;
    for (size_t c = at + static_cast<size_t>(offset); c < at + bytes;
         c += 5 * static_cast<size_t>(element) + 1) {
      inside.push_back(c);
    }
    ways.push_back(inside);
  }
  return ways;
}

inline void FreeBlock(void* block) { std::free(block); }

// A request's bytes in slices that own their memory, as the transport's
// are: refcounted, never inlined, however small (grpc::Slice's copying
// constructor would inline slices of up to 23 bytes). For the tests of
// computing in place (ComputeContext::request_writable).
class OwnedRequest {
 public:
  OwnedRequest(const std::string& bytes, std::vector<size_t> cuts) {
    std::vector<grpc::Slice> slices;
    size_t from = 0;
    cuts.push_back(bytes.size());
    for (size_t cut : cuts) {
      if (cut <= from || cut > bytes.size()) continue;
      char* block = static_cast<char*>(std::malloc(cut - from));
      std::memcpy(block, bytes.data() + from, cut - from);
      slices.emplace_back(block, cut - from, &FreeBlock);
      blocks_.emplace_back(block, cut - from);
      from = cut;
    }
    buffer_ = grpc::ByteBuffer(slices.data(), slices.size());
  }

  const grpc::ByteBuffer& buffer() const { return buffer_; }
  // The request's memory as it is now.
  std::string Bytes() const {
    std::string bytes;
    for (const absl::Span<const char> b : blocks_) {
      bytes.append(b.data(), b.size());
    }
    return bytes;
  }
  // Whether a slice of `response` lies in this request's memory.
  bool Holds(const grpc::ByteBuffer& response) const {
    std::vector<grpc::Slice> slices;
    EXPECT_TRUE(response.Dump(&slices).ok());
    for (const grpc::Slice& s : slices) {
      const char* p = reinterpret_cast<const char*>(s.begin());
      for (const absl::Span<const char> b : blocks_) {
        if (p >= b.data() && p < b.data() + b.size()) return true;
      }
    }
    return false;
  }

 private:
  std::vector<absl::Span<const char>> blocks_;
  grpc::ByteBuffer buffer_;
};

}  // namespace actsvc::server::testing

#endif  // ACTSVC_TESTS_SERVER_BYTE_BUFFERS_H_
