// Time rules of a request: by when its verdict must be out, and whether it is already too old to be worth a
// normal verdict (overload shedding).
import type { Envelope } from './envelope.js'

/** Epoch ms by which the verdict must be out: the rule's budget, or the requester's earlier deadline. */
export function deadlineOf(budgetMs: number, env: Envelope, now: number): number {
  let deadline = now + budgetMs
  // A request that says when it was sent has its budget counted from then: time queued in the broker counts.
  if (env.sentAtMs !== undefined && env.sentAtMs + budgetMs < deadline) deadline = env.sentAtMs + budgetMs
  return env.deadlineMs !== undefined && env.deadlineMs < deadline ? env.deadlineMs : deadline
}

/**
 * Why a request is too old to be worth a normal verdict, or undefined. A requester that says when it sent
 * the request (`sent-at` user property or `sent_at` field, epoch ms) or by when it needs the answer
 * (`deadline-ms`) gets an immediate OVERLOADED answer once that time is gone: under overload, a fast honest
 * "no verdict" beats a judgment that arrives after the part has moved on. `maxAgeFactor` 0 turns this off.
 */
export function staleness(budgetMs: number, maxAgeFactor: number, env: Envelope, body: Record<string, unknown> | undefined, now: number): string | undefined {
  if (maxAgeFactor <= 0) return undefined
  if (env.deadlineMs !== undefined && env.deadlineMs <= now) return `the request's deadline passed ${now - env.deadlineMs} ms before it arrived`
  const sentAt = env.sentAtMs ?? (typeof body?.sent_at === 'number' && Number.isFinite(body.sent_at) ? body.sent_at : undefined)
  if (sentAt === undefined) return undefined
  const age = now - sentAt
  if (age > budgetMs * maxAgeFactor) return `the request arrived ${Math.round(age)} ms after it was sent; the budget is ${budgetMs} ms`
  return undefined
}
