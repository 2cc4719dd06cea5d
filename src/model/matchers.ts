// Label matchers (=, !=, =~, !~) compiled once per query. Regexps follow
// Prometheus: fully anchored, RE2 syntax; the flags RE2 spells inline ((?i), (?s))
// become JavaScript flags.

import { MatchType, type LabelMatcher } from "../proto/types";
import { getLabel, type FlatLabels } from "./labels";

export class MatcherError extends Error {
  override name = "MatcherError";
}

export interface CompiledMatcher {
  readonly name: string;
  readonly type: MatchType;
  readonly value: string;
  matches(value: string): boolean;
  /** Whether the matcher accepts a missing label (the empty string). */
  readonly matchesEmpty: boolean;
}

export function compileMatcher(m: LabelMatcher): CompiledMatcher {
  let test: (v: string) => boolean;
  switch (m.type) {
    case MatchType.EQ:
      test = (v) => v === m.value;
      break;
    case MatchType.NEQ:
      test = (v) => v !== m.value;
      break;
    case MatchType.RE:
    case MatchType.NRE: {
      const re = compileRegex(m.value);
      test = m.type === MatchType.RE ? (v) => re.test(v) : (v) => !re.test(v);
      break;
    }
    default:
      throw new MatcherError(`unknown matcher type ${m.type as number}`);
  }
  return { name: m.name, type: m.type, value: m.value, matches: test, matchesEmpty: test("") };
}

export function compileRegex(src: string): RegExp {
  let flags = "su";
  let body = src;
  // RE2 inline flags at the start; JS before ES2025 has no inline modifiers.
  const m = /^\(\?([imsU]+)\)/.exec(body);
  if (m) {
    body = body.slice(m[0].length);
    if (m[1].includes("i")) flags += "i";
    if (!m[1].includes("s")) flags = flags.replace("s", "");
  } else {
    flags = "u"; // RE2: '.' does not match \n unless (?s)
  }
  try {
    return new RegExp(`^(?:${body})$`, flags);
  } catch (e) {
    throw new MatcherError(`invalid regular expression ${JSON.stringify(src)}: ${(e as Error).message}`);
  }
}

export function matchesAll(matchers: CompiledMatcher[], labels: FlatLabels): boolean {
  for (const m of matchers) if (!m.matches(getLabel(labels, m.name))) return false;
  return true;
}
