import { describe, expect, it } from "vitest";
import { parseLogQL } from "../../src/querier/logql/parse";
import { LabelsBuilder, labelsString } from "../../src/querier/logql/pipeline/labels";
import { compilePipeline } from "../../src/querier/logql/pipeline/pipeline";
import { compileTemplate, goSprintf } from "../../src/querier/logql/template";
import { parseBytes, parseDuration } from "../../src/querier/logql/units";

/** Runs a query's pipeline over one line of a stream; returns the line and labels, or null if dropped. */
function run(query: string, line: string, stream: Record<string, string> = { app: "a" }, meta: string[] | null = null, tsMs = 1_700_000_000_123) {
  const e = parseLogQL(query);
  if (e.kind !== "log") throw new Error("log query expected");
  const p = compilePipeline(e.stages);
  const flat = Object.keys(stream)
    .sort()
    .flatMap((k) => [k, stream[k]]);
  const lb = new LabelsBuilder();
  lb.setStream(flat, labelsString(flat));
  lb.reset(meta);
  if (p.prefilter !== null && !p.prefilter(line)) return null;
  const out = p.process(line, lb, tsMs, 456);
  if (out === null) return null;
  const labels: Record<string, string> = {};
  const ls = lb.labels();
  for (let i = 0; i < ls.length; i += 2) labels[ls[i]] = ls[i + 1];
  return { line: out, labels };
}

describe("line filters", () => {
  it("contains, not contains, regex, not regex, chained", () => {
    expect(run('{app="a"} |= "err"', "an error here")).not.toBeNull();
    expect(run('{app="a"} |= "err"', "all good")).toBeNull();
    expect(run('{app="a"} != "err"', "an error here")).toBeNull();
    expect(run('{app="a"} |~ "e[r]+or"', "an error")).not.toBeNull();
    expect(run('{app="a"} |~ "^error"', "an error")).toBeNull(); // unanchored, but ^ still anchors
    expect(run('{app="a"} !~ "(?i)ERROR"', "an error")).toBeNull();
    expect(run('{app="a"} |= "a" |= "b" != "c"', "a b")).not.toBeNull();
    expect(run('{app="a"} |= "a" |= "b" != "c"', "a b c")).toBeNull();
  });

  it("or alternatives: positive keeps any, negative keeps none", () => {
    expect(run('{app="a"} |= "x" or "y"', "has y")).not.toBeNull();
    expect(run('{app="a"} |= "x" or "y"', "has z")).toBeNull();
    expect(run('{app="a"} != "x" or "y"', "has y")).toBeNull();
    expect(run('{app="a"} != "x" or "y"', "has z")).not.toBeNull();
  });

  it("pattern filters need the whole line to match", () => {
    expect(run('{app="a"} |> "<_> GET <_>"', "1.2.3.4 GET /x")).not.toBeNull();
    expect(run('{app="a"} |> "<_> GET <_>"', "1.2.3.4 POST /x")).toBeNull();
    expect(run('{app="a"} !> "<_> GET <_>"', "1.2.3.4 POST /x")).not.toBeNull();
  });
});

describe("parsers", () => {
  it("json flattens objects with _, keeps numbers as written, skips arrays and nulls", () => {
    const r = run('{app="a"} | json', '{"a":{"b":"c","d":1.50},"n":null,"arr":[1,2],"t":true,"app":"dup","we-ird key":"v","1x":"y"}');
    expect(r?.labels).toEqual({ app: "a", a_b: "c", a_d: "1.50", t: "true", app_extracted: "dup", we_ird_key: "v", _1x: "y" });
  });

  it("json sets __error__ on a malformed line and keeps the line", () => {
    const r = run('{app="a"} | json', "not json");
    expect(r?.labels.__error__).toBe("JSONParserErr");
    expect(r?.line).toBe("not json");
    expect(run('{app="a"} | json | __error__=""', "not json")).toBeNull();
    expect(run('{app="a"} | json | __error__!=""', '{"a":1}')).toBeNull();
  });

  it("json with parameters: paths, indexes, objects as JSON text", () => {
    const r = run('{app="a"} | json x="a.b", y="arr[1]", z="a", w="missing", q=`["we ird"]`', '{"a":{"b":"c"},"arr":[10,20],"we ird":"k"}');
    expect(r?.labels).toEqual({ app: "a", x: "c", y: "20", z: '{"b":"c"}', q: "k" });
  });

  it("logfmt: quoted values, standalone keys only with --keep-empty, --strict errors", () => {
    expect(run('{app="a"} | logfmt', 'level=info msg="hello world" bare dur=5ms')?.labels).toEqual({ app: "a", level: "info", msg: "hello world", dur: "5ms" });
    const keep = run('{app="a"} | logfmt --keep-empty | bare=""', "level=info bare");
    expect(keep).not.toBeNull();
    expect(run('{app="a"} | logfmt', "a=1 =x b=2")?.labels).toEqual({ app: "a", a: "1", b: "2" });
    expect(run('{app="a"} | logfmt --strict', "a=1 =x b=2")?.labels.__error__).toBe("LogfmtParserErr");
    expect(run('{app="a"} | logfmt lvl="level"', "level=warn x=1")?.labels).toEqual({ app: "a", lvl: "warn" });
  });

  it("regexp named groups (RE2 (?P<name>) syntax)", () => {
    const r = run('{app="a"} | regexp "(?P<method>\\\\w+) (?P<path>/\\\\S*)"', "GET /index.html 200");
    expect(r?.labels).toEqual({ app: "a", method: "GET", path: "/index.html" });
  });

  it("pattern captures, partial matches keep the rest of the line", () => {
    const r = run('{app="a"} | pattern "<ip> - <user> [<_>] \\"<method> <uri> <_>\\" <status>"', '1.2.3.4 - bob [10/Oct/2000] "GET /a HTTP/1.1" 200');
    expect(r?.labels).toEqual({ app: "a", ip: "1.2.3.4", user: "bob", method: "GET", uri: "/a", status: "200" });
    expect(run('{app="a"} | pattern "<a> x <b>"', "one two")?.labels).toEqual({ app: "a", a: "one two" });
  });

  it("unpack: string fields become labels, _entry becomes the line", () => {
    const r = run('{app="a"} | unpack', '{"_entry":"the line","pod":"p1","n":1}');
    expect(r).toEqual({ line: "the line", labels: { app: "a", pod: "p1" } });
  });

  it("structured metadata is visible to filters and collides like stream labels", () => {
    const r = run('{app="a"} | trace="t1" | json', '{"trace":"x"}', { app: "a" }, ["trace", "t1"]);
    expect(r?.labels).toEqual({ app: "a", trace: "t1", trace_extracted: "x" });
  });
});

describe("label filters", () => {
  const line = '{"n":"42","d":"250ms","s":"2KB","t":"abc"}';
  it("numeric, duration and bytes comparisons", () => {
    expect(run('{app="a"} | json | n > 41', line)).not.toBeNull();
    expect(run('{app="a"} | json | n >= 42.5', line)).toBeNull();
    expect(run('{app="a"} | json | n == 42', line)).not.toBeNull();
    expect(run('{app="a"} | json | d > 200ms', line)).not.toBeNull();
    expect(run('{app="a"} | json | d > 1s', line)).toBeNull();
    expect(run('{app="a"} | json | s >= 2KB', line)).not.toBeNull();
    expect(run('{app="a"} | json | s > 1KiB', line)).not.toBeNull();
    expect(run('{app="a"} | json | s > 2KiB', line)).toBeNull();
  });

  it("a missing label fails a numeric filter; a non-number keeps the line with LabelFilterErr", () => {
    expect(run('{app="a"} | json | missing > 1', line)).toBeNull();
    const r = run('{app="a"} | json | t > 1', line);
    expect(r?.labels.__error__).toBe("LabelFilterErr");
    expect(run('{app="a"} | json | t > 1 | __error__=""', line)).toBeNull();
  });

  it("and / or / parentheses", () => {
    expect(run('{app="a"} | json | n > 100 or d < 1s', line)).not.toBeNull();
    expect(run('{app="a"} | json | n > 100 and d < 1s', line)).toBeNull();
    expect(run('{app="a"} | json | (n > 100 or t="abc"), d < 1s', line)).not.toBeNull();
  });
});

describe("formatting, drop, keep, decolorize", () => {
  it("line_format with fields, pipelines, functions, __line__, __timestamp__", () => {
    const r = run('{app="a"} | logfmt | line_format "{{.level | ToUpper}} {{ printf \\"%05.1f\\" 3.14159 }} {{ __line__ | len }} {{ .missing }}|"', "level=info x=1");
    expect(r?.line).toBe("INFO 003.1 14 |");
    expect(run('{app="a"} | line_format "{{ __timestamp__ | unixEpochMillis }}"', "x")?.line).toBe("1700000000123");
  });

  it("label_format: renames in order, templates from one snapshot taken at the first template", () => {
    // As Loki's LabelsFormatter: the rename has already removed `level` when the snapshot is taken.
    const r = run('{app="a"} | logfmt | label_format lvl=level, both="{{.level}}-{{.app}}", app="{{.app | ToUpper}}", again="{{.app}}"', "level=warn");
    expect(r?.labels).toEqual({ app: "A", lvl: "warn", both: "-a", again: "a" });
  });

  it("drop by name and by matcher, keep with matchers, error labels survive keep", () => {
    const st = { app: "a", env: "p" };
    expect(run('{app="a", env="p"} | logfmt | drop env, x="1"', "x=1 y=2", st)?.labels).toEqual({ app: "a", y: "2" });
    expect(run('{app="a", env="p"} | logfmt | drop x="2"', "x=1", st)?.labels).toEqual({ app: "a", env: "p", x: "1" });
    expect(run('{app="a", env="p"} | logfmt | keep app, x=~"1.*"', "x=12 y=2", st)?.labels).toEqual({ app: "a", x: "12" });
    expect(run('{app="a"} | json | keep app', "bad")?.labels.__error__).toBe("JSONParserErr");
    expect(run('{app="a"} | json | drop __error__', "bad")?.labels).toEqual({ app: "a" });
  });

  it("decolorize strips ANSI escapes", () => {
    expect(run('{app="a"} | decolorize', "\u001b[31mred\u001b[0m text")?.line).toBe("red text");
  });
});

describe("templates", () => {
  const data = (labels: Record<string, string>) => ({ get: (n: string) => labels[n], line: "the line", tsMs: 0, tsNs: 0 });
  const exec = (t: string, labels: Record<string, string> = {}) => compileTemplate(t).execute(data(labels));

  it("if / else if / else, comparisons, default, string functions", () => {
    const t = "{{ if eq .s \"500\" }}server{{ else if hasPrefix \"4\" .s }}client{{ else }}ok{{ end }}";
    expect(exec(t, { s: "500" })).toBe("server");
    expect(exec(t, { s: "404" })).toBe("client");
    expect(exec(t, { s: "200" })).toBe("ok");
    expect(exec('{{ .x | default "none" }}')).toBe("none");
    expect(exec('{{ Replace .a "o" "0" -1 }} {{ TrimPrefix .a "f" }} {{ trimSuffix "o" .a }} {{ Trim .b "-" }} {{ title "hello world" }}', { a: "foo", b: "--x--" })).toBe("f00 oo fo x Hello World");
    expect(exec('{{ regexReplaceAll "(\\\\d+)" .a "<$1>" }} {{ contains "b" .a }}', { a: "ab12c3" })).toBe("ab<12>c<3> true");
    expect(exec("{{- .a -}}  {{ .b }}", { a: "x", b: "y" })).toBe("xy");
    expect(exec("{{/* comment */}}{{ add 1 2 }} {{ divf 1 4 }} {{ .a | len }}", { a: "héllo" })).toBe("3 0.25 6");
  });

  it("rejects unsupported actions with a clear error", () => {
    expect(() => compileTemplate("{{ range .x }}{{ end }}")).toThrow(/not supported/);
    expect(() => compileTemplate("{{ nosuchfn .x }}")).toThrow(/not defined/);
    expect(() => compileTemplate("{{ .a ")).toThrow(/unclosed/);
  });

  it("printf verbs", () => {
    expect(goSprintf("%s|%5s|%-5s|%d|%05d|%.2f|%v|%q|%x|%%", ["a", "b", "c", 42, 7, 3.14159, 1.5, "q", 255])).toBe('a|    b|c    |42|00007|3.14|1.5|"q"|ff|%');
  });
});

describe("units", () => {
  it("durations and bytes as Go and go-humanize read them", () => {
    expect(parseDuration("1h30m")).toBe(5_400_000);
    expect(parseDuration("1.5s")).toBe(1500);
    expect(parseDuration("250ms")).toBe(250);
    expect(parseDuration("2d")).toBe(172_800_000);
    expect(() => parseDuration("5minutes")).toThrow('unknown unit "minutes" in duration "5minutes"');
    expect(parseBytes("1KB")).toBe(1000);
    expect(parseBytes("1KiB")).toBe(1024);
    expect(parseBytes("1.5 MB")).toBe(1_500_000);
    expect(parseBytes("42")).toBe(42);
  });
});
