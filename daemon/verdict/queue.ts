// Earliest-deadline-first queue of verdict jobs waiting for the decoder (ties: arrival order).

export interface Queued {
  deadline: number
  /** Predicted ms of the job's work. */
  est: number
}

export class DeadlineQueue<J extends Queued> {
  private readonly jobs: J[] = []

  get length(): number {
    return this.jobs.length
  }

  /** The job due first. */
  get head(): J | undefined {
    return this.jobs[0]
  }

  insert(job: J): void {
    let lo = 0
    let hi = this.jobs.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (this.jobs[mid]!.deadline <= job.deadline) lo = mid + 1
      else hi = mid
    }
    this.jobs.splice(lo, 0, job)
  }

  shift(): J | undefined {
    return this.jobs.shift()
  }

  /** Removes `job`; false when it was not queued. */
  remove(job: J): boolean {
    const i = this.jobs.indexOf(job)
    if (i < 0) return false
    this.jobs.splice(i, 1)
    return true
  }

  /** Predicted ms of the queued work that runs before a job with this deadline. */
  workBefore(deadline: number): number {
    let ms = 0
    for (const q of this.jobs) {
      if (q.deadline > deadline) break
      ms += q.est
    }
    return ms
  }

  /** Removes and returns every queued job. */
  drain(): J[] {
    return this.jobs.splice(0)
  }
}
