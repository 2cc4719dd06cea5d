// Line filters (|= != |~ !~ |> !>), Loki's pkg/logql/log/filter.go. They run on the
// line string before anything else looks at the entry, so a filtered-out line costs
// one indexOf or one RegExp test and no allocation.

import { translateRE2 } from "../../../model/regex";
import type { LineFilter } from "../ast";
import { compilePattern, testPattern } from "./pattern";

export type LineTest = (line: string) => boolean;

/** An unanchored RE2 regexp as Loki's |~ uses it. */
export function unanchoredRE2(src: string): RegExp {
  const { source, flags } = translateRE2(src);
  return new RegExp(source, flags);
}

function positive(f: LineFilter): LineTest {
  const vs = f.values;
  switch (f.op) {
    case "|=":
    case "!=": {
      if (vs.some((v) => v === "")) return () => true;
      if (vs.length === 1) {
        const v = vs[0];
        return (line) => line.includes(v);
      }
      return (line) => {
        for (const v of vs) if (line.includes(v)) return true;
        return false;
      };
    }
    case "|~":
    case "!~": {
      const res = vs.map(unanchoredRE2);
      if (res.length === 1) {
        const re = res[0];
        return (line) => re.test(line);
      }
      return (line) => {
        for (const re of res) if (re.test(line)) return true;
        return false;
      };
    }
    case "|>":
    case "!>": {
      const ps = vs.map((v) => compilePattern(v, true));
      return (line) => {
        for (const p of ps) if (testPattern(p, line)) return true;
        return false;
      };
    }
  }
}

/** One filter; `or` alternatives of a negative filter keep a line matching none of them (Loki). */
export function compileLineFilter(f: LineFilter): LineTest {
  const t = positive(f);
  if (f.op === "!=" || f.op === "!~" || f.op === "!>") {
    if (f.op === "!=" && f.values.some((v) => v === "")) return () => false;
    return (line) => !t(line);
  }
  return t;
}

/** All filters of a stage, in order: every one must pass. */
export function compileLineFilters(fs: LineFilter[]): LineTest {
  const tests = fs.map(compileLineFilter);
  if (tests.length === 1) return tests[0];
  return (line) => {
    for (const t of tests) if (!t(line)) return false;
    return true;
  };
}
