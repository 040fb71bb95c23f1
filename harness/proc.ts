// What a process costs, read from /proc (Linux): for benchmark figures.
import { readFileSync } from 'node:fs'

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
