import { PartitionAssigners, type Broker, type Cluster, type Consumer, type Kafka } from 'kafkajs';

/**
 * Reads partitions with plain Fetch requests (read_committed), without a consumer group: the
 * "assign + seek" of the Java consumer, which kafkajs does not offer. Used by `EventLog.read` and
 * by ephemeral subscriptions (no group: nothing to join, positions are exact from the start).
 *
 * kafkajs hands the `Cluster` (its metadata + connection pool) to custom partition assigners —
 * a public, typed extension point — so the reader creates a consumer that is never run, only to
 * capture that cluster and send Fetch requests through it. Each reader has its own connections:
 * a broker handles the requests of one connection one at a time, so an idle long-poll must not
 * sit in front of other callers' reads.
 *
 * Records of aborted transactions and control records (transaction markers) are dropped, like a
 * read_committed consumer does; they still take offsets, so `nextOffset` may jump past them.
 */

/** Kafka's isolation level for Fetch: 1 = READ_COMMITTED (only records of committed transactions, up to the LSO). */
const READ_COMMITTED = 1;
const MAX_FETCH_BYTES = 10 * 1024 * 1024;
const MAX_PARTITION_FETCH_BYTES = 1024 * 1024;
/** Control record key of an abort marker: version 0, type 0 (ABORT). */
const ABORT_MARKER_KEY = Buffer.from([0, 0, 0, 0]);
/** Protocol errors after which the partition's leader must be looked up again. */
const STALE_METADATA_ERRORS = new Set([
  'LEADER_NOT_AVAILABLE',
  'NOT_LEADER_FOR_PARTITION',
  'FENCED_LEADER_EPOCH',
  'UNKNOWN_LEADER_EPOCH',
  'UNKNOWN_TOPIC_OR_PARTITION',
  'REPLICA_NOT_AVAILABLE',
]);

export interface FetchRequest {
  /** Topic name as the broker knows it (with the deployment prefix). */
  fullName: string;
  partition: number;
  offset: number;
}

/** A record as stored, before the adapter maps the topic back to its logical name. */
export interface FetchedRecord {
  partition: number;
  offset: number;
  key: string;
  value: string;
  timestamp: number;
}

export interface FetchResult extends FetchRequest {
  /** Committed, non-control records at or after `offset`, in offset order. */
  records: FetchedRecord[];
  /** Where the next fetch of this partition starts (past control records and aborted data too). */
  nextOffset: number;
  /** The partition's end: the offset the next appended record gets. */
  highWatermark: number;
  /** read_committed readers see records below this offset only (an open transaction starts here). */
  lastStableOffset: number;
  /** The fetch offset is outside the partition's log (below its start or above its end). */
  outOfRange: boolean;
  /** The partition could not be fetched this time (leader moved, connection lost …); try again. */
  retry: boolean;
}

interface RawBatchContext {
  firstOffset: string;
  lastOffsetDelta: number;
  producerId: string;
  inTransaction: boolean;
}

interface RawMessage {
  offset: string;
  timestamp: string;
  key: Buffer | null;
  value: Buffer | null;
  isControlRecord: boolean;
  batchContext: RawBatchContext | undefined;
}

interface RawPartition {
  partition: number;
  highWatermark: number;
  lastStableOffset: number;
  abortedTransactions: Array<{ producerId: string; firstOffset: string }>;
  messages: RawMessage[];
}

export class KafkaPartitionReader {
  private readonly consumer: Consumer;
  private cluster: Cluster | undefined;
  private connecting: Promise<Cluster> | undefined;
  private closed = false;

  constructor(kafka: Kafka, captureGroupId: string) {
    // The group is never joined: the consumer exists only to hand us its cluster. Fetch requests
    // set read_committed themselves; the cluster's own isolation level applies to ListOffsets,
    // where read_uncommitted gives the high watermark (read_committed: the last stable offset).
    this.consumer = kafka.consumer({
      groupId: captureGroupId,
      allowAutoTopicCreation: false,
      readUncommitted: true,
      partitionAssigners: [
        (config) => {
          this.cluster = config.cluster;
          return PartitionAssigners.roundRobin(config);
        },
      ],
    });
  }

  /** Connects on first use (and again after a failed attempt). */
  connect(): Promise<Cluster> {
    if (this.closed) return Promise.reject(new Error('KafkaPartitionReader: disconnected'));
    if (!this.connecting) {
      const attempt = this.consumer.connect().then(() => {
        if (!this.cluster)
          throw new Error('KafkaPartitionReader: kafkajs did not pass its cluster to the partition assigner');
        return this.cluster;
      });
      this.connecting = attempt;
      attempt.catch(() => {
        if (this.connecting === attempt) this.connecting = undefined;
      });
    }
    return this.connecting;
  }

  /** High watermarks (the next offset to be written, open transactions included) of the partitions. */
  async highWatermarks(fullName: string, partitions: number): Promise<number[]> {
    const cluster = await this.connect();
    await cluster.addTargetTopic(fullName);
    const [offsets] = await cluster.fetchTopicsOffset([
      {
        topic: fullName,
        fromBeginning: false,
        partitions: Array.from({ length: partitions }, (_, partition) => ({ partition })),
      },
    ]);
    const highs = new Array<number>(partitions).fill(0);
    for (const { partition, offset } of offsets?.partitions ?? []) {
      if (partition >= 0 && partition < partitions) highs[partition] = Number(offset);
    }
    return highs;
  }

  async disconnect(): Promise<void> {
    this.closed = true;
    await this.consumer.disconnect();
  }

  /**
   * One Fetch per partition leader (concurrently), waiting up to `maxWaitMs` for data when there is
   * none. Returns one result per request, in request order.
   */
  async fetch(requests: readonly FetchRequest[], maxWaitMs: number): Promise<FetchResult[]> {
    const cluster = await this.connect();
    await cluster.addMultipleTargetTopics([...new Set(requests.map((request) => request.fullName))]);
    const byLeader = new Map<string, FetchRequest[]>();
    const results = new Map<FetchRequest, FetchResult>();
    let staleMetadata = false;
    for (const request of requests) {
      const leaders = cluster.findLeaderForPartitions(request.fullName, [request.partition]);
      const leader = Object.keys(leaders)[0];
      if (leader === undefined || leader === '-1') {
        staleMetadata = true;
        results.set(request, emptyResult(request, { retry: true }));
        continue;
      }
      const list = byLeader.get(leader) ?? [];
      list.push(request);
      byLeader.set(leader, list);
    }
    await Promise.all(
      [...byLeader].map(async ([leader, list]) => {
        try {
          const broker = await cluster.findBroker({ nodeId: leader });
          for (const result of await fetchFromBroker(broker, list, maxWaitMs)) {
            results.set(result.request, result.result);
          }
        } catch (error: unknown) {
          const type = errorType(error);
          const outOfRange = type === 'OFFSET_OUT_OF_RANGE' ? outOfRangePartition(error) : undefined;
          if (type !== undefined && STALE_METADATA_ERRORS.has(type)) staleMetadata = true;
          else if (outOfRange === undefined && !isRetriable(error)) throw error;
          for (const request of list) {
            const isTarget =
              outOfRange !== undefined &&
              outOfRange.topic === request.fullName &&
              outOfRange.partition === request.partition;
            results.set(request, emptyResult(request, isTarget ? { outOfRange: true } : { retry: true }));
          }
        }
      }),
    );
    if (staleMetadata) await cluster.refreshMetadata();
    return requests.map((request) => results.get(request) ?? emptyResult(request, { retry: true }));
  }

  /**
   * Up to `limit` committed records of one partition from `fromOffset` (inclusive), up to the
   * partition's end as of the call. Records of a transaction that is still being committed (its
   * markers not written yet: the EndTxn answer does not wait for them) become readable moments
   * later; the read waits for those, up to `stableWaitMs`, and then returns what is readable.
   * `watermarks` resolves an out-of-range offset: below the log start, reading starts there.
   */
  async read(
    fullName: string,
    partition: number,
    fromOffset: number,
    limit: number,
    watermarks: () => Promise<{ low: number; high: number }>,
    stableWaitMs: number,
  ): Promise<FetchedRecord[]> {
    const records: FetchedRecord[] = [];
    let offset = fromOffset;
    let retries = 0;
    let end: number | undefined;
    let waitedSince: number | undefined;
    while (records.length < limit) {
      const [result] = await this.fetch([{ fullName, partition, offset }], 0);
      if (!result) break;
      if (result.retry) {
        if (++retries > 10) throw new Error(`could not fetch ${fullName}[${partition}] from offset ${offset}`);
        await delay(50 * retries);
        continue;
      }
      if (result.outOfRange) {
        const { low, high } = await watermarks();
        if (offset < low && retries++ < 10) {
          offset = low;
          continue;
        }
        if (offset >= high) break;
        throw new Error(`offset ${offset} of ${fullName}[${partition}] is out of range (${low}..${high})`);
      }
      end ??= result.highWatermark;
      for (const record of result.records) {
        if (records.length >= limit) break;
        records.push(record);
      }
      if (result.nextOffset > offset) {
        offset = result.nextOffset;
        waitedSince = undefined;
        if (offset >= end) break; // everything below the end is read
        continue;
      }
      // Nothing more is readable: done, unless a transaction below the end is being completed.
      if (offset >= end || result.lastStableOffset >= end) break;
      waitedSince ??= Date.now();
      if (Date.now() - waitedSince >= stableWaitMs) break;
      await delay(10);
    }
    return records;
  }
}

async function fetchFromBroker(
  broker: Broker,
  requests: FetchRequest[],
  maxWaitMs: number,
): Promise<Array<{ request: FetchRequest; result: FetchResult }>> {
  const topics = new Map<string, Array<{ partition: number; fetchOffset: string; maxBytes: number }>>();
  for (const request of requests) {
    const partitions = topics.get(request.fullName) ?? [];
    partitions.push({
      partition: request.partition,
      fetchOffset: String(request.offset),
      maxBytes: MAX_PARTITION_FETCH_BYTES,
    });
    topics.set(request.fullName, partitions);
  }
  const response: unknown = await broker.fetch({
    replicaId: -1,
    isolationLevel: READ_COMMITTED,
    maxWaitTime: maxWaitMs,
    minBytes: 1,
    maxBytes: MAX_FETCH_BYTES,
    topics: [...topics].map(([topic, partitions]) => ({ topic, partitions })),
  });
  const partitionsByTopic = parseFetchResponse(response);
  return requests.map((request) => {
    const raw = partitionsByTopic.get(request.fullName)?.get(request.partition);
    return { request, result: raw ? toResult(request, raw) : emptyResult(request, { retry: true }) };
  });
}

function toResult(request: FetchRequest, raw: RawPartition): FetchResult {
  const records: FetchedRecord[] = [];
  let nextOffset = request.offset;
  const aborted = [...raw.abortedTransactions].sort((a, b) => Number(a.firstOffset) - Number(b.firstOffset));
  const abortedProducers = new Set<string>();
  for (const message of raw.messages) {
    const offset = Number(message.offset);
    const context = message.batchContext;
    if (context) {
      nextOffset = Math.max(nextOffset, Number(context.firstOffset) + context.lastOffsetDelta + 1);
    }
    if (offset < request.offset) continue; // a batch may start before the requested offset
    nextOffset = Math.max(nextOffset, offset + 1);
    while (aborted.length > 0 && Number(aborted[0]?.firstOffset) <= offset) {
      const next = aborted.shift();
      if (next) abortedProducers.add(next.producerId);
    }
    if (message.isControlRecord) {
      if (context && message.key && ABORT_MARKER_KEY.equals(message.key)) abortedProducers.delete(context.producerId);
      continue;
    }
    if (context?.inTransaction && abortedProducers.has(context.producerId)) continue;
    records.push({
      partition: request.partition,
      offset,
      key: message.key?.toString('utf8') ?? '',
      value: message.value?.toString('utf8') ?? '',
      timestamp: Number(message.timestamp),
    });
  }
  return {
    ...request,
    records,
    nextOffset,
    highWatermark: raw.highWatermark,
    lastStableOffset: raw.lastStableOffset,
    outOfRange: false,
    retry: false,
  };
}

function emptyResult(request: FetchRequest, flags: { outOfRange?: boolean; retry?: boolean }): FetchResult {
  return {
    ...request,
    records: [],
    nextOffset: request.offset,
    highWatermark: -1,
    lastStableOffset: -1,
    outOfRange: flags.outOfRange ?? false,
    retry: flags.retry ?? false,
  };
}

// --- parsing kafkajs' decoded Fetch response (typed `any` by kafkajs) -------------------------

function parseFetchResponse(response: unknown): Map<string, Map<number, RawPartition>> {
  const byTopic = new Map<string, Map<number, RawPartition>>();
  const responses = field(response, 'responses');
  if (!Array.isArray(responses)) throw new Error('unexpected Fetch response from kafkajs: no `responses` array');
  for (const topicResponse of responses as unknown[]) {
    const topicName = field(topicResponse, 'topicName');
    const partitions = field(topicResponse, 'partitions');
    if (typeof topicName !== 'string' || !Array.isArray(partitions)) continue;
    const byPartition = byTopic.get(topicName) ?? new Map<number, RawPartition>();
    for (const partitionResponse of partitions as unknown[]) {
      const partition = field(partitionResponse, 'partition');
      const messages = field(partitionResponse, 'messages');
      const abortedTransactions = field(partitionResponse, 'abortedTransactions');
      if (typeof partition !== 'number' || !Array.isArray(messages)) continue;
      const highWatermark = Number(field(partitionResponse, 'highWatermark'));
      const lastStable = Number(field(partitionResponse, 'lastStableOffset') ?? highWatermark);
      byPartition.set(partition, {
        partition,
        highWatermark,
        lastStableOffset: Number.isFinite(lastStable) && lastStable >= 0 ? lastStable : highWatermark,
        abortedTransactions: Array.isArray(abortedTransactions)
          ? (abortedTransactions as unknown[]).map((entry) => ({
              producerId: String(field(entry, 'producerId')),
              firstOffset: String(field(entry, 'firstOffset')),
            }))
          : [],
        messages: (messages as unknown[]).map(parseMessage),
      });
    }
    byTopic.set(topicName, byPartition);
  }
  return byTopic;
}

function parseMessage(message: unknown): RawMessage {
  const context = field(message, 'batchContext');
  const key = field(message, 'key');
  const value = field(message, 'value');
  return {
    offset: String(field(message, 'offset')),
    timestamp: String(field(message, 'timestamp')),
    key: Buffer.isBuffer(key) ? key : null,
    value: Buffer.isBuffer(value) ? value : null,
    isControlRecord: field(message, 'isControlRecord') === true,
    batchContext:
      typeof context === 'object' && context !== null
        ? {
            firstOffset: String(field(context, 'firstOffset')),
            lastOffsetDelta: Number(field(context, 'lastOffsetDelta')),
            producerId: String(field(context, 'producerId')),
            inTransaction: field(context, 'inTransaction') === true,
          }
        : undefined,
  };
}

function field(value: unknown, name: string): unknown {
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[name] : undefined;
}

function errorType(error: unknown): string | undefined {
  const type = field(error, 'type');
  return typeof type === 'string' ? type : undefined;
}

function isRetriable(error: unknown): boolean {
  const name = field(error, 'name');
  return (
    field(error, 'retriable') === true ||
    name === 'KafkaJSConnectionError' ||
    name === 'KafkaJSConnectionClosedError' ||
    name === 'KafkaJSRequestTimeoutError' ||
    name === 'KafkaJSBrokerNotFound'
  );
}

function outOfRangePartition(error: unknown): { topic: string; partition: number } | undefined {
  const topic = field(error, 'topic');
  const partition = field(error, 'partition');
  return typeof topic === 'string' && typeof partition === 'number' ? { topic, partition } : undefined;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
