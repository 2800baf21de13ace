import type { BatchHandler, ConsumeOutput, StoredRecord } from '../event-log.port';

/** A `BatchHandler` from a synchronous function (tests: no `async` without `await`). */
export function syncHandler(fn: (records: StoredRecord[]) => ConsumeOutput | void): BatchHandler {
  return (records) => Promise.resolve(fn(records));
}
