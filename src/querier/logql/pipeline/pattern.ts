// Loki's pattern expressions (pkg/logql/log/pattern): `<ip> - <_> "<method> <uri>"`.
// Captures and literals alternate; two captures may not touch. Matching walks the
// line left to right finding each literal with indexOf, as Loki's matcher does: a
// missing literal ends the match with the rest of the line in the current capture.

export interface CompiledPattern {
  /** Alternating parts: a literal string, or a capture name ("_" for unnamed). */
  parts: { lit: string | null; name: string | null }[];
  names: string[];
}

export class PatternError extends Error {}

export function compilePattern(src: string, lineFilter = false): CompiledPattern {
  const parts: CompiledPattern["parts"] = [];
  const names: string[] = [];
  const re = /<([_a-zA-Z][_a-zA-Z0-9]*)>/g;
  let last = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(src)) !== null) {
    if (m.index > last) parts.push({ lit: src.slice(last, m.index), name: null });
    const prev = parts[parts.length - 1];
    if (prev !== undefined && prev.name !== null) {
      throw new PatternError(`found consecutive capture '<${prev.name}><${m[1]}>': invalid expression`);
    }
    parts.push({ lit: null, name: m[1] });
    if (m[1] !== "_") {
      if (names.includes(m[1])) throw new PatternError(`duplicate capture name (${m[1]}): invalid expression`);
      names.push(m[1]);
    }
    last = re.lastIndex;
  }
  if (last < src.length) parts.push({ lit: src.slice(last), name: null });
  if (parts.length === 0) throw new PatternError("syntax error: unexpected $end, expecting IDENTIFIER or LITERAL");
  if (!lineFilter && names.length === 0) throw new PatternError("at least one capture is required: invalid expression");
  return { parts, names };
}

/** Captures of a line (name → value), Loki's partial-match semantics; null when the leading literal does not match. */
export function matchPattern(p: CompiledPattern, line: string, out: (name: string, value: string) => void): boolean {
  if (line.length === 0) return false;
  let k = 0;
  let pos = 0;
  const parts = p.parts;
  if (parts[0].lit !== null) {
    if (!line.startsWith(parts[0].lit)) return false;
    pos = parts[0].lit.length;
    k = 1;
  }
  if (k >= parts.length) return false;
  while (k < parts.length) {
    const cap = parts[k].name as string;
    if (k === parts.length - 1) {
      if (cap !== "_") out(cap, line.slice(pos));
      return true;
    }
    const lit = parts[k + 1].lit as string;
    k += 2;
    const i = line.indexOf(lit, pos);
    if (i < 0) {
      if (cap !== "_") out(cap, line.slice(pos));
      return true;
    }
    if (cap !== "_") out(cap, line.slice(pos, i));
    pos = i + lit.length;
  }
  return true;
}

/** The `|>` / `!>` line filter: every literal found in order and the whole line consumed. */
export function testPattern(p: CompiledPattern, line: string): boolean {
  if (line.length === 0) return false;
  const parts = p.parts;
  let k = 0;
  let pos = 0;
  if (parts[0].lit !== null) {
    if (!line.startsWith(parts[0].lit)) return false;
    pos = parts[0].lit.length;
    k = 1;
  }
  while (k < parts.length) {
    if (k === parts.length - 1) return true; // ends on a capture: takes the rest
    const lit = parts[k + 1].lit as string;
    k += 2;
    const i = line.indexOf(lit, pos);
    if (i < 0) return false;
    pos = i + lit.length;
  }
  return pos === line.length;
}
