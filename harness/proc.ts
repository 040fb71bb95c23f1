// What a process costs, read from /proc (Linux): for benchmark figures.
import { readFileSync } from 'node:fs'

/** CPU seconds (user + system) a process has used so far, all its threads. */
export function cpuSeconds(pid: number): number {
  return statSeconds(`/proc/${pid}/stat`)
}

/** CPU seconds of the process's main thread alone (its event loop; Node's helper and worker threads left out). */
export function mainThreadCpuSeconds(pid: number): number {
  return statSeconds(`/proc/${pid}/task/${pid}/stat`)
}

function statSeconds(file: string): number {
  try {
    const f = readFileSync(file, 'utf8').split(') ')[1]!.split(' ')
    return (Number(f[11]) + Number(f[12])) / 100
  } catch {
    return NaN
  }
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
