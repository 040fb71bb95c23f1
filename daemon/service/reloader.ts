// Reloads the rule directory on SIGHUP and on file changes. Reloads are serialised and coalesced: a burst
// of editor writes produces one load of the final state, never two loads racing each other.
import { watch, type FSWatcher } from 'node:fs'
import { loadRuleDir, type LoadOptions } from '../rules/load.js'
import type { LoadResult } from '../rules/types.js'

export class RuleReloader {
  private watcher?: FSWatcher
  private timer?: NodeJS.Timeout
  private running?: Promise<void>
  private pending?: string

  constructor(
    private readonly dir: string,
    private readonly loadOpts: LoadOptions,
    private readonly onResult: (res: LoadResult, reason: string) => void | Promise<void>,
    private readonly debounceMs = 150,
  ) {}

  watch(): void {
    this.watcher = watch(this.dir, { persistent: false }, (_event, name) => {
      if (name && !/\.ya?ml$/i.test(name.toString())) return
      clearTimeout(this.timer)
      this.timer = setTimeout(() => void this.reload('file change'), this.debounceMs)
    })
    this.watcher.on('error', () => { /* directory vanished: SIGHUP still works once it is back */ })
  }

  /** Loads the directory now (or right after the load in progress) and reports through onResult. */
  reload(reason: string): Promise<void> {
    if (this.running) {
      this.pending = reason
      return this.running
    }
    this.running = (async () => {
      try {
        let next: string | undefined = reason
        while (next !== undefined) {
          this.pending = undefined
          const res = await loadRuleDir(this.dir, this.loadOpts)
          await this.onResult(res, next)
          next = this.pending
        }
      } finally {
        this.running = undefined
      }
    })()
    return this.running
  }

  close(): void {
    clearTimeout(this.timer)
    this.watcher?.close()
  }
}
