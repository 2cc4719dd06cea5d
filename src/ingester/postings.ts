// Inverted index of the head: label name -> value -> ascending series ids.
// Ids are handed out in increasing order, so appending keeps every list sorted and
// intersections are linear merges.

import type { FlatLabels } from "../model/labels";

export class Postings {
  readonly byName = new Map<string, Map<string, number[]>>();

  add(id: number, labels: FlatLabels): void {
    for (let i = 0; i < labels.length; i += 2) {
      let values = this.byName.get(labels[i]);
      if (!values) this.byName.set(labels[i], (values = new Map()));
      const list = values.get(labels[i + 1]);
      if (list) list.push(id);
      else values.set(labels[i + 1], [id]);
    }
  }

  remove(id: number, labels: FlatLabels): void {
    for (let i = 0; i < labels.length; i += 2) {
      const values = this.byName.get(labels[i]);
      const list = values?.get(labels[i + 1]);
      if (!values || !list) continue;
      const at = list.indexOf(id);
      if (at >= 0) list.splice(at, 1);
      if (list.length === 0) values.delete(labels[i + 1]);
      if (values.size === 0) this.byName.delete(labels[i]);
    }
  }

  get(name: string, value: string): number[] {
    return this.byName.get(name)?.get(value) ?? EMPTY;
  }

  /** Union of the lists of every value of `name` that `accept` takes. */
  union(name: string, accept: (value: string) => boolean): number[] {
    const values = this.byName.get(name);
    if (!values) return EMPTY;
    const lists: number[][] = [];
    for (const [value, ids] of values) if (accept(value)) lists.push(ids);
    if (lists.length === 0) return EMPTY;
    if (lists.length === 1) return lists[0];
    const all: number[] = [];
    for (const l of lists) for (const id of l) all.push(id);
    all.sort((a, b) => a - b);
    // Lists of one name are disjoint (a series has one value per name): no dedup needed.
    return all;
  }
}

export const EMPTY: number[] = [];

export function intersect(a: number[], b: number[]): number[] {
  const out: number[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    if (a[i] === b[j]) {
      out.push(a[i]);
      i++;
      j++;
    } else if (a[i] < b[j]) i++;
    else j++;
  }
  return out;
}
