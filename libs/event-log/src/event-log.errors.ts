/**
 * Errors of the EventLog port and its adapters: small classes with a stable `code`, like the
 * domain errors, so callers can tell "the log is closed" from "bad input" without parsing text.
 */
export abstract class EventLogError extends Error {
  abstract readonly code: string;

  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** A topic name (or topic prefix) outside `[A-Za-z0-9._-]`, empty, or too long. */
export class InvalidTopicNameError extends EventLogError {
  override readonly code = 'event_log_invalid_topic_name';
}

/** An argument of an EventLog call is malformed (negative offset, partition out of range, …). */
export class InvalidEventLogArgumentError extends EventLogError {
  override readonly code = 'event_log_invalid_argument';
}

/** The adapter was closed; no further calls are accepted. */
export class EventLogClosedError extends EventLogError {
  override readonly code = 'event_log_closed';
}

/** A second `consume` with a group that already has an active member in this adapter instance. */
export class ConsumerGroupBusyError extends EventLogError {
  override readonly code = 'event_log_consumer_group_busy';
}

/**
 * A consumer's commit found the group's committed offsets moved by someone else since the batch
 * was read (another process consuming the same group). The batch's outputs were not appended;
 * the consumer reloads the committed offsets and continues from there.
 */
export class OffsetCommitConflictError extends EventLogError {
  override readonly code = 'event_log_offset_commit_conflict';
}

/** A subscription stopped before the awaited condition (e.g. `caughtUp`) was reached. */
export class SubscriptionStoppedError extends EventLogError {
  override readonly code = 'event_log_subscription_stopped';
}
