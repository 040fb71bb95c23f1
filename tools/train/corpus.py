"""Weld-seam inspection notes labelled by the policy of rules/examples/model/README.md.

usage: python3 tools/train/corpus.py --seed N --n COUNT [--exclude FILE.jsonl] > notes.jsonl
Each line: {"note": "...", "label": "PASS|REWORK|FAIL"}. The same seed gives the same notes. The held-out
split is the notes of another seed, minus any note that also occurs in the training split (--exclude).

Policy: FAIL if a crack / lack of fusion / burn-through is reported and not negated; else REWORK if porosity /
undercut / spatter / an irregular bead / overlap is reported and not negated; else PASS. A negation cue
(no, without, free of, not, no sign of, none, the suffix -free) governs the defect right after it and the
bare defect words listed with it ("no cracks or porosity", "free of spatter, undercut and overlap"); an
item with its own modifier or location, a clause break (; . but with) ends its scope.
"""
import argparse
import json
import random
import sys

FAIL = 2
REWORK = 1
PASS = 0
LABELS = ['PASS', 'REWORK', 'FAIL']

# Defect families: (severity, noun forms usable after "no"/"free of"/"without", forms for positive reports,
# adjective/participle forms usable after "not", single words that take the "-free" suffix).
DEFECTS = [
    (FAIL, ['crack', 'cracks', 'cracking', 'fissure', 'fissures'],
     ['crack', 'cracks', 'cracking', 'fissure', 'a crack', 'a fissure', 'fissures', 'transverse crack', 'crater crack'],
     ['cracked'], ['crack', 'fissure']),
    (FAIL, ['lack of fusion', 'incomplete fusion', 'cold lap', 'cold laps'],
     ['lack of fusion', 'incomplete fusion', 'cold lap', 'a cold lap', 'cold laps'],
     [], []),
    (FAIL, ['burn-through', 'burn through'],
     ['burn-through', 'burn through', 'a burn-through'],
     ['burnt through', 'burned through'], []),
    (REWORK, ['porosity', 'pores', 'pinholes', 'gas pockets'],
     ['porosity', 'pores', 'pinholes', 'gas pockets', 'a pinhole', 'surface porosity', 'cluster porosity'],
     ['porous'], ['porosity', 'pore', 'pinhole']),
    (REWORK, ['undercut', 'undercutting'],
     ['undercut', 'undercutting'],
     [], ['undercut']),
    (REWORK, ['spatter', 'splatter'],
     ['spatter', 'splatter', 'weld spatter'],
     [], ['spatter', 'splatter']),
    (REWORK, ['uneven bead', 'irregular bead', 'wavy bead'],
     ['uneven bead', 'irregular bead', 'wavy bead', 'an uneven bead', 'an irregular bead', 'a wavy bead'],
     [], []),
    (REWORK, ['overlap', 'overlapping'],
     ['overlap', 'overlapping'],
     [], ['overlap']),
]

MODIFIERS = ['slight', 'minor', 'heavy', 'visible', 'small', 'some', 'light', 'severe', 'fine', 'isolated',
             'significant', 'excessive', 'faint', 'moderate', 'scattered', 'a little', 'large', 'obvious',
             'two', 'three', 'several', 'a few', 'multiple', 'many', 'one', 'tiny', 'long', 'deep', 'shallow']
# Words that carry no label: places, activities and objects of a weld shop, composed into locations, subjects
# and whole clauses, so that the model learns to ignore what is not a defect or a cue.
PREPS = ['at', 'near', 'on', 'along', 'by', 'in', 'under', 'over', 'around', 'beside', 'past', 'after', 'during',
         'behind', 'below', 'above', 'next to', 'close to', 'towards']
THINGS = ['the end plate', 'the bracket', 'the flange', 'the corner', 'the tab', 'the stiffener', 'the gusset',
          'the restart', 'the tack', 'the clamp', 'the fixture', 'the backing bar', 'the stop', 'the edge',
          'the heel', 'the root', 'the cap', 'the left side', 'the bottom', 'the top', 'the inside', 'the outside',
          'the middle', 'both ends', 'each end', 'the nozzle side', 'the hole', 'the slot', 'the boss', 'the nut',
          'the rib', 'the plate', 'the pipe', 'the tube', 'the bend', 'the radius', 'the chamfer', 'the bevel',
          'cooling', 'grinding', 'cleaning', 'the second pass', 'the repair', 'the weld start', 'the web']
ACTIVITIES = ['inspected', 'checked', 'measured', 'photographed', 'ground flush', 'cleaned', 'cooled down',
              'looked at twice', 're-checked by the lead', 'inspected after cooling', 'brushed', 'marked',
              'viewed with a lamp', 'wiped', 'dried', 'sampled', 'tested', 'approved by the lead', 'compared to the sample',
              'inspected from both sides', 'rotated and inspected', 'scanned', 'logged in the system']
GOOD = ['good', 'fine', 'ok', 'okay', 'nice', 'great', 'excellent', 'flawless', 'perfect', 'acceptable', 'solid',
        'neat', 'tidy', 'consistent', 'even', 'regular', 'straight', 'clean', 'smooth', 'uniform', 'sound',
        'as expected', 'in order', 'satisfactory', 'within tolerance', 'like the master sample']
IDS = ['weld #{n}', 'part {n}', 'seam {n}', 'joint {n}', 'sample {n}', 'piece {n}', 'item {n}', 'unit {n}',
       'frame {n}', 'bracket {n}', 'job {n}']
LOCATIONS = ['at the toe', 'near the start', 'on the flange', 'along 20 mm', 'at the root', 'at the end',
             'near the stop', 'on the cap', 'along the fusion line', 'at the crater', 'on the left side',
             'on the right leg', 'near the tack', 'at 3 o\'clock', 'over 15 mm', 'along 40 mm', 'at the corner',
             'in the middle', 'near the fixture', 'on pass 2', 'at the weld start', 'on the web', 'at the heel',
             'along the last 10 mm', 'near clamp 3', 'on seam B', 'at position 4', 'in the root pass']
REPORT_VERBS_PRE = ['found', 'shows', 'observed', 'noted', 'visible', 'detected', 'has', 'with', 'seen:', 'saw']
REPORT_VERBS_POST = ['observed', 'noted', 'found', 'detected', 'present', 'visible', 'seen', 'confirmed',
                     'on inspection', 'spotted']
SUBJECTS = ['weld', 'seam', 'bead', 'joint', 'root', 'toe', 'cap', 'fillet', 'pass', 'weld seam', 'root pass',
            'cap pass', 'fillet weld', 'butt weld']
CLEAN = ['clean weld', 'smooth bead', 'uniform bead', 'clean', 'smooth', 'uniform', 'looks good', 'good fusion',
         'full penetration', 'even ripples', 'consistent bead profile', 'nice even bead', 'bead smooth and uniform',
         'clean surface', 'weld looks clean', 'good tie-in', 'consistent width', 'flat profile', 'good wetting',
         'seam clean', 'all good', 'acceptable appearance', 'smooth transition at the toe', 'regular ripples',
         'uniform width along the seam', 'clean cap', 'even bead', 'good shape', 'ok', 'fine', 'visual ok',
         'surface smooth', 'within spec visually', 'no issues', 'nothing to report', 'no defects',
         'no defects found', 'nothing found', 'no findings', 'no remarks', 'no problems seen']
PREFIXES = ['operator notes:', 'visual check:', 'note:', 'inspector:', 'shift b:', 'vt:', 'remarks:',
            'visual:', 'obs:', 'comment:', 'qc:', 'after grinding:', 'first article:', 'recheck:', 'weld 14:',
            'part 3301:', 'station notes -', 'night shift:', 'line 2:', 'robot cell 4:']
SUFFIXES = ['checked twice', 'photo attached', 'see photo', 'per wps', 'logged', 're-inspected',
            'measured with gauge', 'lighting ok', 'second opinion same', 'as per drawing', 'marked with chalk',
            'tag applied', 'reported to lead', 'cleaned with brush', 'after cooling', 'checked by j.m.',
            'sample 2 of 5', 'batch 17']
NEG_NOUN = ['no', 'no visible', 'without', 'free of', 'no sign of', 'no signs of', 'no evidence of', 'without any',
            'no obvious', 'without visible', 'no trace of', 'completely free of', 'found no', 'no detectable']
CLAUSE_BREAK = ['; ', '. ', ' but ', ', but ', '. also ']
LIST_JOIN = [' or ', ' and ', ' nor ', ', ']
CLAUSE_JOIN = ['; ', '. ', ', ', ' but ', ' - ', ' / ', ' with ', ', but ', '. also ', ' and ']


def pick(r, xs):
    return xs[r.randrange(len(xs))]


def location(r):
    if r.random() < 0.5:
        return pick(r, LOCATIONS)
    return f'{pick(r, PREPS)} {pick(r, THINGS)}'


def subject(r):
    if r.random() < 0.15:
        return pick(r, IDS).format(n=r.randrange(1, 400))
    return pick(r, SUBJECTS)


def neutral(r):
    """A clause without defect words or cues (never changes the label)."""
    t = r.random()
    if t < 0.3:
        return f'{subject(r)} {pick(r, ACTIVITIES)}'
    if t < 0.55:
        return f'{subject(r)} {pick(r, ["looks", "is", "was", "seems", "appears"])} {pick(r, GOOD)}'
    if t < 0.7:
        return f'{pick(r, GOOD)} {subject(r)}'
    if t < 0.85:
        return f'{pick(r, ACTIVITIES)} {pick(r, PREPS)} {pick(r, THINGS)}'
    return pick(r, GOOD)


def positive(r, fam):
    """A phrase that reports a defect of this family (never negated)."""
    sev, nouns, pos, adjs, _ = fam
    t = r.random()
    term = pick(r, pos)
    mod = pick(r, MODIFIERS) + ' ' if r.random() < 0.45 and not term.startswith(('a ', 'an ')) else ''
    loc = ' ' + location(r) if r.random() < 0.55 else ''
    if adjs and t < 0.2:
        adj = pick(r, adjs)
        return f'{subject(r)} {pick(r, ["", "is ", "was ", "looks "])}{adj}{loc}'.replace('  ', ' ')
    if t < 0.45:
        return f'{mod}{term}{loc}'  # bare when mod and loc are empty
    if t < 0.7:
        return f'{pick(r, REPORT_VERBS_PRE)} {mod}{term}{loc}'
    if t < 0.85:
        return f'{mod}{term}{loc} {pick(r, REPORT_VERBS_POST)}'
    return f'{subject(r)} {pick(r, ["has", "shows", "with"])} {mod}{term}{loc}'


def negated(r, fams):
    """A phrase that negates one or more defect families (a cue followed by bare defect words)."""
    t = r.random()
    if len(fams) == 1:
        sev, nouns, pos, adjs, free = fams[0]
        if free and t < 0.2:
            return f'{pick(r, free)}-free' + (' ' + pick(r, ['weld', 'seam', 'bead', 'root', 'cap']) if r.random() < 0.3 else '')
        if adjs and t < 0.3:
            return f'{pick(r, ["", "weld ", "seam ", "bead ", "root "])}{pick(r, ["not", "is not", "was not"])} {pick(r, adjs)}'.strip()
        if t < 0.42:
            return f'{pick(r, nouns)}{pick(r, [": none", " - none", ": none found", " none", ": none seen"])}'
    words = [pick(r, f[1]) for f in fams]
    if len(words) == 1:
        # A trailing verb or place belongs to the one negated defect ("no undercut found on the flange").
        tail = ''
        if r.random() < 0.35:
            tail += ' ' + pick(r, REPORT_VERBS_POST[:7])
        if r.random() < 0.3:
            tail += ' ' + location(r)
        return f'{pick(r, NEG_NOUN)} {words[0]}{tail}'
    j = pick(r, LIST_JOIN[:3])
    lst = ', '.join(words[:-1]) + j + words[-1] if r.random() < 0.5 else j.join(words)
    return f'{pick(r, NEG_NOUN)} {lst}'


def typo(r, s):
    letters = [i for i, ch in enumerate(s) if ch.isalpha()]
    if len(letters) < 4:
        return s
    i = pick(r, letters[1:-1])
    k = r.random()
    if k < 0.33 and s[i + 1].isalpha():
        return s[:i] + s[i + 1] + s[i] + s[i + 2:]
    if k < 0.66:
        return s[:i] + s[i + 1:]
    return s[:i] + s[i] + s[i:]


def casing(r, s):
    t = r.random()
    if t < 0.55:
        return s
    if t < 0.8:
        return s[:1].upper() + s[1:]
    if t < 0.9:
        return s.upper()
    return ' '.join(w[:1].upper() + w[1:] for w in s.split(' '))


def note(r):
    """One note and its label."""
    n_def = pick(r, [0, 1, 1, 1, 2, 2, 2, 3, 3])
    parts = []  # (text, kind): kind 'neg', 'bare' (a positive defect word alone), 'pos', 'clean'
    label = PASS
    fams = r.sample(DEFECTS, n_def)
    i = 0
    while i < len(fams):
        f = fams[i]
        if r.random() < 0.45:
            # negate this one, sometimes together with the next as a bare list
            group = [f]
            while i + 1 < len(fams) and r.random() < 0.5 and fams[i + 1] not in group:
                i += 1
                group.append(fams[i])
            parts.append((negated(r, group), 'neg'))
        else:
            p = positive(r, f)
            parts.append((p, 'bare' if p in f[2] else 'pos'))
            label = max(label, f[0])
        i += 1
    if not parts or r.random() < 0.3:
        parts.insert(r.randrange(len(parts) + 1), (pick(r, CLEAN), 'clean'))
    for _ in range(pick(r, [0, 0, 0, 1, 1, 2])):
        parts.insert(r.randrange(len(parts) + 1), (neutral(r), 'clean'))
    # A bare defect word right after a negation would join its list ("no cracks, porosity"): the policy
    # reads that as negated too, so a reported one is separated by a clause break.
    text = parts[0][0]
    for (_, prev), (p, kind) in zip(parts, parts[1:]):
        text += pick(r, CLAUSE_BREAK if prev == 'neg' and kind == 'bare' else CLAUSE_JOIN) + p
    if r.random() < 0.25:
        text = pick(r, PREFIXES) + ' ' + text
    if r.random() < 0.15:
        text += pick(r, ['. ', ', ', ' - ', '; ']) + pick(r, SUFFIXES)
    if r.random() < 0.3:
        text += pick(r, ['.', '!', '', '..'])
    text = casing(r, text)
    if r.random() < 0.02:
        text = typo(r, text)
    return text[:200], LABELS[label]


def generate(seed, n, exclude=()):
    r = random.Random(seed)
    out = []
    seen = set(exclude)
    while len(out) < n:
        t, lab = note(r)
        key = t.lower()
        if key in seen:
            continue
        seen.add(key)
        out.append({'note': t, 'label': lab})
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--seed', type=int, required=True)
    ap.add_argument('--n', type=int, required=True)
    ap.add_argument('--exclude', help='JSONL file whose notes must not be produced again (the training split)')
    a = ap.parse_args()
    excl = []
    if a.exclude:
        with open(a.exclude) as f:
            excl = [json.loads(line)['note'].lower() for line in f if line.strip()]
    for ex in generate(a.seed, a.n, excl):
        sys.stdout.write(json.dumps(ex) + '\n')


if __name__ == '__main__':
    main()
