import { commandEventSchemas, EnvelopeParseError, parseEnvelope, Topics, type CommandEvent } from '@herald/contracts';
import type { EventLog, Subscription } from '@herald/event-log';
import type { Logger } from 'pino';

export type CommandEventListener = (agentUuid: string, event: CommandEvent) => void;

/**
 * The live tail of the `commands` topic for this gateway instance (an ephemeral consumer from the
 * end: every instance sees every command and pushes to the agents whose sockets it holds).
 */
export class CommandFeed {
  private subscription?: Subscription;

  constructor(
    private readonly log: EventLog,
    private readonly logger: Logger,
    private readonly listener: CommandEventListener,
  ) {}

  async start(): Promise<void> {
    this.subscription = await this.log.consume({
      topics: [Topics.commands],
      from: 'end',
      handler: (records) => {
        for (const record of records) {
          try {
            const env = parseEnvelope(record.value, commandEventSchemas);
            this.listener(record.key, { type: env.type, data: env.data } as CommandEvent);
          } catch (e) {
            if (!(e instanceof EnvelopeParseError)) throw e;
            this.logger.warn(
              { reason: e.reason, offset: record.offset },
              'unparseable commands record (skipped by the feed)',
            );
          }
        }
        return Promise.resolve();
      },
    });
  }

  async stop(): Promise<void> {
    await this.subscription?.stop();
  }
}
