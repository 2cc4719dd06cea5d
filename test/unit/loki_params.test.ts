// Loki API parameters, case by case against Loki 3's pkg/loghttp/params.go and
// params_test.go: the time forms, defaults, and the error texts clients show.

import { describe, expect, it } from "vitest";
import { HttpError } from "../../src/http/errors";
import { formatNs, type NsTime } from "../../src/model/logtime";
import { Form } from "../../src/querier/api/params";
import { bounds, instantParams, parseLokiTime, rangeParams, seriesMatchers, tailParams, volumeParams } from "../../src/querier/loki/params";
import { buckets } from "../../src/querier/loki/volume";

const form = (q: string): Promise<Form> => Form.from(new Request(`http://x/?${q}`));
const ns = (t: NsTime): string => formatNs(t.ms, t.ns);
const NOW: NsTime = { ms: 1_700_000_000_000, ns: 0 };

function errorOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(HttpError);
    expect((e as HttpError).status).toBe(400);
    return (e as HttpError).message;
  }
  throw new Error("no error thrown");
}

describe("parseLokiTime (Loki's parseTimestamp)", () => {
  it.each([
    // integers: up to 1e10 are seconds, beyond nanoseconds
    ["1700000000", "1700000000000000000"],
    ["10000000000", "10000000000000000000"],
    ["10000000001", "10000000001"],
    ["1700000000123456789", "1700000000123456789"],
    ["0", "0"],
    ["-5", "-5000000000"],
    // floats: seconds with the fraction rounded to the millisecond
    ["1700000000.5", "1700000000500000000"],
    ["1700000000.1234", "1700000000123000000"],
    ["1700000000.9996", "1700000001000000000"],
    // a float whose whole part is beyond 1e10 is nanoseconds, the fraction dropped
    ["1700000000123456768.7", "1700000000123456768"],
    // RFC3339Nano keeps nanoseconds and offsets
    ["2023-11-14T22:13:20Z", "1700000000000000000"],
    ["2023-11-14T22:13:20.123456789Z", "1700000000123456789"],
    ["2023-11-15T00:13:20.5+02:00", "1700000000500000000"],
  ])("%s -> %s ns", (input, want) => {
    expect(ns(parseLokiTime(input))).toBe(want);
  });

  it.each([
    ["abc", 'strconv.ParseInt: parsing "abc": invalid syntax'],
    ["1.2.3", 'strconv.ParseFloat: parsing "1.2.3": invalid syntax'],
    ["99999999999999999999", 'strconv.ParseInt: parsing "99999999999999999999": value out of range'],
    ["2023-13-01T00:00:00Z", 'strconv.ParseInt: parsing "2023-13-01T00:00:00Z": invalid syntax'],
  ])("%s is refused with Go's text", (input, msg) => {
    expect(errorOf(() => parseLokiTime(input))).toBe(msg);
  });
});

describe("bounds, limits, steps (Loki's ParseRangeQuery)", () => {
  it("defaults: the last hour to now, limit 100, backward, step (end-start)/250 in whole seconds", async () => {
    const p = rangeParams(await form("query=x"), NOW);
    expect(ns(p.end)).toBe("1700000000000000000");
    expect(ns(p.start)).toBe("1699996400000000000");
    expect(p.limit).toBe(100);
    expect(p.direction).toBe("backward");
    expect(p.stepNs).toBe(14e9); // floor(3600/250) = 14 s
    expect(p.intervalNs).toBe(0);
  });

  it("a short range still steps by at least one second", async () => {
    const p = rangeParams(await form("start=1700000000&end=1700000010"), NOW);
    expect(p.stepNs).toBe(1e9);
  });

  it("since counts back from end, or from now when end is in the future", async () => {
    expect(ns(bounds(await form("since=5m&end=1699999000"), NOW).start)).toBe("1699998700000000000");
    expect(ns(bounds(await form("since=5m&end=1800000000"), NOW).start)).toBe("1699999700000000000");
  });

  it("step as float seconds or a duration; interval likewise", async () => {
    expect(rangeParams(await form("step=0.5"), NOW).stepNs).toBe(5e8);
    expect(rangeParams(await form("step=1m"), NOW).stepNs).toBe(6e10);
    expect(rangeParams(await form("step=1m&interval=30s"), NOW).intervalNs).toBe(3e10);
  });

  it.each([
    ["start=abc", `could not parse 'start' parameter: strconv.ParseInt: parsing "abc": invalid syntax`],
    ["end=x1", `could not parse 'end' parameter: strconv.ParseInt: parsing "x1": invalid syntax`],
    ["since=1x", `could not parse 'since' parameter: not a valid duration string: "1x"`],
    ["start=1700000010&end=1700000000", "end timestamp must not be before or equal to start time"],
    ["limit=0", "limit must be a positive value"],
    ["limit=-3", "limit must be a positive value"],
    ["limit=ten", 'strconv.Atoi: parsing "ten": invalid syntax'],
    ["direction=sideways", "invalid direction 'sideways'"],
    ["step=0", "zero or negative query resolution step widths are not accepted. Try a positive integer"],
    ["step=-1s", 'cannot parse "-1s" to a valid duration'],
    ["step=-1", "zero or negative query resolution step widths are not accepted. Try a positive integer"],
    ["step=abc", 'cannot parse "abc" to a valid duration'],
    ["step=1e300", 'cannot parse "1e300" to a valid duration. It overflows int64'],
    ["start=0&end=1700000000&step=1", "exceeded maximum resolution of 11,000 points per time series. Try increasing the value of the step parameter"],
    ["interval=-1", "interval must be >= 0"],
  ])("%s -> 400 %s", async (q, msg) => {
    const f = await form(q);
    expect(errorOf(() => rangeParams(f, NOW))).toBe(msg);
  });

  it("direction in any case", async () => {
    expect(rangeParams(await form("direction=FORWARD"), NOW).direction).toBe("forward");
    expect(rangeParams(await form("direction=Backward"), NOW).direction).toBe("backward");
  });
});

describe("instant and tail parameters", () => {
  it("instant time defaults to now; errors are unwrapped as Loki's", async () => {
    expect(ns(instantParams(await form("query=x"), NOW).time)).toBe("1700000000000000000");
    expect(ns(instantParams(await form("time=1700000001.25"), NOW).time)).toBe("1700000001250000000");
    const f = await form("time=yesterday");
    expect(errorOf(() => instantParams(f, NOW))).toBe('strconv.ParseInt: parsing "yesterday": invalid syntax');
  });

  it("tail: delay_for at most 5, start defaults to an hour ago", async () => {
    const p = tailParams(await form("query=x&delay_for=2"), NOW);
    expect(p.delayForS).toBe(2);
    expect(ns(p.start)).toBe("1699996400000000000");
    const f = await form("delay_for=6");
    expect(errorOf(() => tailParams(f, NOW))).toBe("delay_for can't be greater than 5");
  });

  it("series: match and match[] merged, deduplicated, sorted; a lone {} means every stream", async () => {
    expect(seriesMatchers(await form(`match[]=${encodeURIComponent('{b="1"}')}&match=${encodeURIComponent('{a="1"}')}&match[]=${encodeURIComponent('{b="1"}')}`))).toEqual([
      '{a="1"}',
      '{b="1"}',
    ]);
    expect(seriesMatchers(await form(`match[]=${encodeURIComponent("{ }")}`))).toEqual([]);
  });
});

describe("volume parameters (Loki's ParseVolumeInstantQuery / ParseVolumeRangeQuery)", () => {
  it("limit: default 100, 0 means the default, negative refused; targetLabels and aggregateBy", async () => {
    expect(volumeParams(await form("query={a=%22b%22}"), NOW, false)).toMatchObject({ limit: 100, targetLabels: [], aggregateBy: "series", stepNs: 0 });
    expect(volumeParams(await form("query={a=%22b%22}&limit=0"), NOW, false).limit).toBe(100);
    // ParseRangeQuery's own limit check would refuse 0: Loki replaced it with the default first.
    expect(volumeParams(await form("query={a=%22b%22}&limit=0"), NOW, true).limit).toBe(100);
    expect(volumeParams(await form("limit=7&targetLabels=app,env&aggregateBy=labels"), NOW, false)).toMatchObject({ limit: 7, targetLabels: ["app", "env"], aggregateBy: "labels" });
    const neg = await form("limit=-3");
    expect(errorOf(() => volumeParams(neg, NOW, false))).toBe("limit must be a positive value");
    const agg = await form("aggregateBy=pod");
    expect(errorOf(() => volumeParams(agg, NOW, true))).toBe("invalid aggregation option");
    const dir = await form("direction=up");
    expect(errorOf(() => volumeParams(dir, NOW, false))).toBe("invalid direction 'up'");
  });

  it("range: the default step is Loki's (end - start)/250 in whole seconds", async () => {
    const p = volumeParams(await form("start=1700000000&end=1700003600"), NOW, true);
    expect(p.stepNs).toBe(14e9);
  });
});

describe("volume buckets (Loki's util.ForInterval, end inclusive)", () => {
  it.each([
    // instant: one bucket
    [1000, 9000, 0, [[1000, 9000]]],
    // aligned to the step, 1 ms between buckets, the last ending at `through`
    [0, 10_000, 5000, [[0, 4999], [5000, 10_000]]],
    // the first keeps its start; the aligned grid goes on from 5000
    [2500, 12_000, 5000, [[2500, 4999], [5000, 9999], [10_000, 12_000]]],
    // nothing to split
    [5000, 5000, 1000, []],
  ])("from %d through %d step %d", (from, through, step, want) => {
    expect(buckets(from, through, step).map((b) => [b.start, b.end])).toEqual(want);
  });
});
