// A rule's verdicts are listed in ascending severity; the least severe one is its passing label (what counts
// as a first pass in the first-pass yield of the service's metrics, the status page and `audit stats`).

/** The passing label of a rule with these verdicts; PASS where the rule is not known. */
export function passLabel(verdicts: readonly string[] | undefined): string {
  return verdicts?.[0] ?? 'PASS'
}
