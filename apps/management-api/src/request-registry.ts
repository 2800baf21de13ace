import { commandRequestSchemas, EnvelopeParseError, parseEnvelope, Topics } from '@herald/contracts';
import { deadLetter, type EventLog, type Subscription } from '@herald/event-log';
import type { Logger } from 'pino';

export interface AcceptedRequest {
  requestId: string;
  commands: { id: string; agent: string }[];
}

/**
 * What operators have asked for, materialised from the `command-requests` topic: requestId →
 * the commands it created (idempotency of POST /commands across restarts and instances) and
 * commandId → agent (so a command is known the moment it is accepted, before it is indexed).
 */
export class RequestRegistry {
  private readonly requests = new Map<string, AcceptedRequest>();
  private readonly commands = new Map<string, { agent: string; requestId: string }>();
  private subscription?: Subscription;
  private waiters: { commandId: string; resolve: () => void }[] = [];

  constructor(
    private readonly log: EventLog,
    private readonly logger: Logger,
  ) {}

  async start(): Promise<void> {
    this.subscription = await this.log.consume({
      topics: [Topics.commandRequests],
      from: 'beginning',
      handler: async (records) => {
        for (const record of records) {
          try {
            const env = parseEnvelope(record.value, commandRequestSchemas);
            if (env.type === 'CommandRequested') {
              const d = env.data;
              if (this.commands.has(d.commandId)) continue;
              this.commands.set(d.commandId, { agent: d.agentUuid, requestId: d.requestId });
              const req = this.requests.get(d.requestId) ?? { requestId: d.requestId, commands: [] };
              req.commands.push({ id: d.commandId, agent: d.agentUuid });
              this.requests.set(d.requestId, req);
            }
          } catch (e) {
            if (!(e instanceof EnvelopeParseError)) throw e;
            this.logger.warn({ reason: e.reason }, 'unparseable command request');
            await deadLetter(this.log, record, e.reason, 'request-registry');
          }
        }
        this.waiters = this.waiters.filter((w) => (this.commands.has(w.commandId) ? (w.resolve(), false) : true));
      },
    });
    await this.subscription.caughtUp();
  }

  async stop(): Promise<void> {
    await this.subscription?.stop();
  }

  getRequest(requestId: string): AcceptedRequest | undefined {
    return this.requests.get(requestId);
  }

  getCommand(commandId: string): { agent: string; requestId: string } | undefined {
    return this.commands.get(commandId);
  }

  /** Resolves once the given command's request record has been applied here. */
  waitFor(commandId: string): Promise<void> {
    if (this.commands.has(commandId)) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ commandId, resolve }));
  }
}
