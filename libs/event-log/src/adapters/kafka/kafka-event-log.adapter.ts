import { randomUUID } from 'node:crypto';
import {
  Kafka,
  logLevel as KafkaLogLevel,
  Partitioners,
  type Admin,
  type LogEntry,
  type Message,
  type Producer,
  type RecordMetadata,
  type TopicMessages,
} from 'kafkajs';
import { ConsumerGroupBusyError, EventLogClosedError, InvalidEventLogArgumentError } from '../../event-log.errors';
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
import {
  checkConsumeOptions,
  checkPartition,
  checkPartitions,
  checkTopicPrefix,
  DEFAULT_PARTITIONS,
  fullTopicName,
  type CheckedConsumeOptions,
} from '../../event-log-rules';
import { partitionForKey } from '../../murmur2-partitioner';
import { KafkaAssignedSubscription } from './kafka-assigned-subscription';
import { KafkaGroupSubscription } from './kafka-group-subscription';
import { KafkaPartitionReader } from './kafka-partition-reader';
import type {
  KafkaSubscriptionHost,
  KafkaSubscriptionSettings,
  KafkaTopic,
  PreparedOutputs,
  Watermarks,
} from './kafka-subscription-base';

export type KafkaEventLogLogLevel = 'nothing' | 'error' | 'warn' | 'info' | 'debug';

export interface KafkaEventLogLogEntry {
  level: Exclude<KafkaEventLogLogLevel, 'nothing'>;
  /** kafkajs component (`Consumer`, `Producer`, `Connection`, …). */
  namespace: string;
  message: string;
  /** kafkajs' structured details (broker, groupId, error, …). */
  fields: Record<string, unknown>;
}

/**
 * Options of the Kafka EventLog. JSON-serialisable except `logger` (the kill -9 contract tests
 * build the adapter in a child process from JSON options).
 */
export interface KafkaEventLogAdapterOptions {
  /** Bootstrap brokers, `host:port`. */
  brokers: string[];
  /** Deployment prefix of every topic AND consumer group name, e.g. `herald.`. Default ''. */
  topicPrefix?: string;
  /** Kafka client id (broker logs, quotas). Default 'herald'. */
  clientId?: string;
  /** Partitions of topics created implicitly (append / consume / read of an unknown topic). Default 4. */
  defaultPartitions?: number;
  /** Replication factor of topics this adapter creates. Default -1: the broker's `default.replication.factor`. */
  replicationFactor?: number;
  /** Prefix of the transactional ids of consume-transform-produce (one id per group and input partition). Default ''. */
  transactionalIdPrefix?: string;
  /** Threshold of kafkajs' log entries routed to `logger`. Default 'warn'. */
  logLevel?: KafkaEventLogLogLevel;
  /** Where kafkajs' log entries go. Default: one JSON line per entry on stderr. */
  logger?: (entry: KafkaEventLogLogEntry) => void;
  /** Consumer group session timeout: how long a crashed member keeps its partitions. Default 30000 (broker minimum 6000). */
  sessionTimeoutMs?: number;
  /** How long a rebalance waits for members to rejoin. Default 60000. */
  rebalanceTimeoutMs?: number;
  /** Consumer group heartbeat interval. Default 3000 (at most a third of the session timeout). */
  heartbeatIntervalMs?: number;
  /** Long-poll of idle consumers: bounds the latency of `stop()`. Default 1000. */
  maxWaitTimeMs?: number;
  /** Broker-side timeout of consume-transform-produce transactions. Default 60000. */
  transactionTimeoutMs?: number;
  /** Request timeout. Default 30000. */
  requestTimeoutMs?: number;
  /** TCP connect timeout. Default 3000. */
  connectionTimeoutMs?: number;
  /**
   * How long `read` waits for transactions that are being committed below the partition's end
   * (their records become readable once the broker wrote the commit markers). Default 5000.
   */
  readStableWaitMs?: number;
  /**
   * Largest record (key + value bytes) accepted by `append` and handler outputs; larger ones are
   * rejected before anything is sent. Default 1000000 (the broker's `message.max.bytes` is 1 MiB).
   */
  maxRecordBytes?: number;
}

/** A produce request is split when its records exceed this many bytes (kept below `message.max.bytes` per partition). */
const MAX_REQUEST_BYTES = 512 * 1024;
/** Per-record overhead assumed when sizing produce requests. */
const RECORD_OVERHEAD_BYTES = 64;

interface ValidRecord {
  topic: string;
  key: string;
  value: string;
  bytes: number;
}

interface PlacedRecord extends ValidRecord {
  info: KafkaTopic;
  partition: number;
}

interface AppendRequest {
  records: ValidRecord[];
  positions: LogPosition[];
  resolve: (positions: LogPosition[]) => void;
  reject: (error: unknown) => void;
}

/**
 * The distributed EventLog: Kafka through kafkajs.
 *
 * - `append`: one idempotent producer (acks=-1, one request in flight). Concurrent calls are queued
 *   and sent together on the next `setImmediate` (group commit), in call order, one `sendBatch` at
 *   a time (split into requests of at most 512 KiB), so records of a key keep their call order.
 *   A call resolves once the broker acknowledged all its records; positions come from the base
 *   offset of each partition's record batch. Partitions are chosen here with Kafka's murmur2
 *   (`partitionForKey`, the same as kafkajs' `DefaultPartitioner`) from the topic's partition count.
 * - Topics: created on first use (append / consume / read / partitionFor / endOffsets) with
 *   `defaultPartitions`, or by `ensureTopics` with their spec (`cleanup.policy=compact`,
 *   `retention.ms`); existing topics are never changed. Every topic gets
 *   `message.timestamp.type=LogAppendTime`, so a record's timestamp is when the log stored it.
 * - `read` / ephemeral consumers: plain read_committed Fetch requests (`KafkaPartitionReader`).
 * - Consumer groups: `KafkaGroupSubscription` (kafkajs consumer, commits after the handler,
 *   outputs and offsets in one transaction per input partition). Group names get `topicPrefix`.
 *   Like the embedded adapter, one member per group per adapter instance.
 * - Offsets are not dense: transaction markers (and aborted records) take offsets too.
 */
export class KafkaEventLogAdapter implements EventLog {
  private readonly kafka: Kafka;
  private readonly admin: Admin;
  private readonly producer: Producer;
  private readonly reader: KafkaPartitionReader;
  private readonly prefix: string;
  private readonly defaultPartitions: number;
  private readonly replicationFactor: number;
  private readonly transactionalIdPrefix: string;
  private readonly sessionTimeoutMs: number;
  private readonly rebalanceTimeoutMs: number;
  private readonly heartbeatIntervalMs: number;
  private readonly maxWaitTimeMs: number;
  private readonly transactionTimeoutMs: number;
  private readonly requestTimeoutMs: number;
  private readonly maxRecordBytes: number;
  private readonly readStableWaitMs: number;
  private readonly topics = new Map<string, Promise<KafkaTopic>>();
  private readonly subscriptions = new Set<Subscription>();
  private readonly activeGroups = new Set<string>();
  private connecting: Promise<void> | undefined;
  private queue: AppendRequest[] = [];
  private flushing = false;
  private flushScheduled = false;
  private drained: Array<() => void> = [];
  private closing = false;
  private closed: Promise<void> | undefined;

  constructor(options: KafkaEventLogAdapterOptions) {
    if (
      !Array.isArray(options.brokers) ||
      options.brokers.length === 0 ||
      options.brokers.some((b) => typeof b !== 'string' || b.length === 0)
    ) {
      throw new InvalidEventLogArgumentError(
        'KafkaEventLogAdapter: `brokers` must be a non-empty array of host:port strings',
      );
    }
    const prefix = checkTopicPrefix(options.topicPrefix ?? '', 'KafkaEventLogAdapter');
    this.prefix = prefix;
    this.defaultPartitions = checkPartitions(options.defaultPartitions ?? DEFAULT_PARTITIONS, 'defaultPartitions');
    this.replicationFactor = checkInteger(options.replicationFactor ?? -1, 'replicationFactor', -1);
    this.transactionalIdPrefix = options.transactionalIdPrefix ?? '';
    this.sessionTimeoutMs = checkInteger(options.sessionTimeoutMs ?? 30_000, 'sessionTimeoutMs', 1);
    this.rebalanceTimeoutMs = checkInteger(options.rebalanceTimeoutMs ?? 60_000, 'rebalanceTimeoutMs', 1);
    this.heartbeatIntervalMs = checkInteger(options.heartbeatIntervalMs ?? 3_000, 'heartbeatIntervalMs', 1);
    if (this.heartbeatIntervalMs >= this.sessionTimeoutMs) {
      throw new InvalidEventLogArgumentError(
        'KafkaEventLogAdapter: heartbeatIntervalMs must be lower than sessionTimeoutMs',
      );
    }
    this.maxWaitTimeMs = checkInteger(options.maxWaitTimeMs ?? 1_000, 'maxWaitTimeMs', 0);
    this.transactionTimeoutMs = checkInteger(options.transactionTimeoutMs ?? 60_000, 'transactionTimeoutMs', 1);
    this.requestTimeoutMs = checkInteger(options.requestTimeoutMs ?? 30_000, 'requestTimeoutMs', 1);
    this.maxRecordBytes = checkInteger(options.maxRecordBytes ?? 1_000_000, 'maxRecordBytes', 1);
    this.readStableWaitMs = checkInteger(options.readStableWaitMs ?? 5_000, 'readStableWaitMs', 0);

    this.kafka = new Kafka({
      clientId: options.clientId ?? 'herald',
      brokers: options.brokers,
      connectionTimeout: checkInteger(options.connectionTimeoutMs ?? 3_000, 'connectionTimeoutMs', 1),
      requestTimeout: this.requestTimeoutMs,
      retry: { initialRetryTime: 100, maxRetryTime: 5_000, retries: 8 },
      logLevel: toKafkaLogLevel(options.logLevel ?? 'warn'),
      logCreator: createLogCreator(options.logger ?? writeLogLine),
    });
    this.admin = this.kafka.admin();
    // retries: kafkajs' default for idempotent producers (a produce is retried until it is acknowledged,
    // without duplicates or reordering); `append` rejects only on a non-retriable error or close().
    this.producer = this.kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
      createPartitioner: Partitioners.DefaultPartitioner,
      retry: { retries: Number.MAX_SAFE_INTEGER, maxRetryTime: 5_000 },
    });
    this.reader = this.newReader();
  }

  async ensureTopics(specs: TopicSpec[]): Promise<void> {
    this.assertOpen();
    if (!Array.isArray(specs)) throw new InvalidEventLogArgumentError('ensureTopics: expected an array of topic specs');
    const checked = specs.map((spec: unknown, index) => {
      if (typeof spec !== 'object' || spec === null) {
        throw new InvalidEventLogArgumentError(`ensureTopics: spec ${index} is not an object`);
      }
      const topicSpec = spec as TopicSpec;
      this.fullTopicName(topicSpec.topic);
      checkPartitions(
        topicSpec.partitions ?? this.defaultPartitions,
        `partitions of topic "${String(topicSpec.topic)}"`,
      );
      checkRetention(topicSpec);
      return topicSpec;
    });
    await Promise.all(checked.map((spec) => this.topicInfo(spec.topic, spec)));
  }

  /**
   * Appends durably (acks=-1); positions in input order. Topics that do not exist are created with
   * `defaultPartitions`. Concurrent calls are written in call order.
   */
  async append(records: AppendRecord[]): Promise<LogPosition[]> {
    this.assertOpen();
    return this.enqueue(records, 'append');
  }

  async read(topic: string, partition: number, fromOffset: number, limit: number): Promise<StoredRecord[]> {
    this.assertOpen();
    const info = await this.topicInfo(topic);
    checkPartition(info, partition);
    if (!Number.isSafeInteger(fromOffset) || fromOffset < 0) {
      throw new InvalidEventLogArgumentError(
        `read: fromOffset must be a non-negative integer, got ${String(fromOffset)}`,
      );
    }
    if (!Number.isSafeInteger(limit) || limit < 0) {
      throw new InvalidEventLogArgumentError(`read: limit must be a non-negative integer, got ${String(limit)}`);
    }
    if (limit === 0) return [];
    const watermarks = async (): Promise<{ low: number; high: number }> =>
      (await this.watermarks(info))[partition] ?? { low: 0, high: 0 };
    const records = await this.reader.read(
      info.fullName,
      partition,
      fromOffset,
      limit,
      watermarks,
      this.readStableWaitMs,
    );
    return records.map((record) => ({ ...record, topic: info.topic }));
  }

  async endOffsets(topic: string): Promise<LogPosition[]> {
    this.assertOpen();
    const info = await this.topicInfo(topic);
    return (await this.watermarks(info)).map(({ high }, partition) => ({ topic: info.topic, partition, offset: high }));
  }

  /** Kafka's default partitioner (murmur2) over the topic's partition count; creates the topic if unknown. */
  async partitionFor(topic: string, key: string): Promise<number> {
    this.assertOpen();
    if (typeof key !== 'string') throw new InvalidEventLogArgumentError('partitionFor: key must be a string');
    return partitionForKey(key, (await this.topicInfo(topic)).partitions);
  }

  /**
   * With a `group`: a consumer group member (see KafkaGroupSubscription); partitions the group has
   * never committed are committed at `from` first (only while the group has no active member), so
   * `from: 'end'` is pinned once, like the embedded adapter. Without: an ephemeral reader of every
   * partition from `from` (KafkaAssignedSubscription). Resolves once consuming has started.
   */
  async consume(options: ConsumeOptions): Promise<Subscription> {
    this.assertOpen();
    const checked = checkConsumeOptions(options);
    const settings = consumeSettings(options, checked);
    const { from } = checked;
    const { group } = settings;
    if (group !== undefined && this.activeGroups.has(group)) {
      throw new ConsumerGroupBusyError(
        `consume: consumer group "${group}" already has an active member in this KafkaEventLogAdapter; ` +
          'stop the other subscription first (run more members in more adapter instances / processes)',
      );
    }
    if (group !== undefined) this.activeGroups.add(group);
    let subscription: KafkaGroupSubscription | KafkaAssignedSubscription | undefined;
    try {
      const topics = await Promise.all([...new Set(options.topics)].map((topic) => this.topicInfo(topic)));
      if (group === undefined) {
        const start = new Map<string, number[]>();
        for (const topic of topics) {
          // 'end' is the last stable offset: records of transactions still open below the high
          // watermark are delivered once committed.
          start.set(
            topic.fullName,
            (await this.watermarks(topic)).map(({ low, stable }) => (from === 'end' ? stable : low)),
          );
        }
        const assigned = new KafkaAssignedSubscription(
          this.host,
          topics,
          settings,
          this.newReader(),
          this.maxWaitTimeMs,
        );
        subscription = assigned;
        this.subscriptions.add(assigned);
        await assigned.start(start);
      } else {
        const groupId = this.prefix + group;
        const committed = await this.pinGroupOffsets(groupId, topics, from);
        const member = new KafkaGroupSubscription(this.host, topics, settings, {
          kafka: this.kafka,
          groupId,
          transactionalIdPrefix: this.transactionalIdPrefix,
          consumer: {
            sessionTimeout: this.sessionTimeoutMs,
            rebalanceTimeout: this.rebalanceTimeoutMs,
            heartbeatInterval: this.heartbeatIntervalMs,
            maxWaitTimeInMs: this.maxWaitTimeMs,
            allowAutoTopicCreation: false,
          },
          // A transaction started right after the previous commit gets CONCURRENT_TRANSACTIONS until
          // the broker wrote that commit's markers: retry soon (the Java client waits 20 ms too).
          producer: {
            transactionTimeout: this.transactionTimeoutMs,
            retry: { initialRetryTime: 20, retries: 10, maxRetryTime: 2_000 },
          },
          fromBeginning: from === 'beginning',
          heartbeatIntervalMs: this.heartbeatIntervalMs,
          requestTimeoutMs: this.requestTimeoutMs,
        });
        subscription = member;
        this.subscriptions.add(member);
        await member.start(committed);
      }
      if (this.closing) throw new EventLogClosedError('KafkaEventLogAdapter was closed while the consumer started');
      return subscription;
    } catch (error: unknown) {
      if (subscription) await subscription.stop().catch(() => undefined);
      if (group !== undefined) this.activeGroups.delete(group);
      throw error;
    }
  }

  /** Stops every subscription (their last batches are committed), writes queued appends, disconnects. */
  close(): Promise<void> {
    this.closed ??= this.shutdown();
    return this.closed;
  }

  private async shutdown(): Promise<void> {
    this.closing = true;
    await Promise.allSettled([...this.subscriptions].map((subscription) => subscription.stop()));
    await this.drain();
    await Promise.allSettled([this.producer.disconnect(), this.admin.disconnect(), this.reader.disconnect()]);
  }

  private assertOpen(): void {
    if (this.closing) throw new EventLogClosedError('KafkaEventLogAdapter is closed; open a new adapter');
  }

  private connect(): Promise<void> {
    if (!this.connecting) {
      const attempt = Promise.all([this.admin.connect(), this.producer.connect()]).then(() => undefined);
      this.connecting = attempt;
      attempt.catch(() => {
        if (this.connecting === attempt) this.connecting = undefined;
      });
    }
    return this.connecting;
  }

  private newReader(): KafkaPartitionReader {
    return new KafkaPartitionReader(this.kafka, `${this.prefix}herald-reader-${randomUUID()}`);
  }

  // --- topics -------------------------------------------------------------------------------

  /** The topic's metadata, creating the topic (with `spec` or the defaults) when it does not exist. */
  private topicInfo(topic: string, spec?: TopicSpec): Promise<KafkaTopic> {
    const known = this.topics.get(topic);
    if (known) return known;
    let fullName: string;
    try {
      fullName = this.fullTopicName(topic);
    } catch (error: unknown) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    const pending = this.createTopic(topic, fullName, spec);
    this.topics.set(topic, pending);
    pending.catch(() => {
      if (this.topics.get(topic) === pending) this.topics.delete(topic);
    });
    return pending;
  }

  private async createTopic(topic: string, fullName: string, spec: TopicSpec | undefined): Promise<KafkaTopic> {
    await this.connect();
    const configEntries = [{ name: 'message.timestamp.type', value: 'LogAppendTime' }];
    if (spec?.compacted === true) configEntries.push({ name: 'cleanup.policy', value: 'compact' });
    if (spec?.retentionMs !== undefined) configEntries.push({ name: 'retention.ms', value: String(spec.retentionMs) });
    const partitions = await withRetries(async () => {
      // Returns false when the topic exists already: it is left as it is.
      await this.admin.createTopics({
        topics: [
          {
            topic: fullName,
            numPartitions: spec?.partitions ?? this.defaultPartitions,
            replicationFactor: this.replicationFactor,
            configEntries,
          },
        ],
        waitForLeaders: true,
      });
      // Right after the creation the broker may not list the topic yet: retried.
      const { topics } = await this.admin.fetchTopicMetadata({ topics: [fullName] });
      return topics.find((candidate) => candidate.name === fullName)?.partitions.length ?? 0;
    });
    if (partitions < 1) throw new Error(`KafkaEventLogAdapter: no partitions found for topic "${fullName}"`);
    return { topic, fullName, partitions };
  }

  private fullTopicName(topic: unknown): string {
    return fullTopicName(this.prefix, topic);
  }

  /**
   * Per partition: log start, high watermark (read_uncommitted ListOffsets, through the reader's
   * cluster) and last stable offset (read_committed ListOffsets: kafkajs' admin).
   */
  private async watermarks(info: KafkaTopic): Promise<Watermarks[]> {
    await this.connect();
    const [stableAndLow, highs] = await withRetries(() =>
      Promise.all([
        this.admin.fetchTopicOffsets(info.fullName),
        this.reader.highWatermarks(info.fullName, info.partitions),
      ]),
    );
    const bounds = highs.map((high): Watermarks => ({ low: 0, high, stable: high }));
    for (const entry of stableAndLow) {
      const bound = bounds[entry.partition];
      if (bound) {
        bound.low = Number(entry.low);
        bound.stable = Math.min(Number(entry.high), bound.high);
      }
    }
    return bounds;
  }

  // --- consumer groups ----------------------------------------------------------------------

  private async committedOffsets(groupId: string, topics: readonly KafkaTopic[]): Promise<Map<string, number[]>> {
    await this.connect();
    const result = new Map<string, number[]>();
    for (const topic of topics) result.set(topic.fullName, new Array<number>(topic.partitions).fill(-1));
    // A fresh broker (or a moved coordinator) answers NOT_COORDINATOR / loading for a while: retried.
    const fetched = await withRetries(() =>
      this.admin.fetchOffsets({ groupId, topics: topics.map((topic) => topic.fullName) }),
    );
    for (const { topic, partitions } of fetched) {
      const offsets = result.get(topic);
      if (!offsets) continue;
      for (const { partition, offset } of partitions) {
        if (partition >= 0 && partition < offsets.length) offsets[partition] = Number(offset);
      }
    }
    return result;
  }

  /**
   * Commits `from` for every partition the group has never committed, like the embedded adapter,
   * with an "outside the group" offset commit (generation -1) that the broker accepts only while
   * the group has no member: the first member pins; later members find offsets. Returns the
   * group's committed offsets afterwards (-1 where still none).
   */
  private async pinGroupOffsets(
    groupId: string,
    topics: readonly KafkaTopic[],
    from: 'beginning' | 'end',
  ): Promise<Map<string, number[]>> {
    const committed = await this.committedOffsets(groupId, topics);
    const missing: Array<{ topic: string; partitions: Array<{ partition: number; offset: string }> }> = [];
    for (const topic of topics) {
      const offsets = committed.get(topic.fullName) ?? [];
      const unset = offsets.flatMap((offset, partition) => (offset < 0 ? [partition] : []));
      if (unset.length === 0) continue;
      const bounds = await this.watermarks(topic);
      missing.push({
        topic: topic.fullName,
        partitions: unset.map((partition) => ({
          partition,
          offset: String(from === 'end' ? (bounds[partition]?.stable ?? 0) : (bounds[partition]?.low ?? 0)),
        })),
      });
    }
    if (missing.length === 0) return committed;
    try {
      await withRetries(async () => {
        const cluster = await this.reader.connect();
        const coordinator = await cluster.findGroupCoordinator({ groupId });
        await coordinator.offsetCommit({ groupId, groupGenerationId: -1, memberId: '', topics: missing });
      });
    } catch {
      // UNKNOWN_MEMBER_ID / REBALANCE_IN_PROGRESS: the group has an active member, which pinned already.
    }
    return this.committedOffsets(groupId, topics);
  }

  // --- writes -------------------------------------------------------------------------------

  private validateRecords(records: unknown, what: string): ValidRecord[] {
    if (!Array.isArray(records)) throw new InvalidEventLogArgumentError(`${what}: expected an array of records`);
    return (records as unknown[]).map((item, index): ValidRecord => {
      if (typeof item !== 'object' || item === null) {
        throw new InvalidEventLogArgumentError(`${what}: record ${index} is not an object`);
      }
      const { topic, key, value } = item as Partial<Record<keyof AppendRecord, unknown>>;
      if (typeof key !== 'string')
        throw new InvalidEventLogArgumentError(`${what}: record ${index} has no string \`key\``);
      if (typeof value !== 'string') {
        throw new InvalidEventLogArgumentError(`${what}: record ${index} has no string \`value\``);
      }
      this.fullTopicName(topic);
      const bytes = Buffer.byteLength(key, 'utf8') + Buffer.byteLength(value, 'utf8');
      if (bytes > this.maxRecordBytes) {
        throw new InvalidEventLogArgumentError(
          `${what}: record ${index} has ${bytes} bytes of key and value, more than maxRecordBytes (${this.maxRecordBytes})`,
        );
      }
      return { topic: topic as string, key, value, bytes };
    });
  }

  /** Resolves the records' topics (creating missing ones) and partitions. */
  private async place(records: readonly ValidRecord[]): Promise<PlacedRecord[]> {
    const infos = new Map<string, KafkaTopic>();
    await Promise.all(
      [...new Set(records.map((record) => record.topic))].map(async (topic) => {
        infos.set(topic, await this.topicInfo(topic));
      }),
    );
    return records.map((record) => {
      const info = infos.get(record.topic);
      if (!info) throw new Error(`KafkaEventLogAdapter: topic "${record.topic}" was not resolved`);
      return { ...record, info, partition: partitionForKey(record.key, info.partitions) };
    });
  }

  /**
   * Queues records for the next flush. Synchronous up to the enqueue, so concurrent calls keep
   * their call order. Also used for the outputs of ephemeral subscriptions, which may still be
   * finishing a batch while the adapter closes.
   */
  private enqueue(records: readonly AppendRecord[], what: string): Promise<LogPosition[]> {
    const valid = this.validateRecords(records, what);
    if (valid.length === 0) return Promise.resolve([]);
    return new Promise<LogPosition[]>((resolve, reject) => {
      this.queue.push({ records: valid, positions: new Array<LogPosition>(valid.length), resolve, reject });
      this.scheduleFlush();
    });
  }

  private scheduleFlush(): void {
    if (this.flushing || this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => void this.flushLoop());
  }

  /** Writes the queue, one produce at a time; appends queued meanwhile go into the next round. */
  private async flushLoop(): Promise<void> {
    this.flushScheduled = false;
    this.flushing = true;
    try {
      while (this.queue.length > 0) {
        const batch = this.queue;
        this.queue = [];
        await this.write(batch);
      }
    } finally {
      this.flushing = false;
      for (const resolve of this.drained.splice(0)) resolve();
    }
  }

  private drain(): Promise<void> {
    if (!this.flushing && !this.flushScheduled && this.queue.length === 0) return Promise.resolve();
    return new Promise<void>((resolve) => this.drained.push(resolve));
  }

  private async write(batch: AppendRequest[]): Promise<void> {
    // Resolve topics per request: one bad topic fails only the requests that use it.
    const live: Array<{ request: AppendRequest; placed: PlacedRecord[] }> = [];
    try {
      await this.connect();
    } catch (error: unknown) {
      for (const request of batch) request.reject(error);
      return;
    }
    for (const request of batch) {
      try {
        live.push({ request, placed: await this.place(request.records) });
      } catch (error: unknown) {
        request.reject(error);
      }
    }
    const chunks = chunkBySize(
      live.flatMap(({ request, placed }) => placed.map((record, index) => ({ request, index, record }))),
      (entry) => entry.record.bytes,
    );
    const remaining = new Map(live.map(({ request, placed }) => [request, placed.length]));
    for (const [chunkIndex, chunk] of chunks.entries()) {
      let metadata: RecordMetadata[];
      try {
        metadata = await this.producer.sendBatch({
          topicMessages: toTopicMessages(chunk.map((entry) => entry.record)),
          acks: -1,
          timeout: this.requestTimeoutMs,
        });
      } catch (error: unknown) {
        // This and every later chunk of the batch fail; their callers are rejected.
        const failed = new Set(chunks.slice(chunkIndex).flatMap((rest) => rest.map((entry) => entry.request)));
        for (const request of failed) request.reject(error);
        return;
      }
      const baseOffsets = new Map(
        metadata.map((entry) => [`${entry.topicName}:${entry.partition}`, Number(entry.baseOffset)]),
      );
      const nextIndex = new Map<string, number>();
      for (const { request, index, record } of chunk) {
        const slot = `${record.info.fullName}:${record.partition}`;
        const base = baseOffsets.get(slot);
        const ordinal = nextIndex.get(slot) ?? 0;
        nextIndex.set(slot, ordinal + 1);
        if (base === undefined || Number.isNaN(base)) {
          request.reject(new Error(`KafkaEventLogAdapter: the broker returned no offset for ${slot}`));
          remaining.delete(request);
          continue;
        }
        request.positions[index] = { topic: record.info.topic, partition: record.partition, offset: base + ordinal };
        const left = (remaining.get(request) ?? 1) - 1;
        remaining.set(request, left);
        if (left === 0) request.resolve(request.positions);
      }
    }
  }

  // --- what subscriptions use ---------------------------------------------------------------

  private readonly host: KafkaSubscriptionHost = {
    watermarks: (topic) => this.watermarks(topic),
    append: async (records) => this.enqueue(records, 'consume output'),
    prepareOutputs: (output) => this.prepareOutputs(output),
    committedOffsets: (groupId, topics) => this.committedOffsets(groupId, topics),
    subscriptionEnded: (subscription, group) => {
      this.subscriptions.delete(subscription);
      if (group !== undefined) this.activeGroups.delete(group);
    },
  };

  private async prepareOutputs(output: ConsumeOutput | void): Promise<PreparedOutputs> {
    const outputs: unknown = output?.append;
    if (outputs === undefined) return { count: 0, chunks: [] };
    if (!Array.isArray(outputs)) {
      throw new InvalidEventLogArgumentError('consume: the handler returned `append` that is not an array');
    }
    const placed = await this.place(this.validateRecords(outputs, 'consume output'));
    return {
      count: placed.length,
      chunks: chunkBySize(placed, (record) => record.bytes).map(toTopicMessages),
    };
  }
}

/** Runs `task`, again after a backoff while it fails with a transient (retriable) Kafka error. */
async function withRetries<T>(task: () => Promise<T>, attempts = 10): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await task();
    } catch (error: unknown) {
      if (attempt >= attempts || !isTransient(error)) throw error;
      await new Promise((resolve) => setTimeout(resolve, Math.min(100 * 2 ** (attempt - 1), 1_000)));
    }
  }
}

/** kafkajs marks protocol errors that a retry may fix (`retriable`); connection errors too. */
function isTransient(error: unknown): boolean {
  for (let current = error, depth = 0; typeof current === 'object' && current !== null && depth < 5; depth++) {
    const { retriable, name, cause } = current as { retriable?: unknown; name?: unknown; cause?: unknown };
    if (retriable === true) return true;
    if (
      name === 'KafkaJSConnectionError' ||
      name === 'KafkaJSConnectionClosedError' ||
      name === 'KafkaJSRequestTimeoutError'
    ) {
      return true;
    }
    current = cause;
  }
  return false;
}

/** Splits `items` (in order) into runs of at most MAX_REQUEST_BYTES (a run has at least one item). */
function chunkBySize<T>(items: readonly T[], bytesOf: (item: T) => number): T[][] {
  const chunks: T[][] = [];
  let current: T[] = [];
  let size = 0;
  for (const item of items) {
    const bytes = bytesOf(item) + RECORD_OVERHEAD_BYTES;
    if (current.length > 0 && size + bytes > MAX_REQUEST_BYTES) {
      chunks.push(current);
      current = [];
      size = 0;
    }
    current.push(item);
    size += bytes;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}

/** One entry per topic, records in their order, each with its partition set explicitly. */
function toTopicMessages(records: readonly PlacedRecord[]): TopicMessages[] {
  const byTopic = new Map<string, Message[]>();
  for (const record of records) {
    const messages = byTopic.get(record.info.fullName) ?? [];
    messages.push({ key: record.key, value: record.value, partition: record.partition });
    byTopic.set(record.info.fullName, messages);
  }
  return [...byTopic].map(([topic, messages]) => ({ topic, messages }));
}

/** The port's checks, plus what the Kafka subscriptions carry along. */
function consumeSettings(options: ConsumeOptions, checked: CheckedConsumeOptions): KafkaSubscriptionSettings {
  const { group, maxBatchSize, tickMs } = checked;
  return {
    group,
    handler: options.handler,
    onError: options.onError,
    maxBatchSize,
    tickMs,
    onAssignment: options.onAssignment,
  };
}

function checkRetention(spec: TopicSpec): void {
  const { retentionMs } = spec;
  if (retentionMs !== undefined && (!Number.isSafeInteger(retentionMs) || retentionMs < -1)) {
    throw new InvalidEventLogArgumentError(
      `retentionMs of topic "${String(spec.topic)}" must be an integer >= -1, got ${String(retentionMs)}`,
    );
  }
}

function checkInteger(value: number, what: string, min: number): number {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new InvalidEventLogArgumentError(
      `KafkaEventLogAdapter: ${what} must be an integer >= ${min}, got ${String(value)}`,
    );
  }
  return value;
}

// --- logging --------------------------------------------------------------------------------

const LEVELS: Record<KafkaEventLogLogLevel, KafkaLogLevel> = {
  nothing: KafkaLogLevel.NOTHING,
  error: KafkaLogLevel.ERROR,
  warn: KafkaLogLevel.WARN,
  info: KafkaLogLevel.INFO,
  debug: KafkaLogLevel.DEBUG,
};

function toKafkaLogLevel(level: KafkaEventLogLogLevel): KafkaLogLevel {
  const mapped = LEVELS[level];
  if (mapped === undefined) {
    throw new InvalidEventLogArgumentError(`KafkaEventLogAdapter: unknown logLevel ${JSON.stringify(level)}`);
  }
  return mapped;
}

function levelName(level: KafkaLogLevel): KafkaEventLogLogEntry['level'] {
  switch (level) {
    case KafkaLogLevel.ERROR:
      return 'error';
    case KafkaLogLevel.WARN:
      return 'warn';
    case KafkaLogLevel.INFO:
      return 'info';
    case KafkaLogLevel.NOTHING:
    case KafkaLogLevel.DEBUG:
      return 'debug';
  }
}

/**
 * Routes kafkajs' entries to `sink`, demoting what kafkajs reports loudly but handles itself: every
 * protocol error response is logged by its Connection at ERROR before the caller retries or
 * handles it (topic exists, group rebalancing, coordinator loading, a fenced producer …).
 */
function createLogCreator(sink: (entry: KafkaEventLogLogEntry) => void) {
  return (threshold: KafkaLogLevel) =>
    ({ namespace, level, log }: LogEntry): void => {
      const { message, timestamp: _timestamp, ...fields } = log;
      let effective = level;
      if (namespace === 'Connection' && message.startsWith('Response ')) effective = KafkaLogLevel.DEBUG;
      if (message.startsWith('Limiting retries for the idempotent producer')) effective = KafkaLogLevel.DEBUG;
      if (message.includes('another concurrent operation on the same transaction')) effective = KafkaLogLevel.DEBUG;
      if (effective > threshold || effective === KafkaLogLevel.NOTHING) return;
      try {
        sink({ level: levelName(effective), namespace, message, fields: fields as Record<string, unknown> });
      } catch {
        // a failing logger must not break the client
      }
    };
}

function writeLogLine(entry: KafkaEventLogLogEntry): void {
  process.stderr.write(
    `${JSON.stringify({ time: new Date().toISOString(), level: entry.level, logger: 'kafkajs', namespace: entry.namespace, msg: entry.message, ...entry.fields })}\n`,
  );
}
