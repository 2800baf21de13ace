import {
  ACTION_CATALOG,
  COMMAND_STATUSES,
  CommandsIndex,
  DEFAULT_ACTION_VERSION,
  envelope,
  isKnownAction,
  Topics,
  uuidSchema,
  uuidv7,
  type CommandRequested,
  type CommandView,
  type CommandStatus,
} from '@herald/contracts';
import type { AgentDirectory } from '@herald/agents';
import type { EventLog } from '@herald/event-log';
import { InvalidCursorError, type Filter, type ProjectionStore } from '@herald/projection';
import { NotFoundError, parseInput, ValidationError } from '@herald/platform';
import { z } from 'zod';
import type { RequestRegistry } from './request-registry';

export const createCommandsSchema = z
  .object({
    requestId: z
      .string()
      .regex(/^[A-Za-z0-9._:-]{1,128}$/, 'must be 1-128 letters, digits or ._:-')
      .optional(),
    targets: z
      .object({
        agents: z.array(uuidSchema).max(10000).optional(),
        groups: z.array(z.string().min(1).max(255)).max(1000).optional(),
        all: z.literal(true).optional(),
      })
      .strict()
      .refine((t) => (t.agents?.length ?? 0) + (t.groups?.length ?? 0) > 0 || t.all === true, {
        message: 'must name at least one agent or group, or set all: true',
      }),
    action: z
      .object({
        name: z.string().min(1).max(64),
        version: z.string().min(1).max(32).optional(),
        args: z.record(z.unknown()).optional(),
      })
      .strict(),
    expiresIn: z.number().int().positive().max(31536000).optional(),
    timeout: z.number().int().positive().max(604800).optional(),
  })
  .strict();
export type CreateCommandsInput = z.infer<typeof createCommandsSchema>;

export interface CreateCommandsResult {
  requestId: string;
  count: number;
  commands: { id: string; agent: string }[];
}

export const listCommandsSchema = z
  .object({
    agent: uuidSchema.optional(),
    status: z.enum(COMMAND_STATUSES).optional(),
    action: z.string().min(1).max(64).optional(),
    requestId: z.string().min(1).max(128).optional(),
    limit: z.coerce.number().int().min(1).max(1000).default(100),
    cursor: z.string().min(1).max(2048).optional(),
  })
  .strict();

/** A command accepted but not yet issued (no seq yet): what GET /commands/{id} shows meanwhile. */
export interface AcceptedCommandView {
  id: string;
  requestId: string;
  agent: string;
  status: 'pending';
  waitingReason: string;
}

export interface CommandSettings {
  defaultExpiresInSeconds: number;
  defaultTimeoutSeconds: number;
}

/**
 * Operator commands: validates, resolves targets, appends one CommandRequested per target agent
 * (all of one request in a single append), and reads command state from the projection.
 */
export class CommandsService {
  private readonly inFlight = new Map<string, Promise<CreateCommandsResult>>();

  constructor(
    private readonly log: EventLog,
    private readonly store: ProjectionStore,
    private readonly directory: AgentDirectory,
    private readonly registry: RequestRegistry,
    private readonly settings: CommandSettings,
  ) {}

  async create(body: unknown, user: string): Promise<CreateCommandsResult> {
    const input = parseInput(createCommandsSchema, body);
    const requestId = input.requestId ?? uuidv7();
    const running = this.inFlight.get(requestId);
    if (running) return running;
    const work = this.createOnce(requestId, input, user).finally(() => this.inFlight.delete(requestId));
    this.inFlight.set(requestId, work);
    return work;
  }

  private async createOnce(requestId: string, input: CreateCommandsInput, user: string): Promise<CreateCommandsResult> {
    const existing = this.registry.getRequest(requestId);
    if (existing) return { requestId, count: existing.commands.length, commands: existing.commands };

    const name = input.action.name;
    if (!isKnownAction(name)) {
      throw new ValidationError(
        `action.name "${name}" is not a known action (known: ${Object.keys(ACTION_CATALOG).join(', ')})`,
      );
    }
    const args = parseInput(ACTION_CATALOG[name], input.action.args ?? {}, 'action.args') as Record<string, unknown>;
    const agents = this.resolveTargets(input.targets);
    const now = new Date();
    const expiresAt = new Date(now.getTime() + 1000 * (input.expiresIn ?? this.settings.defaultExpiresInSeconds));
    const requests: CommandRequested[] = agents.map((agent) => ({
      commandId: uuidv7(),
      requestId,
      agentUuid: agent,
      action: { name, version: input.action.version ?? DEFAULT_ACTION_VERSION, args },
      source: 'management-api',
      user,
      requestedAt: now.toISOString(),
      expiresAt: expiresAt.toISOString(),
      timeout: input.timeout ?? this.settings.defaultTimeoutSeconds,
    }));
    await this.log.append(
      requests.map((r) => ({
        topic: Topics.commandRequests,
        key: r.agentUuid,
        value: JSON.stringify(envelope('CommandRequested', r, { agentUuid: r.agentUuid, correlationId: requestId })),
      })),
    );
    const last = requests[requests.length - 1];
    if (last) await this.registry.waitFor(last.commandId);
    const commands = requests.map((r) => ({ id: r.commandId, agent: r.agentUuid }));
    return { requestId, count: commands.length, commands };
  }

  private resolveTargets(targets: CreateCommandsInput['targets']): string[] {
    const result = new Set<string>();
    if (targets.all) for (const a of this.directory.all()) result.add(a.uuid);
    const unknown: string[] = [];
    for (const uuid of targets.agents ?? []) {
      const agent = this.directory.get(uuid);
      if (agent) result.add(agent.uuid);
      else unknown.push(uuid);
    }
    if (unknown.length) {
      throw new ValidationError(
        `targets.agents: unknown agent(s): ${unknown.slice(0, 20).join(', ')}${unknown.length > 20 ? ', …' : ''}`,
      );
    }
    if (targets.groups?.length) for (const a of this.directory.inGroups(targets.groups)) result.add(a.uuid);
    if (result.size === 0) throw new ValidationError('targets: no agent matches the targets');
    return [...result].sort();
  }

  async get(id: string): Promise<CommandView | AcceptedCommandView> {
    if (!uuidSchema.safeParse(id).success) throw new ValidationError('id is not a valid uuid');
    const stored = await this.store.get<CommandView & { actionName?: string; issuedAt?: string }>(
      CommandsIndex.name,
      id,
    );
    if (stored) return stripIndexFields(stored.doc);
    const accepted = this.registry.getCommand(id);
    if (!accepted) throw new NotFoundError(`Command ${id} not found`);
    return {
      id,
      requestId: accepted.requestId,
      agent: accepted.agent,
      status: 'pending',
      waitingReason: 'accepted; being issued',
    };
  }

  async list(query: unknown): Promise<{ items: CommandView[]; nextCursor?: string }> {
    const q = parseInput(listCommandsSchema, query, 'query');
    const filter: Filter = {};
    if (q.agent) filter['agent'] = q.agent.toLowerCase();
    if (q.status) filter['status'] = q.status;
    if (q.action) filter['actionName'] = q.action;
    if (q.requestId) filter['requestId'] = q.requestId;
    const page = await this.store
      .query<CommandView>(CommandsIndex.name, {
        filter,
        sort: ['agent', 'seq'],
        limit: q.limit,
        ...(q.cursor ? { cursor: q.cursor } : {}),
      })
      .catch((e: unknown) => {
        if (e instanceof InvalidCursorError) throw new ValidationError('cursor is not a cursor returned by this query');
        throw e;
      });
    return {
      items: page.items.map((i) => stripIndexFields(i.doc)),
      ...(page.nextCursor ? { nextCursor: page.nextCursor } : {}),
    };
  }

  async requestSummary(
    requestId: string,
  ): Promise<{ requestId: string; total: number; byStatus: Partial<Record<CommandStatus, number>> }> {
    const accepted = this.registry.getRequest(requestId);
    if (!accepted) throw new NotFoundError(`Request ${requestId} not found`);
    const byStatus = (await this.store.countBy(CommandsIndex.name, 'status', { requestId })) as Partial<
      Record<CommandStatus, number>
    >;
    const indexed = Object.values(byStatus).reduce<number>((a, b) => a + (b ?? 0), 0);
    const total = accepted.commands.length;
    if (indexed < total) byStatus.pending = (byStatus.pending ?? 0) + (total - indexed);
    return { requestId, total, byStatus };
  }

  async cancelCommand(id: string, user: string): Promise<{ commandId: string }> {
    if (!uuidSchema.safeParse(id).success) throw new ValidationError('id is not a valid uuid');
    const accepted = this.registry.getCommand(id);
    if (!accepted) throw new NotFoundError(`Command ${id} not found`);
    await this.appendCancels([{ id, agent: accepted.agent }], user);
    return { commandId: id };
  }

  async cancelRequest(requestId: string, user: string): Promise<{ requestId: string; count: number }> {
    const accepted = this.registry.getRequest(requestId);
    if (!accepted) throw new NotFoundError(`Request ${requestId} not found`);
    await this.appendCancels(accepted.commands, user);
    return { requestId, count: accepted.commands.length };
  }

  private async appendCancels(commands: { id: string; agent: string }[], user: string): Promise<void> {
    await this.log.append(
      commands.map((c) => ({
        topic: Topics.commandRequests,
        key: c.agent,
        value: JSON.stringify(envelope('CancelRequested', { commandId: c.id, user }, { agentUuid: c.agent })),
      })),
    );
  }
}

function stripIndexFields(doc: CommandView & { actionName?: string; issuedAt?: string }): CommandView {
  const { actionName: _a, issuedAt: _i, ...view } = doc;
  return view;
}
