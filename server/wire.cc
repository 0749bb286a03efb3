// One idea both ways (about 710 lines, under the 800 at which a file is
// split): the request reader (Strip), the response writer (Insert) and the
// in-place access to a request's values (Writable, Resend) share the Cursor,
// the found fields' pieces and the walk over the fields of a descriptor that
// lead to data fields, so they stay in one file.
#include "server/wire.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "server/memory.h"
#include "server/method_table.h"

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

// Protobuf's own limits (parse_context.h: ReadTag, ReadSize): a tag or a
// length takes at most 5 bytes, and a length stays below 2 GiB less its 16
// slop bytes. What it refuses, the skeleton must not let through.
constexpr int kMaxTagOrLengthBytes = 5;
constexpr uint64_t kMaxLength = 0x7fffffff - 16;

using Table = absl::Span<const WireField>;

// The data field `number` of messages of `type`, or nullptr.
const WireField* DataField(Table table, const Descriptor* type,
                           uint64_t number) {
  for (const WireField& f : table) {
    if (f.holder == type && static_cast<uint64_t>(f.number) == number) {
      return &f;
    }
  }
  return nullptr;
}

// Whether each occurrence of the field is a value of its own (a repeated
// bytes field), rather than one value that a second occurrence replaces or
// extends (left to protobuf).
bool IsElements(const WireField& f) {
  const FieldDescriptor* field = f.holder->FindFieldByNumber(f.number);
  return field != nullptr && field->is_repeated() &&
         field->type() == FieldDescriptor::TYPE_BYTES;
}

bool HoldsData(Table table, const Descriptor* type) {
  for (const WireField& f : table) {
    if (f.holder == type) return true;
  }
  return false;
}

// Whether messages of `type` hold data fields themselves or in a singular
// message field, at any depth.
bool CarriesData(Table table, const Descriptor* type, int depth = 0) {
  if (HoldsData(table, type)) return true;
  if (depth >= kMaxDepth) return false;
  for (int i = 0; i < type->field_count(); ++i) {
    const FieldDescriptor* field = type->field(i);
    if (field->type() == FieldDescriptor::TYPE_MESSAGE &&
        !field->is_repeated() &&
        CarriesData(table, field->message_type(), depth + 1)) {
      return true;
    }
  }
  return false;
}

// The field that leads to data fields, or nullptr.
const FieldDescriptor* DataCarrier(Table table, const Descriptor* type,
                                   uint64_t number) {
  if (number > static_cast<uint64_t>(FieldDescriptor::kMaxNumber)) {
    return nullptr;
  }
  const FieldDescriptor* field =
      type->FindFieldByNumber(static_cast<int>(number));
  if (field == nullptr || field->is_repeated() ||
      field->type() != FieldDescriptor::TYPE_MESSAGE ||
      !CarriesData(table, field->message_type())) {
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

  // A varint of at most `max_bytes` bytes; its bytes are appended to *raw.
  // Protobuf reads values in up to 10 bytes but tags and lengths in up to 5:
  // a longer one (zero padding) is malformed to it, so it must be to us.
  bool ReadVarint(uint64_t* value, std::string* raw, int max_bytes = 10) {
    *value = 0;
    for (int i = 0; i < max_bytes; ++i) {
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
  // pieces (with the index of the span each lies in) to *pieces when that is
  // not null.
  bool Take(int64_t n, std::string* out,
            std::vector<std::pair<absl::string_view, size_t>>* pieces) {
    if (n < 0 || n > size_ - position_) return false;
    while (n > 0) {
      const absl::string_view span = spans_[span_];
      const int64_t here =
          std::min<int64_t>(n, static_cast<int64_t>(span.size()) - offset_);
      const absl::string_view piece = span.substr(offset_, here);
      if (out != nullptr) out->append(piece.data(), piece.size());
      if (pieces != nullptr) pieces->emplace_back(piece, span_);
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
// message to the message that holds it, its type, the field's number, which
// value of the field it is, and its bytes.
struct FoundField {
  std::vector<int> path;
  const Descriptor* holder = nullptr;
  int number = 0;
  int index = 0;
  std::vector<std::pair<absl::string_view, size_t>> pieces;  // (bytes, slice)
  int64_t size = 0;
};

// How a request is taken apart: the protocol's data fields, what was found,
// and how often each path of field numbers was seen so far.
struct Stripping {
  Table table;
  std::vector<FoundField> found;
  std::map<std::vector<int>, int> seen;
};

// Copies the message in [cursor, end) of `type` into *skeleton, except its
// data fields, which go to st->found. False when it cannot (malformed, a
// field it reads given twice, groups): protobuf decides then.
bool Strip(Cursor* c, int64_t end, const Descriptor* type,
           std::vector<int>* path, std::string* skeleton, Stripping* st) {
  if (path->size() > kMaxDepth) return false;
  while (c->position() < end) {
    std::string tag_bytes;
    uint64_t tag = 0;
    if (!c->ReadVarint(&tag, &tag_bytes, kMaxTagOrLengthBytes)) return false;
    const uint64_t number = tag >> 3;
    const int wire_type = static_cast<int>(tag & 7);
    if (number == 0 || number > (uint64_t{1} << 29)) return false;
    const WireField* data = DataField(st->table, type, number);
    if (data != nullptr && wire_type != kLengthDelimited) {
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
        // The varint may itself run past `end`: compare after reading it.
        if (!c->ReadVarint(&length, &length_bytes, kMaxTagOrLengthBytes) ||
            length > kMaxLength || c->position() > end ||
            length > static_cast<uint64_t>(end - c->position())) {
          return false;
        }
        const int n = static_cast<int>(number);
        path->push_back(n);
        const int occurrence = st->seen[*path]++;
        if (data != nullptr) {
          if ((occurrence > 0 && !IsElements(*data)) ||
              length % static_cast<uint64_t>(data->element_size) != 0) {
            return false;
          }
          skeleton->resize(skeleton->size() - tag_bytes.size());
          FoundField field;
          field.path.assign(path->begin(), path->end() - 1);
          field.holder = type;
          field.number = n;
          field.index = occurrence;
          field.size = static_cast<int64_t>(length);
          if (!c->Take(field.size, nullptr, &field.pieces)) return false;
          st->found.push_back(std::move(field));
        } else if (const FieldDescriptor* carrier =
                       DataCarrier(st->table, type, number)) {
          if (occurrence > 0) return false;  // protobuf would merge the two
          std::string inner;
          if (!Strip(c, c->position() + static_cast<int64_t>(length),
                     carrier->message_type(), path, &inner, st)) {
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

// The path of every message in `targets` below `message`.
void FindPaths(Table table, const Message& message, std::vector<int>* path,
               const std::set<const Message*>& targets,
               std::map<std::vector<int>, const Message*>* paths) {
  if (targets.count(&message) > 0) (*paths)[*path] = &message;
  const Descriptor* type = message.GetDescriptor();
  const Reflection* reflection = message.GetReflection();
  for (int i = 0; i < type->field_count(); ++i) {
    const FieldDescriptor* field = type->field(i);
    if (DataCarrier(table, type, field->number()) == nullptr ||
        !reflection->HasField(message, field)) {
      continue;
    }
    path->push_back(field->number());
    FindPaths(table, reflection->GetMessage(message, field), path, targets,
              paths);
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
  if (static_cast<int64_t>(bytes.Length()) <= small_bytes_) {
    return ParseMessage(bytes, message);
  }
  if (!bytes.Dump(&slices_).ok()) return false;
  std::vector<absl::string_view> spans;
  spans.reserve(slices_.size());
  for (const grpc::Slice& s : slices_) {
    spans.emplace_back(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  Cursor cursor(std::move(spans));
  std::string skeleton;
  Stripping st{table_, {}, {}};
  std::vector<int> path;
  if (!Strip(&cursor, cursor.size(), message->GetDescriptor(), &path, &skeleton,
             &st)) {
    // protobuf reads it whole, and says whether it is valid.
    grpc::Slice whole;
    if (!bytes.DumpToSingleSlice(&whole).ok()) return false;
    return message->ParseFromArray(whole.begin(),
                                   static_cast<int>(whole.size()));
  }
  if (!message->ParseFromString(skeleton)) return false;
  for (FoundField& f : st.found) {
    const Message* holder = Follow(*message, f.path);
    if (holder == nullptr || holder->GetDescriptor() != f.holder) continue;
    Field field;
    field.holder = holder;
    field.number = f.number;
    field.index = f.index;
    field.size = f.size;
    for (const auto& [p, slice] : f.pieces) {
      field.pieces.push_back({p.data(), static_cast<int64_t>(p.size()), slice});
    }
    fields_.push_back(std::move(field));
  }
  return true;
}

const WireRequest::Field* WireRequest::FindField(const Message& holder,
                                                 int number, int index) const {
  for (const Field& field : fields_) {
    if (field.holder == &holder && field.number == number &&
        field.index == index) {
      return &field;
    }
  }
  return nullptr;
}

std::optional<absl::string_view> WireRequest::Find(const Message& holder,
                                                   int number, int index,
                                                   int alignment) const {
  const Field* found = FindField(holder, number, index);
  if (found == nullptr) return std::nullopt;
  const Field& field = *found;
  if (field.size == 0) return absl::string_view();
  if (field.pieces.size() == 1 &&
      reinterpret_cast<uintptr_t>(field.pieces[0].data) % alignment == 0) {
    return absl::string_view(field.pieces[0].data,
                             static_cast<size_t>(field.size));
  }
  if (field.gathered.empty()) {
    field.gathered = OwnedBuffer(field.size);
    char* to = field.gathered.get();
    for (const Piece& p : field.pieces) {
      std::memcpy(to, p.data, static_cast<size_t>(p.size));
      to += p.size;
    }
  }
  return absl::string_view(field.gathered.get(),
                           static_cast<size_t>(field.size));
}

std::optional<int64_t> WireRequest::Size(const Message& holder, int number,
                                         int index) const {
  const Field* field = FindField(holder, number, index);
  if (field == nullptr) return std::nullopt;
  return field->size;
}

int WireRequest::Count(const Message& holder, int number) const {
  int count = 0;
  for (const Field& field : fields_) {
    count += field.holder == &holder && field.number == number;
  }
  return count;
}

// In place.
//
// Why a received request's bytes may be overwritten (Writable), and sent
// back as sub-slices of its slices (Resend), when the caller says it owns
// them (ComputeContext::request_writable, set for the requests gRPC hands
// to MethodReactor in calls.cc, and nowhere else). From gRPC's sources of
// the 1.51 era (chttp2 parsing.cc, frame_data.cc, slice_buffer.cc):
//  - Over the network transport (chttp2 on TCP or a Unix socket, with TLS or
//    not), a received message's slices are sub-slices of the buffers the
//    endpoint read the socket into (or TLS decrypted into, or the
//    decompression filter wrote): grpc_chttp2_perform_read hands each DATA
//    frame's payload to the data parser as grpc_slice_sub_no_ref of the
//    read slice, grpc_chttp2_data_parser_parse refs it into the stream's
//    frame_storage, and the deframer moves the message's bytes from there
//    into the message (grpc_slice_buffer_move_first: sub-slices again, or
//    small inlined copies). A read buffer is shared, through its refcount,
//    with other frames (frame headers, HPACK blocks, other messages, other
//    calls' streams), but each byte belongs to one frame's payload, and once
//    a payload is moved into a message nothing in gRPC reads those bytes
//    again. We write only the bytes of one data field of our own message:
//    no one else reads them, and no other call's bytes are touched. Other
//    threads may meanwhile read other bytes of the same block (the
//    transport parsing the next frames): distinct bytes, no data race.
//  - An inlined slice (no refcount, at most 23 bytes) keeps its bytes in the
//    grpc_slice struct itself: Dump copied that struct into slices_, so
//    those bytes are this object's own, and grpc::Slice::sub copies them
//    (after the writes: SubSlices runs at Serialize).
//  - Not writable, and never marked so: a request from an in-process
//    channel (the inproc transport hands the receiver the sender's own
//    slices, a client's prebuilt request for instance; the server creates
//    no in-process channel), and a ByteBuffer a caller built over its own
//    or static (read-only) memory. (gRPC 1.51 has no receive zerocopy that
//    would map the socket's pages; its send zerocopy, off by default, only
//    reads the response's bytes, which are final by then.)
//  - The response's sub-slices hold references: the memory lives until
//    gRPC has written the response, well after the request is cleared.
//    They are made at Serialize, after the values were written.
std::optional<std::vector<absl::Span<char>>> WireRequest::Writable(
    const Message& holder, int number, int index) {
  const Field* found = FindField(holder, number, index);
  if (found == nullptr) return std::nullopt;
  Field& field = fields_[static_cast<size_t>(found - fields_.data())];
  field.gathered = OwnedBuffer();  // a later Find gathers what was written
  ++writable_fields_;
  std::vector<absl::Span<char>> pieces;
  pieces.reserve(field.pieces.size());
  for (const Piece& p : field.pieces) {
    // Not const memory: the transport's buffers, or slices_' own (above).
    pieces.emplace_back(const_cast<char*>(p.data), static_cast<size_t>(p.size));
  }
  return pieces;
}

std::optional<std::vector<absl::Span<const char>>> WireRequest::Readable(
    const Message& holder, int number, int index) const {
  const Field* field = FindField(holder, number, index);
  if (field == nullptr) return std::nullopt;
  std::vector<absl::Span<const char>> pieces;
  pieces.reserve(field->pieces.size());
  for (const Piece& p : field->pieces) {
    pieces.emplace_back(p.data, static_cast<size_t>(p.size));
  }
  return pieces;
}

std::vector<grpc::Slice> WireRequest::SubSlices(const Field& field) const {
  std::vector<grpc::Slice> out;
  out.reserve(field.pieces.size());
  for (const Piece& p : field.pieces) {
    const grpc::Slice& slice = slices_[p.slice];
    const size_t begin = static_cast<size_t>(
        p.data - reinterpret_cast<const char*>(slice.begin()));
    out.push_back(slice.sub(begin, begin + static_cast<size_t>(p.size)));
  }
  return out;
}

void* WireResponse::Allocate(const Message* holder, int number, int index,
                             int64_t bytes) {
  Buffer buffer;
  buffer.holder = holder;
  buffer.number = number;
  buffer.index = index;
  buffer.size = bytes;
  buffer.data = OwnedBuffer(bytes);
  buffers_.push_back(std::move(buffer));
  return buffers_.back().data.get();
}

bool WireResponse::Resend(const Message* holder, int number, int index,
                          const WireRequest& request,
                          const Message& from_holder, int from_number,
                          int from_index) {
  const WireRequest::Field* from =
      request.FindField(from_holder, from_number, from_index);
  if (from == nullptr) return false;
  Buffer buffer;
  buffer.holder = holder;
  buffer.number = number;
  buffer.index = index;
  buffer.size = from->size;
  buffer.request = &request;
  buffer.from = from;
  buffers_.push_back(std::move(buffer));
  return true;
}

namespace {

// A data field's value on its way out: its field number, which value of the
// field it is, and its bytes in slices (none for an empty one).
struct Outgoing {
  int number;
  int index;
  std::vector<grpc::Slice> slices;
  int64_t size;
};
using OutgoingAt = std::map<std::vector<int>, std::vector<Outgoing>>;

// Copies the message in [cursor, end) of `type` into *out, inserting the
// data values of `at` (by path) into their messages in field-number order,
// as protobuf would have written them.
void Insert(Table table, Cursor* c, int64_t end, const Descriptor* type,
            std::vector<int>* path, OutgoingAt* at, Pieces* out) {
  std::vector<Outgoing> pending;
  if (HoldsData(table, type)) {
    auto it = at->find(*path);
    if (it != at->end()) pending = std::move(it->second);
    std::sort(pending.begin(), pending.end(),
              [](const Outgoing& a, const Outgoing& b) {
                return std::make_pair(a.number, a.index) <
                       std::make_pair(b.number, b.index);
              });
  }
  size_t next = 0;
  auto emit_through = [&](uint64_t number) {
    for (; next < pending.size() &&
           static_cast<uint64_t>(pending[next].number) <= number;
         ++next) {
      std::string header;
      AppendVarint((uint64_t(pending[next].number) << 3) | kLengthDelimited,
                   &header);
      AppendVarint(static_cast<uint64_t>(pending[next].size), &header);
      out->AppendBytes(header);
      for (grpc::Slice& slice : pending[next].slices) {
        out->AppendSlice(std::move(slice));
      }
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
        const FieldDescriptor* carrier = DataCarrier(table, type, number);
        if (carrier == nullptr) {
          bytes.append(length_bytes);
          c->Take(static_cast<int64_t>(length), &bytes, nullptr);
          out->AppendBytes(bytes);
          break;
        }
        path->push_back(static_cast<int>(number));
        Pieces inner;
        Insert(table, c, c->position() + static_cast<int64_t>(length),
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
  if (buffers_.empty()) return SerializeMessage(response, out);
  std::set<const Message*> targets;
  for (const Buffer& b : buffers_) targets.insert(b.holder);
  std::map<std::vector<int>, const Message*> paths;
  std::vector<int> path;
  FindPaths(table_, response, &path, targets, &paths);
  OutgoingAt at;
  for (const auto& [holder_path, holder] : paths) {
    for (Buffer& b : buffers_) {
      if (b.holder != holder) continue;
      const WireField* field =
          DataField(table_, holder->GetDescriptor(), b.number);
      if (field == nullptr) continue;
      if (b.size == 0) {
        // protobuf writes an empty value of a repeated bytes field, and no
        // empty singular or packed one.
        if (IsElements(*field)) {
          at[holder_path].push_back({b.number, b.index, {}, 0});
        }
        continue;
      }
      std::vector<grpc::Slice> slices;
      if (b.request != nullptr) {
        slices = b.request->SubSlices(*b.from);
      } else {
        char* data = b.data.release();
        slices.emplace_back(data, static_cast<size_t>(b.size),
                            &FreeSliceBuffer);
      }
      at[holder_path].push_back({b.number, b.index, std::move(slices), b.size});
    }
  }
  buffers_.clear();  // buffers of no message in the response are freed
  std::string skeleton;
  if (!response.SerializeToString(&skeleton)) {
    return absl::InternalError(absl::StrCat(
        "cannot serialize the ", response.GetDescriptor()->full_name()));
  }
  Cursor cursor({skeleton});
  Pieces pieces;
  Insert(table_, &cursor, cursor.size(), response.GetDescriptor(), &path, &at,
         &pieces);
  std::vector<grpc::Slice> slices = pieces.Take();
  *out = grpc::ByteBuffer(slices.data(), slices.size());
  return absl::OkStatus();
}

}  // namespace actsvc::server
