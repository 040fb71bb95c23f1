// See sdnotify.h. Plain POSIX so that it builds on any Linux target, x86-64 and aarch64 alike.
#include "sdnotify.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace fc {

int sd_notify_send(const char* socket_path, const char* state, size_t len) {
  if (socket_path == nullptr || state == nullptr) return EINVAL;
  size_t plen = strlen(socket_path);
  // systemd hands out "/path" or "@abstract"; anything else (vsock:, empty) is not ours to speak.
  if (plen < 2 || (socket_path[0] != '/' && socket_path[0] != '@')) return EAFNOSUPPORT;
  sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  if (plen > sizeof addr.sun_path) return ENAMETOOLONG;
  addr.sun_family = AF_UNIX;
  memcpy(addr.sun_path, socket_path, plen);
  if (addr.sun_path[0] == '@') addr.sun_path[0] = '\0';
  // Abstract names are not NUL-terminated: the address length says where the name ends. Paths get their
  // terminator when there is room for it.
  socklen_t alen = socklen_t(offsetof(sockaddr_un, sun_path) + plen + (socket_path[0] == '/' && plen < sizeof addr.sun_path ? 1 : 0));

  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  int err = 0;
  ssize_t n;
  do {
    n = sendto(fd, state, len, MSG_NOSIGNAL, reinterpret_cast<const sockaddr*>(&addr), alen);
  } while (n < 0 && errno == EINTR);
  if (n < 0) err = errno;
  else if (size_t(n) != len) err = EMSGSIZE;
  close(fd);
  return err;
}

}  // namespace fc
