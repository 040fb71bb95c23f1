// Optional HTTP basic auth of the metrics listener (metrics.user, metrics.passwordFile). Credentials are
// compared as SHA-256 digests with timingSafeEqual, so the comparison time says nothing about the password.
import { createHash, timingSafeEqual } from 'node:crypto'
import { readFileSync } from 'node:fs'
import type { IncomingMessage } from 'node:http'

export interface BasicAuth {
  /** True when the request carries the configured user and password. */
  allows(req: IncomingMessage): boolean
}

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest()

/** undefined when no user is configured; throws with the file name when the password file is unusable. */
export function basicAuth(user: string, passwordFile: string): BasicAuth | undefined {
  if (user === '') return undefined
  if (passwordFile === '') throw new Error('metrics.user is set but metrics.passwordFile is empty')
  let password: string
  try {
    password = readFileSync(passwordFile, 'utf8').split(/\r?\n/)[0]
  } catch (e) {
    throw new Error(`metrics.passwordFile: cannot read ${passwordFile}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`)
  }
  if (password === '') throw new Error(`metrics.passwordFile: ${passwordFile}: first line is empty`)
  const want = digest(`${user}:${password}`)
  return {
    allows(req) {
      const h = req.headers.authorization
      if (typeof h !== 'string' || !/^basic /i.test(h)) return false
      return timingSafeEqual(digest(Buffer.from(h.slice(6).trim(), 'base64').toString('utf8')), want)
    },
  }
}
