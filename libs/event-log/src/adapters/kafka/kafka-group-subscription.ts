import {
  Partitioners,
  type Consumer,
  type ConsumerConfig,
  type EachBatchPayload,
  type Kafka,
  type KafkaMessage,
  type Producer,
  type ProducerConfig,
} from 'kafkajs';
import type { StoredRecord } from '../../event-log.port';
import {
  INITIAL_BACKOFF_MS,
  isRebalanceError,
  KafkaSubscriptionBase,
  MAX_BACKOFF_MS,
  type KafkaSubscriptionHost,
  type KafkaSubscriptionSettings,
  type KafkaTopic,
  type PreparedOutputs,
} from './kafka-subscription-base';

export interface KafkaGroupSubscriptionConfig {
  kafka: Kafka;
  /** The prefixed group id. */
  groupId: string;
  /** Prefix of the per-partition transactional ids (see the class doc). */
  transactionalIdPrefix: string;
  /** kafkajs consumer settings (timeouts, fetch sizes); groupId and isolation are set here. */
  consumer: Omit<ConsumerConfig, 'groupId'>;
  /** kafkajs producer settings of the transactional producers. */
  producer: Pick<ProducerConfig, 'retry' | 'transactionTimeout'>;
  /** `from` of the subscription, for partitions whose group has no committed offset at all. */
  fromBeginning: boolean;
  heartbeatIntervalMs: number;
  requestTimeoutMs: number;
}

/** A partition this member owns, with the transactional producer that fences its predecessors. */
interface OwnedPartition {
  topic: KafkaTopic;
  partition: number;
  /** The group generation (counted by this subscription) in which the producer fenced the partition. */
  generation: number;
  producer: Producer | undefined;
  /** The group's committed offset, re-read after fencing (-1: none). */
  committed: number;
}

type ChunkOutcome = 'done' | 'retry' | 'refetch' | 'stopped';

/**
 * A consumer-group subscription: a kafkajs consumer (`eachBatch`, manual offsets, read_committed)
 * and, per owned input partition, a transactional producer for consume-transform-produce.
 *
 * Transaction scheme ("one transactional id per input partition", the scheme of Kafka Streams'
 * original exactly-once mode): the outputs of a chunk of records of partition P and the group's new
 * offset of P are committed in ONE Kafka transaction whose transactional id is
 * `<transactionalIdPrefix><group>:<topic>:<P>`. Whoever processes P uses that same id, so:
 * - Taking over P (first batch of P after every rebalance, or a restart after kill -9) starts with
 *   InitProducerId for that id: the broker aborts the predecessor's open transaction (its outputs
 *   are never visible to read_committed consumers) and fences it (its later sends/commits fail).
 *   Only then is the committed offset of P read again, and records below it are skipped — they
 *   were handled by a transaction that did commit. kafkajs' TxnOffsetCommit has no group
 *   generation (KIP-447 fencing), so a member-scoped id could not fence a zombie; per-partition
 *   ids can.
 * - A failed transaction is aborted and the partition re-fenced before the records are handled
 *   again, so an unknown outcome (commit sent, answer lost) cannot duplicate outputs either.
 * - Chunks without outputs commit with a plain OffsetCommit, which carries the generation: a
 *   member that lost the partition gets ILLEGAL_GENERATION / REBALANCE_IN_PROGRESS and rejoins.
 * - Ticks (`tickMs`) run in a transaction of the producer of the first owned partition (fenced by
 *   its next owner like any other); a member that owns no partition does not tick.
 */
export class KafkaGroupSubscription extends KafkaSubscriptionBase {
  private readonly consumer: Consumer;
  /** Incremented at every (re)join; a partition's producer must have fenced in the current one. */
  private generation = 0;
  private assignment = new Map<string, number[]>();
  /** The generation onAssignment was last told about. */
  private notifiedGeneration = -1;
  private readonly owned = new Map<string, OwnedPartition>();

  constructor(
    host: KafkaSubscriptionHost,
    topics: readonly KafkaTopic[],
    settings: KafkaSubscriptionSettings,
    private readonly config: KafkaGroupSubscriptionConfig,
  ) {
    super(host, topics, settings);
    this.consumer = config.kafka.consumer({ ...config.consumer, groupId: config.groupId, readUncommitted: false });
  }

  /** Joins the group; resolves once this member has its assignment. */
  async start(committed: Map<string, number[]>): Promise<void> {
    for (const [fullName, offsets] of committed) {
      offsets.forEach((offset, partition) => this.advance(fullName, partition, offset));
    }
    const { events } = this.consumer;
    this.consumer.on(events.GROUP_JOIN, (event) => {
      this.generation++;
      this.assignment = new Map(Object.entries(event.payload.memberAssignment));
      void this.serial
        .run(async () => {
          await this.releaseRevoked();
          await this.notifyAssignment();
        })
        .catch((error: unknown) => this.report(error, []));
    });
    // A fetch that found only transaction markers / aborted records: kafkajs moves past them
    // without calling eachBatch; so does the position `caughtUp` compares with.
    this.consumer.on(events.END_BATCH_PROCESS, (event) => {
      const { topic, partition, batchSize, lastOffset } = event.payload;
      if (batchSize === 0 && this.assignment.get(topic)?.includes(partition)) {
        this.advance(topic, partition, Number(lastOffset) + 1);
      }
    });
    this.consumer.on(events.CRASH, (event) => {
      if (!event.payload.restart) this.report(event.payload.error, []);
    });
    await this.consumer.connect();
    await this.consumer.subscribe({
      topics: this.topics.map((topic) => topic.fullName),
      fromBeginning: this.config.fromBeginning,
    });
    await this.consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: 1,
      eachBatch: (payload) => this.eachBatch(payload),
    });
    // stop() during the join found no running consumer to stop: stop it now.
    if (this.stopping) await this.consumer.disconnect();
    this.armTick();
  }

  protected override async shutdownConsumer(): Promise<void> {
    try {
      // Waits for the batch in flight (our eachBatch stops after the chunk it is handling), leaves the group.
      await this.consumer.disconnect();
    } finally {
      await this.serial.run(async () => {
        await Promise.all([...this.owned.values()].map((owned) => disconnectQuietly(owned.producer)));
        this.owned.clear();
      });
    }
  }

  protected override async refreshPositions(): Promise<void> {
    const committed = await this.host.committedOffsets(this.config.groupId, this.topics);
    for (const [fullName, offsets] of committed) {
      offsets.forEach((offset, partition) => this.advance(fullName, partition, offset));
    }
  }

  protected override async tick(): Promise<void> {
    const target = this.firstOwnedPartition();
    if (!target) return; // time-based work belongs to partition owners
    let owned: OwnedPartition;
    let prepared: PreparedOutputs;
    try {
      await this.notifyAssignment();
      owned = await this.ensureOwned(target.topic, target.partition);
      prepared = await this.host.prepareOutputs(await this.callHandler([]));
    } catch (error: unknown) {
      this.report(error, []);
      return;
    }
    if (prepared.count === 0) return;
    try {
      await this.commitTransaction(owned, prepared, undefined);
    } catch (error: unknown) {
      await this.invalidate(owned);
      this.report(error, []);
    }
  }

  private async eachBatch(payload: EachBatchPayload): Promise<void> {
    const { batch } = payload;
    const topic = this.byFullName.get(batch.topic);
    if (!topic || this.stopping || !payload.isRunning() || payload.isStale()) return;
    const { partition } = batch;
    const lastOffset = Number(batch.lastOffset());

    let owned: OwnedPartition;
    try {
      owned = await this.serial.run(async () => {
        await this.notifyAssignment();
        return this.ensureOwned(topic, partition);
      });
    } catch (error: unknown) {
      if (isRebalanceError(error)) throw error;
      this.report(error, []);
      await this.pause(INITIAL_BACKOFF_MS * 5, payload);
      return; // nothing resolved: kafkajs fetches the same records again
    }

    // Records below the committed offset were handled by a transaction that committed (possibly
    // of the member this one just fenced): skip them.
    const records = batch.messages
      .map((message) => toStoredRecord(topic, partition, message))
      .filter((record) => record.offset >= owned.committed);
    if (records.length === 0) {
      payload.resolveOffset(String(Math.max(lastOffset, owned.committed - 1)));
      return;
    }

    let backoffMs = INITIAL_BACKOFF_MS;
    for (let start = 0; start < records.length; ) {
      if (this.stopping || !payload.isRunning() || payload.isStale()) return;
      const chunk = records.slice(start, start + this.settings.maxBatchSize);
      const isLast = start + chunk.length >= records.length;
      // The last chunk also covers trailing transaction markers / aborted records of the fetch.
      const next = isLast ? lastOffset + 1 : (chunk[chunk.length - 1]?.offset ?? lastOffset) + 1;
      const outcome = await this.handleChunk(owned, chunk, next, payload);
      switch (outcome) {
        case 'done':
          payload.resolveOffset(String(next - 1));
          start += chunk.length;
          backoffMs = INITIAL_BACKOFF_MS;
          await payload.heartbeat(); // throws when the group rebalances: kafkajs rejoins
          break;
        case 'retry':
          await this.pause(backoffMs, payload);
          backoffMs = Math.min(backoffMs * 2, MAX_BACKOFF_MS);
          break;
        case 'refetch':
          // The transaction failed and the partition must be fenced again: return without
          // resolving, kafkajs fetches the same records, and they are filtered by the committed
          // offset re-read after fencing.
          await this.pause(backoffMs, payload);
          return;
        case 'stopped':
          return;
      }
    }
  }

  /** Handler + commit of one chunk, inside the serial queue (never overlapping a tick). */
  private handleChunk(
    owned: OwnedPartition,
    records: StoredRecord[],
    next: number,
    payload: EachBatchPayload,
  ): Promise<ChunkOutcome> {
    return this.serial.run(async (): Promise<ChunkOutcome> => {
      if (this.stopping) return 'stopped';
      if (owned.generation !== this.generation || !owned.producer) return 'refetch';
      let prepared: PreparedOutputs;
      const keepAlive = this.keepAlive(payload);
      try {
        prepared = await this.host.prepareOutputs(await this.callHandler(records));
      } catch (error: unknown) {
        this.report(error, records);
        return 'retry';
      } finally {
        keepAlive.stop();
      }
      try {
        if (prepared.count === 0) {
          await payload.commitOffsetsIfNecessary({
            topics: [
              { topic: owned.topic.fullName, partitions: [{ partition: owned.partition, offset: String(next) }] },
            ],
          });
        } else {
          await this.commitTransaction(owned, prepared, next);
        }
      } catch (error: unknown) {
        if (isRebalanceError(error)) throw error;
        await this.invalidate(owned);
        this.report(error, records);
        return 'refetch';
      }
      owned.committed = next;
      this.advance(owned.topic.fullName, owned.partition, next);
      return 'done';
    });
  }

  /** Outputs (+ the partition's new offset) in one transaction of the partition's producer. */
  private async commitTransaction(
    owned: OwnedPartition,
    prepared: PreparedOutputs,
    next: number | undefined,
  ): Promise<void> {
    const { producer } = owned;
    if (!producer) throw new Error(`no transactional producer for ${owned.topic.fullName}[${owned.partition}]`);
    const transaction = await producer.transaction();
    try {
      for (const topicMessages of prepared.chunks) {
        await transaction.sendBatch({ topicMessages, acks: -1, timeout: this.config.requestTimeoutMs });
      }
      if (next !== undefined) {
        await transaction.sendOffsets({
          consumerGroupId: this.config.groupId,
          topics: [{ topic: owned.topic.fullName, partitions: [{ partition: owned.partition, offset: String(next) }] }],
        });
      }
      await transaction.commit();
    } catch (error: unknown) {
      try {
        if (transaction.isActive()) await transaction.abort();
      } catch {
        // Fenced or unreachable: the next InitProducerId for this transactional id aborts it.
      }
      throw error;
    }
  }

  /**
   * The partition's producer, fenced in the current generation: InitProducerId for the
   * partition's transactional id (aborting and fencing any predecessor), then the committed
   * offset read again. Runs inside the serial queue.
   */
  private async ensureOwned(topic: KafkaTopic, partition: number): Promise<OwnedPartition> {
    const key = `${topic.fullName}:${partition}`;
    const current = this.owned.get(key);
    if (current?.producer && current.generation === this.generation) return current;
    if (current) await this.invalidate(current);
    const generation = this.generation;
    const producer = this.config.kafka.producer({
      ...this.config.producer,
      transactionalId: `${this.config.transactionalIdPrefix}${this.config.groupId}:${topic.fullName}:${partition}`,
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
      createPartitioner: Partitioners.DefaultPartitioner,
    });
    try {
      await producer.connect();
      const fence = await producer.transaction(); // InitProducerId: aborts + fences the predecessor
      await fence.abort(); // nothing was sent: no EndTxn
      const committed =
        (await this.host.committedOffsets(this.config.groupId, [topic])).get(topic.fullName)?.[partition] ?? -1;
      const owned: OwnedPartition = { topic, partition, generation, producer, committed };
      this.owned.set(key, owned);
      if (committed >= 0) this.advance(topic.fullName, partition, committed);
      return owned;
    } catch (error: unknown) {
      await disconnectQuietly(producer);
      throw error;
    }
  }

  /** Drops a partition's producer: the next use fences again and re-reads the committed offset. */
  private async invalidate(owned: OwnedPartition): Promise<void> {
    const { producer } = owned;
    owned.producer = undefined;
    await disconnectQuietly(producer);
  }

  /**
   * Tells the caller (onAssignment) which partitions this member owns, once per generation,
   * after fencing every one of them: what it then reads from the log is complete.
   * Runs inside `serial`.
   */
  private async notifyAssignment(): Promise<void> {
    const { onAssignment } = this.settings;
    if (!onAssignment || this.notifiedGeneration === this.generation) return;
    const generation = this.generation;
    const assigned: { topic: string; partition: number }[] = [];
    for (const topic of this.topics) {
      for (const partition of [...(this.assignment.get(topic.fullName) ?? [])].sort((a, b) => a - b)) {
        await this.ensureOwned(topic, partition);
        assigned.push({ topic: topic.topic, partition });
      }
    }
    await onAssignment(assigned);
    this.notifiedGeneration = generation;
  }

  /** After a rebalance: release the producers of partitions this member no longer owns. */
  private async releaseRevoked(): Promise<void> {
    for (const [key, owned] of this.owned) {
      if (this.assignment.get(owned.topic.fullName)?.includes(owned.partition)) continue;
      this.owned.delete(key);
      await this.invalidate(owned);
    }
  }

  private firstOwnedPartition(): { topic: KafkaTopic; partition: number } | undefined {
    for (const topic of this.topics) {
      const partitions = [...(this.assignment.get(topic.fullName) ?? [])].sort((a, b) => a - b);
      const partition = partitions[0];
      if (partition !== undefined) return { topic, partition };
    }
    return undefined;
  }

  /** Backoff that keeps heartbeating (and throws on a rebalance, so kafkajs rejoins). */
  private async pause(ms: number, payload: EachBatchPayload): Promise<void> {
    const until = Date.now() + ms;
    while (!this.stopping && Date.now() < until) {
      await this.sleep(Math.min(this.config.heartbeatIntervalMs, until - Date.now()));
      await payload.heartbeat();
    }
  }

  /**
   * Heartbeats while a (long) handler runs, so the session does not expire. A rebalance noticed
   * here surfaces at the heartbeat after the chunk's commit.
   */
  private keepAlive(payload: EachBatchPayload): { stop(): void } {
    const timer = setInterval(() => {
      payload.heartbeat().catch(() => undefined);
    }, this.config.heartbeatIntervalMs);
    timer.unref();
    return { stop: () => clearInterval(timer) };
  }
}

function toStoredRecord(topic: KafkaTopic, partition: number, message: KafkaMessage): StoredRecord {
  return {
    topic: topic.topic,
    partition,
    offset: Number(message.offset),
    key: message.key?.toString('utf8') ?? '',
    value: message.value?.toString('utf8') ?? '',
    timestamp: Number(message.timestamp),
  };
}

async function disconnectQuietly(producer: Producer | undefined): Promise<void> {
  if (!producer) return;
  try {
    await producer.disconnect();
  } catch {
    // already disconnected or unreachable
  }
}
