import {
  agentEventSchemas,
  envelope,
  EnvelopeParseError,
  parseEnvelope,
  Topics,
  agentKeys,
  type AgentIdentity,
  type AgentPresenceChanged,
} from '@herald/contracts';
import { deadLetter, type EventLog, type Subscription } from '@herald/event-log';
import type { Logger } from 'pino';

/**
 * One agent as the directory knows it: the newest identity snapshot with its groups replaced by
 * the newest AgentGroupsChanged (when any), and the newest presence record.
 */
export type AgentRecord = AgentIdentity & { presence?: AgentPresenceChanged };

/**
 * The agents read model shared by the management API (targeting, duplicate checks) and the comms
 * API (authentication): an in-memory materialisation of the `agents` topic (compacted in Kafka),
 * kept current by an ephemeral consumer. Writes go to the log first; `register` resolves only
 * once this instance has applied its own write (read-your-writes).
 */
export class AgentDirectory {
  private readonly agents = new Map<string, AgentRecord>();
  private subscription?: Subscription;
  private readonly waiters: { uuid: string; resolve: () => void }[] = [];
  private readonly registering = new Set<string>();
  /** Agents whose groups came from an AgentGroupsChanged record (it overrides the identity's). */
  private readonly groupsChanged = new Set<string>();

  constructor(
    private readonly log: EventLog,
    private readonly logger: Logger,
  ) {}

  async start(): Promise<void> {
    this.subscription = await this.log.consume({
      topics: [Topics.agents],
      from: 'beginning',
      handler: async (records) => {
        for (const record of records) {
          try {
            const env = parseEnvelope(record.value, agentEventSchemas);
            this.applyEvent(env);
          } catch (e) {
            if (!(e instanceof EnvelopeParseError)) throw e;
            this.logger.warn({ reason: e.reason, offset: record.offset }, 'unparseable agents record');
            await deadLetter(this.log, record, e.reason, 'agent-directory');
          }
        }
        this.wake();
      },
    });
    await this.subscription.caughtUp();
  }

  /** Folds one `agents` record into the directory (facets: see `agentKeys` in the contracts). */
  private applyEvent(env: ReturnType<typeof parseEnvelope<typeof agentEventSchemas>>): void {
    switch (env.type) {
      case 'AgentRegistered':
      case 'AgentKeyRotated':
      case 'AgentRevoked': {
        const current = this.agents.get(env.data.uuid);
        // A newer groups record than this identity snapshot keeps precedence.
        const groups = current && this.groupsChanged.has(env.data.uuid) ? current.groups : env.data.groups;
        this.agents.set(env.data.uuid, {
          ...env.data,
          groups,
          ...(current?.presence ? { presence: current.presence } : {}),
        });
        break;
      }
      case 'AgentGroupsChanged': {
        this.groupsChanged.add(env.data.uuid);
        const current = this.agents.get(env.data.uuid);
        if (current) this.agents.set(env.data.uuid, { ...current, groups: env.data.groups });
        break;
      }
      case 'AgentPresenceChanged': {
        const current = this.agents.get(env.data.uuid);
        if (current) this.agents.set(env.data.uuid, { ...current, presence: env.data });
        break;
      }
    }
  }

  async stop(): Promise<void> {
    await this.subscription?.stop();
  }

  get(uuid: string): AgentRecord | undefined {
    return this.agents.get(uuid.toLowerCase());
  }

  has(uuid: string): boolean {
    return this.agents.has(uuid.toLowerCase());
  }

  all(): AgentRecord[] {
    return [...this.agents.values()];
  }

  inGroups(groups: readonly string[]): AgentRecord[] {
    const wanted = new Set(groups);
    return this.all().filter((a) => a.groups.some((g) => wanted.has(g)));
  }

  get size(): number {
    return this.agents.size;
  }

  /**
   * Appends AgentRegistered and resolves when this directory has applied it. Returns false
   * (and writes nothing) when the agent exists or is being registered by a concurrent call.
   */
  async register(record: AgentIdentity): Promise<boolean> {
    if (this.agents.has(record.uuid) || this.registering.has(record.uuid)) return false;
    this.registering.add(record.uuid);
    try {
      await this.append(record);
      return true;
    } finally {
      this.registering.delete(record.uuid);
    }
  }

  private async append(record: AgentIdentity): Promise<void> {
    const applied = new Promise<void>((resolve) => this.waiters.push({ uuid: record.uuid, resolve }));
    await this.log.append([
      {
        topic: Topics.agents,
        key: agentKeys.identity(record.uuid),
        value: JSON.stringify(envelope('AgentRegistered', record, { agentUuid: record.uuid })),
      },
    ]);
    await applied;
  }

  private wake(): void {
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      const w = this.waiters[i];
      if (w && this.agents.has(w.uuid)) {
        this.waiters.splice(i, 1);
        w.resolve();
      }
    }
  }
}
