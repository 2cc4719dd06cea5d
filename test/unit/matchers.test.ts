import { describe, expect, it } from "vitest";
import { compileMatcher, compileRegex, matchesAll, MatcherError } from "../../src/model/matchers";
import { MatchType } from "../../src/proto/types";

describe("label matchers", () => {
  it("anchors regexps fully, as Prometheus does", () => {
    const m = compileMatcher({ type: MatchType.RE, name: "job", value: "node" });
    expect(m.matches("node")).toBe(true);
    expect(m.matches("node_exporter")).toBe(false);
    expect(m.matches("a-node")).toBe(false);
    const alt = compileMatcher({ type: MatchType.RE, name: "job", value: "a|b" });
    expect(alt.matches("a")).toBe(true);
    expect(alt.matches("ab")).toBe(false);
  });

  it("knows which matchers accept a missing label", () => {
    expect(compileMatcher({ type: MatchType.EQ, name: "a", value: "" }).matchesEmpty).toBe(true);
    expect(compileMatcher({ type: MatchType.EQ, name: "a", value: "x" }).matchesEmpty).toBe(false);
    expect(compileMatcher({ type: MatchType.NEQ, name: "a", value: "x" }).matchesEmpty).toBe(true);
    expect(compileMatcher({ type: MatchType.NEQ, name: "a", value: "" }).matchesEmpty).toBe(false);
    expect(compileMatcher({ type: MatchType.RE, name: "a", value: ".*" }).matchesEmpty).toBe(true);
    expect(compileMatcher({ type: MatchType.RE, name: "a", value: ".+" }).matchesEmpty).toBe(false);
    expect(compileMatcher({ type: MatchType.NRE, name: "a", value: ".+" }).matchesEmpty).toBe(true);
  });

  it("treats a missing label as the empty string", () => {
    const ms = [compileMatcher({ type: MatchType.EQ, name: "env", value: "" }), compileMatcher({ type: MatchType.EQ, name: "__name__", value: "up" })];
    expect(matchesAll(ms, ["__name__", "up", "job", "x"])).toBe(true);
    expect(matchesAll(ms, ["__name__", "up", "env", "prod"])).toBe(false);
  });

  it("supports RE2's flags, leading and inline; '.' matches newline as Prometheus 3's (?s:) wrapping", () => {
    expect(compileRegex("(?i)NoDe").test("node")).toBe(true);
    expect(compileRegex("a.b").test("a\nb")).toBe(true);
    expect(compileRegex("(?i:PRO)metheus").test("prometheus")).toBe(true);
    expect(compileRegex("(?i:PRO)metheus").test("proMETHEUS")).toBe(false);
    expect(compileRegex("x((?i)PRO)y").test("xprOy")).toBe(true);
    expect(compileRegex("x((?i)PRO)y").test("xproY")).toBe(false);
    expect(compileRegex("(?i:[a-c]x)").test("BX")).toBe(true);
    expect(compileRegex("(?P<name>a+)").test("aaa")).toBe(true);
  });

  it("reports invalid regexps with the pattern", () => {
    expect(() => compileMatcher({ type: MatchType.RE, name: "a", value: "(" })).toThrow(MatcherError);
    expect(() => compileMatcher({ type: MatchType.RE, name: "a", value: "(" })).toThrow(/invalid regular expression "\("/);
  });
});
