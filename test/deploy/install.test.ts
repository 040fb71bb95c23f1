// deploy/install.sh into a staging root: checked file by file, run twice (same files, same bytes), operator
// edits survive a rerun and an uninstall, the staged package runs on its own (rules check, doctor against a
// real broker), and --uninstall removes everything else.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { PACKAGE_ROOT } from '../../daemon/paths.js'
import { Mosquitto } from '../../harness/mosquitto.js'

const INSTALL = join(PACKAGE_ROOT, 'deploy', 'install.sh')
const ARCH = process.arch === 'arm64' ? 'arm64' : 'x64'
const EXAMPLES = readdirSync(join(PACKAGE_ROOT, 'rules', 'examples')).filter((f) => f.endsWith('.yaml')).sort()
const VERSION = (JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version

function install(args: string[]): { status: number | null; out: string } {
  const r = spawnSync('bash', [INSTALL, '--node', process.execPath, ...args], { encoding: 'utf8', timeout: 110_000 })
  return { status: r.status, out: r.stdout + r.stderr }
}

/** path → sha256 of a file, `-> target` of a link, `dir` of a directory, with the mode. */
function manifest(root: string): Map<string, string> {
  const out = new Map<string, string>()
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name)
      const st = lstatSync(p)
      const mode = (st.mode & 0o7777).toString(8)
      const rel = '/' + relative(root, p)
      if (st.isSymbolicLink()) out.set(rel, `-> ${readlinkSync(p)}`)
      else if (st.isDirectory()) { out.set(rel, `dir ${mode}`); walk(p) }
      else out.set(rel, `${mode} ${createHash('sha256').update(readFileSync(p)).digest('hex')}`)
    }
  }
  walk(root)
  return out
}

function diff(a: Map<string, string>, b: Map<string, string>): string[] {
  const d: string[] = []
  for (const [k, v] of a) if (b.get(k) !== v) d.push(`${k}: ${v} vs ${b.get(k) ?? 'absent'}`)
  for (const k of b.keys()) if (!a.has(k)) d.push(`${k}: absent vs ${b.get(k)}`)
  return d
}

const built = existsSync(join(PACKAGE_ROOT, 'dist', 'daemon', 'cli', 'main.js')) && existsSync(join(PACKAGE_ROOT, 'native', 'build', 'Release', 'flashcheck_kernel.node'))

t.test('install into a staging root, twice, then uninstall', { skip: built ? false : 'not built (npm ci)' }, async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'flashcheck-stage-'))
  t.teardown(() => rmSync(root, { recursive: true, force: true }))
  const R = (p: string) => join(root, p)

  const first = install(['--destdir', root])
  t.equal(first.status, 0, first.out)
  t.match(first.out, /wrote \/etc\/flashcheck\/config\.json/)

  // File by file.
  const unit = readFileSync(R('usr/lib/systemd/system/flashcheck.service'), 'utf8')
  t.match(unit, new RegExp(`^ExecStart=${process.execPath} /opt/flashcheck/dist/daemon/cli/main\\.js run --config /etc/flashcheck/config\\.json$`, 'm'), 'unit names this node and the prefix')
  t.match(unit, /^Type=notify$/m)
  t.equal(readFileSync(R('usr/lib/sysusers.d/flashcheck.conf'), 'utf8'), readFileSync(join(PACKAGE_ROOT, 'systemd', 'flashcheck.sysusers'), 'utf8'))
  t.equal(readFileSync(R('usr/lib/tmpfiles.d/flashcheck.conf'), 'utf8'), readFileSync(join(PACKAGE_ROOT, 'systemd', 'flashcheck.tmpfiles'), 'utf8'))
  t.equal(readlinkSync(R('usr/local/bin/flashcheck')), '/opt/flashcheck/bin/flashcheck', 'command on PATH links into the prefix')
  t.equal(readFileSync(R('opt/flashcheck/bin/flashcheck'), 'utf8'), `#!/bin/sh\nexec ${process.execPath} /opt/flashcheck/dist/daemon/cli/main.js "$@"\n`)
  t.equal(lstatSync(R('opt/flashcheck/bin/flashcheck')).mode & 0o777, 0o755)
  t.equal(readFileSync(R('etc/flashcheck/config.json'), 'utf8'), readFileSync(join(PACKAGE_ROOT, 'deploy', 'config.json'), 'utf8'))
  t.same(readdirSync(R('etc/flashcheck/rules')).sort(), EXAMPLES, 'example rules')
  for (const f of EXAMPLES) t.equal(readFileSync(R(`etc/flashcheck/rules/${f}`), 'utf8'), readFileSync(join(PACKAGE_ROOT, 'rules', 'examples', f), 'utf8'))
  for (const f of ['package.json', 'package-lock.json', 'README.md', 'dist/daemon/cli/main.js', 'dist/daemon/systemd/notify.js', 'native/build/Release/flashcheck_kernel.node', 'rules/schema.json', 'share/defaults/config.json', 'share/systemd/jetson-gpu.conf', 'share/systemd/cpu-affinity.conf', 'share/mosquitto/flashcheck.conf', 'share/mosquitto/flashcheck.acl', 'share/doc/JETSON.md', 'share/view/index.html', 'share/view/app.js', 'share/view/style.css', 'share/view/icon.svg', 'share/grafana/flashcheck.json']) {
    t.ok(existsSync(R(`opt/flashcheck/${f}`)), f)
  }
  t.ok(existsSync(R('opt/flashcheck/node_modules/mqtt/package.json')), 'production dependency installed')
  for (const dev of ['tap', 'typescript', 'hdr-histogram-js', '.bin']) t.notOk(existsSync(R(`opt/flashcheck/node_modules/${dev}`)), `no ${dev}`)
  const ort = R('opt/flashcheck/node_modules/onnxruntime-node/bin')
  if (existsSync(ort)) {
    for (const napi of readdirSync(ort)) {
      t.same(readdirSync(join(ort, napi)), ['linux'], `${napi}: only linux binaries`)
      t.same(readdirSync(join(ort, napi, 'linux')), [ARCH], `${napi}: only ${ARCH}`)
    }
  }
  t.notOk(existsSync(R('opt/flashcheck/daemon')), 'no TypeScript sources')
  const pageAt = spawnSync(process.execPath, ['--input-type=module', '-e', `import { pageDir } from ${JSON.stringify(R('opt/flashcheck/dist/daemon/view/server.js'))}; console.log(pageDir())`], { encoding: 'utf8' })
  t.equal(pageAt.stdout.trim(), R('opt/flashcheck/share/view'), 'the installed daemon serves its status page from share/view')

  // The staged package runs on its own: its node_modules, its addon.
  const main = R('opt/flashcheck/dist/daemon/cli/main.js')
  const ver = spawnSync(process.execPath, [main, '--version'], { encoding: 'utf8', cwd: root })
  t.equal(ver.stdout.trim(), VERSION)
  const check = spawnSync(process.execPath, [main, 'rules', 'check', R('etc/flashcheck/rules')], { encoding: 'utf8', cwd: root })
  t.equal(check.status, 0, check.stderr)
  const broker = await Mosquitto.start()
  t.teardown(() => broker.stop())
  const doc = spawnSync(process.execPath, [main, 'doctor', '--config', R('etc/flashcheck/config.json'), '--rules-dir', R('etc/flashcheck/rules'), '--mqtt-url', broker.url, '--mqtt-username', '', '--mqtt-password-file', ''], { encoding: 'utf8', cwd: root, timeout: 30_000 })
  t.equal(doc.status, 0, doc.stdout + doc.stderr)
  t.match(doc.stdout, /^PASS {2}addon +loads; sd_notify available$/m, 'the staged addon loads')

  // Idempotent: the same files with the same bytes and modes.
  const m1 = manifest(root)
  const second = install(['--destdir', root])
  t.equal(second.status, 0, second.out)
  t.notMatch(second.out, /wrote /, 'nothing written over configuration')
  t.same(diff(m1, manifest(root)), [], 'second run leaves the same tree')

  // Operator edits: a changed config and rule are kept, a deleted example stays deleted.
  const cfgPath = R('etc/flashcheck/config.json')
  const edited = readFileSync(cfgPath, 'utf8').replace('"level": "info"', '"level": "debug"')
  writeFileSync(cfgPath, edited)
  const ruleEdited = R(`etc/flashcheck/rules/${EXAMPLES[0]}`)
  writeFileSync(ruleEdited, readFileSync(ruleEdited, 'utf8') + '# tuned on line 2\n')
  rmSync(R(`etc/flashcheck/rules/${EXAMPLES[1]}`))
  const third = install(['--destdir', root])
  t.equal(third.status, 0, third.out)
  t.equal(readFileSync(cfgPath, 'utf8'), edited, 'edited config kept')
  t.equal(readFileSync(R('etc/flashcheck/config.json.dist'), 'utf8'), readFileSync(join(PACKAGE_ROOT, 'deploy', 'config.json'), 'utf8'), 'new default beside it')
  t.match(third.out, /kept \/etc\/flashcheck\/config\.json \(edited\)/)
  t.match(readFileSync(ruleEdited, 'utf8'), /# tuned on line 2\n$/, 'edited rule kept')
  t.notOk(existsSync(R(`etc/flashcheck/rules/${EXAMPLES[1]}`)), 'deleted example not brought back')

  // Uninstall: everything goes but the edited files.
  const un = install(['--destdir', root, '--uninstall'])
  t.equal(un.status, 0, un.out)
  t.match(un.out, /kept \/etc\/flashcheck\/config\.json/)
  t.match(un.out, new RegExp(`kept /etc/flashcheck/rules/${EXAMPLES[0].replace('.', '\\.')}`))
  const left = [...manifest(root).entries()].filter(([, v]) => !v.startsWith('dir')).map(([k]) => k).sort()
  t.same(left, ['/etc/flashcheck/config.json', `/etc/flashcheck/rules/${EXAMPLES[0]}`], 'only the edited files remain')
  for (const d of ['opt/flashcheck', 'usr/lib/systemd/system/flashcheck.service', 'usr/local/bin/flashcheck']) t.notOk(existsSync(R(d)), `${d} removed`)
  const again = install(['--destdir', root, '--uninstall'])
  t.equal(again.status, 0, 'uninstall twice is fine')
})

t.test('--prefix and option errors', { skip: built ? false : 'not built (npm ci)' }, async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'flashcheck-stage-'))
  t.teardown(() => rmSync(root, { recursive: true, force: true }))
  const r = install(['--destdir', root, '--prefix', '/srv/fc', '--no-enable'])
  t.equal(r.status, 0, r.out)
  t.match(readFileSync(join(root, 'usr/lib/systemd/system/flashcheck.service'), 'utf8'), /^ExecStart=\S+ \/srv\/fc\/dist\/daemon\/cli\/main\.js run /m)
  t.match(readFileSync(join(root, 'usr/lib/systemd/system/flashcheck.service'), 'utf8'), /^Documentation=file:\/srv\/fc\/README\.md$/m)
  t.equal(readlinkSync(join(root, 'usr/local/bin/flashcheck')), '/srv/fc/bin/flashcheck')
  t.ok(existsSync(join(root, 'srv/fc/dist/daemon/cli/main.js')))
  t.notOk(existsSync(join(root, 'opt')), 'nothing under the default prefix')
  t.equal(install(['--destdir', root, '--bogus']).status, 2, 'unknown option')
  t.equal(install(['--destdir', root, '--prefix', 'relative/path']).status, 2, 'relative prefix refused')
  // A prefix that is not flashcheck's own directory is never replaced or removed.
  mkdirSync(join(root, 'usr', 'bin'), { recursive: true })
  writeFileSync(join(root, 'usr', 'bin', 'precious'), 'x')
  t.equal(install(['--destdir', root, '--prefix', '/usr']).status, 2, 'foreign prefix refused')
  t.equal(install(['--destdir', root, '--prefix', '/usr', '--uninstall']).status, 2, 'foreign prefix not uninstalled')
  t.ok(existsSync(join(root, 'usr', 'bin', 'precious')), 'its files untouched')
})
