// Runs tools/train with Debian's own interpreter (its python3-torch), never another python3 on the PATH.
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { PACKAGE_ROOT } from '../../daemon/paths.js'

export const PYTHON = '/usr/bin/python3'
export const TRAIN_DIR = join(PACKAGE_ROOT, 'tools', 'train')
export const WELD_MODEL = join(PACKAGE_ROOT, 'rules', 'examples', 'model', 'weld-demo')
export const WELD_FIXTURES = join(PACKAGE_ROOT, 'test', 'fixtures', 'weld')

export interface PyResult {
  code: number | null
  stdout: string
  stderr: string
}

/** python3 ARGS (a script under tools/train, or -c CODE with tools/train on sys.path), in the repository root. */
export function python(args: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<PyResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(PYTHON, args, { cwd: PACKAGE_ROOT, env: { ...process.env, PYTHONPATH: TRAIN_DIR, PYTHONDONTWRITEBYTECODE: '1' } })
    let stdout = ''
    let stderr = ''
    p.stdout.on('data', (d) => (stdout += d))
    p.stderr.on('data', (d) => (stderr += d))
    const timer = setTimeout(() => p.kill('SIGKILL'), opts.timeoutMs ?? 120_000)
    p.once('error', reject)
    p.once('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }) })
    p.stdin.end(opts.input ?? '')
  })
}

export interface Note {
  note: string
  label: 'PASS' | 'REWORK' | 'FAIL'
}
