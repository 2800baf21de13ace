import {
  agentFeedbackSchemas,
  commandEventSchemas,
  commandRequestSchemas,
  envelope,
  EnvelopeParseError,
  parseEnvelope,
  Topics,
  type CommandEvent,
} from '@herald/contracts';
import {
  compact,
  decide,
  fold,
  initialState,
  nextDeadline,
  type AgentCommandState,
  type LifecycleInput,
  type LifecycleOptions,
} from '@herald/domain';
import { deadLetter, type AppendRecord, type EventLog, type StoredRecord, type Subscription } from '@herald/event-log';
import type { Logger } from 'pino';

export const ORCHESTRATOR_GROUP = 'orchestrator';

const FINISHING: ReadonlySet<CommandEvent['type']> = new Set([
  'CommandSucceeded',
  'CommandFailed',
  'CommandTimedOut',
  'CommandRejected',
  'CommandExpired',
  'CommandCancelled',
]);
const isFinishing = (event: CommandEvent): boolean => FINISHING.has(event.type);
const READ_PAGE = 5000;

export interface OrchestratorOptions {
  /** Grace added to a command's timeout before the server times it out. */
  graceSeconds: number;
  /** How often deadlines are checked when no record arrives. */
  tickMs?: number;
  group?: string;
}

/**
 * The single writer of each agent's command stream: a thin shell around the pure
 * decide/evolve lifecycle. It consumes `command-requests` and `agent-feedback` and appends the
 * resulting events to `commands` atomically with the commit of what it consumed
 * (consume-transform-produce), so a crash never issues a command twice or skips a `seq`.
 * Its state is a fold of `commands`, rebuilt at start and after a failed commit.
 */
export class OrchestratorService {
  private readonly states = new Map<string, AgentCommandState>();
  /** Agents with a live deadline → the earliest moment a Tick may produce an event. */
  private readonly deadlines = new Map<string, number>();
  private subscription?: Subscription;
  private stale = false;
  /** Partitions of `commands` this instance writes (its assigned input partitions). */
  private assigned = new Set<number>();
  private readonly lifecycle: Partial<LifecycleOptions>;

  constructor(
    private readonly log: EventLog,
    private readonly logger: Logger,
    private readonly options: OrchestratorOptions,
  ) {
    this.lifecycle = { timeoutGraceMs: options.graceSeconds * 1000 };
  }

  async start(): Promise<void> {
    this.subscription = await this.log.consume({
      topics: [Topics.commandRequests, Topics.agentFeedback],
      group: this.options.group ?? ORCHESTRATOR_GROUP,
      from: 'beginning',
      tickMs: this.options.tickMs ?? 1000,
      handler: (records) => this.handle(records),
      // The inputs are co-partitioned with `commands` (HERALD_PARTITIONS): owning partition p of
      // the inputs means being the single writer of partition p of `commands`.
      onAssignment: async (assigned) => {
        this.assigned = new Set(assigned.map((a) => a.partition));
        await this.rebuild();
      },
      onError: (error) => {
        // The in-memory state may be ahead of the log: fold it again before the retry.
        this.stale = true;
        this.logger.error({ err: error }, 'orchestrator batch failed; state will be rebuilt and the batch retried');
      },
    });
  }

  async stop(): Promise<void> {
    await this.subscription?.stop();
  }

  async caughtUp(): Promise<void> {
    await this.subscription?.caughtUp();
  }

  /** The current state of one agent (for tests and diagnostics). */
  stateOf(agentUuid: string): AgentCommandState | undefined {
    return this.states.get(agentUuid);
  }

  private async rebuild(): Promise<void> {
    const started = Date.now();
    this.states.clear();
    this.deadlines.clear();
    const perAgent = new Map<string, CommandEvent[]>();
    let count = 0;
    for (const end of await this.log.endOffsets(Topics.commands)) {
      if (!this.assigned.has(end.partition)) continue;
      let offset = 0;
      while (offset < end.offset) {
        const records = await this.log.read(Topics.commands, end.partition, offset, READ_PAGE);
        if (records.length === 0) break;
        for (const record of records) {
          try {
            const env = parseEnvelope(record.value, commandEventSchemas);
            const list = perAgent.get(record.key) ?? [];
            list.push({ type: env.type, data: env.data } as CommandEvent);
            perAgent.set(record.key, list);
            count++;
          } catch (e) {
            if (!(e instanceof EnvelopeParseError)) throw e;
            this.logger.error({ reason: e.reason, offset: record.offset }, 'unparseable record in commands (skipped)');
          }
        }
        offset = (records[records.length - 1]?.offset ?? offset) + 1;
      }
    }
    for (const [agent, events] of perAgent) this.setState(agent, compact(fold(events, agent)));
    this.stale = false;
    this.logger.info(
      { agents: perAgent.size, events: count, ms: Date.now() - started },
      'orchestrator state rebuilt from the commands log',
    );
  }

  private async handle(records: StoredRecord[]): Promise<{ append: AppendRecord[] }> {
    if (this.stale) await this.rebuild();
    const now = new Date();
    const out: AppendRecord[] = [];
    for (const record of records) {
      const input = await this.toInput(record, now);
      if (input) this.apply(input.agentUuid, input.input, out);
    }
    const due = now.getTime();
    for (const [agent, deadline] of this.deadlines) {
      if (deadline <= due) this.apply(agent, { type: 'Tick', now }, out);
    }
    return { append: out };
  }

  private apply(agentUuid: string, input: LifecycleInput, out: AppendRecord[]): void {
    const state = this.states.get(agentUuid) ?? initialState(agentUuid);
    const events = decide(state, input, this.lifecycle);
    if (events.length === 0) return;
    const next = fold(events, state);
    // Finished commands shrink to {status, seq}: enough for every later decision.
    this.setState(agentUuid, events.some(isFinishing) ? compact(next) : next);
    for (const event of events) {
      out.push({
        topic: Topics.commands,
        key: agentUuid,
        value: JSON.stringify(envelope(event.type, event.data, { agentUuid, now: input.now })),
      });
    }
  }

  private setState(agentUuid: string, state: AgentCommandState): void {
    this.states.set(agentUuid, state);
    const deadline = nextDeadline(state, this.lifecycle);
    if (deadline) this.deadlines.set(agentUuid, deadline.getTime());
    else this.deadlines.delete(agentUuid);
  }

  private async toInput(
    record: StoredRecord,
    now: Date,
  ): Promise<{ agentUuid: string; input: LifecycleInput } | undefined> {
    try {
      if (record.topic === Topics.commandRequests) {
        const env = parseEnvelope(record.value, commandRequestSchemas);
        switch (env.type) {
          case 'CommandRequested':
            return { agentUuid: env.data.agentUuid, input: { type: 'RequestCommand', now, data: env.data } };
          case 'CancelRequested':
            return { agentUuid: record.key, input: { type: 'RequestCancel', now, data: env.data } };
        }
      }
      const env = parseEnvelope(record.value, agentFeedbackSchemas);
      switch (env.type) {
        case 'CommandDelivered':
          return { agentUuid: record.key, input: { type: 'ReportDelivered', now, data: env.data } };
        case 'CommandAcknowledged':
          return { agentUuid: record.key, input: { type: 'ReportAcknowledged', now, data: env.data } };
        case 'CommandResultReported':
          return { agentUuid: record.key, input: { type: 'ReportResult', now, data: env.data } };
      }
    } catch (e) {
      if (!(e instanceof EnvelopeParseError)) throw e;
      this.logger.warn(
        { reason: e.reason, topic: record.topic, offset: record.offset },
        'unparseable record dead-lettered',
      );
      await deadLetter(this.log, record, e.reason, 'orchestrator');
    }
    return undefined;
  }
}
