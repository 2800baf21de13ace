import type { StoredRecord } from '../../event-log.port';
import type { FetchRequest, FetchResult, KafkaPartitionReader } from './kafka-partition-reader';
import {
  INITIAL_BACKOFF_MS,
  KafkaSubscriptionBase,
  MAX_BACKOFF_MS,
  type KafkaSubscriptionHost,
  type KafkaSubscriptionSettings,
  type KafkaTopic,
} from './kafka-subscription-base';

/**
 * An ephemeral subscription (no consumer group): every partition of its topics is "assigned" to
 * it and read with plain Fetch requests from the start positions it was given (`from`), nothing
 * is committed. No group is joined, so records appended after `consume` resolved are always seen
 * (the start positions were fixed before), and there is no throwaway group to clean up.
 *
 * Handler outputs go through the adapter's ordinary durable append, before the next batch.
 */
export class KafkaAssignedSubscription extends KafkaSubscriptionBase {
  private loop: Promise<void> | undefined;

  constructor(
    host: KafkaSubscriptionHost,
    topics: readonly KafkaTopic[],
    settings: KafkaSubscriptionSettings,
    private readonly reader: KafkaPartitionReader,
    private readonly maxWaitMs: number,
  ) {
    super(host, topics, settings);
  }

  /** Starts at `start` (next offset per partition, by prefixed topic name). */
  async start(start: Map<string, number[]>): Promise<void> {
    for (const [fullName, offsets] of start) {
      offsets.forEach((offset, partition) => this.advance(fullName, partition, offset));
    }
    await this.reader.connect();
    this.loop = this.run();
    this.armTick();
  }

  protected override async shutdownConsumer(): Promise<void> {
    // Disconnecting interrupts a fetch waiting for data; a batch being handled still finishes.
    await this.reader.disconnect().catch(() => undefined);
    await this.loop;
  }

  protected override async tick(): Promise<void> {
    const output = await this.callHandler([]);
    const records = output?.append ?? [];
    if (records.length > 0) await this.host.append(records);
  }

  private async run(): Promise<void> {
    await new Promise<void>((resolve) => setImmediate(resolve));
    let backoffMs = INITIAL_BACKOFF_MS;
    while (!this.stopping) {
      try {
        const requests: FetchRequest[] = this.topics.flatMap((topic) =>
          Array.from({ length: topic.partitions }, (_, partition) => ({
            fullName: topic.fullName,
            partition,
            offset: this.position(topic.fullName, partition),
          })),
        );
        const results = await this.reader.fetch(requests, this.maxWaitMs);
        let retry = false;
        for (const result of results) {
          if (this.stopping) return;
          if (result.outOfRange) await this.recoverOutOfRange(result);
          else if (result.retry) retry = true;
          else await this.handle(result);
        }
        backoffMs = INITIAL_BACKOFF_MS;
        if (retry) await this.sleep(backoffMs);
      } catch (error: unknown) {
        if (this.stopping) return;
        this.report(error, []);
        await this.sleep(backoffMs);
        backoffMs = Math.min(backoffMs * 2, MAX_BACKOFF_MS);
      }
    }
  }

  /** Hands a partition's fetched records to the handler in chunks; a failed chunk is retried as is. */
  private async handle(result: FetchResult): Promise<void> {
    const topic = this.byFullName.get(result.fullName);
    if (!topic) return;
    const records: StoredRecord[] = result.records.map((record) => ({ ...record, topic: topic.topic }));
    let backoffMs = INITIAL_BACKOFF_MS;
    for (let start = 0; start < records.length; ) {
      const chunk = records.slice(start, start + this.settings.maxBatchSize);
      const isLast = start + chunk.length >= records.length;
      const next = isLast ? result.nextOffset : (chunk[chunk.length - 1]?.offset ?? result.offset) + 1;
      const handled = await this.serial.run(async () => {
        if (this.stopping) return false;
        try {
          const output = await this.callHandler(chunk);
          const outputs = output?.append ?? [];
          if (outputs.length > 0) await this.host.append(outputs);
          return true;
        } catch (error: unknown) {
          this.report(error, chunk);
          return false;
        }
      });
      if (this.stopping) return;
      if (!handled) {
        await this.sleep(backoffMs);
        backoffMs = Math.min(backoffMs * 2, MAX_BACKOFF_MS);
        continue;
      }
      backoffMs = INITIAL_BACKOFF_MS;
      this.advance(result.fullName, result.partition, next);
      start += chunk.length;
    }
    // Only transaction markers / aborted records: move past them.
    if (records.length === 0) this.advance(result.fullName, result.partition, result.nextOffset);
  }

  /** Below the log start (retention): continue from the start; beyond the end: from the end. */
  private async recoverOutOfRange(result: FetchResult): Promise<void> {
    const topic = this.byFullName.get(result.fullName);
    if (!topic) return;
    const bounds = (await this.host.watermarks(topic))[result.partition];
    if (!bounds) return;
    const positions = this.positions.get(result.fullName);
    if (!positions) return;
    positions[result.partition] = result.offset < bounds.low ? bounds.low : Math.min(result.offset, bounds.high);
  }
}
