import {
  commandEventSchemas,
  CommandsIndex,
  COMMANDS_WATERMARK,
  EnvelopeParseError,
  parseEnvelope,
  Topics,
  type CommandEvent,
  type CommandView,
} from '@herald/contracts';
import { applyCommandEvent, commandIdOf } from '@herald/domain';
import type { EventLog } from '@herald/event-log';
import type { ProjectionStore } from '@herald/projection';

const PAGE = 1000;

/**
 * The replay source for an agent that (re)connects: every command of that agent with
 * `seq >= fromSeq`, from the projection up to its searchable watermark plus the `commands` log
 * beyond it — so a lagging indexer can never make a command disappear.
 */
export class CommandBacklog {
  constructor(
    private readonly log: EventLog,
    private readonly store: ProjectionStore,
  ) {}

  async from(agentUuid: string, fromSeq: number): Promise<CommandView[]> {
    // Read the watermark first: the projection holds at least everything up to it.
    const watermark = await this.store.getWatermark(COMMANDS_WATERMARK);
    const views = new Map<string, CommandView>();
    let cursor: string | undefined;
    do {
      const page = await this.store.query<CommandView & { actionName?: string; issuedAt?: string }>(
        CommandsIndex.name,
        {
          filter: { agent: agentUuid, seq: { gte: fromSeq } },
          sort: ['seq'],
          limit: PAGE,
          ...(cursor ? { cursor } : {}),
        },
      );
      for (const item of page.items) {
        const { actionName: _a, issuedAt: _i, ...view } = item.doc;
        views.set(view.id, view);
      }
      cursor = page.nextCursor;
    } while (cursor);

    const partition = await this.log.partitionFor(Topics.commands, agentUuid);
    let offset = (watermark?.positions[String(partition)] ?? -1) + 1;
    for (;;) {
      const records = await this.log.read(Topics.commands, partition, offset, PAGE);
      for (const record of records) {
        if (record.key !== agentUuid) continue;
        let event: CommandEvent;
        try {
          const env = parseEnvelope(record.value, commandEventSchemas);
          event = { type: env.type, data: env.data } as CommandEvent;
        } catch (e) {
          if (e instanceof EnvelopeParseError) continue; // the indexer dead-letters it
          throw e;
        }
        if (event.type === 'CommandIssued' && event.data.command.seq < fromSeq) continue;
        const id = commandIdOf(event);
        const next = applyCommandEvent(views.get(id), event);
        if (next) views.set(id, next);
      }
      const last = records[records.length - 1];
      if (!last || records.length < PAGE) break;
      offset = last.offset + 1;
    }
    return [...views.values()].sort((a, b) => a.seq - b.seq);
  }
}
