// The status page: polls /api/summary every 2 s, follows /events (Server-Sent Events) for the live stream and
// draws its plots as SVG. Every value that may come from MQTT is set as text (textContent, text nodes):
// nothing in this file parses data as HTML.
const SVG = 'http://www.w3.org/2000/svg'
const STREAM_ROWS = 200
const COLORS = { PASS: '#2e8540', OK: '#43a047', NOK: '#e53935', GOOD: '#43a047', NG: '#e53935', FAIL: '#c62828', REJECT: '#c62828', SCRAP: '#8e0000', WARN: '#d98c00', REWORK: '#d98c00', ERROR: '#6a1b9a' }
const PALETTE = ['#1e88e5', '#00897b', '#8d6e63', '#5e35b1', '#f4511e', '#546e7a']
const $ = (id) => document.getElementById(id)

/** An element with attributes and children; strings become text nodes. */
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) e.setAttribute(k, String(v))
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c == null ? '' : String(c)))
  return e
}

function svg(tag, attrs = {}, text) {
  const e = document.createElementNS(SVG, tag)
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v))
  if (text !== undefined) e.textContent = String(text)
  return e
}

const otherColors = new Map()
function colorOf(verdict) {
  if (COLORS[verdict]) return COLORS[verdict]
  if (!otherColors.has(verdict)) otherColors.set(verdict, PALETTE[otherColors.size % PALETTE.length])
  return otherColors.get(verdict)
}

/** A CSS class name for a verdict label (labels are rule-defined; anything else maps to a plain class). */
const vclass = (v) => (/^[A-Z_]{1,20}$/.test(v) ? `v v-${v}` : 'v')
const fmtMs = (x) => (x == null ? '–' : x < 10 ? x.toFixed(2) : x.toFixed(1))
const pct = (x) => (x == null ? '–' : `${(x * 100).toFixed(1)} %`)
function duration(s) {
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60)
  return d > 0 ? `${d}d ${h}h ${m}m` : h > 0 ? `${h}h ${m}m` : `${m}m ${s % 60}s`
}

// ── summary ──────────────────────────────────────────────────────────────────────────────────────────────

let summary = null
let failures = 0

async function poll() {
  try {
    const r = await fetch('/api/summary', { cache: 'no-store' })
    if (!r.ok) throw new Error(`HTTP ${r.status}`)
    summary = await r.json()
    failures = 0
    $('conn').textContent = ''
    render(summary)
  } catch (e) {
    if (++failures >= 2) $('conn').textContent = `daemon not answering (${e.message}); retrying`
  }
}

function render(s) {
  $('node').textContent = s.node
  $('version').textContent = s.version
  $('uptime').textContent = duration(s.uptime_s)
  const b = $('broker')
  b.textContent = s.broker
  b.className = `pill ${s.broker === 'connected' ? 'ok' : 'bad'}`
  $('rules-rev').textContent = s.rules_rev ?? '–'
  renderModel(s.model)
  $('outbox').textContent = String(s.outbox_depth)
  renderInspections(s.stats)
  syncOptions($('filter-inspection'), s.stats.map((x) => x.inspection), true)
  syncOptions($('hist-inspection'), s.stats.map((x) => x.inspection), false)
  const verdicts = new Set()
  for (const x of s.stats) for (const v of Object.keys(x.h1.verdicts)) verdicts.add(v)
  for (const v of seenVerdicts) verdicts.add(v)
  syncOptions($('filter-verdict'), [...verdicts].sort(), true)
  drawHistogram(s.stats.find((x) => x.inspection === $('hist-inspection').value))
  drawTimeline(s.timeline)
}

const reasonsText = (r) => Object.entries(r).sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k.replace('_', ' ')} ${n}`).join(', ')

/** The model: what it is, and what its verdicts of the last minute did (answering or falling back, and why). */
function renderModel(m) {
  const status = $('model-status')
  if (!m) {
    $('model').textContent = 'none (rules only)'
    status.hidden = true
    $('model-detail').textContent = ''
    return
  }
  $('model').textContent = `${m.backend} · ${m.quant} · ${m.isa}`
  status.hidden = false
  status.textContent = m.status
  status.className = `pill ${m.status === 'answering' ? 'ok' : m.status === 'idle' ? '' : m.status === 'partly falling back' ? 'warn' : 'bad'}`
  const w = m.last_minute
  const parts = []
  if (w.verdicts > 0) {
    parts.push(`${w.verdicts} model verdicts in the last ${w.seconds} s`)
    parts.push(w.fell_back > 0 ? `${pct(w.fallback_share)} fell back (${reasonsText(w.fallback_reasons)})` : 'none fell back')
    if (w.p50_ms != null) parts.push(`p50 ${fmtMs(w.p50_ms)} ms to a choice`)
  } else parts.push('no model verdicts in the last minute')
  if (m.queue_depth > 0) parts.push(`${m.queue_depth} waiting`)
  if (m.last_error) parts.push(`last error ${new Date(m.last_error.at).toLocaleTimeString()} (${m.last_error.inspection}): ${m.last_error.detail}`)
  $('model-detail').textContent = parts.join(' · ')
}

function syncOptions(select, values, withAll) {
  const have = [...select.options].map((o) => o.value).filter((v) => !withAll || v !== '')
  if (have.length === values.length && have.every((v, i) => v === values[i])) return
  const keep = select.value
  select.replaceChildren(...(withAll ? [el('option', { value: '' }, 'all')] : []), ...values.map((v) => el('option', { value: v }, v)))
  if (values.includes(keep) || (withAll && keep === '')) select.value = keep
}

function mixBar(verdicts, total) {
  const bar = el('div', { class: 'mix' })
  for (const [v, n] of Object.entries(verdicts)) {
    const span = el('span', { title: `${v}: ${n}` })
    span.style.width = `${(n / total) * 100}%`
    span.style.background = colorOf(v)
    bar.append(span)
  }
  return bar
}

function renderInspections(stats) {
  const rows = stats.map((x) => {
    const m5 = x.m5, h1 = x.h1
    const mix = el('td', { 'data-field': 'mix' })
    if (m5.requests > 0) mix.append(el('div', { class: 'mixtext' }, Object.entries(m5.verdicts).map(([v, n]) => `${v} ${n}`).join(' · ')), mixBar(m5.verdicts, m5.requests))
    else mix.append(el('span', { class: 'mixtext' }, 'no requests'))
    const fpyTitle = `parts first inspected (5 min · 1 h): ${m5.parts} · ${h1.parts}; first-pass yield = share whose first verdict was ${x.pass_label} (a part is a trace value where the rule names trace:, else a request)`
    const over = x.budget_ms != null && m5.p99_ms != null && m5.p99_ms > x.budget_ms
    return el('tr', { 'data-inspection': x.inspection },
      el('td', {}, x.inspection),
      el('td', { class: 'num', 'data-field': 'per-min' }, m5.per_min.toFixed(1)),
      mix,
      el('td', { class: 'num', 'data-field': 'fpy', title: fpyTitle }, `${pct(m5.first_pass_yield)} · ${pct(h1.first_pass_yield)}`),
      el('td', { class: `num${over ? ' over' : ''}`, 'data-field': 'latency' }, `${fmtMs(m5.p50_ms)} · ${fmtMs(m5.p99_ms)} ms`),
      el('td', { class: 'num' }, x.budget_ms == null ? '–' : `${x.budget_ms} ms`),
      el('td', { class: `num${m5.deadline_missed > 0 ? ' over' : ''}`, 'data-field': 'missed' }, `${m5.deadline_missed} · ${h1.deadline_missed}`),
      el('td', { class: 'num', 'data-field': 'fallbacks', title: h1.fallbacks > 0 ? `last hour: ${reasonsText(h1.fallback_reasons)}` : 'no model fallbacks in the last hour' }, `${m5.fallbacks} · ${h1.fallbacks}`),
      el('td', { hidden: '', 'data-field': 'requests-1h' }, String(h1.requests)),
    )
  })
  $('inspections').tBodies[0].replaceChildren(...rows)
}

// ── plots ────────────────────────────────────────────────────────────────────────────────────────────────

const W = 480, H = 180, PAD = { l: 36, r: 8, t: 10, b: 28 }

function axes(root, maxY) {
  root.append(svg('line', { x1: PAD.l, y1: H - PAD.b, x2: W - PAD.r, y2: H - PAD.b, stroke: '#9aa5b1' }))
  root.append(svg('line', { x1: PAD.l, y1: PAD.t, x2: PAD.l, y2: H - PAD.b, stroke: '#9aa5b1' }))
  root.append(svg('text', { x: PAD.l - 4, y: PAD.t + 8, 'text-anchor': 'end' }, maxY))
  root.append(svg('text', { x: PAD.l - 4, y: H - PAD.b, 'text-anchor': 'end' }, 0))
}

function drawHistogram(x) {
  const root = $('histogram')
  root.replaceChildren()
  if (!x) return
  // Buckets up to the one holding the largest latency seen, at least up to the budget.
  let last = 0
  x.histogram.forEach((b, i) => { if (b.n > 0) last = i })
  const budgetIdx = x.histogram.findIndex((b) => b.le_ms != null && x.budget_ms != null && b.le_ms >= x.budget_ms)
  const bins = x.histogram.slice(0, Math.max(last, budgetIdx, 5) + 1)
  const maxN = Math.max(1, ...bins.map((b) => b.n))
  axes(root, maxN)
  const bw = (W - PAD.l - PAD.r) / bins.length
  bins.forEach((b, i) => {
    const h = ((H - PAD.t - PAD.b) * b.n) / maxN
    const late = x.budget_ms != null && (b.le_ms == null || b.le_ms > x.budget_ms)
    const rect = svg('rect', { x: PAD.l + i * bw + 1, y: H - PAD.b - h, width: Math.max(1, bw - 2), height: h, fill: late ? '#c62828' : '#1e88e5' })
    rect.append(svg('title', {}, `≤ ${b.le_ms ?? '∞'} ms: ${b.n}`))
    root.append(rect)
    if (i % 2 === 0 || bins.length < 10) root.append(svg('text', { x: PAD.l + i * bw + bw / 2, y: H - PAD.b + 12, 'text-anchor': 'middle' }, b.le_ms ?? '∞'))
  })
  root.append(svg('text', { x: W - PAD.r, y: H - 4, 'text-anchor': 'end' }, 'bucket upper bound, ms (red: over budget)'))
}

function drawTimeline(points) {
  const root = $('timeline')
  root.replaceChildren()
  const totals = points.map((p) => Object.values(p.verdicts).reduce((a, b) => a + b, 0))
  const maxN = Math.max(1, ...totals)
  axes(root, maxN)
  const n = Math.max(points.length, 30)
  const bw = (W - PAD.l - PAD.r) / n
  const verdicts = new Set()
  points.forEach((p, i) => {
    let y = H - PAD.b
    const x0 = PAD.l + (n - points.length + i) * bw
    for (const [v, c] of Object.entries(p.verdicts).sort()) {
      verdicts.add(v)
      const h = ((H - PAD.t - PAD.b) * c) / maxN
      y -= h
      const rect = svg('rect', { x: x0 + 0.5, y, width: Math.max(1, bw - 1), height: h, fill: colorOf(v) })
      rect.append(svg('title', {}, `${new Date(p.t).toLocaleTimeString()} ${v}: ${c}`))
      root.append(rect)
    }
  })
  let lx = PAD.l
  for (const v of [...verdicts].sort()) {
    root.append(svg('rect', { x: lx, y: H - 12, width: 8, height: 8, fill: colorOf(v) }))
    const t = svg('text', { x: lx + 11, y: H - 4 }, v)
    root.append(t)
    lx += 16 + 7 * v.length
  }
  root.append(svg('text', { x: W - PAD.r, y: H - 4, 'text-anchor': 'end' }, points.length ? `last ${Math.round((points.length * 10) / 60)} min` : 'collecting…'))
}

// ── live stream ──────────────────────────────────────────────────────────────────────────────────────────

let paused = false
let received = 0
const held = []
const seenVerdicts = new Set()

// An event is the published response itself (plus the request topic): failed checks are picked out here.
function streamRow(ev) {
  const failed = el('td', { class: 'failed' })
  for (const c of ev.checks ?? []) {
    if (c.ok) continue
    const why = c.reason ?? c.error
    failed.append(el('div', {}, why ? `${c.id}: ${why}` : c.id))
  }
  if (ev.error) failed.append(el('div', {}, `${ev.error.code}: ${ev.error.message}`))
  const tags = []
  if (ev.fallback) tags.push('fallback')
  if (ev.deadline_missed) tags.push('late')
  return el('tr', { class: 'new', 'data-inspection': ev.inspection ?? '', 'data-verdict': ev.verdict },
    el('td', {}, new Date(ev.ts).toLocaleTimeString()),
    el('td', {}, ev.inspection ?? '(unknown)'),
    el('td', {}, ev.trace ?? ev.correlation_id ?? ''),
    el('td', { class: vclass(ev.verdict) }, ev.verdict, tags.length ? el('small', { class: 'late' }, ` ${tags.join(' ')}`) : ''),
    failed,
    el('td', { class: 'num' }, `${fmtMs(ev.latency_ms)} ms`),
  )
}

function visible(row) {
  const fi = $('filter-inspection').value, fv = $('filter-verdict').value
  return (fi === '' || row.dataset.inspection === fi) && (fv === '' || row.dataset.verdict === fv)
}

function addEvents(events) {
  const body = $('stream').tBodies[0]
  const rows = events.map(streamRow)
  for (const r of rows) r.hidden = !visible(r)
  body.prepend(...rows.reverse())
  while (body.rows.length > STREAM_ROWS) body.deleteRow(-1)
}

function count() {
  $('stream-count').textContent = `${received} received${paused ? `, ${held.length} held while paused` : ''}`
}

function connectStream() {
  const es = new EventSource('/events')
  es.onmessage = (m) => {
    const ev = JSON.parse(m.data)
    received++
    seenVerdicts.add(ev.verdict)
    if (paused) { held.push(ev); if (held.length > STREAM_ROWS) held.shift() } else addEvents([ev])
    count()
  }
  es.addEventListener('gap', (m) => { const g = JSON.parse(m.data); $('conn').textContent = `stream skipped ${g.skipped} verdicts (page too slow)` })
  es.onerror = () => { $('conn').textContent = 'live stream reconnecting…' }
  es.onopen = () => { if ($('conn').textContent.startsWith('live stream')) $('conn').textContent = '' }
}

$('pause').addEventListener('click', () => {
  paused = !paused
  $('pause').textContent = paused ? 'Resume' : 'Pause'
  $('pause').setAttribute('aria-pressed', String(paused))
  if (!paused) addEvents(held.splice(0))
  count()
})
for (const id of ['filter-inspection', 'filter-verdict']) $(id).addEventListener('change', () => { for (const r of $('stream').tBodies[0].rows) r.hidden = !visible(r) })
$('hist-inspection').addEventListener('change', () => summary && drawHistogram(summary.stats.find((x) => x.inspection === $('hist-inspection').value)))

// ── search ───────────────────────────────────────────────────────────────────────────────────────────────

let cursor = null

async function search(more) {
  const form = new FormData($('search'))
  const q = new URLSearchParams()
  for (const k of ['trace', 'inspection', 'since']) { const v = String(form.get(k) ?? '').trim(); if (v) q.set(k, v) }
  if (more && cursor) q.set('cursor', cursor)
  const r = await fetch(`/api/verdicts?${q}`, { cache: 'no-store' })
  const body = await r.json().catch(() => ({}))
  const note = $('search-note')
  if (!r.ok) { note.textContent = body.error ?? `HTTP ${r.status}`; $('results').hidden = true; $('more').hidden = true; return }
  const tbody = $('results').tBodies[0]
  if (!more) tbody.replaceChildren()
  for (const it of body.items) {
    tbody.append(el('tr', {},
      el('td', {}, it.ts ?? ''), el('td', {}, it.inspection ?? ''), el('td', {}, it.trace ?? ''),
      el('td', { class: vclass(String(it.verdict)) }, it.verdict ?? ''), el('td', { class: 'num' }, `${fmtMs(it.latency_ms)} ms`), el('td', {}, it.verdict_id ?? '')))
  }
  cursor = body.next
  $('results').hidden = false
  $('more').hidden = !cursor
  note.textContent = `${tbody.rows.length} verdict(s)`
}
$('search').addEventListener('submit', (e) => { e.preventDefault(); void search(false) })
$('more').addEventListener('click', () => void search(true))

void poll()
setInterval(poll, 2000)
connectStream()
count()
