// Scheduling of the calling thread, for the daemon's background threads (daemon/audit's ingest worker).
#pragma once

namespace fc {

// Moves the calling thread (not the process) to SCHED_IDLE: it runs on CPU time no other thread wants, and a
// waking thread of any other policy preempts it at once. Returns 0, or an errno value (ENOSYS off Linux).
// One way for an unprivileged process: leaving SCHED_IDLE needs CAP_SYS_NICE or an RLIMIT_NICE allowance.
int sched_idle_self();

}  // namespace fc
