import { describe, expect, it } from "vitest";
import { LogQLParseError, type LogExpr, type SampleExpr } from "../../src/querier/logql/ast";
import { parseLogQL } from "../../src/querier/logql/parse";
import { MatchType } from "../../src/proto/types";

function log(q: string): LogExpr {
  const e = parseLogQL(q);
  if (e.kind !== "log") throw new Error(`not a log query: ${q}`);
  return e;
}

function metric(q: string): SampleExpr {
  const e = parseLogQL(q);
  if (e.kind === "log") throw new Error(`not a metric query: ${q}`);
  return e;
}

/** A compact rendering of binary trees to check precedence. */
function shape(e: SampleExpr): string {
  switch (e.kind) {
    case "binary":
      return `(${shape(e.lhs)} ${e.op}${e.returnBool ? " bool" : ""} ${shape(e.rhs)})`;
    case "literal":
      return String(e.value);
    case "vector":
      return `vector(${e.value})`;
    case "range_agg":
      return e.op;
    case "vector_agg":
      return `${e.op}(${shape(e.expr)})`;
    case "label_replace":
      return `label_replace(${shape(e.expr)})`;
  }
}

describe("LogQL parse: selectors and line filters", () => {
  it("parses the four matcher types", () => {
    const e = log('{app="a", env!="b", x=~"p.*", y!~"q|r"}');
    expect(e.matchers).toEqual([
      { type: MatchType.EQ, name: "app", value: "a" },
      { type: MatchType.NEQ, name: "env", value: "b" },
      { type: MatchType.RE, name: "x", value: "p.*" },
      { type: MatchType.NRE, name: "y", value: "q|r" },
    ]);
    expect(e.stages).toEqual([]);
  });

  it("unquotes Go strings and raw strings", () => {
    const e = log('{app="a\\"b\\u00e9\\x41"} |= `raw\\d`');
    expect(e.matchers[0].value).toBe('a"béA');
    expect(e.stages).toEqual([{ kind: "line_filter", filters: [{ op: "|=", values: ["raw\\d"] }] }]);
  });

  it("groups consecutive line filters, with or-alternatives", () => {
    const e = log('{a="b"} |= "x" != "y" |~ "a|b" or "c" !~ "z" |> "<_> GET <_>" !> "<_> POST <_>"');
    expect(e.stages).toEqual([
      {
        kind: "line_filter",
        filters: [
          { op: "|=", values: ["x"] },
          { op: "!=", values: ["y"] },
          { op: "|~", values: ["a|b", "c"] },
          { op: "!~", values: ["z"] },
          { op: "|>", values: ["<_> GET <_>"] },
          { op: "!>", values: ["<_> POST <_>"] },
        ],
      },
    ]);
  });
});

describe("LogQL parse: parsers and stages", () => {
  it("json, logfmt with flags and params, regexp, pattern, unpack", () => {
    const e = log('{a="b"} | json | json x="b.c[0]", d | logfmt --strict --keep-empty | logfmt x, y="z" | regexp "(?P<ip>\\\\S+)" | pattern "<ip> - <_>" | unpack');
    expect(e.stages).toEqual([
      { kind: "json", params: [] },
      { kind: "json", params: [{ name: "x", expr: "b.c[0]" }, { name: "d", expr: "d" }] },
      { kind: "logfmt", params: [], strict: true, keepEmpty: true },
      { kind: "logfmt", params: [{ name: "x", expr: "x" }, { name: "y", expr: "z" }], strict: false, keepEmpty: false },
      { kind: "regexp", pattern: "(?P<ip>\\S+)" },
      { kind: "pattern", pattern: "<ip> - <_>" },
      { kind: "unpack" },
    ]);
  });

  it("label filters: string, number, duration, bytes, and/or/comma, parentheses", () => {
    const e = log('{a="b"} | x="y", n > 1.5 | d >= 250ms and s < 1KiB or z=~"q.+" | (a="b" or c!="d") | n == -2 | n = 3');
    expect(e.stages).toEqual([
      {
        kind: "label_filter",
        filter: {
          kind: "and",
          left: { kind: "matcher", matcher: { type: MatchType.EQ, name: "x", value: "y" } },
          right: { kind: "number", name: "n", op: ">", value: 1.5 },
        },
      },
      {
        kind: "label_filter",
        filter: {
          kind: "or",
          left: {
            kind: "and",
            left: { kind: "duration", name: "d", op: ">=", value: 0.25 },
            right: { kind: "bytes", name: "s", op: "<", value: 1024 },
          },
          right: { kind: "matcher", matcher: { type: MatchType.RE, name: "z", value: "q.+" } },
        },
      },
      {
        kind: "label_filter",
        filter: {
          kind: "or",
          left: { kind: "matcher", matcher: { type: MatchType.EQ, name: "a", value: "b" } },
          right: { kind: "matcher", matcher: { type: MatchType.NEQ, name: "c", value: "d" } },
        },
      },
      { kind: "label_filter", filter: { kind: "number", name: "n", op: "==", value: -2 } },
      { kind: "label_filter", filter: { kind: "number", name: "n", op: "==", value: 3 } },
    ]);
  });

  it("line_format, label_format, drop, keep, decolorize", () => {
    const e = log('{a="b"} | line_format "{{.a}} {{ .b | ToUpper }}" | label_format x=y, z="{{.a}}-{{.b}}" | drop a, b="x" | keep c, d=~"y.*" | decolorize');
    expect(e.stages).toEqual([
      { kind: "line_format", template: "{{.a}} {{ .b | ToUpper }}" },
      {
        kind: "label_format",
        items: [
          { name: "x", rename: "y", template: null },
          { name: "z", rename: null, template: "{{.a}}-{{.b}}" },
        ],
      },
      { kind: "drop", items: [{ name: "a", matcher: null }, { name: "b", matcher: { type: MatchType.EQ, name: "b", value: "x" } }] },
      { kind: "keep", items: [{ name: "c", matcher: null }, { name: "d", matcher: { type: MatchType.RE, name: "d", value: "y.*" } }] },
      { kind: "decolorize" },
    ]);
  });
});

describe("LogQL parse: metric queries", () => {
  it("range aggregations with pipeline, unwrap, post filters, offset and grouping", () => {
    const e = metric('quantile_over_time(0.99, {a="b"} |= "x" | json | unwrap duration(latency) | __error__="" [5m] offset 1m) by (c)');
    expect(e).toEqual({
      kind: "range_agg",
      op: "quantile_over_time",
      param: 0.99,
      grouping: { without: false, labels: ["c"] },
      range: {
        selector: {
          kind: "log",
          matchers: [{ type: MatchType.EQ, name: "a", value: "b" }],
          stages: [{ kind: "line_filter", filters: [{ op: "|=", values: ["x"] }] }, { kind: "json", params: [] }],
        },
        rangeMs: 300_000,
        offsetMs: 60_000,
        unwrap: {
          label: "latency",
          conv: "duration",
          postFilters: [{ kind: "matcher", matcher: { type: MatchType.EQ, name: "__error__", value: "" } }],
        },
      },
    });
  });

  it("accepts the range before the pipeline, as Loki does", () => {
    const e = metric('count_over_time({foo="bar"}[12h] |= "error")');
    expect(e.kind === "range_agg" && e.range.rangeMs).toBe(12 * 3_600_000);
    expect(e.kind === "range_agg" && e.range.selector.stages).toEqual([{ kind: "line_filter", filters: [{ op: "|=", values: ["error"] }] }]);
  });

  it("every range operation parses", () => {
    for (const op of ["count_over_time", "rate", "bytes_over_time", "bytes_rate", "absent_over_time"]) {
      expect(metric(`${op}({a="b"}[1m])`).kind).toBe("range_agg");
    }
    for (const op of ["sum_over_time", "avg_over_time", "min_over_time", "max_over_time", "first_over_time", "last_over_time", "stddev_over_time", "stdvar_over_time", "rate", "rate_counter"]) {
      const e = metric(`${op}({a="b"} | unwrap bytes(x) [1m])`);
      expect(e.kind === "range_agg" && e.range.unwrap?.conv).toBe("bytes");
    }
  });

  it("vector aggregations with by/without before or after, topk parameter", () => {
    expect(metric('sum by (a) (rate({a="b"}[1m]))')).toMatchObject({ kind: "vector_agg", op: "sum", grouping: { without: false, labels: ["a"] } });
    expect(metric('avg(rate({a="b"}[1m])) without (x, y)')).toMatchObject({ kind: "vector_agg", op: "avg", grouping: { without: true, labels: ["x", "y"] } });
    expect(metric('topk(3, count_over_time({a="b"}[1m]))')).toMatchObject({ kind: "vector_agg", op: "topk", param: 3 });
  });

  it("binary operators follow Loki's precedence, ^ is right-associative", () => {
    expect(shape(metric("vector(1) + 2 * 3"))).toBe("(vector(1) + (2 * 3))");
    expect(shape(metric("(vector(1) + 2) * 3"))).toBe("((vector(1) + 2) * 3)");
    expect(shape(metric("2 ^ 3 ^ 2"))).toBe("(2 ^ (3 ^ 2))");
    expect(shape(metric('rate({a="b"}[1m]) / 2 > bool 1'))).toBe("((rate / 2) > bool 1)");
    expect(shape(metric('rate({a="b"}[1m]) or rate({a="c"}[1m]) and rate({a="d"}[1m])'))).toBe("(rate or (rate and rate))");
    expect(shape(metric("1 - 2 - 3"))).toBe("((1 - 2) - 3)");
  });

  it("on/ignoring with group_left/right", () => {
    const e = metric('sum by (a, b) (rate({a="b"}[1m])) / on(a) group_left(b) sum by (a) (rate({a="b"}[1m]))');
    expect(e).toMatchObject({ kind: "binary", op: "/", matching: { on: true, labels: ["a"], card: "many-to-one", include: ["b"] } });
    const f = metric('rate({a="b"}[1m]) + ignoring(x) rate({a="b"}[1m])');
    expect(f).toMatchObject({ matching: { on: false, labels: ["x"], card: "one-to-one", include: [] } });
  });

  it("label_replace, vector(), literals", () => {
    expect(metric('label_replace(rate({a="b"}[1m]), "dst", "$1", "src", "(.*)")')).toMatchObject({ kind: "label_replace", dst: "dst", replacement: "$1", src: "src", regex: "(.*)" });
    expect(metric("vector(5)")).toEqual({ kind: "vector", value: 5 });
    expect(metric("-2.5")).toEqual({ kind: "literal", value: -2.5 });
  });
});

describe("LogQL parse: Loki's error messages", () => {
  const cases: [string, string][] = [
    ['unk({ foo = "bar" }[5m])', "parse error at line 1, col 1: syntax error: unexpected IDENTIFIER"],
    ['absent_over_time({ foo = "bar" }[5h]) by (foo)', "parse error : grouping not allowed for absent_over_time aggregation"],
    ['rate({ foo = "bar" }[5minutes])', 'parse error at line 0, col 21: unknown unit "minutes" in duration "5minutes"'],
    ['min({ foo = "bar" }[5m])', "parse error at line 0, col 20: syntax error: unexpected RANGE"],
    ['{ foo = "bar" }|logfmt|addr>=ip("1.2.3.4")', "parse error at line 1, col 30: syntax error: unexpected ip"],
    [
      '{app=~".*"}',
      'parse error : queries require at least one regexp or equality matcher that does not have an empty-compatible value. For instance, app=~".*" does not meet this requirement, but app=~".+" will',
    ],
    ['count_over_time({a="b"} | unwrap x [1m])', "parse error : invalid aggregation count_over_time with unwrap"],
    ['sum_over_time({a="b"}[1m])', "parse error : invalid aggregation sum_over_time without unwrap"],
    ['count_over_time({a="b"}[1m]) by (a)', "parse error : grouping not allowed for count_over_time aggregation"],
  ];
  for (const [q, msg] of cases) {
    it(q, () => {
      let err: unknown = null;
      try {
        parseLogQL(q);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(LogQLParseError);
      expect((err as Error).message).toBe(msg);
    });
  }

  it("every malformed query is a LogQLParseError, never another exception", () => {
    const bad = ["", "{", '{a="b"', '{a="b"} |', '{a="b"} | json |', "sum(", 'rate({a="b"})', '{a="b"} | line_format "{{.a"', '{a="b"} |~ "("', '{a="b"} | regexp "(.*)"', '{a="b"} | pattern "<a><b>"', "1 > 2"];
    for (const q of bad) {
      expect(() => parseLogQL(q), q).toThrow(LogQLParseError);
    }
  });
});
