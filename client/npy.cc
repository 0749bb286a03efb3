#include "client/npy.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "client/format.h"
#include "client/tensor.h"

namespace actsvc::client {
namespace {

constexpr absl::string_view kMagic = "\x93NUMPY";
// np.save pads the header so the data starts on a 64-byte boundary.
constexpr size_t kHeaderAlignment = 64;

// Returns the text after `'key':` in the header dictionary, or an error.
absl::StatusOr<absl::string_view> HeaderValue(absl::string_view header,
                                              absl::string_view key) {
  const std::string quoted[] = {absl::StrCat("'", key, "'"),
                                absl::StrCat("\"", key, "\"")};
  for (const std::string& q : quoted) {
    size_t pos = header.find(q);
    if (pos == absl::string_view::npos) continue;
    absl::string_view rest = header.substr(pos + q.size());
    rest = absl::StripLeadingAsciiWhitespace(rest);
    if (!absl::ConsumePrefix(&rest, ":")) break;
    return absl::StripLeadingAsciiWhitespace(rest);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("npy header has no '", key, "' entry: ", header));
}

// The descr np.save writes for `dtype` (bfloat16: its bit patterns).
absl::string_view Descr(actsvc::v1::DataType dtype) {
  switch (dtype) {
    case actsvc::v1::FLOAT64:
      return "<f8";
    case actsvc::v1::FLOAT16:
      return "<f2";
    case actsvc::v1::BFLOAT16:
      return "<u2";
    default:
      return "<f4";
  }
}

absl::StatusOr<actsvc::v1::DataType> ParseDescr(absl::string_view header) {
  absl::StatusOr<absl::string_view> value = HeaderValue(header, "descr");
  if (!value.ok()) return value.status();
  absl::string_view v = *value;
  if (v.empty() || (v[0] != '\'' && v[0] != '"')) {
    return absl::InvalidArgumentError(
        absl::StrCat("npy header: malformed 'descr': ", header));
  }
  size_t end = v.find(v[0], 1);
  if (end == absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("npy header: unterminated 'descr': ", header));
  }
  absl::string_view descr = v.substr(1, end - 1);
  // '=' is native order, which is little-endian on every host we build for.
  if (descr == "<f4" || descr == "=f4") return actsvc::v1::FLOAT32;
  if (descr == "<f8" || descr == "=f8") return actsvc::v1::FLOAT64;
  if (descr == "<f2" || descr == "=f2") return actsvc::v1::FLOAT16;
  // numpy has no bfloat16: its bit patterns travel as uint16 ('<u2'), the
  // way ml_dtypes and PyTorch's .view(torch.int16) exchange them.
  if (descr == "<u2" || descr == "=u2") return actsvc::v1::BFLOAT16;
  if (descr == ">f4" || descr == ">f8" || descr == ">f2" || descr == ">u2") {
    return absl::InvalidArgumentError(
        absl::StrCat("npy dtype '", descr,
                     "' is big-endian; convert with "
                     "arr.astype(arr.dtype.newbyteorder('<'))"));
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "npy dtype '", descr,
      "' is not supported; expected '<f4', '<f8', '<f2' (float16) or '<u2' "
      "(bfloat16 bit patterns)"));
}

absl::StatusOr<bool> ParseFortranOrder(absl::string_view header) {
  absl::StatusOr<absl::string_view> value =
      HeaderValue(header, "fortran_order");
  if (!value.ok()) return value.status();
  if (absl::StartsWith(*value, "False")) return false;
  if (absl::StartsWith(*value, "True")) return true;
  return absl::InvalidArgumentError(
      absl::StrCat("npy header: malformed 'fortran_order': ", header));
}

absl::StatusOr<std::vector<int64_t>> ParseNpyShape(absl::string_view header) {
  absl::StatusOr<absl::string_view> value = HeaderValue(header, "shape");
  if (!value.ok()) return value.status();
  absl::string_view v = *value;
  size_t close = v.find(')');
  if (!absl::ConsumePrefix(&v, "(") || close == absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("npy header: malformed 'shape': ", header));
  }
  v = v.substr(0, close - 1);
  std::vector<int64_t> shape;
  for (absl::string_view dim : absl::StrSplit(v, ',', absl::SkipWhitespace())) {
    dim = absl::StripAsciiWhitespace(dim);
    // Python 2 era files write "3L".
    absl::ConsumeSuffix(&dim, "L");
    int64_t d;
    if (!absl::SimpleAtoi(dim, &d) || d < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("npy header: bad dimension '", dim, "' in ", header));
    }
    shape.push_back(d);
  }
  return shape;
}

// "<what> <path>: <strerror>", with the code errno suggests.
absl::Status FileError(absl::string_view what, const std::string& path) {
  const int error = errno;
  const std::string message =
      absl::StrCat(what, " ", path, ": ", std::strerror(error));
  switch (error) {
    case ENOENT:
    case ENOTDIR:
      return absl::NotFoundError(message);
    case EACCES:
    case EPERM:
    case EROFS:
      return absl::PermissionDeniedError(message);
    default:
      return absl::UnknownError(message);
  }
}

}  // namespace

absl::StatusOr<NpyArray> ParseNpy(absl::string_view contents) {
  if (!absl::StartsWith(contents, kMagic) || contents.size() < 10) {
    return absl::InvalidArgumentError("not a .npy file (bad magic)");
  }
  const uint8_t major = static_cast<uint8_t>(contents[6]);
  size_t header_len;
  size_t header_start;
  if (major == 1) {
    header_len = static_cast<uint8_t>(contents[8]) |
                 (static_cast<size_t>(static_cast<uint8_t>(contents[9])) << 8);
    header_start = 10;
  } else if (major == 2 || major == 3) {
    if (contents.size() < 12) {
      return absl::InvalidArgumentError("truncated .npy header");
    }
    header_len = 0;
    for (int i = 3; i >= 0; --i) {
      header_len = (header_len << 8) | static_cast<uint8_t>(contents[8 + i]);
    }
    header_start = 12;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unsupported .npy format version ", major));
  }
  if (contents.size() < header_start + header_len) {
    return absl::InvalidArgumentError("truncated .npy header");
  }
  absl::string_view header = contents.substr(header_start, header_len);

  NpyArray array;
  absl::StatusOr<actsvc::v1::DataType> dtype = ParseDescr(header);
  if (!dtype.ok()) return dtype.status();
  array.dtype = *dtype;
  absl::StatusOr<bool> fortran = ParseFortranOrder(header);
  if (!fortran.ok()) return fortran.status();
  absl::StatusOr<std::vector<int64_t>> shape = ParseNpyShape(header);
  if (!shape.ok()) return shape.status();
  array.shape = *std::move(shape);
  // A Fortran-order array with at most one dimension > 1 has C layout too.
  int non_trivial_dims = 0;
  for (int64_t d : array.shape) non_trivial_dims += d > 1;
  if (*fortran && non_trivial_dims > 1) {
    return absl::InvalidArgumentError(
        "npy array is in Fortran order; save np.ascontiguousarray(arr)");
  }

  absl::StatusOr<int64_t> count = ElementCount(array.shape);
  if (!count.ok()) return count.status();
  const size_t expected = static_cast<size_t>(*count) * DtypeSize(array.dtype);
  absl::string_view data = contents.substr(header_start + header_len);
  if (data.size() != expected) {
    return absl::InvalidArgumentError(absl::StrCat(
        "npy data is ", data.size(), " bytes; shape ", FormatShape(array.shape),
        " of ", DtypeName(array.dtype), " needs ", expected));
  }
  array.data = std::string(data);
  return array;
}

absl::StatusOr<std::string> EncodeNpy(const NpyArray& array) {
  absl::StatusOr<int64_t> count = ElementCount(array.shape);
  if (!count.ok()) return count.status();
  if (array.data.size() !=
      static_cast<size_t>(*count) * DtypeSize(array.dtype)) {
    return absl::InvalidArgumentError(
        absl::StrCat("npy: ", array.data.size(), " bytes do not fill shape ",
                     FormatShape(array.shape), " of ", DtypeName(array.dtype)));
  }
  std::string dict = absl::StrCat("{'descr': '", Descr(array.dtype),
                                  "', 'fortran_order': False, 'shape': (",
                                  absl::StrJoin(array.shape, ", "),
                                  array.shape.size() == 1 ? ",), }" : "), }");
  // magic(6) + version(2) + length(2 or 4) + dict + padding + '\n'.
  size_t prefix = 10;
  uint8_t major = 1;
  size_t total = prefix + dict.size() + 1;
  total = (total + kHeaderAlignment - 1) / kHeaderAlignment * kHeaderAlignment;
  if (total - prefix > 0xffff) {
    major = 2;
    prefix = 12;
    total = prefix + dict.size() + 1;
    total =
        (total + kHeaderAlignment - 1) / kHeaderAlignment * kHeaderAlignment;
  }
  const size_t header_len = total - prefix;
  dict.append(header_len - dict.size() - 1, ' ');
  dict.push_back('\n');

  std::string out(kMagic);
  out.push_back(static_cast<char>(major));
  out.push_back(0);
  for (size_t i = 0; i < prefix - 8; ++i) {
    out.push_back(static_cast<char>((header_len >> (8 * i)) & 0xff));
  }
  out += dict;
  out += array.data;
  return out;
}

absl::StatusOr<NpyArray> ReadNpyFile(const std::string& path) {
  struct stat info;
  if (stat(path.c_str(), &info) != 0) return FileError("cannot open", path);
  if (S_ISDIR(info.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, " is a directory, not a .npy file"));
  }
  // Files and pipes end; devices such as /dev/zero need not.
  if (!S_ISREG(info.st_mode) && !S_ISFIFO(info.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, " is not a regular file"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return FileError("cannot open", path);
  // Read to the end rather than trusting the size: pipes have none.
  std::ostringstream contents;
  contents << in.rdbuf();
  if (in.bad()) return FileError("cannot read", path);
  absl::StatusOr<NpyArray> array = ParseNpy(contents.str());
  if (!array.ok()) {
    return absl::Status(array.status().code(),
                        absl::StrCat(path, ": ", array.status().message()));
  }
  return array;
}

absl::Status CheckNpyWritable(const std::string& path) {
  if (path.empty()) return absl::InvalidArgumentError("no file name given");
  struct stat info;
  if (stat(path.c_str(), &info) == 0) {
    if (S_ISDIR(info.st_mode)) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, " is a directory; give a file name, e.g. ", path, "/out.npy"));
    }
    if (access(path.c_str(), W_OK) != 0) return FileError("cannot write", path);
    return absl::OkStatus();
  }
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "."
                          : slash == 0               ? "/"
                                                     : path.substr(0, slash);
  if (stat(dir.c_str(), &info) != 0 || !S_ISDIR(info.st_mode)) {
    return absl::NotFoundError(
        absl::StrCat("cannot write ", path, ": no directory ", dir));
  }
  if (access(dir.c_str(), W_OK | X_OK) != 0) {
    return FileError("cannot write", path);
  }
  return absl::OkStatus();
}

absl::Status WriteNpyFile(const std::string& path, const NpyArray& array) {
  absl::StatusOr<std::string> bytes = EncodeNpy(array);
  if (!bytes.ok()) return bytes.status();
  if (absl::Status writable = CheckNpyWritable(path); !writable.ok()) {
    return writable;
  }
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return FileError("cannot write", path);
  out.write(bytes->data(), static_cast<std::streamsize>(bytes->size()));
  out.close();
  if (!out) return FileError("cannot write", path);
  return absl::OkStatus();
}

}  // namespace actsvc::client
