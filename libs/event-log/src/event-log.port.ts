/**
 * The EventLog port: an append-only, partitioned, durable log with consumer groups.
 * Domain and app code use only this interface; adapters: embedded (SQLite) and Kafka.
 *
 * Guarantees every adapter must give (the contract suite checks each):
 * - `append` resolves only when every record is durable (fsync'd / acks=all).
 * - Records with the same key land in the same partition, in append order; so do keys that share
 *   the part before their first `/` (`partitionKeyOf`: facets of one entity stay in one partition).
 * - A consumer group resumes after its last committed offset; a handler's batch is committed
 *   only after the handler resolves, atomically with any records the handler asks to append
 *   (consume-transform-produce).
 */

export const EVENT_LOG = Symbol('EVENT_LOG');

export interface AppendRecord {
  /** Logical topic name (the adapter applies the deployment prefix). */
  topic: string;
  /** Partition key; all records of one key keep their order. Agent UUID for agent topics. */
  key: string;
  /** The serialized envelope (JSON text). */
  value: string;
}

export interface LogPosition {
  topic: string;
  partition: number;
  /** Offset of the record within its partition; dense from 0 in the embedded adapter. */
  offset: number;
}

export interface StoredRecord extends AppendRecord, LogPosition {
  /** Milliseconds since the epoch at which the log stored the record. */
  timestamp: number;
}

export interface TopicSpec {
  topic: string;
  partitions?: number;
  /** Keep only the newest record per key (Kafka log compaction). */
  compacted?: boolean;
  retentionMs?: number;
}

export interface ConsumeOutput {
  /** Records appended atomically with the commit of the consumed batch. */
  append?: AppendRecord[];
}

export type BatchHandler = (records: StoredRecord[]) => Promise<ConsumeOutput | void>;

export interface ConsumeOptions {
  topics: string[];
  /**
   * Consumer group: offsets are committed and shared by every member of the group. Without a
   * group the consumer is ephemeral (nothing is committed) and starts at `from`.
   */
  group?: string;
  /** Where a group without committed offsets (or an ephemeral consumer) starts. Default 'beginning'. */
  from?: 'beginning' | 'end';
  handler: BatchHandler;
  /** Upper bound of one batch. Default 500. */
  maxBatchSize?: number;
  /**
   * When set, the handler is also called with an EMPTY batch whenever no record arrived for
   * this many milliseconds, so time-based work (deadlines) runs serialized with record handling
   * and its output is appended through the same path, in the same order as the state changes.
   */
  tickMs?: number;
  /**
   * Called with the partitions this member now owns (of every subscribed topic), before the first
   * batch or tick after the assignment changed, serialized with the handler. In a group on Kafka
   * it runs after this member has fenced the previous owners (their open transactions are
   * aborted), so state rebuilt from the log here is complete. The embedded adapter calls it once,
   * with every partition. A single writer (the orchestrator) rebuilds its state here.
   */
  onAssignment?: (assigned: { topic: string; partition: number }[]) => Promise<void>;
  /** Called when the handler throws; the batch is retried after a backoff. */
  onError?: (error: unknown, records: StoredRecord[]) => void;
}

export interface Subscription {
  /** Resolves once the consumer has stopped and its last batch is committed. */
  stop(): Promise<void>;
  /** Resolves when the consumer has handled everything up to the given end offsets. */
  caughtUp(ends?: LogPosition[]): Promise<void>;
}

export interface EventLog {
  /** Create topics that do not exist yet (idempotent). */
  ensureTopics(specs: TopicSpec[]): Promise<void>;
  /** Append durably; results are in input order. */
  append(records: AppendRecord[]): Promise<LogPosition[]>;
  /** Read one partition from an offset (inclusive), at most `limit` records. */
  read(topic: string, partition: number, fromOffset: number, limit: number): Promise<StoredRecord[]>;
  /** The next offset to be written, per partition of the topic. */
  endOffsets(topic: string): Promise<LogPosition[]>;
  /** The partition a key maps to. */
  partitionFor(topic: string, key: string): Promise<number>;
  consume(options: ConsumeOptions): Promise<Subscription>;
  close(): Promise<void>;
}
