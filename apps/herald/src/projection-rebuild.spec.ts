import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CommandsIndex, COMMANDS_WATERMARK, envelope, Topics, uuidv7, type CommandView } from '@herald/contracts';
import { SqliteEventLogAdapter, type EventLog } from '@herald/event-log';
import { createLogger } from '@herald/platform';
import { SqliteProjectionStoreAdapter, type ProjectionStore } from '@herald/projection';
import { OrchestratorService } from '@herald/orchestrator';
import { IndexerService } from '@herald/indexer';

const logger = createLogger('silent');

async function allCommands(store: ProjectionStore): Promise<Record<string, unknown>[]> {
  const docs: Record<string, unknown>[] = [];
  let cursor: string | undefined;
  do {
    const page = await store.query(CommandsIndex.name, {
      sort: ['agent', 'seq'],
      limit: 500,
      ...(cursor ? { cursor } : {}),
    });
    docs.push(...page.items.map((i) => ({ ...i.doc, _version: i.version })));
    cursor = page.nextCursor;
  } while (cursor);
  return docs;
}

describe('IndexerService', () => {
  let dir: string;
  let log: EventLog;
  const stores: ProjectionStore[] = [];

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'herald-indexer-'));
    log = new SqliteEventLogAdapter({ path: join(dir, 'log.db') });
  });
  afterEach(async () => {
    for (const s of stores.splice(0)) await s.close();
    await log.close();
  });

  it('projects the command lifecycle, and a rebuild from offset 0 equals the live projection', async () => {
    const agents = Array.from({ length: 5 }, () => uuidv7());
    const commandIds: string[] = [];
    const now = Date.now();
    await log.append(
      agents.flatMap((agent) =>
        Array.from({ length: 4 }, () => {
          const commandId = uuidv7();
          commandIds.push(commandId);
          return {
            topic: Topics.commandRequests,
            key: agent,
            value: JSON.stringify(
              envelope(
                'CommandRequested',
                {
                  commandId,
                  requestId: 'r1',
                  agentUuid: agent,
                  action: { name: 'get-config', version: 'v1', args: {} },
                  source: 'test',
                  user: 'tester',
                  requestedAt: new Date(now).toISOString(),
                  expiresAt: new Date(now + 3600_000).toISOString(),
                  timeout: 60,
                },
                { agentUuid: agent },
              ),
            ),
          };
        }),
      ),
    );
    const orchestrator = new OrchestratorService(log, logger, { graceSeconds: 0, tickMs: 1000 });
    await orchestrator.start();
    const live = new SqliteProjectionStoreAdapter({ path: join(dir, 'live.db') });
    stores.push(live);
    const liveIndexer = new IndexerService(log, live, logger);
    await liveIndexer.start();
    await orchestrator.caughtUp();

    // Feedback for the first command of each agent: delivered, acknowledged, succeeded.
    const firsts = agents.map((agent, i) => ({ agent, id: commandIds[i * 4] ?? '' }));
    const fb = (agent: string, type: string, data: Record<string, unknown>) => ({
      topic: Topics.agentFeedback,
      key: agent,
      value: JSON.stringify(envelope(type, data, { agentUuid: agent })),
    });
    await log.append(
      firsts.flatMap(({ agent, id }) => [
        fb(agent, 'CommandDelivered', { commandId: id, seq: 1, via: 'websocket' }),
        fb(agent, 'CommandAcknowledged', { commandId: id, seq: 1 }),
        fb(agent, 'CommandResultReported', {
          commandId: id,
          seq: 1,
          status: 'success',
          result: { code: 0, message: 'done' },
        }),
      ]),
    );
    await orchestrator.caughtUp();
    await liveIndexer.caughtUp();
    await orchestrator.stop();
    await liveIndexer.stop();

    const liveDocs = await allCommands(live);
    expect(liveDocs).toHaveLength(20);
    const first = (await live.get<CommandView>(CommandsIndex.name, firsts[0]?.id ?? ''))?.doc;
    expect(first).toMatchObject({ seq: 1, status: 'success', result: { code: 0, message: 'done' } });
    expect(Object.keys(first?.timestamps ?? {}).sort()).toEqual(['finished', 'inProgress', 'issued', 'sent']);
    expect(liveDocs.filter((d) => d['status'] === 'pending')).toHaveLength(15);

    // Rebuild: a fresh store, a fresh consumer group, from offset 0.
    const rebuilt = new SqliteProjectionStoreAdapter({ path: join(dir, 'rebuilt.db') });
    stores.push(rebuilt);
    const rebuilder = new IndexerService(log, rebuilt, logger, 'indexer-rebuild');
    await rebuilder.start();
    await rebuilder.caughtUp();
    await rebuilder.stop();
    expect(await allCommands(rebuilt)).toEqual(liveDocs);
    expect(await rebuilt.getWatermark(COMMANDS_WATERMARK)).toEqual(await live.getWatermark(COMMANDS_WATERMARK));

    // Replaying the whole log into the live store again changes nothing (versions guard it).
    const replayer = new IndexerService(log, live, logger, 'indexer-replay');
    await replayer.start();
    await replayer.caughtUp();
    await replayer.stop();
    expect(await allCommands(live)).toEqual(liveDocs);
  });
});
