// One idea both ways (about 500 lines): the request reader (Strip) and the
// response writer (Insert) share the Cursor and the walk over the Tensor-
// carrying fields of a descriptor, so they stay in one file.
#include "server/v1/wire.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "server/memory.h"

namespace actsvc::server {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

constexpr int kVarint = 0;
constexpr int kFixed64 = 1;
constexpr int kLengthDelimited = 2;
constexpr int kFixed32 = 5;

// Nesting deeper than this is left to protobuf (our messages nest 3 deep).
constexpr int kMaxDepth = 16;

bool IsTensor(const Descriptor* type) {
  return type == v1::Tensor::descriptor();
}

// The Tensor fields whose bytes travel apart, and their element sizes (0:
// bytes). A data field given unpacked is left to protobuf.
int DataFieldElementSize(int number) {
  switch (number) {
    case v1::Tensor::kRawDataFieldNumber:
      return 1;
    case v1::Tensor::kFloatDataFieldNumber:
      return 4;
    case v1::Tensor::kDoubleDataFieldNumber:
      return 8;
    default:
      return 0;
  }
}

// Whether messages of `type` hold a Tensor in a singular message field, at
// any depth (a Tensor counts).
bool CarriesTensors(const Descriptor* type, int depth = 0) {
  if (IsTensor(type)) return true;
  if (depth >= kMaxDepth) return false;
  for (int i = 0; i < type->field_count(); ++i) {
    const FieldDescriptor* field = type->field(i);
    if (field->type() == FieldDescriptor::TYPE_MESSAGE &&
        !field->is_repeated() &&
        CarriesTensors(field->message_type(), depth + 1)) {
      return true;
    }
  }
  return false;
}

// The field that leads to Tensors, or nullptr.
const FieldDescriptor* TensorCarrier(const Descriptor* type, uint32_t number) {
  const FieldDescriptor* field = type->FindFieldByNumber(number);
  if (field == nullptr || field->is_repeated() ||
      field->type() != FieldDescriptor::TYPE_MESSAGE ||
      !CarriesTensors(field->message_type())) {
    return nullptr;
  }
  return field;
}

void AppendVarint(uint64_t value, std::string* out) {
  while (value >= 0x80) {
    out->push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out->push_back(static_cast<char>(value));
}

// A forward reader over the bytes of a message held in pieces.
class Cursor {
 public:
  explicit Cursor(std::vector<absl::string_view> spans)
      : spans_(std::move(spans)) {
    for (absl::string_view s : spans_) size_ += static_cast<int64_t>(s.size());
    SkipEmptySpans();
  }

  int64_t position() const { return position_; }
  int64_t size() const { return size_; }

  // A varint of at most 10 bytes; its bytes are appended to *raw.
  bool ReadVarint(uint64_t* value, std::string* raw) {
    *value = 0;
    for (int i = 0; i < 10; ++i) {
      if (position_ >= size_) return false;
      const auto byte = static_cast<uint8_t>(spans_[span_][offset_]);
      raw->push_back(static_cast<char>(byte));
      Advance(1);
      *value |= uint64_t{byte & 0x7fu} << (7 * i);
      if ((byte & 0x80) == 0) return true;
    }
    return false;
  }

  // The next n bytes: appended to *out when it is not null, and their
  // pieces to *pieces when that is not null.
  bool Take(int64_t n, std::string* out,
            std::vector<absl::string_view>* pieces) {
    if (n < 0 || n > size_ - position_) return false;
    while (n > 0) {
      const absl::string_view span = spans_[span_];
      const int64_t here =
          std::min<int64_t>(n, static_cast<int64_t>(span.size()) - offset_);
      const absl::string_view piece = span.substr(offset_, here);
      if (out != nullptr) out->append(piece.data(), piece.size());
      if (pieces != nullptr) pieces->push_back(piece);
      Advance(here);
      n -= here;
    }
    return true;
  }

 private:
  void Advance(int64_t n) {
    position_ += n;
    offset_ += n;
    SkipEmptySpans();
  }
  void SkipEmptySpans() {
    while (span_ < spans_.size() &&
           offset_ >= static_cast<int64_t>(spans_[span_].size())) {
      offset_ -= static_cast<int64_t>(spans_[span_].size());
      ++span_;
    }
  }

  std::vector<absl::string_view> spans_;
  size_t span_ = 0;
  int64_t offset_ = 0;
  int64_t position_ = 0;
  int64_t size_ = 0;
};

// A data field found in a request: the path of field numbers from the
// message to its Tensor, its number and its bytes.
struct FoundField {
  std::vector<int> path;
  int number = 0;
  std::vector<absl::string_view> pieces;
  int64_t size = 0;
};

// Copies the message in [cursor, end) of `type` into *skeleton, except the
// data fields of its Tensors, which go to *found. False when it cannot
// (malformed, a field it reads given twice, groups): protobuf decides then.
bool Strip(Cursor* c, int64_t end, const Descriptor* type,
           std::vector<int>* path, std::string* skeleton,
           std::vector<FoundField>* found, std::set<std::vector<int>>* seen) {
  if (path->size() > kMaxDepth) return false;
  while (c->position() < end) {
    std::string tag_bytes;
    uint64_t tag = 0;
    if (!c->ReadVarint(&tag, &tag_bytes)) return false;
    const uint64_t number = tag >> 3;
    const int wire_type = static_cast<int>(tag & 7);
    if (number == 0 || number > (uint64_t{1} << 29)) return false;
    if (IsTensor(type) && DataFieldElementSize(static_cast<int>(number)) > 0 &&
        wire_type != kLengthDelimited) {
      return false;  // unpacked values: protobuf merges them
    }
    skeleton->append(tag_bytes);
    switch (wire_type) {
      case kVarint: {
        uint64_t ignored;
        if (!c->ReadVarint(&ignored, skeleton)) return false;
        break;
      }
      case kFixed64:
        if (!c->Take(8, skeleton, nullptr)) return false;
        break;
      case kFixed32:
        if (!c->Take(4, skeleton, nullptr)) return false;
        break;
      case kLengthDelimited: {
        std::string length_bytes;
        uint64_t length = 0;
        if (!c->ReadVarint(&length, &length_bytes) ||
            length > static_cast<uint64_t>(end - c->position())) {
          return false;
        }
        const int n = static_cast<int>(number);
        path->push_back(n);
        const bool first = seen->insert(*path).second;
        if (IsTensor(type) && DataFieldElementSize(n) > 0) {
          if (!first || length % DataFieldElementSize(n) != 0) return false;
          skeleton->resize(skeleton->size() - tag_bytes.size());
          FoundField field;
          field.path.assign(path->begin(), path->end() - 1);
          field.number = n;
          field.size = static_cast<int64_t>(length);
          if (!c->Take(field.size, nullptr, &field.pieces)) return false;
          found->push_back(std::move(field));
        } else if (const FieldDescriptor* carrier = TensorCarrier(type, n)) {
          if (!first) return false;  // protobuf would merge the two
          std::string inner;
          if (!Strip(c, c->position() + static_cast<int64_t>(length),
                     carrier->message_type(), path, &inner, found, seen)) {
            return false;
          }
          AppendVarint(inner.size(), skeleton);
          skeleton->append(inner);
        } else {
          skeleton->append(length_bytes);
          if (!c->Take(static_cast<int64_t>(length), skeleton, nullptr)) {
            return false;
          }
        }
        path->pop_back();
        break;
      }
      default:
        return false;  // groups and invalid wire types
    }
  }
  return c->position() == end;
}

// The message at `path` below `root`, or nullptr when a field on the way is
// not set (a oneof case replaced later in the bytes).
const Message* Follow(const Message& root, const std::vector<int>& path) {
  const Message* message = &root;
  for (int number : path) {
    const FieldDescriptor* field =
        message->GetDescriptor()->FindFieldByNumber(number);
    const Reflection* reflection = message->GetReflection();
    if (field == nullptr || !reflection->HasField(*message, field)) {
      return nullptr;
    }
    message = &reflection->GetMessage(*message, field);
  }
  return message;
}

// The path of every Tensor in `targets` below `message`.
void FindPaths(const Message& message, std::vector<int>* path,
               const std::set<const Message*>& targets,
               std::map<std::vector<int>, const Message*>* paths) {
  if (targets.count(&message) > 0) (*paths)[*path] = &message;
  const Descriptor* type = message.GetDescriptor();
  const Reflection* reflection = message.GetReflection();
  for (int i = 0; i < type->field_count(); ++i) {
    const FieldDescriptor* field = type->field(i);
    if (TensorCarrier(type, field->number()) == nullptr ||
        !reflection->HasField(message, field)) {
      continue;
    }
    path->push_back(field->number());
    FindPaths(reflection->GetMessage(message, field), path, targets, paths);
    path->pop_back();
  }
}

void FreeSliceBuffer(void* block, size_t bytes) {
  FreeBuffer(block, static_cast<int64_t>(bytes));
}

// The bytes of a response: the skeleton's copied, the data buffers'
// handed over.
class Pieces {
 public:
  void AppendBytes(absl::string_view bytes) {
    small_.append(bytes.data(), bytes.size());
    size_ += static_cast<int64_t>(bytes.size());
  }
  void AppendSlice(grpc::Slice slice) {
    Flush();
    size_ += static_cast<int64_t>(slice.size());
    slices_.push_back(std::move(slice));
  }
  void AppendPieces(Pieces&& other) {
    other.Flush();
    Flush();
    size_ += other.size_;
    for (grpc::Slice& s : other.slices_) slices_.push_back(std::move(s));
  }
  int64_t size() const { return size_; }
  std::vector<grpc::Slice> Take() {
    Flush();
    return std::move(slices_);
  }

 private:
  void Flush() {
    if (small_.empty()) return;
    slices_.emplace_back(small_);
    small_.clear();
  }
  std::string small_;
  std::vector<grpc::Slice> slices_;
  int64_t size_ = 0;
};

}  // namespace

OwnedBuffer::OwnedBuffer(int64_t bytes)
    : data_(static_cast<char*>(AllocateBuffer(bytes))), size_(bytes) {}

OwnedBuffer::~OwnedBuffer() { FreeBuffer(data_, size_); }

OwnedBuffer& OwnedBuffer::operator=(OwnedBuffer&& other) noexcept {
  if (this != &other) {
    FreeBuffer(data_, size_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = other.size_;
  }
  return *this;
}

bool WireRequest::Parse(const grpc::ByteBuffer& bytes, Message* message) {
  slices_.clear();
  fields_.clear();
  if (!bytes.Dump(&slices_).ok()) return false;
  std::vector<absl::string_view> spans;
  spans.reserve(slices_.size());
  for (const grpc::Slice& s : slices_) {
    spans.emplace_back(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  Cursor cursor(std::move(spans));
  std::string skeleton;
  std::vector<FoundField> found;
  std::vector<int> path;
  std::set<std::vector<int>> seen;
  if (!Strip(&cursor, cursor.size(), message->GetDescriptor(), &path, &skeleton,
             &found, &seen)) {
    // protobuf reads it whole, and says whether it is valid.
    found.clear();
    grpc::Slice whole;
    if (!bytes.DumpToSingleSlice(&whole).ok()) return false;
    return message->ParseFromArray(whole.begin(),
                                   static_cast<int>(whole.size()));
  }
  if (!message->ParseFromString(skeleton)) return false;
  for (FoundField& f : found) {
    const Message* tensor = Follow(*message, f.path);
    if (tensor == nullptr || !IsTensor(tensor->GetDescriptor())) continue;
    Field field;
    field.tensor = static_cast<const v1::Tensor*>(tensor);
    field.number = f.number;
    field.size = f.size;
    for (absl::string_view p : f.pieces) {
      field.pieces.push_back({p.data(), static_cast<int64_t>(p.size())});
    }
    fields_.push_back(std::move(field));
  }
  return true;
}

absl::string_view WireRequest::Bytes(const v1::Tensor& tensor, int number,
                                     int alignment) const {
  for (const Field& field : fields_) {
    if (field.tensor != &tensor || field.number != number) continue;
    if (field.size == 0) return {};
    if (field.pieces.size() == 1 &&
        reinterpret_cast<uintptr_t>(field.pieces[0].data) % alignment == 0) {
      return {field.pieces[0].data, static_cast<size_t>(field.size)};
    }
    if (field.gathered.empty()) {
      field.gathered = OwnedBuffer(field.size);
      char* to = field.gathered.get();
      for (const Piece& p : field.pieces) {
        std::memcpy(to, p.data, static_cast<size_t>(p.size));
        to += p.size;
      }
    }
    return {field.gathered.get(), static_cast<size_t>(field.size)};
  }
  return TensorData::Bytes(tensor, number, alignment);
}

void* WireResponse::Allocate(const v1::Tensor* tensor, int number,
                             int64_t bytes) {
  Buffer buffer;
  buffer.tensor = tensor;
  buffer.number = number;
  buffer.size = bytes;
  buffer.data = OwnedBuffer(bytes);
  buffers_.push_back(std::move(buffer));
  return buffers_.back().data.get();
}

namespace {

// Copies the message in [cursor, end) of `type` into *out, inserting each
// buffer of `at` (by path) into its Tensor in field-number order, as
// protobuf would have written it.
void Insert(
    Cursor* c, int64_t end, const Descriptor* type, std::vector<int>* path,
    std::map<std::vector<int>, std::vector<std::pair<int, grpc::Slice>>>* at,
    Pieces* out) {
  std::vector<std::pair<int, grpc::Slice>> pending;
  if (IsTensor(type)) {
    auto it = at->find(*path);
    if (it != at->end()) pending = std::move(it->second);
    std::sort(pending.begin(), pending.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
  }
  size_t next = 0;
  auto emit_through = [&](uint64_t number) {
    for (; next < pending.size() &&
           static_cast<uint64_t>(pending[next].first) <= number;
         ++next) {
      std::string header;
      AppendVarint((uint64_t(pending[next].first) << 3) | kLengthDelimited,
                   &header);
      AppendVarint(pending[next].second.size(), &header);
      out->AppendBytes(header);
      out->AppendSlice(std::move(pending[next].second));
    }
  };
  // The skeleton is protobuf's own output: well formed.
  while (c->position() < end) {
    std::string bytes;
    uint64_t tag = 0;
    c->ReadVarint(&tag, &bytes);
    const uint64_t number = tag >> 3;
    emit_through(number - 1);
    switch (static_cast<int>(tag & 7)) {
      case kVarint: {
        uint64_t ignored;
        c->ReadVarint(&ignored, &bytes);
        out->AppendBytes(bytes);
        break;
      }
      case kFixed64:
        c->Take(8, &bytes, nullptr);
        out->AppendBytes(bytes);
        break;
      case kFixed32:
        c->Take(4, &bytes, nullptr);
        out->AppendBytes(bytes);
        break;
      case kLengthDelimited: {
        std::string length_bytes;
        uint64_t length = 0;
        c->ReadVarint(&length, &length_bytes);
        const FieldDescriptor* carrier =
            TensorCarrier(type, static_cast<int>(number));
        if (carrier == nullptr) {
          bytes.append(length_bytes);
          c->Take(static_cast<int64_t>(length), &bytes, nullptr);
          out->AppendBytes(bytes);
          break;
        }
        path->push_back(static_cast<int>(number));
        Pieces inner;
        Insert(c, c->position() + static_cast<int64_t>(length),
               carrier->message_type(), path, at, &inner);
        path->pop_back();
        AppendVarint(static_cast<uint64_t>(inner.size()), &bytes);
        out->AppendBytes(bytes);
        out->AppendPieces(std::move(inner));
        break;
      }
    }
  }
  emit_through(~uint64_t{0});
}

}  // namespace

absl::Status WireResponse::Serialize(const Message& response,
                                     grpc::ByteBuffer* out) {
  std::set<const Message*> targets;
  for (const Buffer& b : buffers_) targets.insert(b.tensor);
  std::map<std::vector<int>, const Message*> paths;
  std::vector<int> path;
  FindPaths(response, &path, targets, &paths);
  std::map<std::vector<int>, std::vector<std::pair<int, grpc::Slice>>> at;
  for (const auto& [tensor_path, tensor] : paths) {
    for (Buffer& b : buffers_) {
      // protobuf writes no empty field.
      if (b.tensor != tensor || b.size == 0) continue;
      char* data = b.data.release();
      at[tensor_path].emplace_back(
          b.number,
          grpc::Slice(data, static_cast<size_t>(b.size), &FreeSliceBuffer));
    }
  }
  buffers_.clear();  // buffers of no tensor in the response are freed
  std::string skeleton;
  if (!response.SerializeToString(&skeleton)) {
    return absl::InternalError(absl::StrCat(
        "cannot serialize the ", response.GetDescriptor()->full_name()));
  }
  Cursor cursor({skeleton});
  Pieces pieces;
  Insert(&cursor, cursor.size(), response.GetDescriptor(), &path, &at, &pieces);
  std::vector<grpc::Slice> slices = pieces.Take();
  *out = grpc::ByteBuffer(slices.data(), slices.size());
  return absl::OkStatus();
}

}  // namespace actsvc::server
