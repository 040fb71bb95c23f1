// The tests, benchmarks and harness are type-checked too (tsconfig.test.json): tap runs test files without a
// type check, and the build compiles only what it ships, so a stale call in a test would otherwise go unseen.
import t from 'tap'
import { join } from 'node:path'
import ts from 'typescript'
import { PACKAGE_ROOT } from '../../daemon/paths.js'

t.test('daemon, harness, bench and test compile under strict TypeScript with no error', async (t) => {
  const file = join(PACKAGE_ROOT, 'tsconfig.test.json')
  const read = ts.readConfigFile(file, ts.sys.readFile)
  t.equal(read.error, undefined, 'tsconfig.test.json reads')
  const parsed = ts.parseJsonConfigFileContent(read.config, ts.sys, PACKAGE_ROOT)
  t.same(parsed.errors, [], 'tsconfig.test.json is valid')
  t.ok(parsed.fileNames.some((f) => f.endsWith('test/house/typecheck.test.ts')), 'the test files are in the program')
  const program = ts.createProgram(parsed.fileNames, parsed.options)
  const errors = ts.getPreEmitDiagnostics(program).map((d) => {
    const text = ts.flattenDiagnosticMessageText(d.messageText, '\n')
    if (!d.file || d.start === undefined) return text
    const { line, character } = d.file.getLineAndCharacterOfPosition(d.start)
    return `${d.file.fileName.slice(PACKAGE_ROOT.length + 1)}:${line + 1}:${character + 1}: ${text}`
  })
  t.same(errors, [], `${parsed.fileNames.length} files, no type errors`)
})
