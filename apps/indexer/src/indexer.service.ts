import {
  agentEventSchemas,
  AgentsIndex,
  commandEventSchemas,
  CommandsIndex,
  COMMANDS_WATERMARK,
  HERALD_INDICES,
  EnvelopeParseError,
  parseEnvelope,
  Topics,
  type CommandEvent,
  type CommandView,
} from '@herald/contracts';
import { applyCommandEvent, commandIdOf } from '@herald/domain';
import { deadLetter, type EventLog, type StoredRecord, type Subscription } from '@herald/event-log';
import type { DocumentWrite, ProjectionStore } from '@herald/projection';
import type { Logger } from 'pino';

export const INDEXER_GROUP = 'indexer';

/** The stored command document: the view plus flat fields the index filters and sorts on. */
export type CommandDoc = CommandView & { actionName: string; issuedAt: string };

export function toCommandDoc(view: CommandView): CommandDoc {
  return { ...view, actionName: view.action.name, issuedAt: view.timestamps.issued };
}

export function fromCommandDoc(doc: CommandDoc): CommandView {
  const { actionName: _a, issuedAt: _i, ...view } = doc;
  return view;
}

/**
 * The projection: consumes `commands` and `agents` and keeps the per-agent, ordered command
 * state and the agent list in the ProjectionStore. Versions are log offsets + 1, so a replay
 * (after a crash, or a rebuild from offset 0) rewrites nothing it already wrote.
 */
export class IndexerService {
  private subscription?: Subscription;

  constructor(
    private readonly log: EventLog,
    private readonly store: ProjectionStore,
    private readonly logger: Logger,
    /** Consumer group; null for an ephemeral consumer from offset 0 (projection rebuilds). */
    private readonly group: string | null = INDEXER_GROUP,
  ) {}

  /** Records handled since start (progress of a rebuild). */
  handled = 0;

  async start(): Promise<void> {
    await this.store.ensureIndices([...HERALD_INDICES]);
    this.subscription = await this.log.consume({
      topics: [Topics.commands, Topics.agents],
      ...(this.group === null ? {} : { group: this.group }),
      from: 'beginning',
      handler: (records) => this.handle(records),
      onError: (error) => this.logger.error({ err: error }, 'indexer batch failed; retrying'),
    });
  }

  async stop(): Promise<void> {
    await this.subscription?.stop();
  }

  /** Resolves once everything appended so far is searchable. */
  async caughtUp(): Promise<void> {
    await this.subscription?.caughtUp();
  }

  private async handle(records: StoredRecord[]): Promise<void> {
    const views = new Map<string, { view: CommandView; version: number }>();
    const writes: DocumentWrite[] = [];
    const agentDocs = new Map<string, { doc: Record<string, unknown>; version: number }>();
    const positions: Record<string, number> = {};
    for (const record of records) {
      if (isTopic(record, Topics.commands)) {
        positions[String(record.partition)] = record.offset;
      }
      try {
        if (isTopic(record, Topics.agents)) {
          const env = parseEnvelope(record.value, agentEventSchemas);
          const uuid = env.data.uuid;
          // Facets of one agent share a partition, so offsets order them; merge into one document.
          const pending = agentDocs.get(uuid);
          const base =
            pending?.doc ?? (await this.store.get<Record<string, unknown>>(AgentsIndex.name, uuid))?.doc ?? {};
          agentDocs.set(uuid, { doc: mergeAgentFacet(base, env), version: record.offset + 1 });
          continue;
        }
        const env = parseEnvelope(record.value, commandEventSchemas);
        const event = { type: env.type, data: env.data } as CommandEvent;
        const id = commandIdOf(event);
        let current = views.get(id)?.view;
        if (!current && event.type !== 'CommandIssued') {
          const stored = await this.store.get<CommandDoc>(CommandsIndex.name, id);
          current = stored ? fromCommandDoc(stored.doc) : undefined;
        }
        const next = applyCommandEvent(current, event);
        if (!next) {
          this.logger.warn({ type: event.type, commandId: id }, 'event for a command that was never issued');
          continue;
        }
        views.set(id, { view: next, version: record.offset + 1 });
      } catch (e) {
        if (!(e instanceof EnvelopeParseError)) throw e;
        this.logger.warn({ reason: e.reason, topic: record.topic, offset: record.offset }, 'unparseable record');
        await deadLetter(this.log, record, e.reason, 'indexer');
      }
    }
    for (const [id, { doc, version }] of agentDocs) writes.push({ index: AgentsIndex.name, id, version, doc });
    for (const [id, { view, version }] of views) {
      writes.push({
        index: CommandsIndex.name,
        id,
        version,
        doc: toCommandDoc(view) as unknown as Record<string, unknown>,
      });
    }
    await this.store.apply(writes, Object.keys(positions).length ? { name: COMMANDS_WATERMARK, positions } : undefined);
    this.handled += records.length;
  }
}

/** The agents-index document after one `agents` record: facets merged, never the key hash. */
function mergeAgentFacet(
  base: Record<string, unknown>,
  env: ReturnType<typeof parseEnvelope<typeof agentEventSchemas>>,
): Record<string, unknown> {
  switch (env.type) {
    case 'AgentRegistered':
    case 'AgentKeyRotated':
    case 'AgentRevoked': {
      const { keyHash: _secret, ...identity } = env.data;
      const groups = base['groupsChangedAt'] !== undefined ? base['groups'] : identity.groups;
      return { ...base, ...identity, groups };
    }
    case 'AgentGroupsChanged':
      return { ...base, uuid: env.data.uuid, groups: env.data.groups, groupsChangedAt: env.data.changedAt };
    case 'AgentPresenceChanged': {
      const { uuid, ...presence } = env.data;
      return { ...base, uuid, presence };
    }
  }
}

function isTopic(record: StoredRecord, topic: string): boolean {
  return record.topic === topic;
}
