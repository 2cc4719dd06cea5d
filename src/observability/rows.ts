// SQLite rows a Durable Object writes, as Cloudflare bills them ($1.00 per million
// rows written): every statement's cursor reports its own rowsWritten (indexes and
// upserts included), so a shard that runs every statement through one counter
// knows its cost exactly instead of assuming one row per WAL record.
//
// Not counted here: the alarm (setAlarm is not a SQL statement; a shard sets it at
// most once per flush check).

/** The part of SqlStorage the shards use: statements. */
export interface SqlExec {
  exec<T extends Record<string, SqlStorageValue>>(query: string, ...bindings: unknown[]): SqlStorageCursor<T>;
}

/** SqlStorage.exec, summing every cursor's rowsWritten. */
export class RowCountingSql implements SqlExec {
  /** Rows written since this object was made (the Durable Object's start). */
  rowsWritten = 0;

  constructor(private readonly sql: SqlStorage) {}

  exec<T extends Record<string, SqlStorageValue>>(query: string, ...bindings: unknown[]): SqlStorageCursor<T> {
    const cursor = this.sql.exec<T>(query, ...bindings);
    // A write statement has run to completion when exec returns (it yields no rows),
    // so its count is final here; a SELECT's is 0 however far it is read.
    this.rowsWritten += cursor.rowsWritten;
    return cursor;
  }
}
