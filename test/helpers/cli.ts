// Runs the built CLI (dist/) as a child process, the way operators and systemd run it.
import { spawn, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { PACKAGE_ROOT } from '../../daemon/paths.js'

export const CLI = join(PACKAGE_ROOT, 'dist', 'daemon', 'cli', 'main.js')

// `flashcheck run` refuses root unless allowed; test machines and CI run as root. Tests of the refusal itself
// set the variable to false in their own env.
process.env.FLASHCHECK_SECURITY_ALLOW_ROOT ??= 'true'

export interface CliResult {
  code: number | null
  stdout: string
  stderr: string
}

export function cli(args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [CLI, ...args], { cwd: PACKAGE_ROOT, env: { ...process.env, ...opts.env } })
    let stdout = ''
    let stderr = ''
    p.stdout.on('data', (d) => { stdout += String(d) })
    p.stderr.on('data', (d) => { stderr += String(d) })
    const timer = setTimeout(() => { p.kill('SIGKILL'); reject(new Error(`flashcheck ${args.join(' ')} timed out\n${stderr}`)) }, opts.timeoutMs ?? 20_000)
    p.once('exit', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }) })
  })
}

/** Starts a long-running CLI process and resolves once `ready` matches its output. */
export function cliProcess(args: string[], ready: RegExp, opts: { env?: NodeJS.ProcessEnv } = {}): Promise<{ proc: ChildProcess; output: () => string; exited: Promise<number | null> }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [CLI, ...args], { cwd: PACKAGE_ROOT, env: { ...process.env, ...opts.env } })
    let out = ''
    // Cleared once ready: a pending timer would keep the test process alive for its full length.
    const timer = setTimeout(() => reject(new Error(`not ready in time:\n${out}`)), 20_000)
    const exited = new Promise<number | null>((r) => proc.once('exit', (c) => r(c)))
    const onData = (d: Buffer) => {
      out += String(d)
      if (ready.test(out)) {
        clearTimeout(timer)
        resolve({ proc, output: () => out, exited })
      }
    }
    proc.stdout!.on('data', onData)
    proc.stderr!.on('data', onData)
    void exited.then((c) => reject(new Error(`exited ${c} before ready:\n${out}`)))
  })
}
