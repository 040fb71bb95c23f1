// Test fixture: a tiny random SambaY checkpoint plus a small byte-level BPE tokenizer with a chat template,
// made by the real `flashcheck model init --tokenizer` (the same path operators use for demo models).
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { cli } from './cli.js'

export interface ModelFixture {
  /** Checkpoint directory (config.json, model.safetensors, tokenizer.json, tokenizer_config.json). */
  model: string
  /** Scratch directory for rule files and configs; removed by cleanup(). */
  root: string
  cleanup(): void
}

export async function modelFixture(opts: { preset?: string; seed?: number } = {}): Promise<ModelFixture> {
  const root = mkdtempSync(join(tmpdir(), 'flashcheck-model-'))
  const model = join(root, 'model')
  const r = await cli(['model', 'init', '--config', opts.preset ?? 'tiny', '--out', model, '--seed', String(opts.seed ?? 7), '--tokenizer'])
  if (r.code !== 0) throw new Error(`model init failed: ${r.stderr}`)
  return { model, root, cleanup: () => rmSync(root, { recursive: true, force: true }) }
}

/** Writes rule files into a fresh directory under the fixture root and returns it. */
export function ruleDir(fx: ModelFixture, name: string, files: Record<string, string>): string {
  const dir = join(fx.root, name)
  mkdirSync(dir, { recursive: true })
  for (const [f, src] of Object.entries(files)) writeFileSync(join(dir, f), src)
  return dir
}

/** A rules-only inspection served beside the reason rules (no model step). */
export const RULES_ONLY = `id: torque-only
request: flashcheck/inspect/{station}/torque
inputs:
  torque: payload.torque_nm
checks:
  - { id: torque-in-spec, expr: "torque >= 10.0 && torque <= 12.0", on_fail: FAIL }
`

/** A reason rule over a screw joint; `extra` lines are appended inside `reason:`. */
export function jointRule(o: { id?: string; topic?: string; choices?: string; verdicts?: string; fallback?: string; minConfidence?: number; budgetMs?: number; extra?: string; prefix?: string; suffix?: string; combine?: string } = {}): string {
  return [
    `id: ${o.id ?? 'joint-ai'}`,
    `request: ${o.topic ?? 'flashcheck/inspect/{station}/joint'}`,
    `budget_ms: ${o.budgetMs ?? 50}`,
    `verdicts: ${o.verdicts ?? '[PASS, WARN, REWORK, FAIL]'}`,
    'inputs:',
    '  torque: payload.torque_nm',
    '  angle: payload.angle_deg',
    '  station: topic.station',
    'checks:',
    '  - id: torque-in-spec',
    '    expr: torque >= 10.0 && torque <= 12.0',
    '    on_fail: FAIL',
    'reason:',
    '  prompt: |',
    `    ${o.prefix ?? 'Screw joint at station'} {station}: torque {torque} Nm, angle {angle} deg. Checks: {checks}.${o.suffix ?? ''} Verdict?`,
    '  system: "You are a quality inspector. Answer with one word."',
    `  choices: ${o.choices ?? '[PASS, REWORK, FAIL]'}`,
    `  min_confidence: ${o.minConfidence ?? 0}`,
    `  fallback: ${o.fallback ?? 'REWORK'}`,
    ...(o.combine ? [`  combine: ${o.combine}`] : []),
    ...(o.extra ? [o.extra] : []),
    '',
  ].join('\n')
}
