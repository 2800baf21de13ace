import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import {
  checkConsumeOptions,
  checkPartition,
  checkPartitions,
  checkTopicPrefix,
  DEFAULT_PARTITIONS,
  fullTopicName,
} from '../../event-log-rules';
import Database from 'better-sqlite3';
import {
  ConsumerGroupBusyError,
  EventLogClosedError,
  InvalidEventLogArgumentError,
  InvalidTopicNameError,
  OffsetCommitConflictError,
  SubscriptionStoppedError,
} from '../../event-log.errors';
import type {
  AppendRecord,
  ConsumeOptions,
  ConsumeOutput,
  EventLog,
  LogPosition,
  StoredRecord,
  Subscription,
  TopicSpec,
} from '../../event-log.port';
import { partitionForKey } from '../../murmur2-partitioner';

/**
 * The embedded EventLog: one SQLite file (WAL, `synchronous = FULL`), single node, no broker.
 *
 * Storage (one database file, shared by every adapter instance and process that opens it):
 * - `herald_topics`: one row per topic (prefixed name, table name, partitions, compacted flag,
 *   retention). Created by `ensureTopics`, or on first use with `defaultPartitions`, like a Kafka
 *   broker with `auto.create.topics.enable`.
 * - one table per topic, `log_<encoded prefixed name>`: `(partition, offset, key, value,
 *   timestamp)`, offsets dense per partition from 0.
 * - `herald_consumer_offsets`: the next offset to consume per (group, topic, partition).
 *
 * Writes: every `append` call (and every consumer commit) is queued and the queue is written in
 * ONE `BEGIN IMMEDIATE` transaction on the next `setImmediate` (group commit): one fsync for all
 * concurrent callers. A caller's promise resolves only after that commit; if the commit fails,
 * every caller in it is rejected. Offsets are assigned inside the transaction from the partition's
 * current maximum, so several processes may append to the same file (SQLite serialises them).
 * better-sqlite3 is synchronous: the commit (including its fsync) runs on the event loop.
 *
 * Consumers: read from their positions, call the handler, then commit the handler's output
 * records and the group's new offsets in one transaction (consume-transform-produce). They wake
 * immediately when this instance commits and poll `PRAGMA data_version` every `pollIntervalMs`
 * for commits of other connections / processes.
 *
 * Embedded mode is single-node: ONE active member per consumer group per adapter instance (a
 * second concurrent `consume` with the same group is rejected with `ConsumerGroupBusyError`), and
 * that member owns every partition of its topics (no rebalancing). If another process consumes
 * the same group anyway, commits are compare-and-set on the committed offsets: the loser's batch
 * outputs are rolled back, it reports an `OffsetCommitConflictError` and continues from the
 * winner's offsets, so effects stay exactly-once (but work is wasted).
 *
 * Not implemented (accepted and stored only): compaction and retention (`compacted`,
 * `retentionMs`) — every record is kept, which is a valid, if larger, state of a compacted log.
 */
export interface SqliteEventLogAdapterOptions {
  /** Path of the SQLite database file (its directory is created when missing). */
  path: string;
  /** Deployment prefix prepended to every topic name, e.g. `herald.`. Default ''. */
  topicPrefix?: string;
  /** Partitions of topics created implicitly (append / consume / read of an unknown topic). Default 4. */
  defaultPartitions?: number;
  /** How often consumers look for records written by OTHER connections or processes. Default 50 ms. */
  pollIntervalMs?: number;
}

const DEFAULT_POLL_INTERVAL_MS = 50;
const INITIAL_BACKOFF_MS = 100;
const MAX_BACKOFF_MS = 2_000;
/** How long a write waits for another process's write lock before failing. */
const BUSY_TIMEOUT_MS = 10_000;

type Db = Database.Database;

interface RecordRow {
  partition: number;
  offset: number;
  key: string;
  value: string;
  timestamp: number;
}

interface TopicRow {
  name: string;
  table_name: string;
  partitions: number;
  compacted: number;
}

/** A topic known to this instance, with its prepared statements. Immutable once created. */
interface TopicMeta {
  /** Logical name (without prefix), as callers see it. */
  topic: string;
  /** Prefixed name, the key in `herald_topics` and `herald_consumer_offsets`. */
  fullName: string;
  partitions: number;
  compacted: boolean;
  insert: Database.Statement<[number, number, string, string, number]>;
  maxOffset: Database.Statement<[number], { o: number | null }>;
  readFrom: Database.Statement<[number, number, number], RecordRow>;
}

interface PreparedRecord {
  meta: TopicMeta;
  partition: number;
  key: string;
  value: string;
}

interface OffsetCommitEntry {
  meta: TopicMeta;
  partition: number;
  /** The committed offset the batch was read from; the commit fails if it moved meanwhile. */
  expected: number;
  next: number;
}

interface OffsetCommit {
  group: string;
  entries: OffsetCommitEntry[];
}

interface WriteRequest {
  records: PreparedRecord[];
  commit: OffsetCommit | undefined;
  resolve: (positions: LogPosition[]) => void;
  reject: (error: unknown) => void;
}

/** What a subscription needs from its adapter (keeps the subscription out of the adapter's privates). */
interface SubscriptionHost {
  readPartition(meta: TopicMeta, partition: number, fromOffset: number, limit: number): StoredRecord[];
  prepareRecords(records: readonly AppendRecord[]): PreparedRecord[];
  write(records: PreparedRecord[], commit: OffsetCommit | undefined): Promise<LogPosition[]>;
  committedOffsets(group: string, meta: TopicMeta): Map<number, number>;
  endOffsets(meta: TopicMeta): number[];
  subscriptionEnded(subscription: EmbeddedSubscription, group: string | undefined): void;
}

export class SqliteEventLogAdapter implements EventLog {
  private readonly db: Db;
  private readonly path: string;
  private readonly prefix: string;
  private readonly defaultPartitions: number;
  private readonly pollIntervalMs: number;
  private readonly topics = new Map<string, TopicMeta>();
  private readonly subscriptions = new Set<EmbeddedSubscription>();
  /** Groups with an active member in this instance (one member per group: see the class doc). */
  private readonly activeGroups = new Set<string>();
  private queue: WriteRequest[] = [];
  private flushScheduled = false;
  private pollTimer: NodeJS.Timeout | undefined;
  private lastDataVersion = -1;
  private closing = false;
  private closed: Promise<void> | undefined;

  private readonly selectTopic: Database.Statement<[string], TopicRow>;
  private readonly insertTopic: Database.Statement<[string, string, number, number, number | null, number]>;
  private readonly selectGroupOffsets: Database.Statement<[string, string], { partition: number; next_offset: number }>;
  private readonly selectGroupOffset: Database.Statement<[string, string, number], { next_offset: number }>;
  private readonly upsertGroupOffset: Database.Statement<[string, string, number, number, number]>;
  private readonly insertGroupOffsetIfAbsent: Database.Statement<[string, string, number, number, number]>;
  private readonly writeBatch: Database.Transaction<(batch: WriteRequest[]) => Array<LogPosition[] | Error>>;

  constructor(options: SqliteEventLogAdapterOptions) {
    if (typeof options.path !== 'string' || options.path.length === 0) {
      throw new InvalidEventLogArgumentError('SqliteEventLogAdapter: `path` must be a non-empty file path');
    }
    const prefix = checkTopicPrefix(options.topicPrefix ?? '', 'SqliteEventLogAdapter');
    this.path = options.path;
    this.prefix = prefix;
    this.defaultPartitions = checkPartitions(options.defaultPartitions ?? DEFAULT_PARTITIONS, 'defaultPartitions');
    this.pollIntervalMs = options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS;
    if (!Number.isFinite(this.pollIntervalMs) || this.pollIntervalMs <= 0) {
      throw new InvalidEventLogArgumentError(
        `SqliteEventLogAdapter: pollIntervalMs must be a positive number, got ${String(options.pollIntervalMs)}`,
      );
    }

    mkdirSync(dirname(this.path), { recursive: true });
    this.db = new Database(this.path, { timeout: BUSY_TIMEOUT_MS });
    try {
      const journalMode = this.db.pragma('journal_mode = WAL', { simple: true });
      if (typeof journalMode !== 'string' || journalMode.toLowerCase() !== 'wal') {
        throw new Error(
          `SqliteEventLogAdapter: could not enable WAL mode on ${this.path} (journal_mode is ${String(journalMode)}); ` +
            'use a file on a local file system',
        );
      }
      // FULL: the WAL is fsync'd at every commit, so a committed append survives power loss.
      this.db.pragma('synchronous = FULL');
      this.db.exec(`
        CREATE TABLE IF NOT EXISTS herald_topics (
          name TEXT NOT NULL PRIMARY KEY,
          table_name TEXT NOT NULL UNIQUE,
          partitions INTEGER NOT NULL,
          compacted INTEGER NOT NULL,
          retention_ms INTEGER,
          created_at INTEGER NOT NULL
        );
        CREATE TABLE IF NOT EXISTS herald_consumer_offsets (
          group_id TEXT NOT NULL,
          topic TEXT NOT NULL,
          "partition" INTEGER NOT NULL,
          next_offset INTEGER NOT NULL,
          updated_at INTEGER NOT NULL,
          PRIMARY KEY (group_id, topic, "partition")
        );
      `);
      this.selectTopic = this.db.prepare<[string], TopicRow>(
        'SELECT name, table_name, partitions, compacted FROM herald_topics WHERE name = ?',
      );
      this.insertTopic = this.db.prepare<[string, string, number, number, number | null, number]>(
        'INSERT OR IGNORE INTO herald_topics (name, table_name, partitions, compacted, retention_ms, created_at) ' +
          'VALUES (?, ?, ?, ?, ?, ?)',
      );
      this.selectGroupOffsets = this.db.prepare<[string, string], { partition: number; next_offset: number }>(
        'SELECT "partition" AS partition, next_offset FROM herald_consumer_offsets WHERE group_id = ? AND topic = ?',
      );
      this.selectGroupOffset = this.db.prepare<[string, string, number], { next_offset: number }>(
        'SELECT next_offset FROM herald_consumer_offsets WHERE group_id = ? AND topic = ? AND "partition" = ?',
      );
      this.upsertGroupOffset = this.db.prepare<[string, string, number, number, number]>(
        'INSERT INTO herald_consumer_offsets (group_id, topic, "partition", next_offset, updated_at) ' +
          'VALUES (?, ?, ?, ?, ?) ON CONFLICT (group_id, topic, "partition") ' +
          'DO UPDATE SET next_offset = excluded.next_offset, updated_at = excluded.updated_at',
      );
      this.insertGroupOffsetIfAbsent = this.db.prepare<[string, string, number, number, number]>(
        'INSERT OR IGNORE INTO herald_consumer_offsets (group_id, topic, "partition", next_offset, updated_at) ' +
          'VALUES (?, ?, ?, ?, ?)',
      );
      this.writeBatch = this.db.transaction((batch: WriteRequest[]) => this.writeInTransaction(batch));
    } catch (error: unknown) {
      this.db.close();
      throw error;
    }
  }

  ensureTopics(specs: TopicSpec[]): Promise<void> {
    return attempt(() => {
      this.assertOpen();
      if (!Array.isArray(specs)) {
        throw new InvalidEventLogArgumentError('ensureTopics: expected an array of topic specs');
      }
      specs.forEach((spec: unknown, index) => {
        if (typeof spec !== 'object' || spec === null) {
          throw new InvalidEventLogArgumentError(`ensureTopics: spec ${index} is not an object`);
        }
        const topicSpec = spec as TopicSpec;
        this.topicMeta(topicSpec.topic, topicSpec);
      });
    });
  }

  /**
   * Appends in one group-committed transaction; resolves after the commit (durable), with the
   * positions in input order. Topics that do not exist are created with `defaultPartitions`.
   */
  async append(records: AppendRecord[]): Promise<LogPosition[]> {
    this.assertOpen();
    // Everything up to the enqueue is synchronous, so concurrent calls are written in call order.
    const prepared = this.prepareRecords(records);
    if (prepared.length === 0) return [];
    return this.write(prepared, undefined);
  }

  read(topic: string, partition: number, fromOffset: number, limit: number): Promise<StoredRecord[]> {
    return attempt(() => {
      this.assertOpen();
      const meta = this.topicMeta(topic);
      checkPartition(meta, partition);
      if (!Number.isSafeInteger(fromOffset) || fromOffset < 0) {
        throw new InvalidEventLogArgumentError(
          `read: fromOffset must be a non-negative integer, got ${String(fromOffset)}`,
        );
      }
      if (!Number.isSafeInteger(limit) || limit < 0) {
        throw new InvalidEventLogArgumentError(`read: limit must be a non-negative integer, got ${String(limit)}`);
      }
      return this.readPartition(meta, partition, fromOffset, limit);
    });
  }

  endOffsets(topic: string): Promise<LogPosition[]> {
    return attempt(() => {
      this.assertOpen();
      const meta = this.topicMeta(topic);
      return this.endOffsetsOf(meta).map((offset, partition) => ({ topic: meta.topic, partition, offset }));
    });
  }

  /** Kafka's default partitioner (murmur2); creates the topic with `defaultPartitions` if unknown. */
  partitionFor(topic: string, key: string): Promise<number> {
    return attempt(() => {
      this.assertOpen();
      if (typeof key !== 'string') throw new InvalidEventLogArgumentError('partitionFor: key must be a string');
      return partitionForKey(key, this.topicMeta(topic).partitions);
    });
  }

  /**
   * Starts a consumer. With a `group`, partitions without a committed offset are committed at
   * `from` right away, so `from: 'end'` is pinned once for the group, not re-evaluated at every
   * restart. Rejects with `ConsumerGroupBusyError` if the group already has an active member in
   * this adapter instance (embedded mode is single-node: one member per group).
   */
  consume(options: ConsumeOptions): Promise<Subscription> {
    return attempt(() => this.startSubscription(options));
  }

  private startSubscription(options: ConsumeOptions): Subscription {
    this.assertOpen();
    const { group, from, maxBatchSize } = checkConsumeOptions(options);
    if (group !== undefined && this.activeGroups.has(group)) {
      throw new ConsumerGroupBusyError(
        `consume: consumer group "${group}" already has an active member in this SqliteEventLogAdapter (${this.path}); ` +
          'the embedded event log is single-node and allows one member per group — stop the other subscription first',
      );
    }
    const metas = [...new Set(options.topics)].map((topic) => this.topicMeta(topic));

    const positions = new Map<TopicMeta, number[]>();
    if (group === undefined) {
      for (const meta of metas) {
        positions.set(meta, from === 'end' ? this.endOffsetsOf(meta) : new Array<number>(meta.partitions).fill(0));
      }
    } else {
      this.db
        .transaction(() => {
          const now = Date.now();
          for (const meta of metas) {
            const start = from === 'end' ? this.endOffsetsOf(meta) : new Array<number>(meta.partitions).fill(0);
            start.forEach((offset, partition) => {
              this.insertGroupOffsetIfAbsent.run(group, meta.fullName, partition, offset, now);
            });
          }
        })
        .immediate();
      for (const meta of metas) {
        const committed = this.committedOffsets(group, meta);
        positions.set(
          meta,
          Array.from({ length: meta.partitions }, (_, partition) => committed.get(partition) ?? 0),
        );
      }
      this.activeGroups.add(group);
    }

    const subscription = new EmbeddedSubscription(this.host, {
      group,
      positions,
      maxBatchSize,
      handler: options.handler,
      onError: options.onError,
      tickMs: options.tickMs,
      onAssignment: options.onAssignment,
    });
    this.subscriptions.add(subscription);
    this.startPolling();
    return subscription;
  }

  /** Stops every subscription (their last batches are committed), writes queued appends, closes the file. */
  close(): Promise<void> {
    this.closed ??= this.shutdown();
    return this.closed;
  }

  private async shutdown(): Promise<void> {
    this.closing = true;
    await Promise.all([...this.subscriptions].map((subscription) => subscription.stop()));
    this.stopPolling();
    this.flush();
    this.db.close();
  }

  private assertOpen(): void {
    if (this.closing) {
      throw new EventLogClosedError(`SqliteEventLogAdapter (${this.path}) is closed; open a new adapter`);
    }
  }

  // --- topics -------------------------------------------------------------------------------

  /** The topic's metadata, creating the topic (with `spec` or the defaults) when it does not exist. */
  private topicMeta(topic: string, spec?: TopicSpec): TopicMeta {
    const known = this.topics.get(topic);
    if (known) return known;
    const fullName = this.fullTopicName(topic);
    const partitions = checkPartitions(spec?.partitions ?? this.defaultPartitions, `partitions of topic "${topic}"`);
    const compacted = spec?.compacted === true;
    const retentionMs = spec?.retentionMs ?? null;
    if (retentionMs !== null && (!Number.isSafeInteger(retentionMs) || retentionMs < -1)) {
      throw new InvalidEventLogArgumentError(
        `retentionMs of topic "${topic}" must be an integer >= -1, got ${String(retentionMs)}`,
      );
    }
    const tableName = tableNameFor(fullName);
    let row = this.selectTopic.get(fullName);
    if (!row) {
      this.db
        .transaction(() => {
          // INSERT OR IGNORE: another process may have created it meanwhile; its spec wins.
          this.insertTopic.run(fullName, tableName, partitions, compacted ? 1 : 0, retentionMs, Date.now());
          this.db.exec(
            `CREATE TABLE IF NOT EXISTS ${quoteIdentifier(tableName)} (
              "partition" INTEGER NOT NULL,
              "offset" INTEGER NOT NULL,
              key TEXT NOT NULL,
              value TEXT NOT NULL,
              timestamp INTEGER NOT NULL,
              PRIMARY KEY ("partition", "offset")
            )`,
          );
        })
        .immediate();
      row = this.selectTopic.get(fullName);
      if (!row) throw new Error(`SqliteEventLogAdapter: topic "${fullName}" vanished right after its creation`);
    }
    const table = quoteIdentifier(row.table_name);
    const meta: TopicMeta = {
      topic,
      fullName,
      partitions: row.partitions,
      compacted: row.compacted !== 0,
      insert: this.db.prepare<[number, number, string, string, number]>(
        `INSERT INTO ${table} ("partition", "offset", key, value, timestamp) VALUES (?, ?, ?, ?, ?)`,
      ),
      maxOffset: this.db.prepare<[number], { o: number | null }>(
        `SELECT MAX("offset") AS o FROM ${table} WHERE "partition" = ?`,
      ),
      readFrom: this.db.prepare<[number, number, number], RecordRow>(
        `SELECT "partition" AS partition, "offset" AS offset, key, value, timestamp FROM ${table} ` +
          'WHERE "partition" = ? AND "offset" >= ? ORDER BY "offset" LIMIT ?',
      ),
    };
    this.topics.set(topic, meta);
    return meta;
  }

  private fullTopicName(topic: unknown): string {
    return fullTopicName(this.prefix, topic);
  }

  private endOffsetsOf(meta: TopicMeta): number[] {
    return this.db
      .transaction(() =>
        Array.from({ length: meta.partitions }, (_, partition) => (meta.maxOffset.get(partition)?.o ?? -1) + 1),
      )
      .deferred();
  }

  private readPartition(meta: TopicMeta, partition: number, fromOffset: number, limit: number): StoredRecord[] {
    if (limit === 0) return [];
    return meta.readFrom.all(partition, fromOffset, limit).map((row) => ({
      topic: meta.topic,
      partition: row.partition,
      offset: row.offset,
      key: row.key,
      value: row.value,
      timestamp: row.timestamp,
    }));
  }

  private committedOffsets(group: string, meta: TopicMeta): Map<number, number> {
    return new Map(this.selectGroupOffsets.all(group, meta.fullName).map((row) => [row.partition, row.next_offset]));
  }

  // --- writes (group commit) ------------------------------------------------------------------

  /** Validates records, resolves their topics (creating missing ones) and partitions. Synchronous. */
  private prepareRecords(records: readonly AppendRecord[]): PreparedRecord[] {
    const list: unknown = records;
    if (!Array.isArray(list)) {
      throw new InvalidEventLogArgumentError('append: expected an array of records');
    }
    return list.map((item: unknown, index): PreparedRecord => {
      const record = checkRecord(item, index);
      const meta = this.topicMeta(record.topic);
      return { meta, partition: partitionForKey(record.key, meta.partitions), key: record.key, value: record.value };
    });
  }

  private write(records: PreparedRecord[], commit: OffsetCommit | undefined): Promise<LogPosition[]> {
    return new Promise<LogPosition[]>((resolve, reject) => {
      this.queue.push({ records, commit, resolve, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.flushScheduled = false;
    const batch = this.queue;
    if (batch.length === 0) return;
    this.queue = [];
    if (!this.db.open) {
      const error = new EventLogClosedError(`SqliteEventLogAdapter (${this.path}) is closed; the write was not made`);
      for (const request of batch) request.reject(error);
      return;
    }
    let outcomes: Array<LogPosition[] | Error>;
    try {
      outcomes = this.writeBatch.immediate(batch);
    } catch (error: unknown) {
      const failure = new Error(
        `SqliteEventLogAdapter (${this.path}): commit of ${batch.length} queued write(s) failed: ${errorMessage(error)}`,
        { cause: error },
      );
      for (const request of batch) request.reject(failure);
      return;
    }
    batch.forEach((request, index) => {
      const outcome = outcomes[index];
      if (outcome instanceof Error) request.reject(outcome);
      else request.resolve(outcome ?? []);
    });
    if (batch.some((request) => request.records.length > 0)) {
      for (const subscription of this.subscriptions) subscription.wake();
    }
  }

  /** Runs inside one IMMEDIATE transaction: the whole queue, one commit. */
  private writeInTransaction(batch: WriteRequest[]): Array<LogPosition[] | Error> {
    const now = Date.now();
    const nextOffsets = new Map<TopicMeta, Map<number, number>>();
    const nextOffset = (meta: TopicMeta, partition: number): number => {
      let perPartition = nextOffsets.get(meta);
      if (!perPartition) {
        perPartition = new Map();
        nextOffsets.set(meta, perPartition);
      }
      const offset = perPartition.get(partition) ?? (meta.maxOffset.get(partition)?.o ?? -1) + 1;
      perPartition.set(partition, offset + 1);
      return offset;
    };

    return batch.map((request): LogPosition[] | Error => {
      const { commit } = request;
      if (commit) {
        // Compare-and-set before writing anything of this request, so a conflict needs no rollback.
        for (const entry of commit.entries) {
          const current = this.selectGroupOffset.get(commit.group, entry.meta.fullName, entry.partition)?.next_offset;
          if (current !== entry.expected) {
            return new OffsetCommitConflictError(
              `consumer group "${commit.group}": committed offset of ${entry.meta.topic}[${entry.partition}] is ` +
                `${String(current)}, expected ${entry.expected} — another member of the group committed meanwhile; ` +
                'the batch was not committed and will be re-read from the committed offsets',
            );
          }
        }
      }
      const positions = request.records.map((record): LogPosition => {
        const offset = nextOffset(record.meta, record.partition);
        record.meta.insert.run(record.partition, offset, record.key, record.value, now);
        return { topic: record.meta.topic, partition: record.partition, offset };
      });
      if (commit) {
        for (const entry of commit.entries) {
          this.upsertGroupOffset.run(commit.group, entry.meta.fullName, entry.partition, entry.next, now);
        }
      }
      return positions;
    });
  }

  // --- consumers ----------------------------------------------------------------------------

  private readonly host: SubscriptionHost = {
    readPartition: (meta, partition, fromOffset, limit) => this.readPartition(meta, partition, fromOffset, limit),
    prepareRecords: (records) => this.prepareRecords(records),
    write: (records, commit) => this.write(records, commit),
    committedOffsets: (group, meta) => this.committedOffsets(group, meta),
    endOffsets: (meta) => this.endOffsetsOf(meta),
    subscriptionEnded: (subscription, group) => {
      this.subscriptions.delete(subscription);
      if (group !== undefined) this.activeGroups.delete(group);
      if (this.subscriptions.size === 0) this.stopPolling();
    },
  };

  private startPolling(): void {
    if (this.pollTimer) return;
    this.lastDataVersion = this.dataVersion();
    this.pollTimer = setInterval(() => this.poll(), this.pollIntervalMs);
    this.pollTimer.unref();
  }

  private stopPolling(): void {
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.pollTimer = undefined;
  }

  /** `data_version` changes when another connection (this or another process) committed. */
  private poll(): void {
    if (!this.db.open) return;
    const version = this.dataVersion();
    if (version === this.lastDataVersion) return;
    this.lastDataVersion = version;
    for (const subscription of this.subscriptions) subscription.wake();
  }

  private dataVersion(): number {
    return Number(this.db.pragma('data_version', { simple: true }));
  }
}

interface SubscriptionSettings {
  group: string | undefined;
  /** Next offset to consume per partition, for each subscribed topic. */
  positions: Map<TopicMeta, number[]>;
  maxBatchSize: number;
  handler: ConsumeOptions['handler'];
  onError: ConsumeOptions['onError'];
  tickMs: number | undefined;
  onAssignment: ConsumeOptions['onAssignment'];
}

interface CaughtUpWaiter {
  targets: Array<{ meta: TopicMeta; partition: number; offset: number }>;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/** One consumer loop: read a batch, handle it, commit outputs + offsets atomically, repeat. */
class EmbeddedSubscription implements Subscription {
  private readonly positions: Map<TopicMeta, number[]>;
  private readonly slots: Array<{ meta: TopicMeta; partition: number }>;
  private readonly done: Promise<void>;
  private stopping = false;
  /** Set when new records may exist; cleared before each read. */
  private dirty = true;
  private wakeUp: (() => void) | undefined;
  private interruptBackoff: (() => void) | undefined;
  private rotation = 0;
  private waiters: CaughtUpWaiter[] = [];

  constructor(
    private readonly host: SubscriptionHost,
    private readonly settings: SubscriptionSettings,
  ) {
    this.positions = settings.positions;
    this.slots = [...settings.positions.keys()].flatMap((meta) =>
      Array.from({ length: meta.partitions }, (_, partition) => ({ meta, partition })),
    );
    this.done = this.run();
  }

  stop(): Promise<void> {
    if (!this.stopping) {
      this.stopping = true;
      this.wakeUp?.();
      this.interruptBackoff?.();
    }
    return this.done;
  }

  async caughtUp(ends?: LogPosition[]): Promise<void> {
    if (this.stopping) throw new SubscriptionStoppedError('caughtUp: the subscription is stopped');
    const targets =
      ends === undefined
        ? [...this.positions.keys()].flatMap((meta) =>
            this.host.endOffsets(meta).map((offset, partition) => ({ meta, partition, offset })),
          )
        : ends.map((end) => {
            const meta = [...this.positions.keys()].find((candidate) => candidate.topic === end.topic);
            if (!meta) {
              throw new InvalidEventLogArgumentError(
                `caughtUp: topic "${end.topic}" is not consumed by this subscription`,
              );
            }
            checkPartition(meta, end.partition);
            return { meta, partition: end.partition, offset: end.offset };
          });
    if (this.reached(targets)) return;
    await new Promise<void>((resolve, reject) => this.waiters.push({ targets, resolve, reject }));
  }

  /** New records may be available (a local commit, or a commit of another connection). */
  wake(): void {
    this.dirty = true;
    this.wakeUp?.();
  }

  private async run(): Promise<void> {
    // Start on a later turn: the handler never runs before `consume` has returned.
    await new Promise<void>((resolve) => setImmediate(resolve));
    let backoffMs = INITIAL_BACKOFF_MS;
    /** A batch whose handler or commit failed: retried as is (same records, same order), never skipped. */
    let failed: StoredRecord[] | undefined;
    /** When the handler last ran (for `tickMs`: an empty batch after that long without records). */
    let lastHandled = Date.now();
    /** Single node: this subscription owns every partition, from the start, for good. */
    let assigned = this.settings.onAssignment === undefined;
    const { tickMs } = this.settings;
    try {
      while (!this.stopping) {
        let records: StoredRecord[] = failed ?? [];
        try {
          if (!assigned) {
            await this.settings.onAssignment?.(
              this.slots.map(({ meta, partition }) => ({ topic: meta.topic, partition })),
            );
            assigned = true;
          }
          if (!failed) {
            this.dirty = false;
            records = this.readBatch();
            if (records.length === 0) {
              if (tickMs === undefined) {
                await this.idle();
                continue;
              }
              const wait = lastHandled + tickMs - Date.now();
              if (wait > 0) {
                await this.idle(wait);
                continue;
              }
            }
          }
          lastHandled = Date.now();
          const output = await this.settings.handler(records);
          await this.commit(records, output ?? undefined);
          failed = undefined;
          backoffMs = INITIAL_BACKOFF_MS;
        } catch (error: unknown) {
          this.report(error, records);
          if (error instanceof OffsetCommitConflictError) {
            // Another member committed past this batch: drop it and continue from its offsets.
            failed = undefined;
            this.reloadCommittedPositions();
            continue;
          }
          failed = records.length > 0 ? records : undefined;
          if (this.stopping) break;
          await this.backoff(backoffMs);
          backoffMs = Math.min(backoffMs * 2, MAX_BACKOFF_MS);
        }
      }
    } finally {
      const stopped = new SubscriptionStoppedError('the subscription stopped before it caught up');
      for (const waiter of this.waiters) waiter.reject(stopped);
      this.waiters = [];
      this.host.subscriptionEnded(this, this.settings.group);
    }
  }

  /** Up to maxBatchSize records; each partition in offset order; the first partition rotates for fairness. */
  private readBatch(): StoredRecord[] {
    const records: StoredRecord[] = [];
    const count = this.slots.length;
    const start = this.rotation++ % count;
    for (let i = 0; i < count && records.length < this.settings.maxBatchSize; i++) {
      const slot = this.slots[(start + i) % count];
      if (!slot) continue;
      const from = this.positions.get(slot.meta)?.[slot.partition] ?? 0;
      const rows = this.host.readPartition(
        slot.meta,
        slot.partition,
        from,
        this.settings.maxBatchSize - records.length,
      );
      for (const row of rows) records.push(row);
    }
    return records;
  }

  private async commit(records: StoredRecord[], output: ConsumeOutput | undefined): Promise<void> {
    const next = new Map<TopicMeta, Map<number, number>>();
    const metaOf = new Map([...this.positions.keys()].map((meta) => [meta.topic, meta]));
    for (const record of records) {
      const meta = metaOf.get(record.topic);
      if (!meta) continue;
      let perPartition = next.get(meta);
      if (!perPartition) {
        perPartition = new Map();
        next.set(meta, perPartition);
      }
      perPartition.set(record.partition, record.offset + 1);
    }
    const outputs = output?.append;
    if (outputs !== undefined && !Array.isArray(outputs)) {
      throw new InvalidEventLogArgumentError('consume: the handler returned `append` that is not an array');
    }
    const prepared = this.host.prepareRecords(outputs ?? []);
    const { group } = this.settings;
    if (group !== undefined) {
      const entries: OffsetCommitEntry[] = [];
      for (const [meta, perPartition] of next) {
        for (const [partition, offset] of perPartition) {
          entries.push({ meta, partition, expected: this.positions.get(meta)?.[partition] ?? 0, next: offset });
        }
      }
      await this.host.write(prepared, { group, entries });
    } else if (prepared.length > 0) {
      await this.host.write(prepared, undefined);
    }
    for (const [meta, perPartition] of next) {
      const positions = this.positions.get(meta);
      if (!positions) continue;
      for (const [partition, offset] of perPartition) positions[partition] = offset;
    }
    this.settleWaiters();
  }

  private reloadCommittedPositions(): void {
    const { group } = this.settings;
    if (group === undefined) return;
    for (const [meta, positions] of this.positions) {
      for (const [partition, offset] of this.host.committedOffsets(group, meta)) {
        if (partition < positions.length) positions[partition] = offset;
      }
    }
    this.settleWaiters();
  }

  private reached(targets: CaughtUpWaiter['targets']): boolean {
    return targets.every(({ meta, partition, offset }) => (this.positions.get(meta)?.[partition] ?? 0) >= offset);
  }

  private settleWaiters(): void {
    if (this.waiters.length === 0) return;
    const pending: CaughtUpWaiter[] = [];
    for (const waiter of this.waiters) {
      if (this.reached(waiter.targets)) waiter.resolve();
      else pending.push(waiter);
    }
    this.waiters = pending;
  }

  private report(error: unknown, records: StoredRecord[]): void {
    const { onError } = this.settings;
    if (!onError) {
      process.emitWarning(
        `EventLog consumer${this.settings.group === undefined ? '' : ` (group "${this.settings.group}")`}: ` +
          `batch of ${records.length} record(s) failed and will be retried: ${errorMessage(error)}`,
        { code: 'HERALD_EVENT_LOG_CONSUMER' },
      );
      return;
    }
    try {
      onError(error, records);
    } catch {
      // A throwing onError must not kill the consumer loop.
    }
  }

  /**
   * Waits until woken (new records), stopped, or `timeoutMs` passed. Returns at once if woken
   * since the last read.
   */
  private idle(timeoutMs?: number): Promise<void> {
    if (this.dirty || this.stopping) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = timeoutMs === undefined ? undefined : setTimeout(() => this.wakeUp?.(), timeoutMs);
      this.wakeUp = () => {
        this.wakeUp = undefined;
        if (timer) clearTimeout(timer);
        resolve();
      };
    });
  }

  /** Sleeps `ms`, or less if stopped. */
  private backoff(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(finish, ms);
      function finish(): void {
        clearTimeout(timer);
        resolve();
      }
      this.interruptBackoff = () => {
        this.interruptBackoff = undefined;
        finish();
      };
    });
  }
}

/**
 * A table name for a (validated) prefixed topic name that is unique even though SQLite compares
 * identifiers case-insensitively: lowercase letters and digits are kept, `A`→`_a`, `_`→`_0`,
 * `.`→`_1`, `-`→`_2`. E.g. `herald.commands` → `log_herald_1commands`.
 */
function tableNameFor(fullName: string): string {
  let name = 'log_';
  for (const char of fullName) {
    if ((char >= 'a' && char <= 'z') || (char >= '0' && char <= '9')) name += char;
    else if (char >= 'A' && char <= 'Z') name += `_${char.toLowerCase()}`;
    else if (char === '_') name += '_0';
    else if (char === '.') name += '_1';
    else if (char === '-') name += '_2';
    else throw new InvalidTopicNameError(`Invalid character ${JSON.stringify(char)} in topic name "${fullName}"`);
  }
  return name;
}

function quoteIdentifier(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function checkRecord(item: unknown, index: number): AppendRecord {
  if (typeof item !== 'object' || item === null) {
    throw new InvalidEventLogArgumentError(`append: record ${index} is not an object`);
  }
  const { topic, key, value } = item as Partial<Record<keyof AppendRecord, unknown>>;
  if (typeof key !== 'string') {
    throw new InvalidEventLogArgumentError(`append: record ${index} has no string \`key\``);
  }
  if (typeof value !== 'string') {
    throw new InvalidEventLogArgumentError(`append: record ${index} has no string \`value\``);
  }
  // The topic name is validated (with a clearer message) when it is resolved.
  return { topic: topic as string, key, value };
}

/** Runs `fn` now, turning a synchronous throw into a rejected promise (the port's methods are async). */
function attempt<T>(fn: () => T): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (error: unknown) {
    return Promise.reject(error instanceof Error ? error : new Error(String(error)));
  }
}
