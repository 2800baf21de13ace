import { InvalidEventLogArgumentError, InvalidTopicNameError } from './event-log.errors';
import type { ConsumeOptions } from './event-log.port';

/**
 * The port's input rules (topic names, partitions, consume options), shared by every EventLog
 * adapter so that all accept and reject exactly the same input with the same messages.
 */

const TOPIC_NAME = /^[A-Za-z0-9._-]+$/;
const TOPIC_PREFIX = /^[A-Za-z0-9._-]*$/;
/** Kafka's limit for topic names; the prefixed name must fit too. */
export const MAX_TOPIC_NAME_LENGTH = 249;
export const MAX_PARTITIONS = 10_000;
export const DEFAULT_PARTITIONS = 4;
export const DEFAULT_MAX_BATCH_SIZE = 500;

export function checkTopicPrefix(prefix: unknown, adapter: string): string {
  if (typeof prefix !== 'string' || !TOPIC_PREFIX.test(prefix)) {
    throw new InvalidTopicNameError(
      `${adapter}: topic prefix ${JSON.stringify(prefix)} may contain only letters, digits, '.', '_' and '-'`,
    );
  }
  return prefix;
}

/** The prefixed topic name, after checking the caller's logical name. */
export function fullTopicName(prefix: string, topic: unknown): string {
  if (typeof topic !== 'string' || !TOPIC_NAME.test(topic) || topic === '.' || topic === '..') {
    throw new InvalidTopicNameError(
      `Invalid topic name ${JSON.stringify(topic)}: use 1 to ${MAX_TOPIC_NAME_LENGTH} characters from [A-Za-z0-9._-] ` +
        "(and not '.' or '..')",
    );
  }
  const fullName = prefix + topic;
  if (fullName.length > MAX_TOPIC_NAME_LENGTH) {
    throw new InvalidTopicNameError(
      `Invalid topic name "${topic}": with the prefix "${prefix}" it is longer than ${MAX_TOPIC_NAME_LENGTH} characters`,
    );
  }
  return fullName;
}

export function checkPartitions(partitions: number, what: string): number {
  if (!Number.isSafeInteger(partitions) || partitions < 1 || partitions > MAX_PARTITIONS) {
    throw new InvalidEventLogArgumentError(
      `${what} must be an integer from 1 to ${MAX_PARTITIONS}, got ${String(partitions)}`,
    );
  }
  return partitions;
}

export function checkPartition(topic: { topic: string; partitions: number }, partition: number): void {
  if (!Number.isSafeInteger(partition) || partition < 0 || partition >= topic.partitions) {
    throw new InvalidEventLogArgumentError(
      `topic "${topic.topic}" has partitions 0..${topic.partitions - 1}, got partition ${String(partition)}`,
    );
  }
}

export interface CheckedConsumeOptions {
  group: string | undefined;
  from: 'beginning' | 'end';
  maxBatchSize: number;
  tickMs: number | undefined;
}

/** Validates what every adapter's `consume` takes; a bad option is a clear error, never a silent default. */
export function checkConsumeOptions(options: ConsumeOptions): CheckedConsumeOptions {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidEventLogArgumentError('consume: expected an options object');
  }
  const { group } = options;
  if (!Array.isArray(options.topics) || options.topics.length === 0) {
    throw new InvalidEventLogArgumentError('consume: `topics` must be a non-empty array of topic names');
  }
  if (typeof options.handler !== 'function') {
    throw new InvalidEventLogArgumentError('consume: `handler` must be a function');
  }
  for (const name of ['onError', 'onAssignment'] as const) {
    if (options[name] !== undefined && typeof options[name] !== 'function') {
      throw new InvalidEventLogArgumentError(`consume: \`${name}\` must be a function when given`);
    }
  }
  if (group !== undefined && (typeof group !== 'string' || group.length === 0)) {
    throw new InvalidEventLogArgumentError('consume: `group` must be a non-empty string when given');
  }
  const from: unknown = options.from ?? 'beginning';
  if (from !== 'beginning' && from !== 'end') {
    throw new InvalidEventLogArgumentError(`consume: \`from\` must be 'beginning' or 'end', got ${String(from)}`);
  }
  const maxBatchSize = options.maxBatchSize ?? DEFAULT_MAX_BATCH_SIZE;
  if (!Number.isSafeInteger(maxBatchSize) || maxBatchSize < 1) {
    throw new InvalidEventLogArgumentError(
      `consume: maxBatchSize must be a positive integer, got ${String(options.maxBatchSize)}`,
    );
  }
  const { tickMs } = options;
  if (tickMs !== undefined && (!Number.isFinite(tickMs) || tickMs <= 0)) {
    throw new InvalidEventLogArgumentError(`consume: tickMs must be a positive number, got ${String(tickMs)}`);
  }
  return { group, from, maxBatchSize, tickMs };
}
