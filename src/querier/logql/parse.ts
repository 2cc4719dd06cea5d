// LogQL text → AST (ast.ts), with Loki's checks and error messages
// (pkg/logql/syntax: lex.go, syntax.y, ast.go validate()).
//
// The parse tree comes from @grafana/lezer-logql (Grafana's LogQL grammar). Two things
// are done around it:
//  1. Syntax errors: lezer marks them with error nodes. The token at the first error is
//     named as Loki's yacc parser names it ("syntax error: unexpected IDENTIFIER",
//     "unexpected $end", keywords and punctuation as written), with Loki's line/col
//     (1-based, counted in characters; errors at a range `[...]` are reported at line 0 as
//     Loki's duration scanner does). Loki's "expecting ..." suffixes are not reproduced.
//  2. Binary operators: the grammar builds operator chains without precedence
//     (`1 + 2 * 3` as (1+2)*3). Unparenthesised chains are flattened and rebuilt with
//     Loki's precedences (syntax.y): or < and/unless < comparisons < + - < * / % < ^ (right).

import { parser } from "@grafana/lezer-logql";
import { compileMatcher, compileRegex, MatcherError } from "../../model/matchers";
import { MatchType, type LabelMatcher } from "../../proto/types";
import {
  LogQLParseError,
  type BinaryExpr,
  type BinaryOp,
  type CmpOp,
  type DropKeepStage,
  type ExtractionParam,
  type Grouping,
  type LabelFilterExpr,
  type LabelFormatItem,
  type LineFilter,
  type LineFilterOp,
  type LogExpr,
  type LogQLExpr,
  type LogRange,
  type RangeOp,
  type SampleExpr,
  type Stage,
  type Unwrap,
  type VectorMatching,
  type VectorOp,
} from "./ast";
import { compilePattern } from "./pipeline/pattern";
import { compileTemplate } from "./template";
import { goUnquote, parseBytes, parseDuration, UnitError } from "./units";

type SyntaxNode = ReturnType<typeof parser.parse>["topNode"];

/** An error at a UTF-16 offset of the input, turned into Loki's line/col at the end. */
class PosError {
  constructor(
    readonly pos: number,
    readonly msg: string,
    /** Loki reports some errors (ranges) at line 0. */
    readonly lineZero = false,
  ) {}
}

/** Parses and validates a LogQL query; throws LogQLParseError with Loki's messages. */
export function parseLogQL(query: string): LogQLExpr {
  let expr: LogQLExpr;
  try {
    if (query.trim() === "") throw new PosError(query.length, "syntax error: unexpected $end");
    const { text, offsets } = liftOffsets(query);
    const tree = parser.parse(text);
    const err = firstError(tree.topNode);
    if (err !== null) throw syntaxErrorAt(query, err);
    const top = tree.topNode.getChild("Expr");
    if (top === null) throw new PosError(0, "syntax error: unexpected $end");
    expr = new Builder(query, offsets).expr(top);
  } catch (e) {
    if (e instanceof PosError) throw toParseError(query, e);
    if (e instanceof LogQLParseError) throw e;
    if (e instanceof MatcherError || e instanceof UnitError) throw new LogQLParseError(e.message, 0, 0);
    throw e;
  }
  validate(expr);
  return expr;
}

/**
 * lezer-logql 0.3.0 rejects `offset` after a range whose selector has both a pipeline and
 * an unwrap (`rate({a="b"} | json | unwrap x [5m] offset 1m)`), which Loki accepts. Every
 * `] offset <duration>` outside string literals is blanked out (positions kept) and its
 * duration remembered by the index of the `]`.
 */
function liftOffsets(q: string): { text: string; offsets: Map<number, { at: number; dur: string }> } {
  const offsets = new Map<number, { at: number; dur: string }>();
  let text = q;
  for (let i = 0; i < q.length; i++) {
    const c = q[i];
    if (c === '"' || c === "`") {
      let j = i + 1;
      while (j < q.length && q[j] !== c) j += c === '"' && q[j] === "\\" ? 2 : 1;
      i = j;
      continue;
    }
    if (c !== "]") continue;
    const m = /^\]\s*offset\s+(-?[0-9a-zA-Z.µμ]+)/i.exec(q.slice(i));
    if (m === null) continue;
    const start = i + 1;
    const end = i + m[0].length;
    offsets.set(i, { at: start + m[0].slice(1).search(/offset/i), dur: m[1] });
    text = text.slice(0, start) + " ".repeat(end - start) + text.slice(end);
  }
  return { text, offsets };
}

function toParseError(input: string, e: PosError): LogQLParseError {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < e.pos && i < input.length; i++) {
    if (input.charCodeAt(i) === 0x0a) {
      line++;
      lineStart = i + 1;
    }
  }
  const col = [...input.slice(lineStart, e.pos)].length + 1;
  return new LogQLParseError(e.msg, e.lineZero ? 0 : line, col);
}

function firstError(top: SyntaxNode): number | null {
  let at: number | null = null;
  top.cursor().iterate((n) => {
    if (at !== null) return false;
    if (n.type.isError) {
      at = n.from;
      return false;
    }
    return undefined;
  });
  return at;
}

// Loki's keywords print as written; other tokens by their yacc names.
const KEYWORDS = new Set([
  "json", "logfmt", "regexp", "pattern", "unpack", "unwrap", "line_format", "label_format", "label_replace", "vector",
  "offset", "bool", "on", "ignoring", "group_left", "group_right", "decolorize", "drop", "keep", "by", "without",
  "and", "or", "unless", "sum", "avg", "count", "max", "min", "stddev", "stdvar", "bottomk", "topk", "sort", "sort_desc",
  "ip", "count_over_time", "rate", "rate_counter", "bytes_over_time", "bytes_rate", "avg_over_time", "sum_over_time",
  "min_over_time", "max_over_time", "stddev_over_time", "stdvar_over_time", "quantile_over_time", "first_over_time",
  "last_over_time", "absent_over_time", "bytes", "duration", "duration_seconds",
]);

function syntaxErrorAt(input: string, pos: number): PosError {
  let i = pos;
  // lezer may put the error node before whitespace; Loki names the next token.
  while (i < input.length && /\s/.test(input[i])) i++;
  if (i >= input.length) return new PosError(input.length, "syntax error: unexpected $end");
  // Inside a range `[...]`: Loki's lexer reads the range as one token.
  const open = input.lastIndexOf("[", i);
  if (open >= 0 && input.indexOf("]", open) >= i && !input.slice(open, i).includes("]")) i = open;
  const rest = input.slice(i);
  let tok: string;
  let lineZero = false;
  let m: RegExpExecArray | null;
  if (rest[0] === '"' || rest[0] === "`") tok = "STRING";
  else if (rest[0] === "[") {
    tok = "RANGE";
    lineZero = true;
    const close = rest.indexOf("]");
    if (close < 0) return new PosError(i, "missing closing ']' in duration", true);
    try {
      parseDuration(rest.slice(1, close));
    } catch (e) {
      if (e instanceof UnitError) return new PosError(i, e.message, true);
    }
  } else if ((m = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(rest))) {
    const word = m[0];
    if (KEYWORDS.has(word.toLowerCase())) tok = word.toLowerCase();
    else if (/^[0-9]/.test(rest)) tok = "NUMBER";
    else tok = "IDENTIFIER";
  } else if ((m = /^[0-9.]+([a-zA-Zµμ]+[0-9.]*)*/.exec(rest))) {
    const w = m[0];
    tok = /^[0-9.]+$/.test(w) ? "NUMBER" : /[bB]$/.test(w) || /i$/.test(w) ? "BYTES" : "DURATION";
  } else if ((m = /^(\|=|\|~|\|>|!=|!~|!>|=~|==|>=|<=|\|)/.exec(rest))) tok = m[0];
  else tok = [...rest][0];
  return new PosError(i, `syntax error: unexpected ${tok}`, lineZero);
}

// ---------------------------------------------------------------------------------------

const RANGE_OPS: Record<string, RangeOp> = {
  CountOverTime: "count_over_time",
  Rate: "rate",
  RateCounter: "rate_counter",
  BytesOverTime: "bytes_over_time",
  BytesRate: "bytes_rate",
  AvgOverTime: "avg_over_time",
  SumOverTime: "sum_over_time",
  MinOverTime: "min_over_time",
  MaxOverTime: "max_over_time",
  StddevOverTime: "stddev_over_time",
  StdvarOverTime: "stdvar_over_time",
  QuantileOverTime: "quantile_over_time",
  FirstOverTime: "first_over_time",
  LastOverTime: "last_over_time",
  AbsentOverTime: "absent_over_time",
};

const BIN_OPS: Record<string, BinaryOp> = {
  Add: "+",
  Sub: "-",
  Mul: "*",
  Div: "/",
  Mod: "%",
  Pow: "^",
  Eql: "==",
  Neq: "!=",
  Gtr: ">",
  Gte: ">=",
  Lss: "<",
  Lte: "<=",
  And: "and",
  Or: "or",
  Unless: "unless",
};

const PRECEDENCE: Record<BinaryOp, number> = {
  or: 1,
  and: 2,
  unless: 2,
  "==": 3,
  "!=": 3,
  ">": 3,
  ">=": 3,
  "<": 3,
  "<=": 3,
  "+": 4,
  "-": 4,
  "*": 5,
  "/": 5,
  "%": 5,
  "^": 6,
};

const CMP: Record<string, CmpOp> = { Eq: "==", Eql: "==", Neq: "!=", Gtr: ">", Gte: ">=", Lss: "<", Lte: "<=" };

interface OpInfo {
  op: BinaryOp;
  returnBool: boolean;
  matching: VectorMatching | null;
}

class Builder {
  constructor(
    private readonly src: string,
    private readonly offsets: Map<number, { at: number; dur: string }>,
  ) {}

  private text(n: SyntaxNode): string {
    return this.src.slice(n.from, n.to);
  }

  private str(n: SyntaxNode): string {
    const v = goUnquote(this.text(n));
    if (v === null) throw new PosError(n.from, `invalid string literal ${this.text(n)}`);
    return v;
  }

  private children(n: SyntaxNode): SyntaxNode[] {
    const out: SyntaxNode[] = [];
    for (let c = n.firstChild; c !== null; c = c.nextSibling) out.push(c);
    return out;
  }

  expr(n: SyntaxNode): LogQLExpr {
    const c = n.firstChild;
    if (c === null) throw new PosError(n.from, "syntax error: unexpected $end");
    if (c.name === "LogExpr") return this.logExpr(c);
    if (c.name === "MetricExpr") return this.metric(c);
    throw new PosError(c.from, `syntax error: unexpected ${c.name}`);
  }

  logExpr(n: SyntaxNode): LogExpr {
    const sel = n.getChild("Selector");
    if (sel === null) throw new PosError(n.from, "syntax error: unexpected $end");
    const pipe = n.getChild("PipelineExpr");
    return { kind: "log", matchers: this.selector(sel), stages: pipe ? this.pipeline(pipe) : [] };
  }

  selector(n: SyntaxNode): LabelMatcher[] {
    const out: LabelMatcher[] = [];
    const walk = (m: SyntaxNode | null): void => {
      if (m === null) return;
      for (const c of this.children(m)) {
        if (c.name === "Matchers") walk(c);
        else if (c.name === "Matcher") out.push(this.matcher(c));
      }
    };
    walk(n.getChild("Matchers"));
    return out;
  }

  matcher(n: SyntaxNode): LabelMatcher {
    const name = this.text(n.getChild("Identifier") as SyntaxNode);
    const opNode = n.getChild("Eq") ?? n.getChild("Neq") ?? n.getChild("Re") ?? n.getChild("Nre");
    const value = this.str(n.getChild("String") as SyntaxNode);
    const type = opNode?.name === "Neq" ? MatchType.NEQ : opNode?.name === "Re" ? MatchType.RE : opNode?.name === "Nre" ? MatchType.NRE : MatchType.EQ;
    const m = { type, name, value };
    if (type === MatchType.RE || type === MatchType.NRE) {
      try {
        compileMatcher(m);
      } catch (e) {
        throw new LogQLParseError(`error parsing regexp: ${(e as Error).message}`, 0, 0);
      }
    }
    return m;
  }

  pipeline(n: SyntaxNode): Stage[] {
    const out: Stage[] = [];
    const walk = (p: SyntaxNode): void => {
      for (const c of this.children(p)) {
        if (c.name === "PipelineExpr") walk(c);
        else if (c.name === "PipelineStage") this.stage(c, out);
      }
    };
    walk(n);
    return out;
  }

  private stage(n: SyntaxNode, out: Stage[]): void {
    for (const c of this.children(n)) {
      switch (c.name) {
        case "Pipe":
          break;
        case "LineFilters": {
          // Consecutive filters form one stage (Loki's nested line filters).
          const filters: LineFilter[] = [];
          this.lineFilters(c, filters);
          const prev = out[out.length - 1];
          if (prev !== undefined && prev.kind === "line_filter") prev.filters.push(...filters);
          else out.push({ kind: "line_filter", filters });
          break;
        }
        case "LabelParser": {
          const kw = c.firstChild as SyntaxNode;
          if (kw.name === "Json") out.push({ kind: "json", params: [] });
          else if (kw.name === "Logfmt") out.push({ kind: "logfmt", params: [], strict: false, keepEmpty: false });
          else if (kw.name === "Unpack") out.push({ kind: "unpack" });
          else if (kw.name === "Regexp") {
            const s = c.getChild("String") as SyntaxNode;
            const pattern = this.str(s);
            try {
              const re = compileRegex(pattern);
              if (!/\(\?<[a-zA-Z_]/.test(re.source)) throw new LogQLParseError("at least one named capture must be supplied", 0, 0);
            } catch (e) {
              if (e instanceof LogQLParseError) throw e;
              throw new LogQLParseError(`invalid regexp ${(e as Error).message}`, 0, 0);
            }
            out.push({ kind: "regexp", pattern });
          } else if (kw.name === "Pattern") {
            const pattern = this.str(c.getChild("String") as SyntaxNode);
            try {
              compilePattern(pattern);
            } catch (e) {
              throw new LogQLParseError((e as Error).message, 0, 0);
            }
            out.push({ kind: "pattern", pattern });
          }
          break;
        }
        case "JsonExpressionParser":
          out.push({ kind: "json", params: this.extractions(c, true) });
          break;
        case "LogfmtParser":
        case "LogfmtExpressionParser": {
          const flags: string[] = [];
          c.cursor().iterate((x) => {
            if (x.name === "ParserFlag") flags.push(this.src.slice(x.from, x.to));
          });
          out.push({
            kind: "logfmt",
            params: c.name === "LogfmtExpressionParser" ? this.extractions(c, false) : [],
            strict: flags.includes("--strict"),
            keepEmpty: flags.includes("--keep-empty"),
          });
          break;
        }
        case "LabelFilter":
          out.push({ kind: "label_filter", filter: this.labelFilter(c) });
          break;
        case "LineFormatExpr": {
          const template = this.str(c.getChild("String") as SyntaxNode);
          this.checkTemplate(template, c);
          out.push({ kind: "line_format", template });
          break;
        }
        case "LabelFormatExpr":
          out.push({ kind: "label_format", items: this.labelFormats(c) });
          break;
        case "DropLabelsExpr":
        case "KeepLabelsExpr":
          out.push(this.dropKeep(c));
          break;
        case "DecolorizeExpr":
          out.push({ kind: "decolorize" });
          break;
        default:
          throw new PosError(c.from, `syntax error: unexpected ${this.text(c)}`);
      }
    }
  }

  private checkTemplate(t: string, at: SyntaxNode): void {
    try {
      compileTemplate(t);
    } catch (e) {
      throw new PosError(at.from, `invalid line template: ${(e as Error).message}`);
    }
  }

  private lineFilters(n: SyntaxNode, out: LineFilter[]): void {
    for (const c of this.children(n)) {
      if (c.name === "LineFilters") this.lineFilters(c, out);
      else if (c.name === "LineFilter") out.push(this.lineFilter(c));
    }
  }

  private lineFilter(n: SyntaxNode): LineFilter {
    const f = (n.getChild("Filter") as SyntaxNode).firstChild as SyntaxNode;
    const ops: Record<string, LineFilterOp> = { PipeExact: "|=", Neq: "!=", PipeMatch: "|~", Nre: "!~", PipePattern: "|>", Npa: "!>" };
    const op = ops[f.name];
    if (op === undefined) throw new PosError(f.from, `syntax error: unexpected ${this.text(f)}`);
    if (n.getChild("FilterOp") !== null) {
      throw new LogQLParseError("ip() line filters are not supported by this server", 0, 0);
    }
    const values = [this.str(n.getChild("String") as SyntaxNode)];
    for (let o = n.getChild("OrFilter"); o !== null; o = o.getChild("OrFilter")) {
      values.push(this.str(o.getChild("String") as SyntaxNode));
    }
    for (const v of values) {
      if (op === "|~" || op === "!~") {
        try {
          compileRegex(v);
        } catch (e) {
          throw new LogQLParseError(`error parsing regexp: ${(e as Error).message}`, 0, 0);
        }
      }
      if (op === "|>" || op === "!>") {
        try {
          compilePattern(v, true);
        } catch (e) {
          throw new LogQLParseError((e as Error).message, 0, 0);
        }
      }
    }
    return { op, values };
  }

  private extractions(n: SyntaxNode, json: boolean): ExtractionParam[] {
    const out: ExtractionParam[] = [];
    n.cursor().iterate((x) => {
      if (x.name !== "LabelExtractionExpression") return undefined;
      const id = x.node.getChild("Identifier") as SyntaxNode;
      const s = x.node.getChild("String");
      const name = this.text(id);
      out.push({ name, expr: s ? this.str(s) : name });
      return false;
    });
    if (json) for (const p of out) if (parseJsonPath(p.expr) === null) throw new LogQLParseError(`unexpected json path expression ${p.expr}`, 0, 0);
    return out;
  }

  labelFilter(n: SyntaxNode): LabelFilterExpr {
    const kids = this.children(n);
    const subs = kids.filter((k) => k.name === "LabelFilter");
    if (subs.length === 2) {
      const or = kids.some((k) => k.name === "Or");
      return { kind: or ? "or" : "and", left: this.labelFilter(subs[0]), right: this.labelFilter(subs[1]) };
    }
    if (subs.length === 1) return this.labelFilter(subs[0]); // parentheses
    const leaf = kids[0];
    switch (leaf.name) {
      case "Matcher":
        return { kind: "matcher", matcher: this.matcher(leaf) };
      case "NumberFilter": {
        const name = this.text(leaf.getChild("Identifier") as SyntaxNode);
        const op = this.cmp(leaf);
        const lit = leaf.getChild("LiteralExpr") as SyntaxNode;
        return { kind: "number", name, op, value: this.literal(lit) };
      }
      case "UnitFilter": {
        const f = leaf.firstChild as SyntaxNode;
        const name = this.text(f.getChild("Identifier") as SyntaxNode);
        const op = this.cmp(f);
        if (f.name === "DurationFilter") {
          const d = f.getChild("Duration") as SyntaxNode;
          return { kind: "duration", name, op, value: parseDuration(this.text(d)) / 1000 };
        }
        const b = f.getChild("Bytes") as SyntaxNode;
        return { kind: "bytes", name, op, value: parseBytes(this.text(b)) };
      }
      case "IpLabelFilter":
        throw new LogQLParseError("ip() label filters are not supported by this server", 0, 0);
      default:
        throw new PosError(leaf.from, `syntax error: unexpected ${this.text(leaf)}`);
    }
  }

  private cmp(n: SyntaxNode): CmpOp {
    for (const c of this.children(n)) {
      const op = CMP[c.name];
      if (op !== undefined) return op;
    }
    throw new PosError(n.from, "syntax error: missing comparison operator");
  }

  private literal(n: SyntaxNode): number {
    const num = n.getChild("Number") as SyntaxNode;
    const v = Number(this.text(num));
    return n.getChild("Sub") !== null ? -v : v;
  }

  private labelFormats(n: SyntaxNode): LabelFormatItem[] {
    const out: LabelFormatItem[] = [];
    n.cursor().iterate((x) => {
      if (x.name !== "LabelFormatMatcher") return undefined;
      const ids = x.node.getChildren("Identifier");
      const name = this.text(ids[0]);
      if (ids.length > 1) out.push({ name, rename: this.text(ids[1]), template: null });
      else {
        const template = this.str(x.node.getChild("String") as SyntaxNode);
        this.checkTemplate(template, x.node);
        out.push({ name, rename: null, template });
      }
      return false;
    });
    // Loki: "multiple label name 'x' not allowed in a single format operation".
    const seen = new Set<string>();
    for (const it of out) {
      if (seen.has(it.name)) throw new LogQLParseError(`label name ${it.name} used more than once in a single label_format`, 0, 0);
      seen.add(it.name);
    }
    return out;
  }

  private dropKeep(n: SyntaxNode): DropKeepStage {
    const items: DropKeepStage["items"] = [];
    n.cursor().iterate((x) => {
      if (x.name !== "DropLabel" && x.name !== "KeepLabel") return undefined;
      const m = x.node.getChild("Matcher");
      if (m !== null) {
        const matcher = this.matcher(m);
        items.push({ name: matcher.name, matcher });
      } else items.push({ name: this.text(x.node.getChild("Identifier") as SyntaxNode), matcher: null });
      return false;
    });
    return { kind: n.name === "DropLabelsExpr" ? "drop" : "keep", items };
  }

  // ------------------------------------------------------------------ metric expressions

  metric(n: SyntaxNode): SampleExpr {
    const c = n.firstChild;
    if (c === null) throw new PosError(n.from, "syntax error: unexpected $end");
    switch (c.name) {
      case "MetricExpr":
        return this.metric(c); // parentheses
      case "RangeAggregationExpr":
        return this.rangeAgg(c);
      case "VectorAggregationExpr":
        return this.vectorAgg(c);
      case "BinOpExpr":
        return this.binaryChain(c);
      case "LiteralExpr":
        return { kind: "literal", value: this.literal(c) };
      case "VectorExpr":
        return { kind: "vector", value: Number(this.text(c.getChild("Number") as SyntaxNode)) };
      case "LabelReplaceExpr": {
        const strs = c.getChildren("String").map((s) => this.str(s));
        if (strs.length !== 4) throw new PosError(c.to - 1, "syntax error: unexpected ), expecting ,");
        const [dst, replacement, srcLabel, regex] = strs;
        try {
          compileRegex(regex);
        } catch (e) {
          throw new LogQLParseError(`invalid regex in label_replace: error parsing regexp: ${(e as Error).message}`, 0, 0);
        }
        if (!/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(dst)) throw new LogQLParseError(`invalid destination label name in label_replace: ${dst}`, 0, 0);
        return { kind: "label_replace", expr: this.metric(c.getChild("MetricExpr") as SyntaxNode), dst, replacement, src: srcLabel, regex };
      }
      default:
        throw new PosError(c.from, `syntax error: unexpected ${this.text(c)}`);
    }
  }

  private grouping(n: SyntaxNode | null): Grouping | null {
    if (n === null) return null;
    const labels: string[] = [];
    n.getChild("Labels")?.cursor().iterate((x) => {
      if (x.name === "Identifier") labels.push(this.src.slice(x.from, x.to));
    });
    return { without: n.getChild("Without") !== null, labels };
  }

  private rangeAgg(n: SyntaxNode): SampleExpr {
    const opNode = (n.getChild("RangeOp") as SyntaxNode).firstChild as SyntaxNode;
    const op = RANGE_OPS[opNode.name];
    const num = n.getChild("Number");
    const lr = n.getChild("LogRangeExpr") as SyntaxNode;
    const range = this.logRange(lr);
    return { kind: "range_agg", op, param: num ? Number(this.text(num)) : null, range, grouping: this.grouping(n.getChild("Grouping")) };
  }

  private logRange(n: SyntaxNode): LogRange {
    const sel = n.getChild("Selector") as SyntaxNode;
    const pipe = n.getChild("PipelineExpr");
    const selector: LogExpr = { kind: "log", matchers: this.selector(sel), stages: pipe ? this.pipeline(pipe) : [] };
    const rangeNode = n.getChild("Range") as SyntaxNode;
    const rangeMs = this.duration(rangeNode.getChild("Duration") as SyntaxNode, rangeNode.from);
    let offsetMs = 0;
    const off = this.offsets.get(this.src.indexOf("]", rangeNode.from));
    if (off !== undefined) {
      try {
        offsetMs = parseDuration(off.dur);
      } catch (e) {
        throw new PosError(off.at, (e as Error).message);
      }
    }
    let unwrap: Unwrap | null = null;
    const uw = n.getChild("UnwrapExpr");
    if (uw !== null) unwrap = this.unwrap(uw);
    return { selector, rangeMs, offsetMs, unwrap };
  }

  private duration(n: SyntaxNode, at: number): number {
    try {
      return parseDuration(this.text(n));
    } catch (e) {
      throw new PosError(at, (e as Error).message, true);
    }
  }

  private unwrap(n: SyntaxNode): Unwrap {
    const inner = n.getChild("UnwrapExpr");
    if (inner !== null) {
      const u = this.unwrap(inner);
      const lf = n.getChild("LabelFilter");
      if (lf !== null) u.postFilters.push(this.labelFilter(lf));
      return u;
    }
    const conv = n.getChild("ConvOp");
    const convName = conv?.firstChild?.name;
    return {
      label: this.text(n.getChild("Identifier") as SyntaxNode),
      conv: convName === "BytesConv" ? "bytes" : convName === "DurationConv" ? "duration" : convName === "DurationSecondsConv" ? "duration_seconds" : "",
      postFilters: [],
    };
  }

  private vectorAgg(n: SyntaxNode): SampleExpr {
    const opNode = (n.getChild("VectorOp") as SyntaxNode).firstChild as SyntaxNode;
    const op = this.text(opNode).toLowerCase() as VectorOp;
    const num = n.getChild("Number");
    const inner = this.metric(n.getChild("MetricExpr") as SyntaxNode);
    const grouping = this.grouping(n.getChild("Grouping"));
    let param: number | null = null;
    if (op === "topk" || op === "bottomk") {
      if (num === null) throw new PosError(n.from, `syntax error: unexpected ${op}`);
      const t = this.text(num);
      param = Number(t);
      if (!/^[0-9]+$/.test(t)) throw new LogQLParseError(`invalid parameter ${op}(${t},`, 0, 0);
      if (param <= 0) throw new LogQLParseError(`invalid parameter (must be greater than 0) ${op}(${t}`, 0, 0);
    } else if (num !== null) throw new LogQLParseError(`unsupported parameter for operation ${op}(${this.text(num)},`, 0, 0);
    return { kind: "vector_agg", op, param, expr: inner, grouping };
  }

  /** Flattens an unparenthesised operator chain and rebuilds it with Loki's precedences. */
  private binaryChain(n: SyntaxNode): SampleExpr {
    const operands: SampleExpr[] = [];
    const ops: OpInfo[] = [];
    const flatten = (b: SyntaxNode): void => {
      const kids = this.children(b);
      const exprs = kids.filter((k) => k.name === "Expr");
      const opNode = kids.find((k) => BIN_OPS[k.name] !== undefined) as SyntaxNode;
      const side = (e: SyntaxNode): void => {
        const m = e.firstChild as SyntaxNode;
        if (m.name === "LogExpr") throw new PosError(m.from, "syntax error: unexpected {");
        const inner = m.firstChild as SyntaxNode;
        if (inner.name === "BinOpExpr") flatten(inner);
        else operands.push(this.metric(m));
      };
      side(exprs[0]);
      ops.push(this.opInfo(BIN_OPS[opNode.name], b.getChild("BinOpModifier")));
      side(exprs[1]);
    };
    flatten(n);
    // Precedence climbing over the flattened chain.
    let pos = 0;
    const parseRest = (minPrec: number): SampleExpr => {
      let lhs = operands[pos];
      while (pos < ops.length && PRECEDENCE[ops[pos].op] >= minPrec) {
        const info = ops[pos];
        const prec = PRECEDENCE[info.op];
        pos++;
        const rhs = parseRest(prec + (info.op === "^" ? 0 : 1));
        lhs = this.binary(info, lhs, rhs);
      }
      return lhs;
    };
    return parseRest(0);
  }

  private opInfo(op: BinaryOp, mod: SyntaxNode | null): OpInfo {
    let returnBool = false;
    let matching: VectorMatching | null = null;
    if (mod !== null) {
      returnBool = mod.getChild("Bool") !== null;
      const oi = mod.getChild("OnOrIgnoringModifier");
      if (oi !== null) {
        const labelsOf = (g: SyntaxNode | null): string[] => {
          const out: string[] = [];
          g?.cursor().iterate((x) => {
            if (x.name === "LabelName") out.push(this.src.slice(x.from, x.to));
          });
          return out;
        };
        const on = oi.getChild("On") !== null;
        const gl = mod.getChild("GroupLeft");
        const gr = mod.getChild("GroupRight");
        // The include labels are the GroupingLabels after group_left/right.
        const groups = mod.getChildren("GroupingLabels");
        matching = {
          on,
          labels: labelsOf(oi.getChild("GroupingLabels")),
          card: gl ? "many-to-one" : gr ? "one-to-many" : "one-to-one",
          include: groups.length > 0 ? labelsOf(groups[0]) : [],
        };
      }
    }
    return { op, returnBool, matching };
  }

  private binary(info: OpInfo, lhs: SampleExpr, rhs: SampleExpr): BinaryExpr {
    const isScalar = (e: SampleExpr) => e.kind === "literal";
    if (info.returnBool && !COMPARISON.has(info.op)) throw new LogQLParseError("bool modifier can only be used on comparison operators", 0, 0);
    if ((info.op === "and" || info.op === "or" || info.op === "unless") && (isScalar(lhs) || isScalar(rhs))) {
      throw new LogQLParseError(`unexpected literal for right leg of logical/set binary operation (${info.op}): ${rhs.kind === "literal" ? rhs.value : ""}`, 0, 0);
    }
    if (COMPARISON.has(info.op) && isScalar(lhs) && isScalar(rhs) && !info.returnBool) {
      throw new LogQLParseError("comparisons between scalars must use BOOL modifier", 0, 0);
    }
    return { kind: "binary", op: info.op, lhs, rhs, returnBool: info.returnBool, matching: info.matching };
  }
}

const COMPARISON = new Set<BinaryOp>(["==", "!=", ">", ">=", "<", "<="]);

/** A JSON path of `| json a="b.c[0]"` as segments (strings: keys, numbers: indexes), or null if malformed. */
export function parseJsonPath(p: string): (string | number)[] | null {
  const out: (string | number)[] = [];
  let i = 0;
  while (i < p.length) {
    if (p[i] === "[") {
      const close = p.indexOf("]", i);
      if (close < 0) return null;
      const inner = p.slice(i + 1, close).trim();
      if (/^[0-9]+$/.test(inner)) out.push(Number(inner));
      else {
        const s = goUnquote(inner) ?? (inner.startsWith("'") && inner.endsWith("'") ? inner.slice(1, -1) : null);
        if (s === null) return null;
        out.push(s);
      }
      i = close + 1;
      if (p[i] === ".") i++;
    } else {
      let j = i;
      while (j < p.length && p[j] !== "." && p[j] !== "[") j++;
      if (j === i) return null;
      out.push(p.slice(i, j));
      i = j;
      if (p[i] === ".") i++;
    }
  }
  return out.length > 0 ? out : null;
}

// ---------------------------------------------------------------------------------------
// Loki's validation after parsing (ast.go RangeAggregationExpr.validate, parser.go validateExpr).

const UNWRAP_OPS = new Set<RangeOp>([
  "avg_over_time", "sum_over_time", "max_over_time", "min_over_time", "stddev_over_time", "stdvar_over_time",
  "quantile_over_time", "rate", "rate_counter", "absent_over_time", "first_over_time", "last_over_time",
]);
const PLAIN_OPS = new Set<RangeOp>(["bytes_over_time", "bytes_rate", "count_over_time", "rate", "absent_over_time"]);
const GROUPING_OPS = new Set<RangeOp>([
  "avg_over_time", "stddev_over_time", "stdvar_over_time", "quantile_over_time", "rate", "rate_counter",
  "max_over_time", "min_over_time", "first_over_time", "last_over_time", "sum_over_time",
]);

function validate(e: LogQLExpr): void {
  switch (e.kind) {
    case "log":
      validateMatchers(e.matchers);
      return;
    case "range_agg": {
      validateMatchers(e.range.selector.matchers);
      if (e.grouping !== null && !GROUPING_OPS.has(e.op)) throw new LogQLParseError(`grouping not allowed for ${e.op} aggregation`, 0, 0);
      if (e.range.unwrap !== null) {
        if (!UNWRAP_OPS.has(e.op)) throw new LogQLParseError(`invalid aggregation ${e.op} with unwrap`, 0, 0);
      } else if (!PLAIN_OPS.has(e.op)) throw new LogQLParseError(`invalid aggregation ${e.op} without unwrap`, 0, 0);
      if (e.op === "quantile_over_time" && e.param === null) throw new LogQLParseError("parameter required for operation quantile_over_time", 0, 0);
      if (e.op !== "quantile_over_time" && e.param !== null) throw new LogQLParseError(`parameter ${e.param} not supported for operation ${e.op}`, 0, 0);
      return;
    }
    case "vector_agg":
      validate(e.expr);
      return;
    case "binary":
      validate(e.lhs);
      validate(e.rhs);
      return;
    case "label_replace":
      validate(e.expr);
      return;
    case "literal":
    case "vector":
      return;
  }
}

const ERR_EQUALITY =
  'queries require at least one regexp or equality matcher that does not have an empty-compatible value. For instance, app=~".*" does not meet this requirement, but app=~".+" will';

function validateMatchers(ms: LabelMatcher[]): void {
  for (const m of ms) {
    if ((m.type === MatchType.EQ || m.type === MatchType.RE) && !compileMatcher(m).matchesEmpty) return;
  }
  throw new LogQLParseError(ERR_EQUALITY, 0, 0);
}
