// sparkplug.* configuration keys: defaults, and bad ids refused with the key named.
import t from 'tap'
import { loadConfig } from '../../daemon/config/load.js'

t.test('edgeNode defaults to node.id; enabled is off by default', async (t) => {
  const c = loadConfig({ args: ['--node-id', 'gw-7'], env: {} })
  t.same(c.sparkplug, { enabled: false, group: 'flashcheck', edgeNode: 'gw-7', primaryHost: '' })
  const e = loadConfig({ args: ['--node-id', 'gw-7', '--sparkplug-enabled', 'true', '--sparkplug-edge-node', 'press-1'], env: { FLASHCHECK_SPARKPLUG_PRIMARY_HOST: 'scada' } })
  t.same(e.sparkplug, { enabled: true, group: 'flashcheck', edgeNode: 'press-1', primaryHost: 'scada' })
})

t.test('ids with /, + or # are refused, naming the key', async (t) => {
  t.throws(() => loadConfig({ args: ['--sparkplug-group', 'a/b'], env: {} }), /config error: sparkplug\.group: must be a non-empty name without '\/', '\+', '#'/)
  t.throws(() => loadConfig({ args: ['--sparkplug-group', ''], env: {} }), /sparkplug\.group/)
  t.throws(() => loadConfig({ args: ['--sparkplug-primary-host', 'x#'], env: {} }), /sparkplug\.primaryHost/)
  t.throws(() => loadConfig({ args: ['--node-id', 'gw/1', '--sparkplug-enabled', 'true'], env: {} }), /sparkplug\.edgeNode: node\.id "gw\/1" cannot be a Sparkplug edge node id/)
  t.doesNotThrow(() => loadConfig({ args: ['--node-id', 'gw/1'], env: {} }), 'only an enabled edge node needs a valid id')
})
