import t from 'tap'
import { rulesCheck } from '../../daemon/cli/rules-check.js'

const FIX = new URL('../fixtures/rules/', import.meta.url).pathname
const EXAMPLES = new URL('../../rules/examples', import.meta.url).pathname

async function run(argv: string[]) {
  let out = ''
  let err = ''
  const code = await rulesCheck(argv, { out: (s) => (out += s), err: (s) => (err += s) })
  return { code, out, err }
}

t.test('rules check: a valid directory exits 0', async (t) => {
  const r = await run([EXAMPLES])
  t.equal(r.code, 0)
  t.match(r.out, /: 4 rules valid \(rev [0-9a-f]{12}\)\n$/)
  t.equal(r.err, '')
})

t.test('rules check: every error as file:line:col: message, exit 1', async (t) => {
  const r = await run([FIX + 'broken'])
  t.equal(r.code, 1)
  const lines = r.out.trimEnd().split('\n')
  t.equal(lines.length, 3)
  t.equal(lines[0], `${FIX}broken/a-unknown.yaml:7:22: check c1: unknown identifier: y (inputs: x; signals: none)`)
  for (const l of lines) t.match(l, /^.+\.yaml:\d+:\d+: .+$/)
  t.equal(r.err, '3 errors\n')
})

t.test('rules check: usage errors exit 2; an empty directory is valid with a warning', async (t) => {
  t.equal((await run([])).code, 2)
  t.equal((await run(['a', 'b'])).code, 2)
  t.equal((await run(['--bogus', 'a'])).code, 2)
  const empty = await run([FIX + 'empty'])
  t.equal(empty.code, 0)
  t.match(empty.err, /^warning: no rule files/)
  const missing = await run([FIX + 'nope'])
  t.equal(missing.code, 1)
  t.match(missing.out, /nope:1:1: cannot read rules directory/)
})
