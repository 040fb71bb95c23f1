#include "safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "json.h"

namespace fc {

const char* dtype_name(DType d) {
  switch (d) {
    case DType::F32: return "F32";
    case DType::BF16: return "BF16";
    case DType::F16: return "F16";
    default: return "?";
  }
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string o = "[";
  for (size_t i = 0; i < s.size(); i++) {
    if (i) o += ", ";
    o += std::to_string(s[i]);
  }
  return o + "]";
}

bool file_exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string read_text_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw LoadError("cannot read " + path + ": " + std::strerror(errno));
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

MappedFile::MappedFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw LoadError("cannot open " + path + ": " + std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    throw LoadError("cannot stat " + path + ": " + std::strerror(e));
  }
  size_ = size_t(st.st_size);
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int e = errno;
      ::close(fd);
      throw LoadError("cannot mmap " + path + ": " + std::strerror(e));
    }
    data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

static size_t dtype_size(const std::string& d, DType& out) {
  out = DType::Other;
  if (d == "F32") { out = DType::F32; return 4; }
  if (d == "BF16") { out = DType::BF16; return 2; }
  if (d == "F16") { out = DType::F16; return 2; }
  if (d == "F64" || d == "I64" || d == "U64") return 8;
  if (d == "I32" || d == "U32") return 4;
  if (d == "I16" || d == "U16") return 2;
  if (d == "I8" || d == "U8" || d == "BOOL" || d == "F8_E4M3" || d == "F8_E5M2") return 1;
  return 0;
}

void Checkpoint::add_file(const std::string& path, const std::string& shown,
                          const std::unordered_map<std::string, std::string>* expected) {
  auto mf = std::make_unique<MappedFile>(path);
  const uint8_t* base = mf->data();
  size_t fsize = mf->size();
  if (fsize < 8)
    throw LoadError(shown + ": truncated safetensors file (" + std::to_string(fsize) +
                    " bytes; the 8-byte header length is missing)");
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | base[i];
  const uint64_t kMaxHeader = 100ull << 20;
  if (hlen > fsize - 8)
    throw LoadError(shown + ": bad safetensors header length " + std::to_string(hlen) + " (file has only " +
                    std::to_string(fsize - 8) + " bytes after the length field; truncated or corrupt)");
  if (hlen > kMaxHeader)
    throw LoadError(shown + ": bad safetensors header length " + std::to_string(hlen) + " (over the 100 MiB limit)");
  if (hlen < 2) throw LoadError(shown + ": bad safetensors header length " + std::to_string(hlen));
  json::Value hdr;
  try {
    hdr = json::parse(reinterpret_cast<const char*>(base + 8), size_t(hlen));
  } catch (const std::exception& e) {
    throw LoadError(shown + ": corrupt safetensors header: " + e.what());
  }
  if (!hdr.is_object()) throw LoadError(shown + ": corrupt safetensors header: not a JSON object");
  const uint8_t* data = base + 8 + hlen;
  uint64_t dsize = fsize - 8 - hlen;
  for (auto& kv : hdr.obj) {
    const std::string& name = kv.first;
    if (name == "__metadata__") continue;
    const json::Value& t = kv.second;
    auto bad = [&](const std::string& why) -> LoadError {
      return LoadError(shown + ": corrupt safetensors header entry for tensor " + name + ": " + why);
    };
    if (!t.is_object()) throw bad("not an object");
    const json::Value* dt = t.get("dtype");
    const json::Value* sh = t.get("shape");
    const json::Value* off = t.get("data_offsets");
    if (!dt || !dt->is_string()) throw bad("missing dtype");
    if (!sh || !sh->is_array()) throw bad("missing shape");
    if (!off || !off->is_array() || off->arr.size() != 2) throw bad("missing data_offsets");
    TensorInfo ti;
    ti.name = name;
    ti.file = shown;
    ti.dtype_str = dt->str;
    size_t es = dtype_size(dt->str, ti.dtype);
    if (es == 0) throw bad("unknown dtype \"" + dt->str + "\"");
    // numel and numel x element size are computed with overflow checks: a crafted shape whose byte size wraps
    // around 2^64 could otherwise match a tiny byte range and be read far beyond the mapping.
    uint64_t numel = 1, bytes = 0;
    for (auto& d : sh->arr) {
      uint64_t v;
      if (!d.as_u64(v) || v > (1ull << 40)) throw bad("bad shape entry");
      ti.shape.push_back(int64_t(v));
      if (__builtin_mul_overflow(numel, v, &numel) || numel > (1ull << 62))
        throw bad("shape " + shape_str(ti.shape) + "... has more than 2^62 elements");
    }
    if (__builtin_mul_overflow(numel, uint64_t(es), &bytes) || bytes > dsize)
      throw bad("shape " + shape_str(ti.shape) + " x " + dt->str + " needs more bytes than the data region's " +
                std::to_string(dsize));
    uint64_t b, e;
    if (!off->arr[0].as_u64(b) || !off->arr[1].as_u64(e)) throw bad("data_offsets are not integers");
    if (e < b) throw bad("data_offsets [" + std::to_string(b) + ", " + std::to_string(e) + "] end before begin");
    if (e > dsize)
      throw bad("data_offsets [" + std::to_string(b) + ", " + std::to_string(e) + "] out of range (data region has " +
                std::to_string(dsize) + " bytes; truncated file?)");
    if (e - b != bytes)
      throw bad("byte range " + std::to_string(e - b) + " does not match shape " + shape_str(ti.shape) + " x " +
                dt->str + " (" + std::to_string(bytes) + " bytes)");
    ti.data = data + b;
    ti.nbytes = size_t(e - b);
    if (expected) {
      auto it = expected->find(name);
      if (it == expected->end()) continue;  // not assigned to this shard by the index: ignore
    }
    if (tensors_.count(name)) throw LoadError(shown + ": tensor " + name + " appears in more than one file");
    tensors_.emplace(name, std::move(ti));
  }
  files_.push_back(std::move(mf));
}

Checkpoint::Checkpoint(const std::string& dir) {
  std::string single = dir + "/model.safetensors";
  std::string index = dir + "/model.safetensors.index.json";
  if (file_exists(index)) {
    json::Value idx;
    try {
      idx = json::parse(read_text_file(index));
    } catch (const LoadError&) {
      throw;
    } catch (const std::exception& e) {
      throw LoadError("model.safetensors.index.json: " + std::string(e.what()));
    }
    const json::Value* wm = idx.get("weight_map");
    if (!wm || !wm->is_object()) throw LoadError("model.safetensors.index.json: missing \"weight_map\" object");
    std::unordered_map<std::string, std::string> map;
    std::vector<std::string> shards;
    std::set<std::string> seen;
    for (auto& kv : wm->obj) {
      if (!kv.second.is_string()) throw LoadError("model.safetensors.index.json: weight_map value for " + kv.first + " is not a file name");
      const std::string& f = kv.second.str;
      if (f.find('/') != std::string::npos || f.empty() || f[0] == '.')
        throw LoadError("model.safetensors.index.json: bad shard file name \"" + f + "\"");
      map[kv.first] = f;
      if (seen.insert(f).second) shards.push_back(f);
    }
    for (auto& s : shards) {
      std::string p = dir + "/" + s;
      if (!file_exists(p)) throw LoadError("shard " + s + " named in model.safetensors.index.json is missing from " + dir);
      std::unordered_map<std::string, std::string> mine;
      for (auto& kv : map)
        if (kv.second == s) mine.insert(kv);
      add_file(p, s, &mine);
    }
    for (auto& kv : map)
      if (!tensors_.count(kv.first))
        throw LoadError("tensor " + kv.first + " is mapped to " + kv.second + " by the index but that shard does not contain it");
  } else if (file_exists(single)) {
    add_file(single, "model.safetensors", nullptr);
  } else {
    throw LoadError("no model.safetensors or model.safetensors.index.json in " + dir);
  }
}

size_t Checkpoint::mapped_bytes() const {
  size_t n = 0;
  for (auto& f : files_) n += f->size();
  return n;
}

}  // namespace fc
