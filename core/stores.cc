#include "core/stores.h"

#include <atomic>
#include <cstring>
#include <fstream>
#include <string>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace actsvc {
namespace {

enum class Vendor { kIntel, kAmd, kOther };

Vendor ReadVendor() {
#if defined(__x86_64__) || defined(__i386__)
  unsigned int eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid(0, &eax, &ebx, &ecx, &edx) == 0) return Vendor::kOther;
  // The vendor string is EBX, EDX, ECX in that order.
  char name[13] = {};
  std::memcpy(name, &ebx, 4);
  std::memcpy(name + 4, &edx, 4);
  std::memcpy(name + 8, &ecx, 4);
  if (std::strcmp(name, "GenuineIntel") == 0) return Vendor::kIntel;
  if (std::strcmp(name, "AuthenticAMD") == 0) return Vendor::kAmd;
#endif
  return Vendor::kOther;
}

Vendor CpuVendor() {
  static const Vendor vendor = ReadVendor();
  return vendor;
}

// Whether the kernel reports gather_data_sampling (Downfall) mitigated by
// microcode, which slows every gather instruction.
bool GathersMitigated() {
  std::ifstream in(
      "/sys/devices/system/cpu/vulnerabilities/gather_data_sampling");
  std::string status;
  std::getline(in, status);
  return status.rfind("Mitigation: Microcode", 0) == 0;
}

std::atomic<NonTemporalStores> mode{NonTemporalStores::kByCpu};

}  // namespace

bool UseNonTemporalStores(StoreUse use) {
  switch (mode.load(std::memory_order_relaxed)) {
    case NonTemporalStores::kOn:
      return true;
    case NonTemporalStores::kOff:
      return false;
    case NonTemporalStores::kByCpu:
      break;
  }
  switch (use) {
    case StoreUse::kElementwise:
      return true;
    case StoreUse::kSoftmaxRows:
      return CpuVendor() != Vendor::kAmd;
    case StoreUse::kHalfTables:
      return CpuVendor() != Vendor::kIntel;
  }
  return true;
}

bool BeyondCaches(StoreUse use, size_t bytes) {
  const size_t threshold =
      use == StoreUse::kSoftmaxRows ? size_t{8} << 20 : size_t{4} << 20;
  return bytes >= threshold;
}

bool StreamOutput(StoreUse use, size_t bytes) {
  return BeyondCaches(use, bytes) && UseNonTemporalStores(use);
}

void SetNonTemporalStores(NonTemporalStores m) {
  mode.store(m, std::memory_order_relaxed);
}

bool PreferGathers() {
  static const bool prefer =
      CpuVendor() == Vendor::kIntel && !GathersMitigated();
  return prefer;
}

const char* StoreVendorName() {
  switch (CpuVendor()) {
    case Vendor::kIntel:
      return "Intel";
    case Vendor::kAmd:
      return "AMD";
    case Vendor::kOther:
      break;
  }
  return "other";
}

}  // namespace actsvc
