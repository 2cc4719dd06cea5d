// Series and sample validation, as Cortex/Mimir's distributor validates
// (pkg/util/validation): each check names the limit it enforces. Runs once per
// series per push, so the label checks use char codes instead of regexps.

import type { Limits } from "../config/limits";
import { Reason, type Rejection } from "../model/errors";
import { formatLabels, type FlatLabels } from "../model/labels";

/** [a-zA-Z_:][a-zA-Z0-9_:]* (Prometheus's legacy metric name scheme, Mimir's default). */
export function isValidMetricName(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const ok =
      (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95 || c === 58 || (i > 0 && c >= 48 && c <= 57);
    if (!ok) return false;
  }
  return true;
}

/** [a-zA-Z_][a-zA-Z0-9_]* (Prometheus's legacy label name scheme, Mimir's default). */
export function isValidLabelName(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const ok = (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95 || (i > 0 && c >= 48 && c <= 57);
    if (!ok) return false;
  }
  return true;
}

/** Set in nameChecks' values: the string is a valid label name, and a valid metric name. */
const LABEL_NAME_OK = 1;
const METRIC_NAME_OK = 2;
/**
 * Both syntax checks of a string, cached: label names (and metric names) repeat
 * across series and requests, and the decoder hands out the same interned string
 * objects, whose hashes V8 keeps. Bounded; short strings only.
 */
const nameChecks = new Map<string, number>();
const NAME_CHECKS_MAX = 4096;
const NAME_CHECK_MAX_LENGTH = 128;

function nameCheck(s: string): number {
  let bits = nameChecks.get(s);
  if (bits === undefined) {
    bits = (isValidLabelName(s) ? LABEL_NAME_OK : 0) | (isValidMetricName(s) ? METRIC_NAME_OK : 0);
    if (s.length <= NAME_CHECK_MAX_LENGTH) {
      if (nameChecks.size >= NAME_CHECKS_MAX) nameChecks.clear();
      nameChecks.set(s, bits);
    }
  }
  return bits;
}

function hasLoneSurrogateOrReplacement(s: string): boolean {
  // The decoders turn invalid UTF-8 into U+FFFD; Prometheus rejects invalid UTF-8 label values.
  return s.indexOf("\uFFFD") >= 0;
}

/** Null when the series' labels are valid; otherwise why not. */
export function validateLabels(labels: FlatLabels, limits: Limits): Rejection | null {
  const n = labels.length >> 1;
  if (n === 0 || labels[0] !== "__name__") {
    // Usually first, but names starting with an upper-case letter sort before it.
    let has = false;
    for (let i = 0; i < labels.length; i += 2) if (labels[i] === "__name__") has = true;
    if (!has) return reject(Reason.MissingMetricName, "received a series without a metric name (__name__ label)", labels);
  }
  if (n > limits.maxLabelNamesPerSeries) {
    return reject(
      Reason.MaxLabelNamesPerSeries,
      `received a series whose number of labels (${n}) exceeds the limit of ${limits.maxLabelNamesPerSeries} (maxLabelNamesPerSeries)`,
      labels,
    );
  }
  let prev = "";
  for (let i = 0; i < labels.length; i += 2) {
    const name = labels[i];
    const value = labels[i + 1];
    if (name === "__name__") {
      if ((nameCheck(value) & METRIC_NAME_OK) === 0) return reject(Reason.InvalidMetricName, `received a series with an invalid metric name ${JSON.stringify(value)}`, labels);
    } else if ((nameCheck(name) & LABEL_NAME_OK) === 0) {
      return reject(Reason.InvalidLabelName, `received a series with an invalid label name ${JSON.stringify(name)}`, labels);
    }
    if (name.length > limits.maxLabelNameLength) {
      return reject(Reason.LabelNameTooLong, `received a series whose label name length (${name.length}) exceeds the limit of ${limits.maxLabelNameLength} (maxLabelNameLength): ${JSON.stringify(name.slice(0, 64))}...`, labels);
    }
    if (value.length > limits.maxLabelValueLength) {
      return reject(Reason.LabelValueTooLong, `received a series whose label value length (${value.length}) exceeds the limit of ${limits.maxLabelValueLength} (maxLabelValueLength) for label ${JSON.stringify(name)}`, labels);
    }
    if (value.length === 0) {
      return reject(Reason.EmptyLabelValue, `received a series with an empty value for label ${JSON.stringify(name)}; omit the label instead`, labels);
    }
    if (hasLoneSurrogateOrReplacement(value)) {
      return reject(Reason.InvalidUtf8, `received a series with an invalid UTF-8 value for label ${JSON.stringify(name)}`, labels);
    }
    if (i > 0) {
      if (name === prev) return reject(Reason.DuplicateLabelNames, `received a series with duplicate label name ${JSON.stringify(name)}`, labels);
      if (name < prev) return reject(Reason.LabelsNotSorted, `received a series whose labels are not sorted by name (${JSON.stringify(prev)} before ${JSON.stringify(name)})`, labels);
    }
    prev = name;
  }
  return null;
}

function reject(reason: Reason, what: string, labels: FlatLabels): Rejection {
  return { reason, message: `${what}; series: '${truncate(formatLabels(labels), 512)}' (${reason})` };
}

function truncate(s: string, n: number): string {
  return s.length <= n ? s : s.slice(0, n) + "...";
}

/** Null when the sample's timestamp is acceptable at `now`; otherwise why not. */
export function validateTimestamp(t: number, now: number, limits: Limits, labels: FlatLabels): Rejection | null {
  if (t > now + limits.creationGracePeriodMs) {
    return {
      reason: Reason.SampleTooFarInFuture,
      message: `received a sample whose timestamp ${iso(t)} is too far in the future (more than ${limits.creationGracePeriodMs / 1000}s, creationGracePeriodMs); series: '${truncate(formatLabels(labels), 512)}' (${Reason.SampleTooFarInFuture})`,
    };
  }
  if (limits.rejectOldSamplesMaxAgeMs > 0 && t < now - limits.rejectOldSamplesMaxAgeMs) {
    return {
      reason: Reason.SampleTooOld,
      message: `received a sample whose timestamp ${iso(t)} is older than the limit of ${limits.rejectOldSamplesMaxAgeMs / 1000}s (rejectOldSamplesMaxAgeMs); series: '${truncate(formatLabels(labels), 512)}' (${Reason.SampleTooOld})`,
    };
  }
  return null;
}

export function iso(t: number): string {
  const d = new Date(t);
  return Number.isNaN(d.getTime()) ? String(t) : d.toISOString();
}
