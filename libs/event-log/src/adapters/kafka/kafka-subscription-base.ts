import type { TopicMessages } from 'kafkajs';
import { InvalidEventLogArgumentError, SubscriptionStoppedError } from '../../event-log.errors';
import type {
  AppendRecord,
  ConsumeOptions,
  ConsumeOutput,
  LogPosition,
  StoredRecord,
  Subscription,
} from '../../event-log.port';

/** A topic as the Kafka adapter knows it: logical name, prefixed name, partition count. */
export interface KafkaTopic {
  topic: string;
  fullName: string;
  partitions: number;
}

export interface Watermarks {
  /** The log start offset (older records were deleted by retention). */
  low: number;
  /** The high watermark: the offset the next record gets (records of open transactions included). */
  high: number;
  /** The last stable offset: read_committed readers see records below it (high, unless a transaction is open). */
  stable: number;
}

/** Handler outputs, validated and partitioned, split into produce requests of bounded size. */
export interface PreparedOutputs {
  count: number;
  /** Each chunk is one `sendBatch`; chunks are sent in order. */
  chunks: TopicMessages[][];
}

/** What subscriptions need from their adapter. */
export interface KafkaSubscriptionHost {
  /** Watermarks per partition (index = partition). */
  watermarks(topic: KafkaTopic): Promise<Watermarks[]>;
  /** The adapter's durable, ordered append (used for outputs of ephemeral subscriptions). */
  append(records: AppendRecord[]): Promise<LogPosition[]>;
  /** Validates a handler's output (topic names, sizes), creates missing topics, assigns partitions. */
  prepareOutputs(output: ConsumeOutput | void): Promise<PreparedOutputs>;
  /** Committed offsets of a group (-1 where none), per partition, for each topic. */
  committedOffsets(groupId: string, topics: readonly KafkaTopic[]): Promise<Map<string, number[]>>;
  subscriptionEnded(subscription: Subscription, group: string | undefined): void;
}

export interface KafkaSubscriptionSettings {
  /** The logical group name (as the caller gave it), undefined for ephemeral subscriptions. */
  group: string | undefined;
  handler: ConsumeOptions['handler'];
  onError: ConsumeOptions['onError'];
  maxBatchSize: number;
  tickMs: number | undefined;
  onAssignment: ConsumeOptions['onAssignment'];
}

interface CaughtUpWaiter {
  targets: Array<{ fullName: string; partition: number; offset: number }>;
  resolve: () => void;
  reject: (error: unknown) => void;
}

export const INITIAL_BACKOFF_MS = 100;
export const MAX_BACKOFF_MS = 2_000;
/** How often `caughtUp` re-reads a group's committed offsets (other members' progress counts too). */
const CAUGHT_UP_POLL_MS = 250;

/** Runs async tasks one at a time, in submission order (a mutex for handler calls and commits). */
export class SerialQueue {
  private tail: Promise<void> = Promise.resolve();

  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.tail.then(task);
    this.tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }

  /** Resolves once every task submitted so far has finished. */
  idle(): Promise<void> {
    return this.tail;
  }
}

/**
 * What both Kafka subscriptions share: handled positions and `caughtUp` waiters, the serial queue
 * that keeps handler calls (record batches and `tickMs` ticks) from ever overlapping, the tick
 * timer, error reporting and interruptible backoff.
 */
export abstract class KafkaSubscriptionBase implements Subscription {
  protected readonly serial = new SerialQueue();
  /** Next offset to handle (group: committed by the group) per partition, by prefixed topic name. */
  protected readonly positions = new Map<string, number[]>();
  protected readonly byFullName: Map<string, KafkaTopic>;
  protected stopping = false;
  /** When the handler was last called (ticks run `tickMs` after that). */
  protected lastHandled = Date.now();
  private waiters: CaughtUpWaiter[] = [];
  private tickTimer: NodeJS.Timeout | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private readonly sleepers = new Set<() => void>();
  private stopped: Promise<void> | undefined;

  protected constructor(
    protected readonly host: KafkaSubscriptionHost,
    protected readonly topics: readonly KafkaTopic[],
    protected readonly settings: KafkaSubscriptionSettings,
  ) {
    this.byFullName = new Map(topics.map((topic) => [topic.fullName, topic]));
    for (const topic of topics) this.positions.set(topic.fullName, new Array<number>(topic.partitions).fill(0));
  }

  stop(): Promise<void> {
    this.stopped ??= this.shutdown();
    return this.stopped;
  }

  async caughtUp(ends?: LogPosition[]): Promise<void> {
    if (this.stopping) throw new SubscriptionStoppedError('caughtUp: the subscription is stopped');
    const targets = ends === undefined ? await this.currentEnds() : this.targetsOf(ends);
    if (this.reached(targets)) return;
    if (this.stopping) throw new SubscriptionStoppedError('caughtUp: the subscription is stopped');
    await new Promise<void>((resolve, reject) => {
      this.waiters.push({ targets, resolve, reject });
      this.startPolling();
    });
  }

  /** Stops consuming; the batch being handled is finished (and committed) first. */
  protected abstract shutdownConsumer(): Promise<void>;

  /** One `tickMs` tick: the handler with an empty batch, its output appended. Runs inside `serial`. */
  protected abstract tick(): Promise<void>;

  /** Refreshes `positions` from outside knowledge (a group's committed offsets). */
  protected refreshPositions(): Promise<void> {
    return Promise.resolve();
  }

  /** Records that everything below `next` of the partition is handled. Positions never move back. */
  protected advance(fullName: string, partition: number, next: number): void {
    const positions = this.positions.get(fullName);
    if (!positions || partition < 0 || partition >= positions.length) return;
    if (next > (positions[partition] ?? 0)) positions[partition] = next;
    this.settleWaiters();
  }

  protected position(fullName: string, partition: number): number {
    return this.positions.get(fullName)?.[partition] ?? 0;
  }

  /** Calls the handler, turning a synchronous throw into a rejection. */
  protected async callHandler(records: StoredRecord[]): Promise<ConsumeOutput | void> {
    this.lastHandled = Date.now();
    return this.settings.handler(records);
  }

  protected report(error: unknown, records: StoredRecord[]): void {
    const { onError, group } = this.settings;
    if (!onError) {
      process.emitWarning(
        `EventLog consumer${group === undefined ? '' : ` (group "${group}")`}: ` +
          `batch of ${records.length} record(s) failed and will be retried: ${errorMessage(error)}`,
        { code: 'HERALD_EVENT_LOG_CONSUMER' },
      );
      return;
    }
    try {
      onError(error, records);
    } catch {
      // A throwing onError must not kill the consumer.
    }
  }

  /** Sleeps `ms`, or less if the subscription stops. */
  protected sleep(ms: number): Promise<void> {
    if (this.stopping) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.sleepers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.sleepers.add(wake);
    });
  }

  /** (Re)starts the tick timer: the next tick is due `tickMs` after the handler last ran. */
  protected armTick(): void {
    const { tickMs } = this.settings;
    if (tickMs === undefined || this.stopping) return;
    if (this.tickTimer) clearTimeout(this.tickTimer);
    const wait = Math.max(0, this.lastHandled + tickMs - Date.now());
    this.tickTimer = setTimeout(() => this.onTickTimer(tickMs), wait);
    this.tickTimer.unref();
  }

  private onTickTimer(tickMs: number): void {
    this.tickTimer = undefined;
    if (this.stopping) return;
    void this.serial
      .run(async () => {
        // A batch may have been handled while this tick waited for its turn.
        if (this.stopping || Date.now() - this.lastHandled < tickMs) return;
        await this.tick();
      })
      .catch((error: unknown) => this.report(error, []))
      .finally(() => this.armTick());
  }

  private async shutdown(): Promise<void> {
    this.stopping = true;
    if (this.tickTimer) clearTimeout(this.tickTimer);
    for (const wake of [...this.sleepers]) wake();
    try {
      await this.shutdownConsumer();
      await this.serial.idle();
    } finally {
      this.stopPolling();
      const stopped = new SubscriptionStoppedError('the subscription stopped before it caught up');
      for (const waiter of this.waiters) waiter.reject(stopped);
      this.waiters = [];
      this.host.subscriptionEnded(this, this.settings.group);
    }
  }

  private async currentEnds(): Promise<CaughtUpWaiter['targets']> {
    const perTopic = await Promise.all(
      this.topics.map(async (topic) =>
        (await this.host.watermarks(topic)).map(({ high }, partition) => ({
          fullName: topic.fullName,
          partition,
          offset: high,
        })),
      ),
    );
    return perTopic.flat();
  }

  private targetsOf(ends: LogPosition[]): CaughtUpWaiter['targets'] {
    if (!Array.isArray(ends)) throw new InvalidEventLogArgumentError('caughtUp: `ends` must be an array of positions');
    return ends.map((end) => {
      const topic = this.topics.find((candidate) => candidate.topic === end.topic);
      if (!topic) {
        throw new InvalidEventLogArgumentError(`caughtUp: topic "${end.topic}" is not consumed by this subscription`);
      }
      if (!Number.isSafeInteger(end.partition) || end.partition < 0 || end.partition >= topic.partitions) {
        throw new InvalidEventLogArgumentError(
          `topic "${topic.topic}" has partitions 0..${topic.partitions - 1}, got partition ${String(end.partition)}`,
        );
      }
      return { fullName: topic.fullName, partition: end.partition, offset: end.offset };
    });
  }

  private reached(targets: CaughtUpWaiter['targets']): boolean {
    return targets.every(({ fullName, partition, offset }) => this.position(fullName, partition) >= offset);
  }

  private settleWaiters(): void {
    if (this.waiters.length === 0) return;
    const pending: CaughtUpWaiter[] = [];
    for (const waiter of this.waiters) {
      if (this.reached(waiter.targets)) waiter.resolve();
      else pending.push(waiter);
    }
    this.waiters = pending;
    if (pending.length === 0) this.stopPolling();
  }

  private startPolling(): void {
    if (this.pollTimer || this.stopping) return;
    let polling = false;
    this.pollTimer = setInterval(() => {
      if (polling) return;
      polling = true;
      this.refreshPositions()
        .then(() => this.settleWaiters())
        .catch(() => undefined) // best effort: the next poll tries again
        .finally(() => (polling = false));
    }, CAUGHT_UP_POLL_MS);
    this.pollTimer.unref();
  }

  private stopPolling(): void {
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.pollTimer = undefined;
  }
}

/** The message of an error, for logs. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** A kafkajs protocol error type (`REBALANCE_IN_PROGRESS`, …), looking through retry wrappers. */
export function kafkaErrorType(error: unknown): string | undefined {
  for (let current = error, depth = 0; current !== undefined && depth < 5; depth++) {
    if (typeof current !== 'object' || current === null) return undefined;
    const { type, cause, originalError } = current as { type?: unknown; cause?: unknown; originalError?: unknown };
    if (typeof type === 'string') return type;
    current = cause ?? originalError;
  }
  return undefined;
}

/** Errors that mean the group is rebalancing (or this member's generation is gone): rejoin. */
export function isRebalanceError(error: unknown): boolean {
  const type = kafkaErrorType(error);
  return (
    type === 'REBALANCE_IN_PROGRESS' ||
    type === 'ILLEGAL_GENERATION' ||
    type === 'UNKNOWN_MEMBER_ID' ||
    type === 'NOT_COORDINATOR_FOR_GROUP' ||
    type === 'FENCED_INSTANCE_ID'
  );
}
