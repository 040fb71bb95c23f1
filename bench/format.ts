// Number formatting of benchmark tables: `-` for what could not be measured.
export const f = (x: number, d = 2): string => (Number.isFinite(x) ? x.toFixed(d) : '-')
