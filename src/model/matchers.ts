// Label matchers (=, !=, =~, !~) compiled once per query. Regexps follow
// Prometheus: fully anchored RE2, '.' matching newlines (src/model/regex.ts).

import { MatchType, type LabelMatcher } from "../proto/types";
import { getLabel, type FlatLabels } from "./labels";
import { anchoredRE2 } from "./regex";

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
  try {
    return anchoredRE2(src);
  } catch (e) {
    throw new MatcherError(`invalid regular expression ${JSON.stringify(src)}: ${(e as Error).message}`);
  }
}

export function matchesAll(matchers: CompiledMatcher[], labels: FlatLabels): boolean {
  for (const m of matchers) if (!m.matches(getLabel(labels, m.name))) return false;
  return true;
}
