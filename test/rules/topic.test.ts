import t from 'tap'
import { bindingProblem, compareSpecificity, parseFilter, renderTopic, TopicFilter, TopicTemplate } from '../../daemon/rules/topic.js'

t.test('named levels bind, + matches without binding, trailing # matches the rest', async (t) => {
  const f = TopicFilter.parse('flashcheck/inspect/{station}/torque')
  t.equal(f.mqtt, 'flashcheck/inspect/+/torque')
  t.same(f.names, ['station'])
  t.same(f.match('flashcheck/inspect/st3/torque'), { station: 'st3' })
  t.equal(f.match('flashcheck/inspect/st3/angle'), null)
  t.equal(f.match('flashcheck/inspect/st3/torque/x'), null, 'extra level')
  t.equal(f.match('flashcheck/inspect/st3'), null, 'missing level')
  t.equal(f.match('flashcheck/inspect//torque'), null, 'an empty level never binds a name')

  const g = TopicFilter.parse('plant/+/{line}/#')
  t.equal(g.mqtt, 'plant/+/+/#')
  t.same(g.match('plant/a/l1/x/y'), { line: 'l1' })
  t.same(g.match('plant/a/l1'), { line: 'l1' }, '# also matches the parent level (MQTT)')
  t.equal(g.match('plant/a'), null)
  t.same(TopicFilter.parse('a/b').match('a/b'), {})
})

t.test('wildcards at the first level do not match $ topics', async (t) => {
  t.equal(TopicFilter.parse('{x}/status').match('$SYS/status'), null)
  t.equal(TopicFilter.parse('#').match('$SYS/x'), null)
  t.same(TopicFilter.parse('$SYS/{x}').match('$SYS/y'), { x: 'y' })
})

t.test('invalid filters are reported with the offset of the bad level', async (t) => {
  t.same(parseFilter('a/#/b'), { problem: { offset: 2, message: "'#' is only allowed as the last level" } })
  t.same(parseFilter('a/x+/b'), { problem: { offset: 2, message: "invalid level 'x+': '+', '#' and {name} must fill a whole level" } })
  t.same(parseFilter('a/{1x}'), { problem: { offset: 2, message: "invalid level name '{1x}': use {letters_digits_underscores}" } })
  t.same(parseFilter('{a}/{a}'), { problem: { offset: 4, message: 'level name {a} is used twice' } })
  t.same(parseFilter(''), { problem: { offset: 0, message: 'topic must not be empty' } })
})

t.test('templates render bound names', async (t) => {
  const r = parseFilter('flashcheck/verdict/{line}/press/{press}')
  if ('problem' in r) throw new Error('unexpected')
  const tpl = new TopicTemplate('flashcheck/verdict/{line}/press/{press}', r.levels)
  t.equal(tpl.render({ line: 'L1', press: 'p7' }), 'flashcheck/verdict/L1/press/p7')
  t.same(tpl.names, ['line', 'press'])
  t.equal(renderTopic('a/{x}/b/{y}', { x: '1', y: '2' }), 'a/1/b/2')
})

t.test('specificity: literal levels before named ones before #', async (t) => {
  const fs = ['a/#', 'a/{x}/c', 'a/b/c', 'a/{x}/{y}'].map((s) => TopicFilter.parse(s))
  t.same(fs.sort(compareSpecificity).map((f) => f.source), ['a/b/c', 'a/{x}/c', 'a/{x}/{y}', 'a/#'])
})

t.test('bound values can never widen or redirect a topic: +, #, / and empty are refused', async (t) => {
  const f = TopicFilter.parse('plant/{station}/press/+/cycle')
  for (const bad of ['+', '#', 'a+', 'b#c', 'x\u0000y', '']) t.equal(f.match(`plant/${bad}/press/p1/cycle`), null, `station ${JSON.stringify(bad)} does not bind`)
  t.same(f.match('plant/st 1/press/p1/cycle'), { station: 'st 1' }, 'spaces and unicode are plain characters')
  t.same(f.match('plant/工位/press/p1/cycle'), { station: '工位' })
  const r = parseFilter('flashcheck/verdict/{line}/press')
  if ('problem' in r) throw new Error('unexpected')
  const tpl = new TopicTemplate('flashcheck/verdict/{line}/press', r.levels)
  for (const bad of ['+', '#', '/', 'a/b', '', '\u0000']) {
    t.throws(() => tpl.render({ line: bad }), { name: 'TopicBindingError' }, `render refuses ${JSON.stringify(bad)}`)
    t.throws(() => renderTopic('a/{x}/b', { x: bad }), { name: 'TopicBindingError' })
    t.ok(bindingProblem(bad), `bindingProblem(${JSON.stringify(bad)})`)
  }
  t.throws(() => tpl.render({}), /\{line\} is empty/, 'an unbound name is refused, not rendered empty')
  t.equal(bindingProblem('L1'), undefined)
})
