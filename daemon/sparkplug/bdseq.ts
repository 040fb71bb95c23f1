// The birth/death sequence number (bdSeq, Sparkplug 3.0 6.4.x): one per MQTT session of the edge node, 0–255
// wrapping, kept in state.dir so that a restarted daemon never reuses the number of the session it replaces.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

export const BDSEQ_FILE = 'sparkplug-bdseq'

export class BdSeqStore {
  private last: number | undefined

  /** `dir` empty: nothing is kept, numbering starts at 0 on every start. */
  constructor(private readonly dir: string) {
    if (dir === '') return
    try {
      const n = Number.parseInt(readFileSync(join(dir, BDSEQ_FILE), 'utf8').trim(), 10)
      if (Number.isInteger(n) && n >= 0 && n <= 255) this.last = n
    } catch {
      // First start (or an unreadable file): begin at 0.
    }
  }

  /** The bdSeq of a new session, persisted before it is used. */
  next(): number {
    const n = this.last === undefined ? 0 : (this.last + 1) % 256
    this.last = n
    if (this.dir !== '') {
      mkdirSync(this.dir, { recursive: true })
      const tmp = join(this.dir, `${BDSEQ_FILE}.tmp`)
      writeFileSync(tmp, `${n}\n`)
      renameSync(tmp, join(this.dir, BDSEQ_FILE))
    }
    return n
  }
}
