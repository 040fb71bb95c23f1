// Rate-limited warnings: at most `perSecond` lines per second per code, so that a misbehaving client cannot
// flood the journal; what was held back is counted in one line when the next window opens.
import type { Logger } from './logger.js'

export class LogLimiter {
  private readonly windows = new Map<string, { start: number; count: number; suppressed: number }>()

  constructor(private readonly log: Logger, private readonly perSecond = 10) {}

  warn(code: string, obj: Record<string, unknown>, msg: string): void {
    const now = Date.now()
    let s = this.windows.get(code)
    if (!s || now - s.start >= 1000) {
      if (s?.suppressed) this.log.warn({ code, suppressed: s.suppressed }, 'similar log lines suppressed')
      s = { start: now, count: 0, suppressed: 0 }
      this.windows.set(code, s)
    }
    if (++s.count <= this.perSecond) this.log.warn(obj, msg)
    else s.suppressed++
  }
}
