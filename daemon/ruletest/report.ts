// Reports of `flashcheck rules test`: TAP-style lines on stdout and JUnit XML for CI systems.
import { relative } from 'node:path'
import type { TestResult } from './runner.js'

/** A path as given relative to the working directory when it lies below it, else absolute. */
export function shown(file: string, cwd = process.cwd()): string {
  const r = relative(cwd, file)
  return r === '' || r.startsWith('..') ? file : r
}

/** The failing checks' values: what the windows and inputs were when the check ran. */
function context(f: TestResult['failures'][number]): string | undefined {
  const failed = f.actual?.checks.filter((c) => !c.ok)
  if (!failed?.length) return undefined
  return JSON.stringify(Object.fromEntries(failed.map((c) => [c.id, c.error ? { error: c.error, ...c.values } : c.values])))
}

/** Diagnostic lines of a failed test (without indentation). */
export function failureText(r: TestResult, cwd = process.cwd()): string[] {
  const lines: string[] = []
  if (r.error !== undefined) {
    lines.push('error: |', ...r.error.split('\n').map((l) => '  ' + l))
    return lines
  }
  for (const f of r.failures) {
    const q = f.request
    lines.push(`request: "#${f.index} at_ms ${q.atMs} on ${q.topic} (${shown(r.file, cwd)}:${q.pos.line}:${q.pos.col})"`)
    lines.push('diff: |', ...f.diff.map((l) => '  ' + l))
    const ctx = context(f)
    if (ctx) lines.push(`values: ${ctx}`)
  }
  return lines
}

export function testLabel(r: TestResult, cwd = process.cwd()): string {
  return `${shown(r.file, cwd)} › ${r.name}`
}

/** TAP-style report: `ok N - name` / `not ok N - name` with a YAML block, the plan, then `N passed, N failed`. */
export function tapReport(results: TestResult[], cwd = process.cwd()): string {
  let s = 'TAP version 14\n'
  results.forEach((r, i) => {
    s += `${r.ok ? 'ok' : 'not ok'} ${i + 1} - ${testLabel(r, cwd)}\n`
    if (!r.ok) s += '  ---\n' + failureText(r, cwd).map((l) => '  ' + l + '\n').join('') + '  ...\n'
  })
  s += `1..${results.length}\n`
  return s + summaryLine(results) + '\n'
}

export function summaryLine(results: TestResult[]): string {
  const failed = results.filter((r) => !r.ok).length
  return `${results.length - failed} passed, ${failed} failed`
}

function xml(s: string): string {
  // Characters XML 1.0 cannot carry at all are dropped; the rest escaped.
  return s.replace(/[^\x09\x0A\x0D\x20-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu, '').replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!)
}

/** JUnit XML: one testsuite per test file, one testcase per test, a failure element with the diff. */
export function junitReport(results: TestResult[], cwd = process.cwd()): string {
  const files = [...new Set(results.map((r) => r.file))]
  const secs = (ms: number) => (ms / 1000).toFixed(3)
  const failed = results.filter((r) => !r.ok).length
  const total = results.reduce((a, r) => a + r.ms, 0)
  let s = '<?xml version="1.0" encoding="UTF-8"?>\n'
  s += `<testsuites name="flashcheck rules test" tests="${results.length}" failures="${failed}" errors="0" time="${secs(total)}">\n`
  for (const f of files) {
    const rs = results.filter((r) => r.file === f)
    const name = xml(shown(f, cwd))
    s += `  <testsuite name="${name}" tests="${rs.length}" failures="${rs.filter((r) => !r.ok).length}" errors="0" time="${secs(rs.reduce((a, r) => a + r.ms, 0))}">\n`
    for (const r of rs) {
      s += `    <testcase classname="${name}" name="${xml(r.name)}" time="${secs(r.ms)}"`
      if (r.ok) {
        s += '/>\n'
        continue
      }
      const first = r.error !== undefined ? r.error.split('\n')[0]! : `request #${r.failures[0]!.index}: ${r.failures[0]!.diff.slice(0, 2).join(' ')}`
      s += `>\n      <failure message="${xml(first)}" type="${r.error !== undefined ? 'error' : 'mismatch'}">${xml(failureText(r, cwd).join('\n'))}</failure>\n    </testcase>\n`
    }
    s += '  </testsuite>\n'
  }
  return s + '</testsuites>\n'
}
