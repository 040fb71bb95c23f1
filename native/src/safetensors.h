// Memory-mapped safetensors checkpoints (single file or sharded with an index).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

namespace fc {

enum class DType { F32, BF16, F16, Other };

const char* dtype_name(DType d);

struct TensorInfo {
  std::string name;
  std::string dtype_str;  // as written in the header
  DType dtype = DType::Other;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // points into the mapping
  size_t nbytes = 0;
  std::string file;
  int64_t numel() const {
    int64_t n = 1;
    for (auto d : shape) n *= d;
    return n;
  }
};

std::string shape_str(const std::vector<int64_t>& s);

class MappedFile {
 public:
  explicit MappedFile(const std::string& path);  // throws LoadError
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

struct LoadError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Checkpoint {
 public:
  // Opens DIR/model.safetensors or the shards named by DIR/model.safetensors.index.json.
  explicit Checkpoint(const std::string& dir);
  const TensorInfo* find(const std::string& name) const {
    auto it = tensors_.find(name);
    return it == tensors_.end() ? nullptr : &it->second;
  }
  const std::unordered_map<std::string, TensorInfo>& tensors() const { return tensors_; }
  size_t mapped_bytes() const;

 private:
  void add_file(const std::string& path, const std::string& shown_name,
                const std::unordered_map<std::string, std::string>* expected);
  std::vector<std::unique_ptr<MappedFile>> files_;
  std::unordered_map<std::string, TensorInfo> tensors_;
};

bool file_exists(const std::string& path);
std::string read_text_file(const std::string& path);  // throws LoadError

}  // namespace fc
