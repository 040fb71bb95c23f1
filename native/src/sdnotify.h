// sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET. Node has no AF_UNIX datagram sockets,
// so the daemon's systemd integration (daemon/systemd/) sends through this.
#pragma once
#include <cstddef>

namespace fc {

// Sends `len` bytes of `state` ("READY=1\nSTATUS=...") to the notification socket at `socket_path`:
// a filesystem path, or "@name" for the abstract namespace. Returns 0, or an errno value.
int sd_notify_send(const char* socket_path, const char* state, size_t len);

}  // namespace fc
