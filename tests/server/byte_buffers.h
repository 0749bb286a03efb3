// Messages as gRPC hands them over: bytes cut into slices, for the tests of
// the wire path (server/wire.h) of every protocol.
#ifndef ACTSVC_TESTS_SERVER_BYTE_BUFFERS_H_
#define ACTSVC_TESTS_SERVER_BYTE_BUFFERS_H_

#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/slice.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

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

}  // namespace actsvc::server::testing

#endif  // ACTSVC_TESTS_SERVER_BYTE_BUFFERS_H_
