// What a process costs, read from /proc (Linux): for benchmark figures.
import { readdirSync, readFileSync } from 'node:fs'

/** CPU seconds (user + system) a process has used so far, all its threads. */
export function cpuSeconds(pid: number): number {
  return statSeconds(`/proc/${pid}/stat`)
}

/** CPU seconds a process has used so far in user and in kernel mode, all its threads. */
export function cpuSplit(pid: number): { user: number; sys: number } {
  return statCpu(`/proc/${pid}/stat`)
}

/** Write system calls (write, writev, sendmsg …) a process has made so far: /proc/PID/io's syscw; NaN where unreadable. */
export function writeCalls(pid: number): number {
  try {
    const m = /^syscw:\s*(\d+)$/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'))
    return m ? Number(m[1]) : NaN
  } catch {
    return NaN
  }
}

/** CPU seconds of the process's main thread alone (its event loop; Node's helper and worker threads left out). */
export function mainThreadCpuSeconds(pid: number): number {
  return statSeconds(`/proc/${pid}/task/${pid}/stat`)
}

function statSeconds(file: string): number {
  const c = statCpu(file)
  return c.user + c.sys
}

/** utime and stime (fields 14 and 15) in seconds; NaN where the file cannot be read. */
function statCpu(file: string): { user: number; sys: number } {
  try {
    const f = statFields(file)
    return { user: Number(f[14 - 3]) / 100, sys: Number(f[15 - 3]) / 100 }
  } catch {
    return { user: NaN, sys: NaN }
  }
}

/**
 * The fields of a /proc stat file after the command name, which may hold spaces and parentheses: index 0 is
 * field 3 (state), so field n of proc(5) is at n - 3. Throws when the file cannot be read.
 */
export function statFields(file: string): string[] {
  const s = readFileSync(file, 'utf8')
  return s.slice(s.lastIndexOf(')') + 2).trimEnd().split(' ')
}

/** A thread's scheduling from its stat file (/proc/self/task/TID/stat, /proc/thread-self/stat): policy (0 SCHED_OTHER, 5 SCHED_IDLE) and nice. */
export function schedOf(file: string): { policy: number; nice: number } {
  const f = statFields(file)
  return { nice: Number(f[19 - 3]), policy: Number(f[41 - 3]) }
}

/** Resident set in MiB. */
export function rssMiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m ? Number(m[1]) / 1024 : NaN
  } catch {
    return NaN
  }
}

/**
 * Times the threads of a process have gone to sleep and been woken so far (voluntary context switches, summed
 * over /proc/PID/task/TID/status): on a loaded event loop each is one return from epoll_wait. `main` is the
 * event loop's thread alone. NaN where unreadable.
 */
export function wakeups(pid: number): { main: number; all: number } {
  try {
    let all = 0
    let main = NaN
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      let n: number
      try {
        const m = /^voluntary_ctxt_switches:\s*(\d+)$/m.exec(readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8'))
        n = m ? Number(m[1]) : NaN
      } catch {
        continue // the thread ended between the listing and the read
      }
      all += n
      if (tid === String(pid)) main = n
    }
    return { main, all }
  } catch {
    return { main: NaN, all: NaN }
  }
}
