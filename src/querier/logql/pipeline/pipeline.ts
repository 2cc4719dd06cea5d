// A log pipeline compiled once per query: the stages of a LogExpr in order.
// Leading line filters run on the string alone; labels are touched only by stages
// that need them, so `{app="x"} |= "error"` costs one indexOf per line.

import type { Stage } from "../ast";
import type { LabelsBuilder } from "./labels";
import { compileLineFilters, type LineTest } from "./line_filter";
import { jsonExpressionParser, jsonParser, logfmtParser, patternParser, regexpParser, unpackParser, type StageFn } from "./parsers";
import { decolorizeStage, dropStage, keepStage, labelFilterStage, labelFormatStage, lineFormatStage } from "./stages";

export interface Pipeline {
  /** Line filters before any other stage: if one fails, the entry is dropped before labels are looked at. */
  readonly prefilter: LineTest | null;
  /** The remaining stages; empty when the pipeline is only line filters. */
  readonly stages: StageFn[];
  /** Runs the stages after the prefilter; returns the final line, or null when dropped. */
  process(line: string, lb: LabelsBuilder, tsMs: number, tsNs: number): string | null;
}

export function compileStage(s: Stage): StageFn {
  switch (s.kind) {
    case "line_filter": {
      const t = compileLineFilters(s.filters);
      return (line) => (t(line) ? line : null);
    }
    case "json":
      return s.params.length > 0 ? jsonExpressionParser(s.params) : jsonParser();
    case "logfmt":
      return logfmtParser(s.params, s.strict, s.keepEmpty);
    case "regexp":
      return regexpParser(s.pattern);
    case "pattern":
      return patternParser(s.pattern);
    case "unpack":
      return unpackParser();
    case "label_filter":
      return labelFilterStage(s.filter);
    case "line_format":
      return lineFormatStage(s.template);
    case "label_format":
      return labelFormatStage(s.items);
    case "drop":
      return dropStage(s);
    case "keep":
      return keepStage(s);
    case "decolorize":
      return decolorizeStage();
  }
}

export function compilePipeline(stages: Stage[]): Pipeline {
  let i = 0;
  let prefilter: LineTest | null = null;
  if (stages.length > 0 && stages[0].kind === "line_filter") {
    prefilter = compileLineFilters(stages[0].filters);
    i = 1;
  }
  const fns = stages.slice(i).map(compileStage);
  const n = fns.length;
  return {
    prefilter,
    stages: fns,
    process(line, lb, tsMs, tsNs) {
      let l: string | null = line;
      for (let k = 0; k < n && l !== null; k++) l = fns[k](l, lb, tsMs, tsNs);
      return l;
    },
  };
}
