// A file preallocated and mapped shared, appended to by copying into the mapping: the bytes are in the page
// cache when the copy ends (a killed process loses nothing), with no system call per append. The audit
// journal's spool (daemon/audit/spool.ts) writes its segments through it.
#pragma once
#include <cstddef>

namespace fc {

class AppendMap {
 public:
  // Creates `path` (it must not exist), reserves `capacity` bytes of disk for it and maps it. The reservation
  // is real blocks (fallocate), so a full disk shows here, as an errno, and never later as a SIGBUS on a store
  // into the mapping; a filesystem that cannot promise that (copy-on-write, network) gives EOPNOTSUPP, and a
  // system other than Linux ENOSYS. Returns 0 and sets *out, or an errno value (the file is removed again).
  static int create(const char* path, size_t capacity, AppendMap** out);
  ~AppendMap();

  // Room left for an append. Everything past size() is zero bytes, which is how a reader finds the end of
  // the data after a crash: appended text must not contain a NUL byte.
  size_t room() const { return capacity_ - size_; }
  size_t size() const { return size_; }
  char* tail() { return base_ + size_; }
  // Records that `n` bytes were copied to tail(), and faults in the next chunk of pages, writable, once the data
  // comes near the end of those faulted in: one system call per chunk instead of a page fault per page.
  void advance(size_t n) {
    size_ += n;
    if (size_ + kPopulateChunk / 2 > populated_) populate();
  }

  // The mapped bytes to the disk (msync MS_SYNC): for power loss. Returns 0 or an errno value.
  int sync();
  // Unmaps, cuts the file to the data (the unused reservation goes back) and closes it; idempotent.
  // Returns 0 or the first errno value met.
  int close();

 private:
  static constexpr size_t kPopulateChunk = 256 * 1024;
  AppendMap(int fd, char* base, size_t capacity) : fd_(fd), base_(base), capacity_(capacity) { populate(); }
  void populate();
  int fd_;
  char* base_;
  size_t capacity_;
  size_t size_ = 0;
  size_t synced_ = 0;
  size_t populated_ = 0;
  bool populate_failed_ = false;
};

}  // namespace fc
