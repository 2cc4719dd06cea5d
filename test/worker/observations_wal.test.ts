// A shard's counters ride in its WAL rows (OBSERVATIONS records; OBSERVED_BATCH for
// log shards) instead of a row of their own per push (src/observability/shard.ts):
// inside workerd with the real Ingester and LogIngester Durable Objects and SQLite. Counts are exact against a model kept
// here, SQLite rows written (the cursors' own rowsWritten, as billed) are one per
// push per shard, and eviction at any point (before or after the periodic write of
// the observations row, after a checkpoint, twice in a row) loses nothing and counts
// nothing twice.

import { describe, expect, it } from "vitest";
import { env, evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { shardStub } from "../../src/distributor/shards";
import { DEFAULT_LIMITS } from "../../src/config/limits";
import { seriesKey } from "../../src/model/labels";
import { ByteReader, CorruptDataError } from "../../src/model/bytes";
import { COUNTER, ShardObserver, Tally, readTally, writeTallies, type ShardObservations } from "../../src/observability/shard";
import { WalRecordBuilder, decodeWalRecord, type Wal, type WalVisitor } from "../../src/ingester/wal";
import { encodeCheckpoint } from "../../src/ingester/checkpoint";
import type { Head } from "../../src/ingester/head";
import type { ReasonCount, ShardPush, ShardStats } from "../../src/ingester/rpc";
import { ByteWriter } from "../../src/model/bytes";
import { encodeLogCheckpoint } from "../../src/ingester/logs/wal";
import type { LogHead } from "../../src/ingester/logs/head";
import type { LogShardStats } from "../../src/ingester/logs/rpc";
import { T0, push as logPush, stub as logStub, type Entry, type Streams } from "./log_support";

const NOW = Date.now();

interface Inst {
  registered: boolean;
  alarmAt: number | null;
  obs: ShardObserver;
  wal: Wal;
  head: Head;
}

type Stub = ReturnType<typeof shardStub>;

/** One series' samples in a push: [timestamp, value] pairs. */
interface S {
  name: string;
  samples: [number, number][];
}

function batch(tenant: string, series: S[], distributorDiscards?: ReasonCount[]): ShardPush {
  const n = series.reduce((a, s) => a + s.samples.length, 0);
  const timestamps = new Float64Array(n);
  const values = new Float64Array(n);
  let off = 0;
  for (const s of series) {
    for (const [t, v] of s.samples) {
      timestamps[off] = t;
      values[off++] = v;
    }
  }
  return {
    tenant,
    shard: 0,
    keys: series.map((s) => seriesKey(["__name__", s.name, "job", "obs"])),
    counts: Uint32Array.from(series.map((s) => s.samples.length)),
    created: null,
    timestamps,
    values,
    metadata: [],
    outOfOrderTimeWindowMs: 0,
    maxSamplesPerChunk: DEFAULT_LIMITS.maxSamplesPerChunk,
    maxChunkAgeMs: DEFAULT_LIMITS.maxChunkAgeMs,
    ...(distributorDiscards ? { distributorDiscards } : {}),
  };
}

/**
 * The counters a shard must show, computed here from what the test sends, not from
 * the shard: every sample newer than its series' newest is stored, an exact repeat
 * of the newest is a harmless duplicate (stored, no WAL data), anything else older
 * is refused as out of order (no out-of-order window).
 */
class Model {
  counters: Record<string, number> = {};
  private newest = new Map<string, [number, number]>();

  private inc(key: string, by: number): void {
    if (by !== 0) this.counters[key] = (this.counters[key] ?? 0) + by;
  }

  push(series: S[], distributorDiscards?: ReasonCount[]): { stored: number } {
    let received = 0;
    let ingested = 0;
    let stored = 0;
    let created = 0;
    let refused = 0;
    for (const s of series) {
      let last = this.newest.get(s.name);
      if (last === undefined) created++;
      for (const [t, v] of s.samples) {
        received++;
        if (last === undefined || t > last[0]) {
          last = [t, v];
          ingested++;
          stored++;
        } else if (t === last[0] && v === last[1]) ingested++;
        else refused++;
      }
      // A series whose samples were all refused is still created (its SERIES record is written only with samples).
      if (last !== undefined) this.newest.set(s.name, last);
    }
    this.inc(COUNTER.pushes, 1);
    this.inc(COUNTER.samplesReceived, received);
    this.inc(COUNTER.samplesIngested, ingested);
    this.inc(COUNTER.seriesCreated, created);
    this.inc(`${COUNTER.discarded}/sample_out_of_order`, refused);
    for (const d of distributorDiscards ?? []) this.inc(`${COUNTER.distributorDiscarded}/${d.reason}`, d.count);
    return { stored };
  }
}

async function stats(stub: Stub): Promise<ShardStats> {
  return (await stub.stats()) as ShardStats;
}

/** What must survive: counters, recent errors, and the history's total (its alignment moves with the clock's minute). */
function durable(o: ShardObservations) {
  return { counters: o.counters, errors: o.errors, historyTotal: o.history.counts.reduce((a, b) => a + b, 0) };
}

async function inst<T>(stub: Stub, fn: (i: Inst, state: DurableObjectState) => T | Promise<T>): Promise<T> {
  return runInDurableObject(stub, (i: unknown, state) => fn(i as Inst, state));
}

/** Waits until the shard's first-write registration (an R2 put and a kv row, not awaited by the push) is done. */
async function registered(stub: Stub): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await inst(stub, (x) => x.registered)) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error("the shard never finished registering");
}

const ms = (i: number) => NOW - 600_000 + i * 1000;

describe("shard counters in the WAL rows", () => {
  it("count exactly, with one SQLite row per push per shard, and a push that stores nothing writes one row", async () => {
    const tenant = "obsw-rows";
    const stub = shardStub(env, tenant, 0);
    const model = new Model();
    const first: S[] = [{ name: "a", samples: [[ms(0), 1]] }, { name: "b", samples: [[ms(0), 1]] }];
    await stub.push(batch(tenant, first));
    model.push(first);
    await registered(stub);
    model.counters[`${COUNTER.r2Ops}/put`] = 1; // the registration
    // No flush check during the count: it writes the observations row (rightly, every 30 s).
    await inst(stub, (_i, state) => state.storage.deleteAlarm());

    const before = await stats(stub);
    const pushes = 25;
    for (let p = 1; p <= pushes; p++) {
      const series: S[] = [{ name: "a", samples: [[ms(p), p]] }];
      // Every 3rd push: one sample out of order on b (refused, and its error kept at most once per 10 s);
      // every 5th: a new series; every 4th: a harmless exact duplicate of a's newest; every 7th: distributor discards riding along.
      if (p % 3 === 0) series.push({ name: "b", samples: [[ms(-5 - p), 9], [ms(p), p]] });
      if (p % 5 === 0) series.push({ name: `new${p}`, samples: [[ms(p), 0]] });
      if (p % 4 === 0) series[0].samples.push([ms(p), p]);
      const discards: ReasonCount[] | undefined = p % 7 === 0 ? [{ reason: "label_name_invalid" as ReasonCount["reason"], count: 2 }] : undefined;
      const res = await stub.push(batch(tenant, series, discards));
      const { stored } = model.push(series, discards);
      expect(stored).toBeGreaterThan(0);
      expect(res.written).toBe(series.reduce((a, s) => a + s.samples.length, 0) - (p % 3 === 0 ? 1 : 0));
    }
    const after = await stats(stub);
    expect(after.walRecords - before.walRecords).toBe(pushes);
    // The point of it: the counts cost no row of their own.
    expect(after.rowsWritten - before.rowsWritten).toBe(pushes);
    expect(after.observations.counters).toEqual(model.counters);
    expect(after.observations.history.counts.reduce((a, b) => a + b, 0)).toBe(model.counters[COUNTER.samplesReceived]);
    // One refusal kept: the later ones came within 10 s of it.
    expect(after.observations.errors.filter((e) => e.kind === "rejected")).toHaveLength(1);
    expect(after.observations.errors[0].message).toContain("out of order sample");

    // Nothing stored (all refused): no WAL row, so the counts take the observations row. Still one row.
    const refused: S[] = [{ name: "a", samples: [[ms(-100), 1], [ms(-99), 2]] }];
    await stub.push(batch(tenant, refused));
    model.push(refused);
    const last = await stats(stub);
    expect(last.walRecords).toBe(after.walRecords);
    expect(last.rowsWritten - after.rowsWritten).toBe(1);
    expect(last.observations.counters).toEqual(model.counters);

    // And all of it survives the eviction.
    await evictDurableObject(stub);
    const back = await stats(stub);
    expect(durable(back.observations)).toEqual(durable(last.observations));
    expect(back.rowsWritten).toBe(0); // a restart writes nothing: the tables exist, replay only reads
  });

  it("survive eviction at any point: before and after the periodic write, after a checkpoint, twice in a row", async () => {
    const tenant = "obsw-evict";
    const stub = shardStub(env, tenant, 0);
    const model = new Model();
    let p = 0;
    const pushSome = async (n: number) => {
      for (let i = 0; i < n; i++, p++) {
        const series: S[] = [{ name: `s${p % 4}`, samples: [[ms(p), p]] }];
        if (p % 4 === 1) series.push({ name: "late", samples: [[ms(p), p], [ms(p - 50), 1]] });
        await stub.push(batch(tenant, series));
        model.push(series);
      }
    };
    /** Evicts and checks the counters against the model and against the values just before. */
    const evictAndCheck = async (why: string) => {
      const pre = await stats(stub);
      expect(pre.observations.counters, why).toEqual(model.counters);
      await evictDurableObject(stub);
      const post = await stats(stub);
      expect(durable(post.observations), why).toEqual(durable(pre.observations));
      expect(post.observations.counters, why).toEqual(model.counters);
      return post;
    };

    await pushSome(6);
    await registered(stub);
    model.counters[`${COUNTER.r2Ops}/put`] = 1; // the registration
    // Nothing written as the observations row since the registration: the counts are all in WAL rows.
    await evictAndCheck("before any periodic write");
    await evictAndCheck("evicted again at once: replay applied nothing twice");

    await pushSome(5);
    // The flush check (alarm): nothing to flush yet, so no checkpoint and the WAL rows stay,
    // but the observations row now covers them: replay must skip their counts.
    await inst(stub, (_i, state) => state.storage.setAlarm(Date.now() + 3_600_000)); // run now by runDurableObjectAlarm, not by the clock
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    const covered = await inst(stub, (i) => ({ stored: i.obs.storedPosition, last: i.wal.lastSeq, records: i.wal.records }));
    expect(covered.stored).toBe(covered.last);
    expect(covered.records).toBeGreaterThanOrEqual(11);
    model.counters[COUNTER.flushes] = 1;
    await evictAndCheck("right after the periodic write, WAL rows covered by it");

    await pushSome(4);
    await evictAndCheck("after the periodic write, with newer WAL rows");

    // A checkpoint deletes the WAL rows that carried the counts, in the transaction that rewrites the observations row.
    const flushed = await stub.flushAll();
    expect(flushed?.block).not.toBeNull();
    const cp = await inst(stub, (i) => ({ stored: i.obs.storedPosition, last: i.wal.lastSeq, records: i.wal.records }));
    expect(cp.records).toBe(0);
    expect(cp.stored).toBe(cp.last);
    const post = await stats(stub);
    for (const [k, v] of Object.entries(post.observations.counters)) {
      if (k.startsWith(COUNTER.flushes) || k.startsWith(COUNTER.blocksFlushed) || k.startsWith(COUNTER.chunksFlushed) || k.startsWith("r2_")) model.counters[k] = v;
    }
    await evictAndCheck("after a checkpoint");

    await pushSome(3);
    await evictAndCheck("new WAL rows after the checkpoint");
    await evictAndCheck("and once more");

    // A checkpoint on its own, as if the object died right after it (before the flush
    // wrote anything else): its transaction wrote the observations row.
    await pushSome(3);
    await inst(stub, (i) => i.wal.checkpoint(encodeCheckpoint(i.head)));
    await evictAndCheck("right after a bare checkpoint");
  });

  it("read a v1 observations row (counters row and errors row, written per push) and fold it into one row", async () => {
    const tenant = "obsw-legacy";
    const stub = shardStub(env, tenant, 0);
    await inst(stub, (_i, state) => {
      // What the previous version stored: no WAL position, errors in their own row.
      const stamps = new Array<number>(60).fill(-1);
      const buckets = new Array<number>(60).fill(0);
      const minute = Math.floor(NOW / 60_000);
      stamps[minute % 60] = minute;
      buckets[minute % 60] = 40;
      state.storage.sql.exec("INSERT INTO observations (id, body) VALUES (1, ?)", JSON.stringify({ v: 1, counters: { [COUNTER.samplesReceived]: 40, [COUNTER.pushes]: 4 }, stamps, buckets }));
      state.storage.sql.exec("INSERT INTO observations (id, body) VALUES (2, ?)", JSON.stringify([{ at: NOW - 1000, kind: "flush", message: "old failure" }]));
    });
    await evictDurableObject(stub);
    await stub.push(batch(tenant, [{ name: "x", samples: [[ms(0), 1], [ms(1), 2]] }]));
    await registered(stub);
    await evictDurableObject(stub);
    let s = await stats(stub);
    expect(s.observations.counters[COUNTER.samplesReceived]).toBe(42);
    expect(s.observations.counters[COUNTER.pushes]).toBe(5);
    expect(s.observations.errors.map((e) => e.message)).toEqual(["old failure"]);
    // The next write of the row folds the errors into it.
    await inst(stub, (_i, state) => state.storage.setAlarm(Date.now() + 3_600_000)); // run now by runDurableObjectAlarm, not by the clock
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    const rows = await inst(stub, (_i, state) => state.storage.sql.exec<{ id: number }>("SELECT id FROM observations ORDER BY id").toArray().map((r) => r.id));
    expect(rows).toEqual([1]);
    await evictDurableObject(stub);
    s = await stats(stub);
    expect(s.observations.counters[COUNTER.samplesReceived]).toBe(42);
    expect(s.observations.errors.map((e) => e.message)).toEqual(["old failure"]);
  });
});

describe("log shard counters in the WAL rows", () => {
  interface LogInst {
    registered: boolean;
    obs: ShardObserver;
    wal: Wal;
    head: LogHead;
  }
  type LogStub = ReturnType<typeof logStub>;
  const logInst = <T>(stub: LogStub, fn: (i: LogInst, state: DurableObjectState) => T | Promise<T>) =>
    runInDurableObject(stub, (i: unknown, state) => fn(i as LogInst, state));
  const logStats = async (stub: LogStub) => (await stub.stats()) as LogShardStats;
  const bytesOf = (line: string) => new TextEncoder().encode(line).length;

  /**
   * Pushes to stream A and others, keeping the counters they must produce: the shard
   * refuses an entry more than the out-of-order window (1 h by default) behind its
   * stream's newest, and drops silently an exact repeat of the stream's last entry.
   */
  class LogModel {
    counters: Record<string, number> = {};
    private p = 0;
    constructor(private readonly tenant: string) {}

    private inc(key: string, by: number): void {
      if (by !== 0) this.counters[key] = (this.counters[key] ?? 0) + by;
    }

    /** A push that stores at least one entry: one WAL row. */
    async next(): Promise<void> {
      const p = ++this.p;
      const a: Entry[] = [[T0 + p * 1000, 0, `line ${p} ✓`]];
      let received = 1;
      let bytes = bytesOf(a[0][2]);
      let refused = 0;
      if (p % 3 === 0) {
        a.push([T0 - 2 * 3_600_000, 0, "old"]);
        received++;
        bytes += 3;
        refused++;
      }
      if (p % 4 === 0) {
        a.push([T0 + p * 1000, 0, `line ${p} ✓`]); // duplicate: received, neither stored nor refused
        received++;
        bytes += bytesOf(a[0][2]);
      }
      const streams: Streams = [['{app="a"}', a]];
      if (p % 5 === 0) {
        streams.push([`{app="n${p}"}`, [[T0, 0, "n"]]]);
        received++;
        bytes += 1;
      }
      const res = await logPush(this.tenant, streams);
      expect(res.accepted).toBe(received - refused - (p % 4 === 0 ? 1 : 0));
      this.inc(COUNTER.pushes, 1);
      this.inc(COUNTER.linesReceived, received);
      this.inc(COUNTER.bytesReceived, bytes);
      this.inc(`${COUNTER.discardedLines}/too_far_behind`, refused);
      this.inc(`${COUNTER.discardedBytes}/too_far_behind`, refused * 3);
    }

    /** A push whose every entry is refused: no WAL row. */
    async refusedOnly(): Promise<void> {
      const res = await logPush(this.tenant, [['{app="a"}', [[T0 - 3 * 3_600_000, 0, "too late"]]]]);
      expect(res.accepted).toBe(0);
      this.inc(COUNTER.pushes, 1);
      this.inc(COUNTER.linesReceived, 1);
      this.inc(COUNTER.bytesReceived, 8);
      this.inc(`${COUNTER.discardedLines}/too_far_behind`, 1);
      this.inc(`${COUNTER.discardedBytes}/too_far_behind`, 8);
    }
  }

  async function logRegistered(stub: LogStub): Promise<void> {
    for (let i = 0; i < 200; i++) {
      if (await logInst(stub, (x) => x.registered)) return;
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error("the log shard never finished registering");
  }

  it("count exactly with one SQLite row per push, and survive eviction at any point", async () => {
    const tenant = "obsw-logs";
    const stub = logStub(tenant);
    const model = new LogModel(tenant);
    await model.next();
    await logRegistered(stub);
    model.counters[`${COUNTER.r2Ops}/put`] = 1; // the registration
    const alarm = await logInst(stub, async (_i, state) => {
      const at = await state.storage.getAlarm();
      await state.storage.deleteAlarm(); // no flush check during the count
      return at;
    });
    expect(alarm).not.toBeNull();

    const before = await logStats(stub);
    for (let i = 0; i < 20; i++) await model.next();
    const after = await logStats(stub);
    expect(after.walRecords - before.walRecords).toBe(20);
    expect(after.rowsWritten - before.rowsWritten).toBe(20);
    expect(after.observations.counters).toEqual(model.counters);
    expect(after.observations.history.counts.reduce((a, b) => a + b, 0)).toBe(model.counters[COUNTER.linesReceived]);
    expect(after.observations.errors.filter((e) => e.kind === "rejected")).toHaveLength(1);

    await model.refusedOnly();
    const last = await logStats(stub);
    expect(last.walRecords).toBe(after.walRecords);
    expect(last.rowsWritten - after.rowsWritten).toBe(1);
    expect(last.observations.counters).toEqual(model.counters);

    const evictAndCheck = async (why: string) => {
      const pre = await logStats(stub);
      expect(pre.observations.counters, why).toEqual(model.counters);
      await evictDurableObject(stub);
      const post = await logStats(stub);
      expect(durable(post.observations), why).toEqual(durable(pre.observations));
    };
    await evictAndCheck("counts only in WAL rows (and one observations row)");
    await evictAndCheck("twice in a row");

    // The flush check: nothing due, no checkpoint; the observations row now covers the WAL rows.
    await logInst(stub, (_i, state) => state.storage.setAlarm(Date.now() + 3_600_000)); // run now by runDurableObjectAlarm
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    model.counters[COUNTER.flushes] = 1;
    const covered = await logInst(stub, (i) => ({ stored: i.obs.storedPosition, last: i.wal.lastSeq, records: i.wal.records }));
    expect(covered.stored).toBe(covered.last);
    expect(covered.records).toBeGreaterThanOrEqual(21);
    await evictAndCheck("right after the periodic write, WAL rows covered by it");
    for (let i = 0; i < 4; i++) await model.next();
    await evictAndCheck("after the periodic write, with newer WAL rows");

    expect((await stub.flushAll())?.key).not.toBeNull();
    const cp = await logInst(stub, (i) => ({ stored: i.obs.storedPosition, last: i.wal.lastSeq, records: i.wal.records }));
    expect(cp.records).toBe(0);
    expect(cp.stored).toBe(cp.last);
    for (const [k, v] of Object.entries((await logStats(stub)).observations.counters)) {
      if (k.startsWith(COUNTER.flushes) || k.startsWith(COUNTER.blocksFlushed) || k.startsWith(COUNTER.chunksFlushed) || k.startsWith("r2_")) model.counters[k] = v;
    }
    await evictAndCheck("after a checkpoint");
    for (let i = 0; i < 3; i++) await model.next();
    await logInst(stub, (i) => i.wal.checkpoint(encodeLogCheckpoint(i.head)));
    await evictAndCheck("right after a bare checkpoint");
  });
});

describe("OBSERVATIONS record", () => {
  const noData: WalVisitor = {
    series: () => {},
    metadata: () => {},
    sample: () => {},
    chunk: () => {},
    last: () => {},
  };

  it("round-trips after the push's data in its WAL row, pending changes before the push's own", () => {
    const pending = new Tally();
    pending.inc(`${COUNTER.r2Ops}/put`);
    pending.inc(COUNTER.r2BytesWritten, 2 ** 40);
    const t = new Tally();
    t.inc(COUNTER.pushes);
    t.inc(`${COUNTER.discarded}/sample_out_of_order`, 3);
    t.inc("negative/still", -7);
    t.record(NOW, 120);
    t.record(NOW - 3_600_000, 5);
    t.error(NOW, "rejected", "série refusée: 日本 ".repeat(50));
    const w = new ByteWriter();
    writeTallies(w, pending, t);

    const b = new WalRecordBuilder();
    b.reset();
    b.addSeries(1, seriesKey(["__name__", "up"]));
    b.beginSamples(1, 1);
    b.addSample(NOW, 1);
    b.observations = w.view();
    const rec = b.build().slice();
    const seen: Tally[] = [];
    const samples: number[] = [];
    decodeWalRecord(rec, { ...noData, sample: (_id, ts) => samples.push(ts), observations: (x) => seen.push(x) });
    expect(samples).toEqual([NOW]);
    expect(seen).toHaveLength(1);
    expect(seen[0].keys).toEqual([`${COUNTER.r2Ops}/put`, COUNTER.r2BytesWritten, COUNTER.pushes, `${COUNTER.discarded}/sample_out_of_order`, "negative/still"]);
    expect(seen[0].deltas).toEqual([1, 2 ** 40, 1, 3, -7]);
    expect(seen[0].minutes).toEqual([Math.floor(NOW / 60_000), 120, Math.floor((NOW - 3_600_000) / 60_000), 5]);
    expect(seen[0].errors).toEqual(t.errors);
    expect(t.errors[0].message.length).toBe(400); // capped, as before
    // A visitor without observations() (the checkpoint reader, old tests) reads past the record.
    expect(() => decodeWalRecord(rec, noData)).not.toThrow();
    // reset() drops it: the next push's row does not carry this one's counts.
    b.reset();
    b.addSeries(2, "k");
    let again = 0;
    decodeWalRecord(b.build(), { ...noData, observations: () => again++ });
    expect(again).toBe(0);
  });

  it("refuses an unknown error kind and a fraction it could not store", () => {
    const w = new ByteWriter();
    w.uvarint(0); // no counters
    w.uvarint(0); // no minutes
    w.uvarint(1); // one error
    w.varint(NOW);
    w.u8(9); // no such kind
    w.string("x");
    const r = new ByteReader(w.view(), "WAL record");
    const count = r.uvarint();
    expect(() => readTally(r, count)).toThrow(CorruptDataError);
    expect(() => new Tally().inc("x", 0.5)).toThrow(/not an integer/);
  });
});
