#include "append_map.h"

#include <algorithm>
#include <cerrno>

#ifdef __linux__
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/vfs.h>
#include <unistd.h>
#endif

namespace fc {

#ifdef __linux__

namespace {

// Filesystems whose fallocate reserves blocks that a later store into the mapping is sure to get: ext4, XFS,
// tmpfs, and overlayfs (the file lives on its upper layer). On others (copy-on-write ones such as btrfs or ZFS,
// network filesystems) a store could still need space and fail as a SIGBUS, so they are not mapped.
bool reserves(int fd) {
  struct statfs fs {};
  if (fstatfs(fd, &fs) != 0) return false;
  switch (static_cast<unsigned long>(fs.f_type)) {
    case 0xEF53UL:      // ext2/3/4
    case 0x58465342UL:  // XFS
    case 0x01021994UL:  // tmpfs
    case 0x794C7630UL:  // overlayfs
      return true;
    default:
      return false;
  }
}

}  // namespace

int AppendMap::create(const char* path, size_t capacity, AppendMap** out) {
  if (capacity == 0) return EINVAL;
  int fd = ::open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
  if (fd < 0) return errno;
  if (!reserves(fd)) {
    ::close(fd);
    unlink(path);
    return EOPNOTSUPP;
  }
  // fallocate itself, not posix_fallocate: where the filesystem cannot reserve (EOPNOTSUPP), glibc would write
  // zeros instead; the caller writes such files with write() instead.
  int err = fallocate(fd, 0, 0, static_cast<off_t>(capacity)) == 0 ? 0 : errno;
  void* p = MAP_FAILED;
  if (err == 0) {
    p = mmap(nullptr, capacity, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) err = errno;
    // No read-around on faults: a fault in a fresh segment would otherwise read (zero-fill) up to the device's
    // read-ahead around it, 8 MiB on some disks, milliseconds on the event loop. populate() brings the pages in
    // in chunks instead.
    else madvise(p, capacity, MADV_RANDOM);
  }
  if (err != 0) {
    ::close(fd);
    unlink(path);
    return err;
  }
  *out = new AppendMap(fd, static_cast<char*>(p), capacity);
  return 0;
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

void AppendMap::populate() {
  if (base_ == nullptr || populate_failed_ || populated_ >= capacity_) return;
  const size_t end = std::min(capacity_, populated_ + kPopulateChunk);
  // Linux 5.14 and later; before, pages fault in one at a time as the copies reach them.
  if (madvise(base_ + populated_, end - populated_, MADV_POPULATE_WRITE) != 0) populate_failed_ = true;
  populated_ = end;
}

int AppendMap::sync() {
  if (base_ == nullptr || size_ == synced_) return 0;
  // msync wants a page-aligned start.
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const size_t from = synced_ / page * page;
  if (msync(base_ + from, size_ - from, MS_SYNC) != 0) return errno;
  synced_ = size_;
  return 0;
}

int AppendMap::close() {
  if (base_ == nullptr) return 0;
  int err = 0;
  // The pages first, under the address space's read lock: munmap holds its write lock while it tears down the
  // page table entries (milliseconds for 16 MiB), and a page fault of any other thread, the event loop's next
  // append included, would wait that long.
  madvise(base_, capacity_, MADV_DONTNEED);
  if (munmap(base_, capacity_) != 0) err = errno;
  base_ = nullptr;
  if (ftruncate(fd_, static_cast<off_t>(size_)) != 0 && err == 0) err = errno;
  if (::close(fd_) != 0 && err == 0) err = errno;
  capacity_ = size_;
  return err;
}

#else

int AppendMap::create(const char*, size_t, AppendMap**) { return ENOSYS; }
void AppendMap::populate() {}
int AppendMap::sync() { return ENOSYS; }
int AppendMap::close() { return 0; }

#endif

AppendMap::~AppendMap() { close(); }

}  // namespace fc
