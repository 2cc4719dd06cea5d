// The in-memory head of one log shard (Loki's ingester instance.go): streams by
// canonical label string (collision-safe: the key is the whole label set), by id,
// and postings (label name -> value -> ascending stream ids) for matcher selection.

import { DEFAULT_LIMITS } from "../../config/limits";
import { Postings } from "../postings";
import { parseStreamLabels } from "./labels";
import { LogStream, type LogChunkRules } from "./stream";

export class LogHead {
  readonly byKey = new Map<string, LogStream>();
  readonly byId: (LogStream | undefined)[] = [];
  readonly postings = new Postings();
  nextId = 1;
  entriesAppended = 0;
  duplicates = 0;
  rejected = 0;
  /** Memory held, maintained cheaply per push and recomputed at each flush. */
  bytesEstimate = 0;
  /** The tenant's chunk rules from the latest push (defaults until then, e.g. during replay). */
  rules: LogChunkRules = {
    blockSize: DEFAULT_LIMITS.logChunkBlockSize,
    targetSize: DEFAULT_LIMITS.logChunkTargetSize,
    maxChunkAgeMs: DEFAULT_LIMITS.maxChunkAgeMs,
  };

  get numStreams(): number {
    return this.byKey.size;
  }

  /** A stream object for labels, not yet in the head (a push inserts it after its WAL row commits). */
  newStream(labels: string, id = this.nextId++): LogStream {
    if (id >= this.nextId) this.nextId = id + 1;
    return new LogStream(id, labels, parseStreamLabels(labels));
  }

  insert(s: LogStream): void {
    this.byKey.set(s.labels, s);
    this.byId[s.id] = s;
    this.postings.add(s.id, s.flat);
  }

  /** The stream for labels, created and inserted when new (replay). */
  getOrCreate(labels: string): LogStream {
    let s = this.byKey.get(labels);
    if (s === undefined) this.insert((s = this.newStream(labels)));
    return s;
  }

  remove(s: LogStream): void {
    this.byKey.delete(s.labels);
    this.byId[s.id] = undefined;
    this.postings.remove(s.id, s.flat);
  }

  /** Chunk memory plus a per-stream allowance for labels and maps. */
  bytes(): number {
    let n = 0;
    for (const s of this.byKey.values()) n += s.bytes() + 200 + s.labels.length * 4;
    return n;
  }

  numChunks(): number {
    let n = 0;
    for (const s of this.byKey.values()) n += s.closed.length + (s.open !== null && s.open.entries > 0 ? 1 : 0);
    return n;
  }
}
