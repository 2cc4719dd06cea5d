// Entry validation messages, as Loki's distributor words them (pkg/validation/validate.go,
// pkg/distributor/validator.go), each followed by the limit it enforces. The checks
// themselves are inlined in push.ts's loop (hoisted bounds, number comparisons); these
// run only to name a refusal, or (metadataBytes) to measure an entry near its limit.
// Stream label checks: stream_labels.ts.

import { isValidLabelName } from "../validate";
import { utf8Length } from "./stream_labels";

/** Go's time.RFC3339 of a UTC instant (whole seconds), as Loki prints timestamps in messages. */
export function rfc3339(ms: number): string {
  const d = new Date(Math.floor(ms / 1000) * 1000);
  return Number.isNaN(d.getTime()) ? `${ms}ms` : d.toISOString().replace(".000Z", "Z");
}

export function tooOld(stream: string, ms: number, minMs: number): string {
  return `entry for stream '${stream}' has timestamp too old: ${rfc3339(ms)}, oldest acceptable timestamp is: ${rfc3339(minMs)} (rejectOldLogsMaxAgeMs)`;
}

export function tooFarInFuture(stream: string, ms: number): string {
  return `entry for stream '${stream}' has timestamp too new: ${rfc3339(ms)} (more than creationGracePeriodMs ahead of now)`;
}

export function lineTooLong(stream: string, maxLineSize: number, length: number): string {
  return `Max entry size '${maxLineSize}' bytes exceeded for stream '${stream}' while adding an entry with length '${length}' bytes (maxLineSize)`;
}

/** Bytes of a line in UTF-8 (Loki's max_line_size counts bytes). */
export function utf8LineLength(line: string): number {
  return utf8Length(line);
}

/** Null when every structured metadata name of an entry (meta[from], 2 * pairs strings) is a valid label name; else why not. */
export function checkMetadataNames(meta: string[], from: number, pairs: number, stream: string): string | null {
  for (let k = from; k < from + 2 * pairs; k += 2) {
    if (!isValidLabelName(meta[k])) {
      return `entry for stream '${stream}' has structured metadata with an invalid name ${JSON.stringify(meta[k])}: names must match [a-zA-Z_][a-zA-Z0-9_]* (as label names)`;
    }
  }
  return null;
}

/** Loki's util.StructuredMetadataSize: UTF-8 bytes of the names and values of an entry's `pairs` pairs (meta[from ..]). */
export function metadataBytes(meta: string[], from: number, pairs: number): number {
  let n = 0;
  for (let k = from; k < from + 2 * pairs; k++) n += utf8Length(meta[k]);
  return n;
}

/** Loki's validation.StructuredMetadataTooLargeErrorMsg, then our limit's name. */
export function metadataTooLarge(stream: string, bytes: number, limit: number): string {
  return `stream '${stream}' has structured metadata too large: '${bytes}' bytes, limit: '${limit}' bytes. Please see \`limits_config.max_structured_metadata_size\` or contact your Loki administrator to increase it. (maxStructuredMetadataSize)`;
}

/** Loki's validation.StructuredMetadataTooManyErrorMsg, then our limit's name. */
export function metadataTooMany(stream: string, count: number, limit: number): string {
  return `stream '${stream}' has too many structured metadata labels: '${count}', limit: '${limit}'. Please see \`limits_config.max_structured_metadata_entries_count\` or contact your Loki administrator to increase it. (maxStructuredMetadataEntriesCount)`;
}
