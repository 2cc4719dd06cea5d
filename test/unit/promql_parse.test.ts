import { describe, expect, it } from "vitest";
import { parseExpr } from "../../src/querier/promql/parse";
import { formatExpr, formatDuration, formatFloat, goQuote } from "../../src/querier/promql/format";
import { FUNCTIONS, getFunction } from "../../src/querier/promql/signatures";
import { exprType, FUNCTION_RETURN_TYPES, PromQLParseError, type AtModifier, type Expr, type VectorMatching, type VectorSelector } from "../../src/querier/promql/ast";
import { MatchType, type LabelMatcher } from "../../src/proto/types";

// Builders for expected trees.
/** A copy of a parse tree without the nodes' positions (those are checked on their own). */
function noPos<T>(v: T): T {
  if (Array.isArray(v)) return v.map((x: unknown) => noPos(x)) as T;
  if (typeof v !== "object" || v === null) return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) if (k !== "pos") out[k] = noPos(x);
  return out as T;
}

const eq = (name: string, value: string): LabelMatcher => ({ type: MatchType.EQ, name, value });
const neq = (name: string, value: string): LabelMatcher => ({ type: MatchType.NEQ, name, value });
const re = (name: string, value: string): LabelMatcher => ({ type: MatchType.RE, name, value });
const nre = (name: string, value: string): LabelMatcher => ({ type: MatchType.NRE, name, value });
const sel = (name: string | null, matchers: LabelMatcher[] = [], offset = 0, at: AtModifier = null): VectorSelector => ({
  type: "VectorSelector",
  name,
  // Prometheus appends the name written before the braces after the other matchers.
  matchers: name === null ? matchers : [...matchers, eq("__name__", name)],
  offset,
  at,
});
const num = (val: number): Expr => ({ type: "NumberLiteral", val });
const dur = (val: number): Expr => ({ type: "NumberLiteral", val, duration: true });
const str = (val: string): Expr => ({ type: "StringLiteral", val });
const matrix = (vs: VectorSelector, range: number): Expr => ({ type: "MatrixSelector", vectorSelector: vs, range });
const call = (func: string, ...args: Expr[]): Expr => ({ type: "Call", func, args });
const paren = (expr: Expr): Expr => ({ type: "ParenExpr", expr });
const neg = (expr: Expr): Expr => ({ type: "UnaryExpr", op: "-", expr });
const oneToOne: VectorMatching = { card: "one-to-one", matchingLabels: [], on: false, include: [] };
const manyToMany: VectorMatching = { card: "many-to-many", matchingLabels: [], on: false, include: [] };
const bin = (op: string, lhs: Expr, rhs: Expr, matching: VectorMatching | null = null, returnBool = false): Expr =>
  ({ type: "BinaryExpr", op, lhs, rhs, returnBool, matching }) as Expr;
const agg = (op: string, expr: Expr, grouping: string[] = [], without = false, param: Expr | null = null): Expr =>
  ({ type: "AggregateExpr", op, expr, param, grouping, without }) as Expr;
const sub = (expr: Expr, range: number, step = 0, offset = 0, at: AtModifier = null): Expr => ({ type: "SubqueryExpr", expr, range, step, offset, at });

const M = 60_000;
const H = 60 * M;
const D = 24 * H;

describe("parseExpr: trees", () => {
  const cases: [string, Expr][] = [
    // Numbers: decimal, hex, octal (Go's ParseInt base 0), exponents, underscores, Inf/NaN, durations.
    ["1", num(1)],
    ["+Inf", num(Infinity)],
    ["-Inf", num(-Infinity)],
    ["inF", num(Infinity)],
    [".5", num(0.5)],
    ["5.", num(5)],
    ["123.4567", num(123.4567)],
    ["5e-3", num(0.005)],
    ["5E3", num(5000)],
    ["0xc", num(12)],
    ["0XC", num(12)],
    ["0755", num(493)],
    ["-0755", num(-493)],
    ["08", num(8)],
    ["1_000", num(1000)],
    ["+5.5e-3", num(0.0055)],
    ["1m", dur(60)],
    ["1h30m", dur(5400)],
    ["-1m", dur(-60)],
    ["1d", dur(86400)],
    ["1w", dur(604800)],
    ["1y", dur(31536000)],
    ["10ms", dur(0.01)],
    // Strings with Go's escapes; single quotes; raw backticks.
    [`"double \\" quoted"`, str('double " quoted')],
    [`'single \\' quoted'`, str("single ' quoted")],
    ["`raw \\n`", str("raw \\n")],
    [`"\\a\\b\\f\\n\\r\\t\\v\\\\ \\u1234 \\U0001F600 \\101 \\x41 ☺"`, str("\x07\b\f\n\r\t\v\\ \u1234 \u{1F600} A A ☺")],
    [`"\\xc3\\xa9"`, str("é")],
    // Unary minus folds into literals; otherwise it binds looser than ^ and as tightly as *.
    ["-1", num(-1)],
    ["- -1", num(1)],
    ["-2^2", neg(bin("^", num(2), num(2)))],
    ["-1^-2", neg(bin("^", num(1), num(-2)))],
    ["-1*2", bin("*", num(-1), num(2))],
    ["+1 + -2 * 1", bin("+", num(1), bin("*", num(-2), num(1)))],
    ["2 ^ 3 ^ 2", bin("^", num(2), bin("^", num(3), num(2)))],
    ["2 ^ -1 ^ 2", bin("^", num(2), neg(bin("^", num(1), num(2))))],
    ["1 - 2 - 3", bin("-", bin("-", num(1), num(2)), num(3))],
    ["1 + 2/(3*1)", bin("+", num(1), bin("/", num(2), paren(bin("*", num(3), num(1)))))],
    ["1 < bool 2 - 1 * 2", bin("<", num(1), bin("-", num(2), bin("*", num(1), num(2))), null, true)],
    ["-some_metric", neg(sel("some_metric"))],
    ["+some_metric", { type: "UnaryExpr", op: "+", expr: sel("some_metric") }],
    ["-foo ^ 2", neg(bin("^", sel("foo"), num(2)))],
    ["time() - 1h", bin("-", call("time"), dur(3600))],
    // Selectors.
    ["foo", sel("foo")],
    ["foo:bar{a=\"bc\"}", sel("foo:bar", [eq("a", "bc")])],
    [`foo{a="b", foo!="bar", test=~"test", bar!~"baz",}`, sel("foo", [eq("a", "b"), neq("foo", "bar"), re("test", "test"), nre("bar", "baz")])],
    [`foo{NaN='bc'}`, sel("foo", [eq("NaN", "bc")])],
    [`{"foo"}`, sel(null, [eq("__name__", "foo")])],
    [`{"my.metric", "a.b"="c"}`, sel(null, [eq("__name__", "my.metric"), eq("a.b", "c")])],
    [`{a="b", "foo", c="d"}`, sel(null, [eq("a", "b"), eq("__name__", "foo"), eq("c", "d")])],
    [`{__name__=~"bar", __name__!~"baz"}`, sel(null, [re("__name__", "bar"), nre("__name__", "baz")])],
    // Keywords that are metric names where an expression starts.
    ["min", sel("min")],
    ["sum(sum)", agg("sum", sel("sum"))],
    ["a + sum", bin("+", sel("a"), sel("sum"), oneToOne)],
    ["start", sel("start")],
    [`offset{step="1s"}[5m]`, matrix(sel("offset", [eq("step", "1s")]), 5 * M)],
    [`step{offset="1s"}`, sel("step", [eq("offset", "1s")])],
    ["by", sel("by")],
    ["foo and and", bin("and", sel("foo"), sel("and"), manyToMany)],
    ["offset + offset", bin("+", sel("offset"), sel("offset"), oneToOne)],
    ["sum(offset)", agg("sum", sel("offset"))],
    // Ranges, offsets, @.
    ["test[5m]", matrix(sel("test"), 5 * M)],
    ["test[1000ms]", matrix(sel("test"), 1000)],
    ["test[5]", matrix(sel("test"), 5000)],
    ["foo[4.18]", matrix(sel("foo"), 4180)],
    ["foo[5m30s]", matrix(sel("foo"), 5 * M + 30_000)],
    ["test[5h] OFFSET 5m", matrix(sel("test", [], 5 * M), 5 * H)],
    ["test[5w] offset 2w", matrix(sel("test", [], 14 * D), 35 * D)],
    [`test{a="b"}[5y] OFFSET 3d`, matrix(sel("test", [eq("a", "b")], 3 * D), 5 * 365 * D)],
    [`test{a="b"}[5m] OFFSET 3600`, matrix(sel("test", [eq("a", "b")], H), 5 * M)],
    ["foo offset 5m", sel("foo", [], 5 * M)],
    ["foo offset -7m", sel("foo", [], -7 * M)],
    ["foo OFFSET 1h30m", sel("foo", [], 90 * M)],
    ["foo OFFSET 1m30ms", sel("foo", [], M + 30)],
    ["foo @ 1603774568", sel("foo", [], 0, { kind: "time", ms: 1603774568000 })],
    ["foo @ -100", sel("foo", [], 0, { kind: "time", ms: -100000 })],
    ["foo @ .3", sel("foo", [], 0, { kind: "time", ms: 300 })],
    ["foo @ 3.3335", sel("foo", [], 0, { kind: "time", ms: 3334 })],
    ["foo @ 0xA", sel("foo", [], 0, { kind: "time", ms: 10000 })],
    ["foo @ 1m", sel("foo", [], 0, { kind: "time", ms: 60000 })],
    ["foo @ start()", sel("foo", [], 0, { kind: "start" })],
    ["foo @ END()", sel("foo", [], 0, { kind: "end" })],
    ["foo[3ms] @ 2.345", matrix(sel("foo", [], 0, { kind: "time", ms: 2345 }), 3)],
    ["foo[5m] @ 10 offset 1m", matrix(sel("foo", [], M, { kind: "time", ms: 10000 }), 5 * M)],
    // Offset and @ bind tighter than any operator (the UI grammar has them loosest).
    ["a + b offset 5m", bin("+", sel("a"), sel("b", [], 5 * M), oneToOne)],
    ["-foo offset 5m", neg(sel("foo", [], 5 * M))],
    ["a * b @ 5", bin("*", sel("a"), sel("b", [], 0, { kind: "time", ms: 5000 }), oneToOne)],
    ["a ^ b offset 1m ^ c", bin("^", sel("a"), bin("^", sel("b", [], M), sel("c"), oneToOne), oneToOne)],
    ["foo offset 5s-8", bin("-", sel("foo", [], 5000), num(8))],
    ["foo offset -1^1", bin("^", sel("foo", [], -1000), num(1))],
    // Duration arithmetic is folded to constants.
    ["foo[11s+10s-5*2^2]", matrix(sel("foo"), 1000)],
    ["foo[-10s+15s]", matrix(sel("foo"), 5000)],
    ["foo[-(10s-5s)+20s]", matrix(sel("foo"), 15000)],
    ["foo offset -(1^2)", sel("foo", [], -1000)],
    ["foo[min_of(5m, 1h)] offset max_of(1m, 2m)", matrix(sel("foo", [], 2 * M), 5 * M)],
    ["foo[4s+4s:1s*2] offset (5s-8)", sub(sel("foo"), 8000, 2000, -3000)],
    // Subqueries.
    [`foo{bar="baz"}[10m:6s]`, sub(sel("foo", [eq("bar", "baz")]), 10 * M, 6000)],
    ["foo[10m:]", sub(sel("foo"), 10 * M)],
    [
      `min_over_time(rate(foo{bar="baz"}[2s])[5m:5s])`,
      call("min_over_time", sub(call("rate", matrix(sel("foo", [eq("bar", "baz")]), 2000)), 5 * M, 5000)),
    ],
    ["rate(x[5m])[30m:1m] offset 1h @ 100", sub(call("rate", matrix(sel("x"), 5 * M)), 30 * M, M, H, { kind: "time", ms: 100000 })],
    ["some_metric OFFSET 1m [10m:5s]", sub(sel("some_metric", [], M), 10 * M, 5000)],
    ["some_metric @ 123 offset 1m [10m:5s]", sub(sel("some_metric", [], M, { kind: "time", ms: 123000 }), 10 * M, 5000)],
    ["foo[10m:6s] @ end()", sub(sel("foo"), 10 * M, 6000, 0, { kind: "end" })],
    ["(foo + bar)[5m:]", sub(paren(bin("+", sel("foo"), sel("bar"), oneToOne)), 5 * M)],
    // Aggregations: grouping before or after the body, parameters.
    ["sum by (foo)(some_metric)", agg("sum", sel("some_metric"), ["foo"])],
    ["sum (some_metric) without (foo)", agg("sum", sel("some_metric"), ["foo"], true)],
    ["SUM BY (a) (x)", agg("sum", sel("x"), ["a"])],
    ["sum by ()(some_metric)", agg("sum", sel("some_metric"), [])],
    ["sum by (foo,bar,)(some_metric)", agg("sum", sel("some_metric"), ["foo", "bar"])],
    [`sum by ("foo bar", 'baz')({"some.metric"})`, agg("sum", sel(null, [eq("__name__", "some.metric")]), ["foo bar", "baz"])],
    ["sum by (foo:bar) (x)", agg("sum", sel("x"), ["foo:bar"])],
    ["sum without(and, by, avg, count, alert, on, offset, bool)(x)", agg("sum", sel("x"), ["and", "by", "avg", "count", "alert", "on", "offset", "bool"], true)],
    ["topk(5, some_metric)", agg("topk", sel("some_metric"), [], false, num(5))],
    ["bottomk(5, x) by (a)", agg("bottomk", sel("x"), ["a"], false, num(5))],
    ["quantile(0.9, x)", agg("quantile", sel("x"), [], false, num(0.9))],
    [`count_values("value", some_metric)`, agg("count_values", sel("some_metric"), [], false, str("value"))],
    ["limitk(2, x)", agg("limitk", sel("x"), [], false, num(2))],
    ["limit_ratio(0.5, x)", agg("limit_ratio", sel("x"), [], false, num(0.5))],
    ["stddev(x)", agg("stddev", sel("x"))],
    ["group(x)", agg("group", sel("x"))],
    // Binary operators: precedence, bool, vector matching.
    ["foo * bar", bin("*", sel("foo"), sel("bar"), oneToOne)],
    ["foo == 1", bin("==", sel("foo"), num(1))],
    ["foo == bool 1", bin("==", sel("foo"), num(1), null, true)],
    ["1 == bool 1", bin("==", num(1), num(1), null, true)],
    ["foo and bar", bin("and", sel("foo"), sel("bar"), manyToMany)],
    ["foo AND bar", bin("and", sel("foo"), sel("bar"), manyToMany)],
    ["foo atan2 bar", bin("atan2", sel("foo"), sel("bar"), oneToOne)],
    [
      "foo + bar or bla and blub",
      bin("or", bin("+", sel("foo"), sel("bar"), oneToOne), bin("and", sel("bla"), sel("blub"), manyToMany), manyToMany),
    ],
    [
      "foo and bar unless baz or qux",
      bin("or", bin("unless", bin("and", sel("foo"), sel("bar"), manyToMany), sel("baz"), manyToMany), sel("qux"), manyToMany),
    ],
    [
      "bar + on(foo) bla / on(baz, buz) group_right(test) blub",
      bin(
        "+",
        sel("bar"),
        bin("/", sel("bla"), sel("blub"), { card: "one-to-many", matchingLabels: ["baz", "buz"], on: true, include: ["test"] }),
        { card: "one-to-one", matchingLabels: ["foo"], on: true, include: [] },
      ),
    ],
    ["foo * on(test,blub) group_left bar", bin("*", sel("foo"), sel("bar"), { card: "many-to-one", matchingLabels: ["test", "blub"], on: true, include: [] })],
    ["foo and on() bar", bin("and", sel("foo"), sel("bar"), { card: "many-to-many", matchingLabels: [], on: true, include: [] })],
    ["foo unless ignoring(a) bar", bin("unless", sel("foo"), sel("bar"), { card: "many-to-many", matchingLabels: ["a"], on: false, include: [] })],
    [
      "foo / ignoring(test,blub) group_left(blub) bar",
      bin("/", sel("foo"), sel("bar"), { card: "many-to-one", matchingLabels: ["test", "blub"], on: false, include: ["blub"] }),
    ],
    ["foo > bool ignoring(x) bar", bin(">", sel("foo"), sel("bar"), { card: "one-to-one", matchingLabels: ["x"], on: false, include: [] }, true)],
    ["foo == on() 10", bin("==", sel("foo"), num(10))],
    // Functions, including ones the UI grammar does not list.
    ["time()", call("time")],
    [`floor(some_metric{foo!="bar"})`, call("floor", sel("some_metric", [neq("foo", "bar")]))],
    ["round(some_metric, 5)", call("round", sel("some_metric"), num(5))],
    [`label_replace(x, "dst", "$1", "src", "(.*)")`, call("label_replace", sel("x"), str("dst"), str("$1"), str("src"), str("(.*)"))],
    [`label_join(x, "a", ",", "b", "c", "d")`, call("label_join", sel("x"), str("a"), str(","), str("b"), str("c"), str("d"))],
    [`sort_by_label(x, "a", "b")`, call("sort_by_label", sel("x"), str("a"), str("b"))],
    ["integral(foo[5m])", call("integral", matrix(sel("foo"), 5 * M))],
    ["min_of(1, 2)", call("min_of", num(1), num(2))],
    ["start()", call("start")],
    [`info(up, {k8s_cluster="a"})`, call("info", sel("up"), sel(null, [eq("k8s_cluster", "a")]))],
    [`info(up, {__name__=~".+"})`, call("info", sel("up"), sel(null, [re("__name__", ".+")]))],
    ["histogram_quantile(0.9, sum by (le) (rate(x[5m])))", call("histogram_quantile", num(0.9), agg("sum", call("rate", matrix(sel("x"), 5 * M)), ["le"]))],
    // Comments and newlines.
    ["sum(foo) # by (a)\n  by (b)", agg("sum", sel("foo"), ["b"])],
    ["# leading comment\nfoo # trailing comment", sel("foo")],
    ["- # sign and number apart\n 1", num(-1)],
  ];
  for (const [q, want] of cases) {
    it(q, () => expect(noPos(parseExpr(q))).toEqual(want));
  }

  it("marks NaN literals", () => {
    const e = parseExpr("NaN");
    expect(e.type === "NumberLiteral" && Number.isNaN(e.val)).toBe(true);
  });

  it("keeps the type of every expression", () => {
    expect(exprType(parseExpr("1 + 1"))).toBe("scalar");
    expect(exprType(parseExpr("foo + 1"))).toBe("vector");
    expect(exprType(parseExpr("foo[5m]"))).toBe("matrix");
    expect(exprType(parseExpr("foo[5m:]"))).toBe("matrix");
    expect(exprType(parseExpr("scalar(foo)"))).toBe("scalar");
    expect(exprType(parseExpr(`"a"`))).toBe("string");
  });
});

describe("parseExpr: positions", () => {
  const posOf = (e: Expr): string => (e.pos === undefined ? "none" : `${e.pos.line}:${e.pos.column}`);

  it("puts each node where Prometheus's PositionRange starts (line, byte column)", () => {
    const e = parseExpr('histogram_quantile(0.8, sum by (le) (rate(x[5m])))');
    expect(e.type === "Call" && e.args.map(posOf)).toEqual(["1:20", "1:25"]);
    const q = parseExpr('quantile without(point)(NaN, data)');
    expect(q.type === "AggregateExpr" && q.param !== null && [posOf(q), posOf(q.param), posOf(q.expr)]).toEqual(["1:1", "1:25", "1:30"]);
    // A folded sign starts the literal; a binary expression starts with its left operand.
    const b = parseExpr("x + -1");
    expect(b.type === "BinaryExpr" && [posOf(b), posOf(b.lhs), posOf(b.rhs)]).toEqual(["1:1", "1:1", "1:5"]);
  });

  it("counts lines from 1 and columns in UTF-8 bytes", () => {
    const e = parseExpr('label_replace(x{a="é"},\n  "b", "", "a", "(.*)") + y');
    expect(e.type === "BinaryExpr" && posOf(e.rhs)).toEqual("2:27");
    const c = e.type === "BinaryExpr" ? e.lhs : e;
    expect(c.type === "Call" && c.args.map(posOf)).toEqual(["1:15", "2:3", "2:8", "2:12", "2:17"]);
    const m = parseExpr('x{a="日本𝄞"} + y');
    expect(m.type === "BinaryExpr" && posOf(m.rhs)).toEqual("1:21");
  });

  it("marks string literals whose bytes are not valid UTF-8", () => {
    expect(parseExpr('"\\xff"')).toMatchObject({ type: "StringLiteral", val: "\ufffd", invalidUTF8: true });
    expect(parseExpr('"\\xc3\\xa9"')).not.toHaveProperty("invalidUTF8");
    expect(noPos(parseExpr('"\\ufeffa"'))).toEqual(str("\ufeffa"));
  });
});

describe("formatExpr", () => {
  // Prometheus's printer_test.go, and more: [input, canonical text (when different)].
  const cases: [string, string?][] = [
    ["sum by() (task:errors:rate10s{job=\"s\"})", `sum(task:errors:rate10s{job="s"})`],
    ["sum by(code) (task:errors:rate10s{job=\"s\"})", `sum by (code) (task:errors:rate10s{job="s"})`],
    ["sum without() (task:errors:rate10s{job=\"s\"})", `sum without () (task:errors:rate10s{job="s"})`],
    ["sum (x) without(instance)", "sum without (instance) (x)"],
    [`topk(5, task:errors:rate10s{job="s"})`],
    [`count_values("value", task:errors:rate10s{job="s"})`],
    ["a - on() c", "a - on () c"],
    ["a - on(b) group_left(x, y) c", "a - on (b) group_left (x, y) c"],
    ["a - on(b) group_left c", "a - on (b) group_left () c"],
    ["a - on(b) group_left() (c)", "a - on (b) group_left () (c)"],
    ["a - ignoring(b) c", "a - ignoring (b) c"],
    ["a - ignoring() c", "a - c"],
    ["up > bool 0"],
    ["a offset 1m"],
    ["a offset -7m"],
    [`a{c="d"}[5m] offset 1m`],
    ["a[12m] offset -3m"],
    ["a[1h:5m] offset 1m"],
    [`{__name__="a"}`],
    [`a{b!="c"}[1m]`],
    ["a @ 10", "a @ 10.000"],
    ["a[1m] @ 10", "a[1m] @ 10.000"],
    ["a @ start()"],
    ["a[1m] @ end()"],
    ["a offset 5m @ 10", "a @ 10.000 offset 5m"],
    ["a[5m:] offset 1m @ end()", "a[5m:] @ end() offset 1m"],
    [`sum by (job) (rate(http_requests_total{job="a"}[5m]))`],
    [`foo{b="2",a="1"}`, `foo{a="1",b="2"}`],
    [`{"my.metric", "a.b"="c"}`, `{"a.b"="c",__name__="my.metric"}`],
    [`sum by ("foo bar", a) (x)`, `sum by ("foo bar", a) (x)`],
    ["-2^2", "-2 ^ 2"],
    ["-(2^2)", "-(2 ^ 2)"],
    ["1e-7", "0.0000001"],
    ["1e21", "1000000000000000000000"],
    ["0x1F", "31"],
    ["Inf", "+Inf"],
    ["-inf", "-Inf"],
    ["nan", "NaN"],
    ["time() - 90m", "time() - 1h30m"],
    ["foo > -5m", "foo > -5m"],
    ["foo[90d]"], // years and weeks only when exact
    ["foo[14d]", "foo[2w]"],
    ["foo[365d]", "foo[1y]"],
    ["foo[4.18]", "foo[4s180ms]"],
    ["foo[5m+5m:1m]", "foo[10m:1m]"],
    [`"a\\tb\\u00e9\\x01"`, `"a\\tbé\\x01"`],
    ["`raw\"`", `"raw\\""`],
    ["label_join(x, 'a', ',', 'b')", `label_join(x, "a", ",", "b")`],
    ["foo and on(a) bar", "foo and on (a) bar"],
    ["x * ON(a) GROUP_LEFT(b) y", "x * on (a) group_left (b) y"],
  ];
  for (const [q, want] of cases) {
    it(q, () => expect(formatExpr(parseExpr(q))).toBe(want ?? q));
  }

  it("formats durations, floats and quotes as Go does", () => {
    expect(formatDuration(0)).toBe("0s");
    expect(formatDuration(90 * M)).toBe("1h30m");
    expect(formatDuration(7 * D)).toBe("1w");
    expect(formatDuration(8 * D)).toBe("8d");
    expect(formatDuration(1001)).toBe("1s1ms");
    expect(formatFloat(0.1)).toBe("0.1");
    expect(formatFloat(-1.5e-10)).toBe("-0.00000000015");
    expect(formatFloat(123456789012345680000)).toBe("123456789012345680000");
    expect(goQuote("a\"b\\c\n\u00a0\u{1F600}")).toBe('"a\\"b\\\\c\\n\\u00a0\u{1F600}"');
  });
});

describe("parseExpr: errors", () => {
  // Inputs and messages from Prometheus's parse_test.go (positions included).
  const cases: [string, string][] = [
  ["", "unknown position: parse error: no expression found in input"],
  ["# just a comment\n\n", "1:1: parse error: no expression found in input"],
  ["1+", "1:3: parse error: unexpected end of input"],
  [".", "1:1: parse error: unexpected character: '.'"],
  ["2.5.", "1:1: parse error: bad number or duration syntax: \"2.5.\""],
  ["100..4", "1:1: parse error: bad number or duration syntax: \"100..\""],
  ["0deadbeef", "1:1: parse error: bad number or duration syntax: \"0de\""],
  ["1 /", "1:4: parse error: unexpected end of input"],
  ["*1", "1:1: parse error: unexpected <op:*>"],
  ["(1))", "1:5: parse error: unexpected right parenthesis ')'"],
  ["((1)", "1:5: parse error: unclosed left parenthesis"],
  ["(", "1:2: parse error: unclosed left parenthesis"],
  ["1 and 1", "1:1: parse error: set operator \"and\" not allowed in binary scalar expression"],
  ["1 == 1", "1:3: parse error: comparisons between scalars must use BOOL modifier"],
  ["1 or 1", "1:1: parse error: set operator \"or\" not allowed in binary scalar expression"],
  ["1 !~ 1", "1:3: parse error: unexpected character after '!': '~'"],
  ["1 =~ 1", "1:3: parse error: unexpected character after '=': '~'"],
  ["-\"string\"", "1:1: parse error: unary expression only allowed on expressions of type scalar or instant vector, got \"string\""],
  ["-test[5m]", "1:1: parse error: unary expression only allowed on expressions of type scalar or instant vector, got \"range vector\""],
  ["*test", "1:1: parse error: unexpected <op:*>"],
  ["@@", "1:1: parse error: unexpected <op:@>"],
  ["1 offset 1d", "1:1: parse error: offset modifier must be preceded by an instant vector selector or range vector selector or a subquery"],
  ["foo offset 1s offset 2s", "1:1: parse error: offset may not be set multiple times"],
  ["a - on(b) ignoring(c) d", "1:11: parse error: unexpected <ignoring>"],
  ["foo and 1", "1:1: parse error: set operator \"and\" not allowed in binary scalar expression"],
  ["1 or on(bar) foo", "1:1: parse error: vector matching only allowed between instant vectors"],
  ["foo == on(bar) 10", "1:1: parse error: vector matching only allowed between instant vectors"],
  ["foo + group_left(baz) bar", "1:7: parse error: unexpected <group_left>"],
  ["foo and on(bar) group_left(baz) bar", "1:1: parse error: no grouping allowed for \"and\" operation"],
  ["foo or on(bar) group_right(baz) bar", "1:1: parse error: no grouping allowed for \"or\" operation"],
  ["http_requests{group=\"production\"} + on(instance) group_left(job,instance) cpu_count{type=\"smp\"}", "1:35: parse error: label \"instance\" must not occur in ON and GROUP clause at once"],
  ["foo + bool bar", "1:5: parse error: bool modifier can only be used on comparison operators"],
  ["foo and bool 10", "1:5: parse error: bool modifier can only be used on comparison operators"],
  ["foo @ +Inf", "1:1: parse error: timestamp out of bounds for @ modifier: +Inf"],
  ["foo @ -Inf", "1:1: parse error: timestamp out of bounds for @ modifier: -Inf"],
  ["foo @ NaN", "1:1: parse error: timestamp out of bounds for @ modifier: NaN"],
  ["foo @ 9223372036854775808.000000", "1:1: parse error: timestamp out of bounds for @ modifier: 9223372036854775808.000000"],
  ["{", "1:2: parse error: unexpected end of input inside braces"],
  ["}", "1:1: parse error: unexpected character: '}'"],
  ["some{", "1:6: parse error: unexpected end of input inside braces"],
  ["some}", "1:5: parse error: unexpected character: '}'"],
  ["some_metric{a=b}", "1:15: parse error: unexpected identifier \"b\" in label matching, expected string"],
  ["some_metric{a:b=\"b\"}", "1:14: parse error: unexpected character inside braces: ':'"],
  ["foo{a*\"b\"}", "1:6: parse error: unexpected character inside braces: '*'"],
  ["foo{a>=\"b\"}", "1:6: parse error: unexpected character inside braces: '>'"],
  ["foo{gibberish}", "1:14: parse error: unexpected \"}\" in label matching, expected label matching operator"],
  ["foo{1}", "1:5: parse error: unexpected character inside braces: '1'"],
  ["{}", "1:1: parse error: vector selector must contain at least one non-empty matcher"],
  ["{x=\"\"}", "1:1: parse error: vector selector must contain at least one non-empty matcher"],
  ["{x=~\".*\"}", "1:1: parse error: vector selector must contain at least one non-empty matcher"],
  ["{x!~\".+\"}", "1:1: parse error: vector selector must contain at least one non-empty matcher"],
  ["{x!=\"a\"}", "1:1: parse error: vector selector must contain at least one non-empty matcher"],
  ["foo{__name__=\"bar\"}", "1:1: parse error: metric name must not be set twice: \"foo\" or \"bar\""],
  ["foo{__name__= =}", "1:15: parse error: unexpected \"=\" in label matching, expected string"],
  ["foo{,}", "1:5: parse error: unexpected \",\" in label matching, expected identifier or \"}\""],
  ["foo{__name__ == \"bar\"}", "1:15: parse error: unexpected \"=\" in label matching, expected string"],
  ["foo{__name__=\"bar\" lol}", "1:20: parse error: unexpected identifier \"lol\" in label matching, expected \",\" or \"}\""],
  ["foo{\"a\"=}", "1:9: parse error: unexpected \"}\" in label matching, expected string"],
  ["foo[5mm]", "1:5: parse error: bad number or duration syntax: \"5mm\""],
  ["foo[5m1]", "1:5: parse error: bad number or duration syntax: \"5m1\""],
  ["foo[5m:1m1]", "1:8: parse error: bad number or duration syntax: \"1m1\""],
  ["foo[5y1hs]", "1:5: parse error: unknown unit \"hs\" in duration \"5y1hs\""],
  ["foo[5m1h]", "1:5: parse error: not a valid duration string: \"5m1h\""],
  ["foo[5m1m]", "1:5: parse error: not a valid duration string: \"5m1m\""],
  ["foo[0m]", "1:5: parse error: duration must be greater than 0"],
  ["foo[\"5m\"]", "1:5: parse error: unexpected character in duration expression: '\"'"],
  ["foo[]", "1:5: parse error: unexpected \"]\" in subquery or range selector, expected number, duration, step(), or range()"],
  ["foo[-1]", "1:5: parse error: duration must be greater than 0"],
  ["some_metric[5m] OFFSET 1mm", "1:24: parse error: bad number or duration syntax: \"1mm\""],
  ["some_metric[5m] OFFSET", "1:23: parse error: unexpected end of input in offset, expected number, duration, step(), or range()"],
  ["some_metric OFFSET 1m[5m]", "1:22: parse error: no offset modifiers allowed before range"],
  ["some_metric[5m] @", "1:18: parse error: unexpected end of input in @, expected timestamp"],
  ["some_metric @ 1234 [5m]", "1:20: parse error: no @ modifiers allowed before range"],
  ["(foo + bar)[5m]", "1:12: parse error: ranges only allowed for vector selectors"],
  ["sum by (\"foo)(some_metric{})", "1:9: parse error: unterminated quoted string"],
  ["sum without(==)(some_metric)", "1:13: parse error: unexpected <op:==> in grouping opts, expected label"],
  ["sum without(,)(some_metric)", "1:13: parse error: unexpected \",\" in grouping opts, expected label"],
  ["sum without(foo,,)(some_metric)", "1:17: parse error: unexpected \",\" in grouping opts, expected label"],
  ["sum some_metric by (test)", "1:5: parse error: unexpected identifier \"some_metric\""],
  ["sum (some_metric) by test", "1:22: parse error: unexpected identifier \"test\" in grouping opts, expected \"(\""],
  ["sum () by (test)", "1:1: parse error: no arguments for aggregate expression provided"],
  ["MIN keep_common (some_metric)", "1:5: parse error: unexpected identifier \"keep_common\""],
  ["MIN (some_metric) keep_common", "1:19: parse error: unexpected identifier \"keep_common\""],
  ["sum (some_metric) without (test) by (test)", "1:34: parse error: unexpected <by>"],
  ["sum without (test) (some_metric) by (test)", "1:34: parse error: unexpected <by>"],
  ["topk(some_metric)", "1:1: parse error: wrong number of arguments for aggregate expression provided, expected 2, got 1"],
  ["topk(some_metric,)", "1:17: parse error: trailing commas not allowed in function call args"],
  ["topk(some_metric, other_metric)", "1:6: parse error: expected type scalar in aggregation parameter, got instant vector"],
  ["count_values(5, other_metric)", "1:14: parse error: expected type string in aggregation parameter, got scalar"],
  ["rate(some_metric[5m]) @ 1234", "1:1: parse error: @ modifier must be preceded by an instant vector selector or range vector selector or a subquery"],
  ["floor()", "1:1: parse error: expected 1 argument(s) in call to \"floor\", got 0"],
  ["floor(some_metric, other_metric)", "1:1: parse error: expected 1 argument(s) in call to \"floor\", got 2"],
  ["floor(1)", "1:7: parse error: expected type instant vector in call to function \"floor\", got scalar"],
  ["hour(some_metric, some_metric, some_metric)", "1:1: parse error: expected at most 1 argument(s) in call to \"hour\", got 3"],
  ["time(some_metric)", "1:1: parse error: expected 0 argument(s) in call to \"time\", got 1"],
  ["non_existent_function_far_bar()", "1:1: parse error: unknown function with name \"non_existent_function_far_bar\""],
  ["rate(some_metric)", "1:6: parse error: expected type range vector in call to function \"rate\", got instant vector"],
  ["-=", "1:2: parse error: unexpected \"=\""],
  ["++-++-+-+-<", "1:11: parse error: unexpected <op:<>"],
  ["e-+=/(0)", "1:4: parse error: unexpected \"=\""],
  ["a>b()", "1:3: parse error: unknown function with name \"b\""],
  ["rate(avg)", "1:6: parse error: expected type range vector in call to function \"rate\", got instant vector"],
  ["`\\``", "1:4: parse error: unterminated raw string"],
  ["\"\\", "1:1: parse error: escape sequence not terminated"],
  ["\"\\c\"", "1:1: parse error: unknown escape sequence U+0063 'c'"],
  ["\"\\x.\"", "1:1: parse error: illegal character U+002E '.' in escape sequence"],
  ["foo{bar=\"baz\"}[", "1:16: parse error: unexpected end of input in duration expression"],
  ["test[5d] OFFSET 10s [10m:5s]", "1:1: parse error: subquery is only allowed on instant vector, got matrix instead"],
  ["(foo + bar{nm=\"val\"})[5m:][10m:5s]", "1:1: parse error: subquery is only allowed on instant vector, got matrix instead"],
  ["rate(food[1m])[1h] offset 1h", "1:15: parse error: ranges only allowed for vector selectors"],
  ["info(rate(http_request_counter_total{}[5m]), target_info{foo=\"bar\"})", "1:46: parse error: expected label selectors only, got vector selector instead"],
  ["info(http_request_counter_total{namespace=\"zzz\"}, {foo=\"bar\"} == 1)", "1:51: parse error: expected label selectors only"],
  ["foo[step]", "1:9: parse error: unexpected \"]\" in subquery or range selector, expected number, duration, step(), or range()"],
  ["foo[5s/0d]", "1:7: parse error: division by zero"],
  ["foo offset (4d/0)", "1:15: parse error: division by zero"],
  ["foo[5s%0d]", "1:7: parse error: modulo by zero"],
  ["foo offset 9.5e10", "1:12: parse error: duration out of range"],
  ["foo[9.5e10]", "1:5: parse error: duration out of range"],
  ["sum(", "1:5: parse error: unclosed left parenthesis"],
  ["sum(rate(", "1:10: parse error: unclosed left parenthesis"],
  ["foo[5s x 5s]", "1:8: parse error: unexpected character: 'x', expected ':'"],
  ["foo[5s s 5s]", "1:8: parse error: unexpected character: 's', expected ':'"],
    // Lexical errors that are not the first token.
    ["foo{a=\"b\"} + bar{", "1:18: parse error: unexpected end of input inside braces"],
    ["foo\n  +\n bar{", "3:6: parse error: unexpected end of input inside braces"],
    // Columns count bytes, as in Prometheus.
    ["foo{a=\"é\"} +", "1:14: parse error: unexpected end of input"],
    // More type and usage errors.
    ["sum(x) offset 5m", "1:1: parse error: offset modifier must be preceded by an instant vector selector or range vector selector or a subquery"],
    ["(foo) offset 5m", "1:1: parse error: offset modifier must be preceded by an instant vector selector or range vector selector or a subquery"],
    ["foo @ 1 @ 2", "1:1: parse error: @ <timestamp> may not be set multiple times"],
    ["a + b[5m]", "1:5: parse error: binary expression must contain only scalar and instant vector types"],
    ["foo[5m][5m]", "1:8: parse error: ranges only allowed for vector selectors"],
    ["1[5m:]", "1:1: parse error: subquery is only allowed on instant vector, got scalar instead"],
    [`"a" + 1`, "1:1: parse error: binary expression must contain only scalar and instant vector types"],
    ["rate(x[5m], 1)", "1:1: parse error: expected 1 argument(s) in call to \"rate\", got 2"],
    ["clamp(x)", "1:1: parse error: expected 3 argument(s) in call to \"clamp\", got 1"],
    ["label_join(x)", "1:1: parse error: expected at least 3 argument(s) in call to \"label_join\", got 1"],
    ["round(x, 1, 2)", "1:1: parse error: expected at most 2 argument(s) in call to \"round\", got 3"],
    [`label_replace(x, "a", "b", "c", 1)`, "1:33: parse error: expected type string in call to function \"label_replace\", got scalar"],
    ["foo(bar)", "1:1: parse error: unknown function with name \"foo\""],
    ["rate (x)", "1:7: parse error: expected type range vector in call to function \"rate\", got instant vector"],
    ["sum by (a) (x[5m])", "1:13: parse error: expected type instant vector in aggregation expression, got range vector"],
    ["quantile(x, y)", "1:10: parse error: expected type scalar in aggregation parameter, got instant vector"],
    ["atan2", "1:1: parse error: unexpected <op:atan2>"],
    [`sum by ("") (x)`, "1:9: parse error: invalid label name for grouping: \"\""],
    ["rate(x[5m],)", "1:11: parse error: trailing commas not allowed in function call args"],
    ["sum by (foo bar) (x)", "1:13: parse error: unexpected identifier \"bar\" in grouping opts, expected \",\" or \")\""],
    ["foo[5m:1m:1m]", "1:10: parse error: unexpected colon ':'"],
    ["foo[5m+]", "1:8: parse error: unexpected \"]\""],
    ["foo offset offset", "1:12: parse error: unexpected <offset> in offset, expected number, duration, step(), or range()"],
    ["on", "1:1: parse error: unexpected <on>"],
    ["x @ foo", "1:5: parse error: unexpected identifier \"foo\" in @, expected timestamp"],
    ["sum(x) by", "1:10: parse error: unexpected end of input in grouping opts, expected \"(\""],
    ["histogram_quantile(0.9, rate(x[5m]) by (le))", "1:37: parse error: unexpected <by>"],
    ["foo{a=\"b\" c=\"d\"}", "1:11: parse error: unexpected identifier \"c\" in label matching, expected \",\" or \"}\""],
    ["0x1e", "1:1: parse error: bad number or duration syntax: \"0x1e\""],
    ["1e400", "1:1: parse error: error parsing number: strconv.ParseFloat: parsing \"1e400\": value out of range"],
    // Features Prometheus keeps behind flags that are not enabled.
    ["foo[5m] anchored", "1:1: parse error: anchored modifier is experimental and not enabled"],
    ["foo[5m] smoothed", "1:1: parse error: smoothed modifier is experimental and not enabled"],
    ["a + fill(0) b", "1:1: parse error: binop fill modifiers are experimental and not enabled"],
    // Duration expressions that depend on the query cannot be folded.
    ["foo[step()]", "1:5: parse error: step() in duration expressions is not supported"],
    ["foo offset range()", "1:12: parse error: range() in duration expressions is not supported"],
  ];
  for (const [q, want] of cases) {
    it(JSON.stringify(q), () => {
      expect(() => parseExpr(q)).toThrow(PromQLParseError);
      expect(() => parseExpr(q)).toThrow(want);
      try {
        parseExpr(q);
      } catch (e) {
        expect((e as Error).message).toBe(want);
      }
    });
  }

  it("refuses an invalid regular expression where its matcher starts", () => {
    expect(() => parseExpr(`foo{a=~"("}`)).toThrow(/^1:5: parse error: invalid regular expression "\(": /);
  });

  it("a very long number is out of range", () => {
    const q = "9".repeat(309);
    expect(() => parseExpr(q)).toThrow(`1:1: parse error: error parsing number: strconv.ParseFloat: parsing "${q}": value out of range`);
  });

  it("carries the position", () => {
    try {
      parseExpr("foo +\n  bar{");
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(PromQLParseError);
      expect((e as PromQLParseError).position).toEqual({ line: 2, column: 7 });
    }
    try {
      parseExpr("");
      expect.unreachable();
    } catch (e) {
      expect((e as PromQLParseError).position).toBeNull();
    }
  });
});

describe("parseExpr: options", () => {
  it("can refuse experimental functions and aggregations, as Prometheus does by default", () => {
    const opts = { enableExperimentalFunctions: false };
    expect(() => parseExpr(`sort_by_label(x, "a")`, opts)).toThrow('1:1: parse error: function "sort_by_label" is not enabled');
    expect(() => parseExpr("limitk(1, x)", opts)).toThrow(
      "1:1: parse error: limitk() is experimental and must be enabled with --enable-feature=promql-experimental-functions",
    );
    expect(noPos(parseExpr("first_over_time(x[5m])", opts))).toEqual(call("first_over_time", matrix(sel("x"), 5 * M)));
  });

  it("can refuse duration arithmetic", () => {
    const opts = { experimentalDurationExpr: false };
    expect(() => parseExpr("foo[5m+1m]", opts)).toThrow("1:5: parse error: experimental duration expression is not enabled");
    expect(() => parseExpr("foo offset (1h)", opts)).toThrow("1:13: parse error: experimental duration expression is not enabled");
    expect(noPos(parseExpr("foo[5m] offset -1m", opts))).toEqual(matrix(sel("foo", [], -M), 5 * M));
  });
});

describe("signatures", () => {
  it("registers every function's return type", () => {
    for (const f of FUNCTIONS.values()) expect(FUNCTION_RETURN_TYPES[f.name]).toBe(f.returnType);
    expect(FUNCTION_RETURN_TYPES.scalar).toBe("scalar");
    expect(FUNCTION_RETURN_TYPES.rate).toBe("vector");
  });

  it("describes arguments as Prometheus does", () => {
    expect(getFunction("label_join")).toEqual({ name: "label_join", argTypes: ["vector", "string", "string", "string"], variadic: -1, returnType: "vector", experimental: false });
    expect(getFunction("round")?.variadic).toBe(1);
    expect(getFunction("holt_winters")).toBeUndefined();
    expect(getFunction("constructor")).toBeUndefined();
    expect(getFunction("mad_over_time")?.experimental).toBe(true);
  });

  it("every function parses with its arguments", () => {
    const arg: Record<string, string> = { vector: "x", matrix: "x[5m]", scalar: "1", string: '"a"' };
    for (const f of FUNCTIONS.values()) {
      const n = f.variadic === 0 ? f.argTypes.length : Math.max(f.argTypes.length - 1, 0);
      const q = `${f.name}(${f.argTypes.slice(0, n).map((t) => arg[t]).join(", ")})`;
      const e = parseExpr(q);
      expect(noPos(e), q).toEqual({ type: "Call", func: f.name, args: expect.any(Array) });
      expect(exprType(e)).toBe(f.returnType);
    }
  });
});
