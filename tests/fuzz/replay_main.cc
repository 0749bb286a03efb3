// Replays files through a fuzz target's LLVMFuzzerTestOneInput without
// libFuzzer, so that the seed corpus and every crash found are regression
// tests in every build (gcc, clang, ASan). Usage: replay DIR...; each DIR is
// walked recursively (dot files skipped; a missing DIR counts as empty). Fails
// when no file at all was found; a crashing input aborts the process.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  int64_t total = 0;
  for (int i = 1; i < argc; ++i) {
    const fs::path dir = argv[i];
    if (!fs::is_directory(dir)) {
      std::printf("%s: no such directory, skipped\n", argv[i]);
      continue;
    }
    std::vector<fs::path> files;
    for (const fs::directory_entry& entry :
         fs::recursive_directory_iterator(dir)) {
      if (entry.is_regular_file() &&
          entry.path().filename().string().rfind('.', 0) != 0) {
        files.push_back(entry.path());
      }
    }
    std::sort(files.begin(), files.end());
    for (const fs::path& file : files) {
      std::ifstream in(file, std::ios::binary);
      const std::string bytes((std::istreambuf_iterator<char>(in)),
                              std::istreambuf_iterator<char>());
      if (!in.good() && !in.eof()) {
        std::fprintf(stderr, "cannot read %s\n", file.c_str());
        return 1;
      }
      std::fprintf(stderr, "%s\n", file.c_str());  // the culprit, on a crash
      LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()),
                             bytes.size());
    }
    std::printf("%s: %zu files replayed\n", argv[i], files.size());
    total += static_cast<int64_t>(files.size());
  }
  if (total == 0) {
    std::fprintf(stderr, "no input found: nothing was tested\n");
    return 1;
  }
  return 0;
}
