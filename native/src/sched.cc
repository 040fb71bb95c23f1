#include "sched.h"

#include <cerrno>

#ifdef __linux__
#include <sched.h>
#endif

namespace fc {

int sched_idle_self() {
#ifdef __linux__
  sched_param p{};
  p.sched_priority = 0;
  // pid 0 is the calling thread for Linux's sched_setscheduler.
  return sched_setscheduler(0, SCHED_IDLE, &p) == 0 ? 0 : errno;
#else
  return ENOSYS;
#endif
}

}  // namespace fc
