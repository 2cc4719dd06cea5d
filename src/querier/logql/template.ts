// The Go text/template subset that Loki's line_format and label_format use
// (pkg/logql/log/fmt.go): the data is the entry's labels as map[string]string with
// missingkey=zero (a missing label prints ""), plus Loki's functions.
//
// Supported: text, {{.name}}, {{ . }}, comments, {{- -}} trimming, pipelines
// (`{{ .a | ToUpper | printf "%s!" }}`), parenthesised sub-pipelines, string/number/bool
// literals, if / else if / else / end, and these functions:
//   Go builtins: and or not len eq ne lt le gt ge print printf println
//   Loki: __line__ __timestamp__ ToLower ToUpper Replace Trim TrimLeft TrimRight TrimPrefix
//     TrimSuffix TrimSpace regexReplaceAll regexReplaceAllLiteral count urlencode urldecode
//     b64enc b64dec unixEpoch unixEpochMillis unixEpochNanos alignLeft alignRight
//   sprig: lower upper title trunc substr contains hasPrefix hasSuffix replace repeat trim
//     trimAll trimPrefix trimSuffix default indent nindent add sub mul div mod addf subf
//     mulf divf max min maxf minf ceil floor round int float64
// Not supported (a parse error names them): range, with, define/template/block, variables
// ($x := ...), index, slice, date/toDate/now (time formatting), fromJson, bytes, duration.

import { translateRE2 } from "../../model/regex";

export interface TemplateData {
  /** A label's value, or undefined when the entry does not have it. */
  get(name: string): string | undefined;
  line: string;
  tsMs: number;
  tsNs: number;
}

export class TemplateError extends Error {}

type Value = string | number | boolean | null | GoTime;

/** A time.Time as __timestamp__ returns it. */
class GoTime {
  constructor(
    readonly ms: number,
    readonly ns: number,
  ) {}
  toString(): string {
    // time.Time.String() in UTC: "2006-01-02 15:04:05.999999999 +0000 UTC".
    const d = new Date(this.ms);
    const frac = ((this.ms % 1000 + 1000) % 1000) * 1e6 + this.ns;
    const pad = (n: number, w = 2) => String(n).padStart(w, "0");
    let s = `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
    if (frac > 0) s += "." + String(frac).padStart(9, "0").replace(/0+$/, "");
    return s + " +0000 UTC";
  }
}

type Arg =
  | { t: "field"; name: string }
  | { t: "dot" }
  | { t: "lit"; v: Value }
  | { t: "fn"; name: string }
  | { t: "sub"; p: Pipeline };
type Command = Arg[];
type Pipeline = Command[];

type Node =
  | { t: "text"; s: string }
  | { t: "action"; p: Pipeline }
  | { t: "if"; cond: Pipeline; then: Node[]; else: Node[] };

export interface Template {
  execute(d: TemplateData): string;
  /** True when the template is plain text (no actions): executing returns it unchanged. */
  readonly constant: boolean;
}

const cache = new Map<string, Template>();

/** Compiles a template once per query text (cached: dashboards repeat the same templates). */
export function compileTemplate(src: string): Template {
  let t = cache.get(src);
  if (t === undefined) {
    const nodes = parseTemplate(src);
    const constant = nodes.every((n) => n.t === "text");
    t = { constant, execute: (d) => run(nodes, d) };
    if (cache.size > 1000) cache.clear();
    cache.set(src, t);
  }
  return t;
}

// ---------------------------------------------------------------- parsing

interface Tok {
  k: "field" | "dot" | "str" | "num" | "ident" | "pipe" | "lp" | "rp" | "bool";
  v: string;
}

function lexAction(s: string): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  while (i < s.length) {
    const c = s[i];
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (c === "|") {
      out.push({ k: "pipe", v: c });
      i++;
    } else if (c === "(") {
      out.push({ k: "lp", v: c });
      i++;
    } else if (c === ")") {
      out.push({ k: "rp", v: c });
      i++;
    } else if (c === '"' || c === "`") {
      let j = i + 1;
      while (j < s.length && s[j] !== c) j += s[j] === "\\" && c === '"' ? 2 : 1;
      if (j >= s.length) throw new TemplateError("unterminated quoted string");
      const lit = s.slice(i, j + 1);
      out.push({ k: "str", v: c === "`" ? lit.slice(1, -1) : (JSON.parse(lit.replace(/\\x([0-9a-fA-F]{2})/g, "\\u00$1")) as string) });
      i = j + 1;
    } else if (c === "." && /[a-zA-Z_]/.test(s[i + 1] ?? "")) {
      const m = /^\.[a-zA-Z_][a-zA-Z0-9_]*/.exec(s.slice(i)) as RegExpExecArray;
      out.push({ k: "field", v: m[0].slice(1) });
      i += m[0].length;
    } else if (c === ".") {
      out.push({ k: "dot", v: c });
      i++;
    } else if (/[-+0-9]/.test(c)) {
      const m = /^[-+]?(0x[0-9a-fA-F]+|[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?)/.exec(s.slice(i));
      if (!m) throw new TemplateError(`bad number syntax: ${JSON.stringify(s.slice(i))}`);
      out.push({ k: "num", v: m[0] });
      i += m[0].length;
    } else if (/[a-zA-Z_]/.test(c)) {
      const m = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(s.slice(i)) as RegExpExecArray;
      out.push({ k: m[0] === "true" || m[0] === "false" ? "bool" : "ident", v: m[0] });
      i += m[0].length;
    } else if (c === "$") {
      throw new TemplateError("template variables ($) are not supported");
    } else {
      throw new TemplateError(`unexpected ${JSON.stringify(c)} in command`);
    }
  }
  return out;
}

function parsePipeline(toks: Tok[], pos: { i: number }, nested: boolean): Pipeline {
  const cmds: Pipeline = [];
  let cmd: Command = [];
  while (pos.i < toks.length) {
    const t = toks[pos.i++];
    if (t.k === "rp") {
      if (!nested) throw new TemplateError("unexpected right paren");
      break;
    }
    if (t.k === "pipe") {
      if (cmd.length === 0) throw new TemplateError("missing command");
      cmds.push(cmd);
      cmd = [];
      continue;
    }
    switch (t.k) {
      case "field":
        cmd.push({ t: "field", name: t.v });
        break;
      case "dot":
        cmd.push({ t: "dot" });
        break;
      case "str":
        cmd.push({ t: "lit", v: t.v });
        break;
      case "num":
        cmd.push({ t: "lit", v: Number(t.v) });
        break;
      case "bool":
        cmd.push({ t: "lit", v: t.v === "true" });
        break;
      case "lp":
        cmd.push({ t: "sub", p: parsePipeline(toks, pos, true) });
        break;
      case "ident":
        if (t.v === "nil") cmd.push({ t: "lit", v: null });
        else {
          if (FUNCS[t.v] === undefined) throw new TemplateError(`function "${t.v}" not defined`);
          cmd.push({ t: "fn", name: t.v });
        }
        break;
    }
  }
  if (cmd.length === 0) throw new TemplateError("missing value for command");
  cmds.push(cmd);
  return cmds;
}

function parseTemplate(src: string): Node[] {
  // Split into text and actions, applying {{- and -}} trimming.
  const items: ({ t: "text"; s: string } | { t: "act"; s: string })[] = [];
  let i = 0;
  while (i < src.length) {
    const open = src.indexOf("{{", i);
    if (open < 0) {
      items.push({ t: "text", s: src.slice(i) });
      break;
    }
    let text = src.slice(i, open);
    let inner = open + 2;
    if (src.startsWith("- ", inner) || src.startsWith("-\t", inner) || src.startsWith("-\n", inner)) {
      text = text.replace(/\s+$/, "");
      inner += 1;
    }
    if (text !== "") items.push({ t: "text", s: text });
    const close = src.indexOf("}}", inner);
    if (close < 0) throw new TemplateError("unclosed action");
    let body = src.slice(inner, close);
    i = close + 2;
    if (/\s-$/.test(body)) {
      body = body.slice(0, -1);
      const m = /^\s*/.exec(src.slice(i)) as RegExpExecArray;
      i += m[0].length;
    }
    items.push({ t: "act", s: body.trim() });
  }
  let k = 0;
  const parseList = (): { nodes: Node[]; end: "end" | "else" | "elseif" | null; elseCond?: Pipeline } => {
    const nodes: Node[] = [];
    while (k < items.length) {
      const it = items[k++];
      if (it.t === "text") {
        nodes.push({ t: "text", s: it.s });
        continue;
      }
      const s = it.s;
      if (s.startsWith("/*")) {
        if (!s.endsWith("*/")) throw new TemplateError("unclosed comment");
        continue;
      }
      const toks = lexAction(s);
      if (toks.length === 0) throw new TemplateError("missing value for command");
      const head = toks[0];
      if (head.k === "ident" && head.v === "end") return { nodes, end: "end" };
      if (head.k === "ident" && head.v === "else") {
        if (toks[1]?.k === "ident" && toks[1].v === "if") {
          return { nodes, end: "elseif", elseCond: parsePipeline(toks.slice(2), { i: 0 }, false) };
        }
        return { nodes, end: "else" };
      }
      if (head.k === "ident" && head.v === "if") {
        nodes.push(parseIf(parsePipeline(toks.slice(1), { i: 0 }, false)));
        continue;
      }
      if (head.k === "ident" && ["range", "with", "define", "template", "block", "break", "continue"].includes(head.v)) {
        throw new TemplateError(`{{${head.v}}} is not supported`);
      }
      nodes.push({ t: "action", p: parsePipeline(toks, { i: 0 }, false) });
    }
    return { nodes, end: null };
  };
  const parseIf = (cond: Pipeline): Node => {
    const body = parseList();
    if (body.end === null) throw new TemplateError("unexpected EOF");
    if (body.end === "end") return { t: "if", cond, then: body.nodes, else: [] };
    if (body.end === "elseif") return { t: "if", cond, then: body.nodes, else: [parseIf(body.elseCond as Pipeline)] };
    const rest = parseList();
    if (rest.end !== "end") throw new TemplateError("expected end; found " + (rest.end ?? "EOF"));
    return { t: "if", cond, then: body.nodes, else: rest.nodes };
  };
  const top = parseList();
  if (top.end !== null) throw new TemplateError(`unexpected {{${top.end}}}`);
  return top.nodes;
}

// ---------------------------------------------------------------- execution

function run(nodes: Node[], d: TemplateData): string {
  let out = "";
  for (const n of nodes) {
    if (n.t === "text") out += n.s;
    else if (n.t === "action") out += printValue(evalPipeline(n.p, d));
    else out += run(truth(evalPipeline(n.cond, d)) ? n.then : n.else, d);
  }
  return out;
}

function evalPipeline(p: Pipeline, d: TemplateData): Value {
  let prev: Value | undefined = undefined;
  for (const cmd of p) prev = evalCommand(cmd, d, prev);
  return prev as Value;
}

function evalArg(a: Arg, d: TemplateData): Value {
  switch (a.t) {
    case "field":
      return d.get(a.name) ?? ""; // missingkey=zero on map[string]string
    case "dot":
      return null;
    case "lit":
      return a.v;
    case "sub":
      return evalPipeline(a.p, d);
    case "fn":
      return callFn(a.name, [], d);
  }
}

function evalCommand(cmd: Command, d: TemplateData, piped: Value | undefined): Value {
  const head = cmd[0];
  if (head.t === "fn") {
    const args = cmd.slice(1).map((a) => evalArg(a, d));
    if (piped !== undefined) args.push(piped);
    return callFn(head.name, args, d);
  }
  if (cmd.length > 1 || piped !== undefined) throw new TemplateError(`can't give argument to non-function ${describe(head)}`);
  return evalArg(head, d);
}

function describe(a: Arg): string {
  return a.t === "field" ? "." + a.name : a.t === "lit" ? String(a.v) : a.t;
}

function truth(v: Value): boolean {
  if (v === null || v === false || v === "" || v === 0) return false;
  return true;
}

function printValue(v: Value): string {
  if (v === null) return "<no value>";
  if (typeof v === "number") return formatGoNumber(v);
  return String(v);
}

/** Go's %v of a float64 (an int prints without decimals). */
function formatGoNumber(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-4 || a >= 1e21)) return v.toExponential().replace(/e([+-])(\d)$/, "e$10$2");
  return String(v);
}

function str(v: Value): string {
  return v === null ? "" : typeof v === "number" ? formatGoNumber(v) : String(v);
}

function num(v: Value): number {
  if (typeof v === "number") return v;
  if (typeof v === "boolean") return v ? 1 : 0;
  if (v === null) return 0;
  const n = Number(String(v).trim());
  if (String(v).trim() === "" || Number.isNaN(n)) throw new TemplateError(`unable to cast ${JSON.stringify(String(v))} to number`);
  return n;
}

function int(v: Value): number {
  if (typeof v === "string") {
    // sprig's toInt64 of a non-numeric string is 0.
    const n = Number(v.trim());
    return Number.isNaN(n) || v.trim() === "" ? 0 : Math.trunc(n);
  }
  return Math.trunc(num(v));
}

function cmpValues(a: Value, b: Value): number {
  if (typeof a === "number" || typeof b === "number") {
    if (typeof a !== typeof b) throw new TemplateError("incompatible types for comparison");
    return (a as number) - (b as number);
  }
  const x = str(a);
  const y = str(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

function need(name: string, args: Value[], n: number): void {
  if (args.length !== n) throw new TemplateError(`wrong number of args for ${name}: want ${n} got ${args.length}`);
}

function cutset(s: string, set: string, left: boolean, right: boolean): string {
  let a = 0;
  let b = s.length;
  if (left) while (a < b && set.includes(s[a])) a++;
  if (right) while (b > a && set.includes(s[b - 1])) b--;
  return s.slice(a, b);
}

/** Go regexp ReplaceAllString: $1, ${1}, $name, ${name}; $$ is a literal $. */
function goExpand(repl: string, m: RegExpExecArray): string {
  return repl.replace(/\$(\$|\{([a-zA-Z0-9_]+)\}|([a-zA-Z0-9_]+))/g, (_all, what: string, braced?: string, bare?: string) => {
    if (what === "$") return "$";
    const name = (braced ?? bare) as string;
    if (/^[0-9]+$/.test(name)) return m[Number(name)] ?? "";
    return m.groups?.[name] ?? "";
  });
}

function unanchored(re: string): RegExp {
  const { source, flags } = translateRE2(re);
  return new RegExp(source, flags + "g");
}

const regexCache = new Map<string, RegExp>();
function regex(re: string): RegExp {
  let r = regexCache.get(re);
  if (r === undefined) {
    try {
      r = unanchored(re);
    } catch (e) {
      throw new TemplateError(`error parsing regexp: ${(e as Error).message}`);
    }
    if (regexCache.size > 1000) regexCache.clear();
    regexCache.set(re, r);
  }
  r.lastIndex = 0;
  return r;
}

/** Go fmt.Sprintf for the verbs logs templates use: %s %v %d %f %e %g %q %x %X %t %c %%, with flags, width, precision. */
export function goSprintf(format: string, args: Value[]): string {
  let ai = 0;
  return format.replace(/%([-+# 0]*)(\d+|\*)?(?:\.(\d+|\*)?)?([a-zA-Z%])/g, (_m, flags: string, width?: string, prec?: string, verb?: string) => {
    if (verb === "%") return "%";
    if (ai >= args.length) return `%!${verb}(MISSING)`;
    const a = args[ai++];
    let s: string;
    const p = prec === undefined ? undefined : Number(prec);
    switch (verb) {
      case "s":
      case "v":
        s = typeof a === "number" && verb === "v" ? formatGoNumber(a) : str(a);
        if (p !== undefined) s = s.slice(0, p);
        break;
      case "q":
        s = JSON.stringify(str(a));
        break;
      case "d":
        if (typeof a !== "number") return `%!d(${typeof a === "string" ? "string" : typeof a}=${str(a)})`;
        s = String(Math.trunc(a));
        if (flags.includes("+") && a >= 0) s = "+" + s;
        break;
      case "f":
      case "F":
        if (typeof a !== "number") return `%!f(${typeof a === "string" ? "string" : typeof a}=${str(a)})`;
        s = a.toFixed(p ?? 6);
        if (flags.includes("+") && a >= 0) s = "+" + s;
        break;
      case "e":
        if (typeof a !== "number") return `%!e(string=${str(a)})`;
        s = a.toExponential(p ?? 6).replace(/e([+-])(\d)$/, "e$10$2");
        break;
      case "g":
        if (typeof a !== "number") return `%!g(string=${str(a)})`;
        s = p === undefined ? formatGoNumber(a) : String(Number(a.toPrecision(p)));
        break;
      case "x":
      case "X": {
        s = typeof a === "number" ? Math.trunc(a).toString(16) : [...new TextEncoder().encode(str(a))].map((b) => b.toString(16).padStart(2, "0")).join("");
        if (verb === "X") s = s.toUpperCase();
        break;
      }
      case "t":
        s = typeof a === "boolean" ? String(a) : `%!t(${str(a)})`;
        break;
      case "c":
        s = String.fromCodePoint(num(a));
        break;
      default:
        return `%!${verb}(${str(a)})`;
    }
    if (width !== undefined && width !== "*") {
      const w = Number(width);
      if (s.length < w) {
        if (flags.includes("-")) s = s.padEnd(w);
        else if (flags.includes("0") && /[dfFeg]/.test(verb ?? "")) {
          const neg = s[0] === "-" || s[0] === "+";
          s = neg ? s[0] + s.slice(1).padStart(w - 1, "0") : s.padStart(w, "0");
        } else s = s.padStart(w);
      }
    }
    return s;
  }) + (ai < args.length ? `%!(EXTRA ${args.slice(ai).map((a) => `${typeof a === "number" ? "float64" : "string"}=${str(a)}`).join(", ")})` : "");
}

type Fn = (args: Value[], d: TemplateData) => Value;

const s1 = (name: string, f: (s: string) => string): Fn => (a) => (need(name, a, 1), f(str(a[0])));

const FUNCS: Record<string, Fn> = {
  __line__: (a, d) => (need("__line__", a, 0), d.line),
  __timestamp__: (a, d) => (need("__timestamp__", a, 0), new GoTime(d.tsMs, d.tsNs)),
  // Go builtins
  and: (a) => {
    for (const v of a) if (!truth(v)) return v;
    return a[a.length - 1];
  },
  or: (a) => {
    for (const v of a) if (truth(v)) return v;
    return a[a.length - 1];
  },
  not: (a) => (need("not", a, 1), !truth(a[0])),
  // Go's len of a string counts bytes.
  len: (a) => (need("len", a, 1), new TextEncoder().encode(str(a[0])).length),
  eq: (a) => {
    if (a.length < 2) throw new TemplateError("missing argument for comparison");
    for (let i = 1; i < a.length; i++) if (cmpValues(a[0], a[i]) === 0) return true;
    return false;
  },
  ne: (a) => (need("ne", a, 2), cmpValues(a[0], a[1]) !== 0),
  lt: (a) => (need("lt", a, 2), cmpValues(a[0], a[1]) < 0),
  le: (a) => (need("le", a, 2), cmpValues(a[0], a[1]) <= 0),
  gt: (a) => (need("gt", a, 2), cmpValues(a[0], a[1]) > 0),
  ge: (a) => (need("ge", a, 2), cmpValues(a[0], a[1]) >= 0),
  print: (a) => a.map(printValue).join(""),
  println: (a) => a.map(printValue).join(" ") + "\n",
  printf: (a) => {
    if (a.length < 1) throw new TemplateError("wrong number of args for printf: want at least 1 got 0");
    return goSprintf(str(a[0]), a.slice(1));
  },
  // Loki's own (strings package names)
  ToLower: s1("ToLower", (s) => s.toLowerCase()),
  ToUpper: s1("ToUpper", (s) => s.toUpperCase()),
  Replace: (a) => {
    need("Replace", a, 4);
    const [s, o, n] = [str(a[0]), str(a[1]), str(a[2])];
    let count = int(a[3]);
    if (count < 0) return s.split(o).join(n);
    let out = "";
    let rest = s;
    while (count-- > 0) {
      const i = rest.indexOf(o);
      if (i < 0) break;
      out += rest.slice(0, i) + n;
      rest = rest.slice(i + Math.max(o.length, 1));
      if (o.length === 0) out += s[out.length - n.length] ?? "";
    }
    return out + rest;
  },
  Trim: (a) => (need("Trim", a, 2), cutset(str(a[0]), str(a[1]), true, true)),
  TrimLeft: (a) => (need("TrimLeft", a, 2), cutset(str(a[0]), str(a[1]), true, false)),
  TrimRight: (a) => (need("TrimRight", a, 2), cutset(str(a[0]), str(a[1]), false, true)),
  TrimPrefix: (a) => (need("TrimPrefix", a, 2), str(a[0]).startsWith(str(a[1])) ? str(a[0]).slice(str(a[1]).length) : str(a[0])),
  TrimSuffix: (a) => (need("TrimSuffix", a, 2), str(a[1]) !== "" && str(a[0]).endsWith(str(a[1])) ? str(a[0]).slice(0, -str(a[1]).length) : str(a[0])),
  TrimSpace: s1("TrimSpace", (s) => s.trim()),
  regexReplaceAll: (a) => {
    need("regexReplaceAll", a, 3);
    const re = regex(str(a[0]));
    return str(a[1]).replace(re, (...m) => {
      const groups = typeof m[m.length - 1] === "object" ? (m[m.length - 1] as Record<string, string>) : undefined;
      const arr = m.slice(0, groups ? -3 : -2) as unknown as RegExpExecArray;
      arr.groups = groups;
      return goExpand(str(a[2]), arr);
    });
  },
  regexReplaceAllLiteral: (a) => (need("regexReplaceAllLiteral", a, 3), str(a[1]).replace(regex(str(a[0])), () => str(a[2]))),
  count: (a) => (need("count", a, 2), (str(a[1]).match(regex(str(a[0]))) ?? []).length),
  urlencode: s1("urlencode", (s) => encodeURIComponent(s).replace(/%20/g, "+").replace(/[!'()*]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase())),
  urldecode: s1("urldecode", (s) => decodeURIComponent(s.replace(/\+/g, " "))),
  b64enc: s1("b64enc", (s) => btoa(String.fromCharCode(...new TextEncoder().encode(s)))),
  b64dec: s1("b64dec", (s) => {
    try {
      return new TextDecoder().decode(Uint8Array.from(atob(s), (c) => c.charCodeAt(0)));
    } catch (e) {
      return (e as Error).message;
    }
  }),
  unixEpoch: (a) => (need("unixEpoch", a, 1), Math.floor(timeOf(a[0]).ms / 1000)),
  unixEpochMillis: (a) => (need("unixEpochMillis", a, 1), timeOf(a[0]).ms),
  unixEpochNanos: (a) => (need("unixEpochNanos", a, 1), timeOf(a[0]).ms * 1e6 + timeOf(a[0]).ns),
  alignLeft: (a) => {
    need("alignLeft", a, 2);
    const n = int(a[0]);
    const s = [...str(a[1])];
    return s.length >= n ? s.slice(0, n).join("") : s.join("").padEnd(n);
  },
  alignRight: (a) => {
    need("alignRight", a, 2);
    const n = int(a[0]);
    const s = [...str(a[1])];
    return s.length >= n ? s.slice(s.length - n).join("") : s.join("").padStart(n);
  },
  // sprig
  lower: s1("lower", (s) => s.toLowerCase()),
  upper: s1("upper", (s) => s.toUpperCase()),
  title: s1("title", (s) => s.replace(/(^|[^\p{L}\p{N}_'])(\p{L})/gu, (_m, p: string, c: string) => p + c.toUpperCase())),
  trunc: (a) => {
    need("trunc", a, 2);
    const n = int(a[0]);
    const s = str(a[1]);
    if (n < 0) return -n < s.length ? s.slice(s.length + n) : s;
    return n < s.length ? s.slice(0, n) : s;
  },
  substr: (a) => {
    need("substr", a, 3);
    const s = str(a[2]);
    const start = int(a[0]);
    const end = int(a[1]);
    if (start < 0) return s.slice(0, end);
    if (end < 0 || end > s.length) return s.slice(start);
    return s.slice(start, end);
  },
  contains: (a) => (need("contains", a, 2), str(a[1]).includes(str(a[0]))),
  hasPrefix: (a) => (need("hasPrefix", a, 2), str(a[1]).startsWith(str(a[0]))),
  hasSuffix: (a) => (need("hasSuffix", a, 2), str(a[1]).endsWith(str(a[0]))),
  replace: (a) => (need("replace", a, 3), str(a[2]).split(str(a[0])).join(str(a[1]))),
  repeat: (a) => (need("repeat", a, 2), str(a[1]).repeat(Math.max(0, int(a[0])))),
  trim: s1("trim", (s) => s.trim()),
  trimAll: (a) => (need("trimAll", a, 2), cutset(str(a[1]), str(a[0]), true, true)),
  trimPrefix: (a) => (need("trimPrefix", a, 2), str(a[1]).startsWith(str(a[0])) ? str(a[1]).slice(str(a[0]).length) : str(a[1])),
  trimSuffix: (a) => (need("trimSuffix", a, 2), str(a[0]) !== "" && str(a[1]).endsWith(str(a[0])) ? str(a[1]).slice(0, -str(a[0]).length) : str(a[1])),
  default: (a) => {
    if (a.length < 1 || a.length > 2) throw new TemplateError(`wrong number of args for default: want 2 got ${a.length}`);
    return a.length === 1 || !truth(a[1]) ? a[0] : a[1];
  },
  indent: (a) => (need("indent", a, 2), " ".repeat(int(a[0])) + str(a[1]).replace(/\n/g, "\n" + " ".repeat(int(a[0])))),
  nindent: (a) => (need("nindent", a, 2), "\n" + " ".repeat(int(a[0])) + str(a[1]).replace(/\n/g, "\n" + " ".repeat(int(a[0])))),
  add: (a) => a.reduce<number>((s, v) => s + int(v), 0),
  sub: (a) => (need("sub", a, 2), int(a[0]) - int(a[1])),
  mul: (a) => a.reduce<number>((s, v) => s * int(v), 1),
  div: (a) => {
    need("div", a, 2);
    if (int(a[1]) === 0) throw new TemplateError("runtime error: integer divide by zero");
    return Math.trunc(int(a[0]) / int(a[1]));
  },
  mod: (a) => {
    need("mod", a, 2);
    if (int(a[1]) === 0) throw new TemplateError("runtime error: integer divide by zero");
    return int(a[0]) % int(a[1]);
  },
  addf: (a) => a.reduce<number>((s, v) => s + num(v), 0),
  subf: (a) => a.slice(1).reduce<number>((s, v) => s - num(v), num(a[0])),
  mulf: (a) => a.reduce<number>((s, v) => s * num(v), 1),
  divf: (a) => a.slice(1).reduce<number>((s, v) => s / num(v), num(a[0])),
  max: (a) => Math.max(...a.map(int)),
  min: (a) => Math.min(...a.map(int)),
  maxf: (a) => Math.max(...a.map(num)),
  minf: (a) => Math.min(...a.map(num)),
  ceil: (a) => (need("ceil", a, 1), Math.ceil(num(a[0]))),
  floor: (a) => (need("floor", a, 1), Math.floor(num(a[0]))),
  round: (a) => {
    if (a.length < 2) throw new TemplateError("wrong number of args for round: want 2 got " + a.length);
    const p = 10 ** int(a[1]);
    return Math.round(num(a[0]) * p) / p;
  },
  int: (a) => (need("int", a, 1), int(a[0])),
  float64: (a) => {
    need("float64", a, 1);
    const n = Number(str(a[0]));
    return Number.isNaN(n) ? 0 : n;
  },
};

function timeOf(v: Value): GoTime {
  if (v instanceof GoTime) return v;
  throw new TemplateError(`expected a time, got ${JSON.stringify(str(v))}`);
}

function callFn(name: string, args: Value[], d: TemplateData): Value {
  return FUNCS[name](args, d);
}
