import { createHash } from 'node:crypto';
import {
  envelope,
  EnvelopeParseError,
  groupEventSchemas,
  parseEnvelope,
  Topics,
  type GroupConfigurationUpdated,
} from '@herald/contracts';
import { deadLetter, type EventLog, type Subscription } from '@herald/event-log';
import type { Logger } from 'pino';

/** The group every agent enrolled without groups belongs to; it exists from the first start. */
export const DEFAULT_GROUP = 'default';

/** The configuration `default` gets on the first start (agents download it as `default.yml`). */
export const DEFAULT_GROUP_CONFIGURATION = `# Herald group configuration for group "default".
# Agents in this group download it as default.yml (GET /api/v1/files?file_name=default.yml).
# Change it with: PUT /groups/default/configuration (Content-Type: application/yaml).
agent:
  log_level: info
`;

/** How many previous configurations of a group are kept in memory (the log keeps them all). */
export const GROUP_HISTORY_LIMIT = 20;

export type GroupConfiguration = Omit<GroupConfigurationUpdated, 'name'>;

export interface GroupRecord {
  name: string;
  description?: string;
  createdAt: string;
  createdBy: string;
  /** The current configuration, if any was set. */
  configuration?: GroupConfiguration;
  /** Previous configurations, newest first (at most GROUP_HISTORY_LIMIT). */
  history: GroupConfiguration[];
}

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/**
 * Groups and their configuration: an in-memory materialisation of the `groups` topic (key = group
 * name), shared by the management API (CRUD, targeting) and the comms API (`/api/v1/files`).
 * Writes go to the log first and resolve once this instance has applied them (read-your-writes).
 * Folding is idempotent: a second GroupCreated for a live group, or a configuration equal to the
 * current one, changes nothing — so every process may `ensureDefault()` at start.
 */
export class GroupDirectory {
  private readonly groups = new Map<string, GroupRecord>();
  private subscription?: Subscription;
  /** Envelope id of an own write → resolves once this directory has applied it. */
  private readonly waiters = new Map<string, () => void>();

  constructor(
    private readonly log: EventLog,
    private readonly logger: Logger,
  ) {}

  async start(): Promise<void> {
    this.subscription = await this.log.consume({
      topics: [Topics.groups],
      from: 'beginning',
      handler: async (records) => {
        for (const record of records) {
          try {
            const env = parseEnvelope(record.value, groupEventSchemas);
            this.apply(env);
            this.waiters.get(env.id)?.();
            this.waiters.delete(env.id);
          } catch (e) {
            if (!(e instanceof EnvelopeParseError)) throw e;
            this.logger.warn({ reason: e.reason, offset: record.offset }, 'unparseable groups record');
            await deadLetter(this.log, record, e.reason, 'group-directory');
          }
        }
      },
    });
    await this.subscription.caughtUp();
  }

  async stop(): Promise<void> {
    await this.subscription?.stop();
  }

  get(name: string): GroupRecord | undefined {
    return this.groups.get(name);
  }

  has(name: string): boolean {
    return this.groups.has(name);
  }

  all(): GroupRecord[] {
    return [...this.groups.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Creates `default` with DEFAULT_GROUP_CONFIGURATION unless it exists (idempotent). */
  async ensureDefault(user = 'herald'): Promise<void> {
    if (!this.groups.has(DEFAULT_GROUP)) await this.create(DEFAULT_GROUP, user, 'Agents enrolled without groups');
    const group = this.groups.get(DEFAULT_GROUP);
    if (group && !group.configuration) await this.setConfiguration(DEFAULT_GROUP, DEFAULT_GROUP_CONFIGURATION, user);
  }

  /** Appends GroupCreated; false (nothing written) when the group exists. */
  async create(name: string, user: string, description?: string): Promise<boolean> {
    if (this.groups.has(name)) return false;
    await this.append(name, 'GroupCreated', {
      name,
      ...(description === undefined ? {} : { description }),
      createdAt: new Date().toISOString(),
      createdBy: user,
    });
    return true;
  }

  /**
   * Appends a new configuration version (the YAML must have been validated by the caller).
   * Returns the current configuration unchanged when the text is identical; undefined when the
   * group does not exist.
   */
  async setConfiguration(name: string, yaml: string, user: string): Promise<GroupConfiguration | undefined> {
    const group = this.groups.get(name);
    if (!group) return undefined;
    const sha256 = sha256Hex(yaml);
    if (group.configuration?.sha256 === sha256) return group.configuration;
    await this.append(name, 'GroupConfigurationUpdated', {
      name,
      yaml,
      sha256,
      version: (group.configuration?.version ?? 0) + 1,
      updatedAt: new Date().toISOString(),
      updatedBy: user,
    });
    return this.groups.get(name)?.configuration;
  }

  /** Appends GroupDeleted; false when the group does not exist. */
  async delete(name: string, user: string): Promise<boolean> {
    if (!this.groups.has(name)) return false;
    await this.append(name, 'GroupDeleted', { name, deletedAt: new Date().toISOString(), deletedBy: user });
    return true;
  }

  private apply(env: ReturnType<typeof parseEnvelope<typeof groupEventSchemas>>): void {
    switch (env.type) {
      case 'GroupCreated': {
        if (this.groups.has(env.data.name)) return;
        const { name, description, createdAt, createdBy } = env.data;
        this.groups.set(name, {
          name,
          ...(description === undefined ? {} : { description }),
          createdAt,
          createdBy,
          history: [],
        });
        return;
      }
      case 'GroupConfigurationUpdated': {
        const group = this.groups.get(env.data.name);
        if (!group || group.configuration?.sha256 === env.data.sha256) return;
        const { name: _name, ...configuration } = env.data;
        // Versions are dense per group even when two writers raced: the fold renumbers.
        const version = (group.configuration?.version ?? 0) + 1;
        const history = group.configuration
          ? [group.configuration, ...group.history].slice(0, GROUP_HISTORY_LIMIT)
          : [];
        this.groups.set(group.name, { ...group, configuration: { ...configuration, version }, history });
        return;
      }
      case 'GroupDeleted':
        this.groups.delete(env.data.name);
        return;
    }
  }

  private async append(name: string, type: keyof typeof groupEventSchemas, data: unknown): Promise<void> {
    const env = envelope(type, data, {});
    // Read-your-writes: resolve once this directory's own consumer has applied the record.
    const applied = new Promise<void>((resolve) => this.waiters.set(env.id, resolve));
    try {
      await this.log.append([{ topic: Topics.groups, key: name, value: JSON.stringify(env) }]);
    } catch (err) {
      this.waiters.delete(env.id);
      throw err;
    }
    await applied;
  }
}
