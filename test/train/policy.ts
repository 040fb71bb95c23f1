// The labelling policy of rules/examples/model/README.md as a rule-based reader, written from the README and
// independently of the generator (tools/train/corpus.py), which labels notes by construction. Tests use it
// to check that the generator's labels, the hand-written labels and the documented policy agree.

const FAIL = 2
const REWORK = 1
const LABELS = ['PASS', 'REWORK', 'FAIL'] as const
export type Label = (typeof LABELS)[number]

const DEFECTS: [RegExp, number][] = [
  [/\b(?:lack of fusion|incomplete fusion|cold laps?|burn[- ]through|burnt through|burned through|crack(?:s|ed|ing)?|fissures?)\b/, FAIL],
  [/\b(?:porosity|porous|pores?|pinholes?|gas pockets?|undercut(?:ting)?|spatter|splatter|(?:uneven|irregular|wavy) bead|overlap(?:ping)?)\b/, REWORK],
]
const MENTION = new RegExp(DEFECTS.map(([r]) => r.source).join('|'), 'g')
// A cue, then words that may stand between it and the defect ("no visible", "free of any", "no sign of").
const CUE_BEFORE = /(?:^|[^a-z])(?:no|without|free of|not)(?:\s+(?:visible|obvious|detectable|any|sign of|signs of|evidence of|trace of))*\s+$/
const NONE_AFTER = /^\s*[:-]?\s*none\b/
const FREE_AFTER = /^-free\b/
const LIST_GAP = /^\s*(?:,|or|and|nor|,\s*or|,\s*and)\s*$/
// What may follow a bare list item: another separator or the end of the clause.
const BARE_TAIL = /^\s*(?:$|[,.;:!?/-]|or\b|and\b|nor\b|with\b)/
const CLAUSE = /[;!?]|\.(?=\s|$)|\bbut\b/

function severity(m: string): number {
  for (const [r, s] of DEFECTS) if (new RegExp(`^(?:${r.source})$`).test(m)) return s
  return 0
}

/** The policy's label for a note. */
export function policyLabel(note: string): Label {
  let worst = 0
  for (const clause of note.toLowerCase().split(CLAUSE)) {
    const ms = [...clause.matchAll(MENTION)]
    let prevEnd = 0
    let listOpen = false // the previous mention was negated by a cue (or its list) and nothing followed it
    for (const m of ms) {
      const start = m.index!
      const end = start + m[0].length
      const next = ms.find((x) => x.index! >= end)
      const gap = clause.slice(prevEnd, start)
      const tail = clause.slice(end, next ? next.index : clause.length)
      let negated = false
      let byCue = false
      if (FREE_AFTER.test(tail) || NONE_AFTER.test(tail)) negated = true
      else if (CUE_BEFORE.test(gap)) negated = byCue = true
      else if (listOpen && LIST_GAP.test(gap) && BARE_TAIL.test(tail)) negated = byCue = true
      if (!negated) worst = Math.max(worst, severity(m[0]))
      listOpen = byCue && BARE_TAIL.test(tail)
      prevEnd = end
    }
  }
  return LABELS[worst]!
}
