import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  commandEventSchemas,
  envelope,
  parseEnvelope,
  Topics,
  uuidv7,
  type CommandEvent,
  type CommandRequested,
} from '@herald/contracts';
import { SqliteEventLogAdapter, type EventLog } from '@herald/event-log';
import { createLogger } from '@herald/platform';
import { expectEventually } from '@herald/testing';
import { OrchestratorService } from './orchestrator.service';

const logger = createLogger('silent');

function request(agentUuid: string, overrides: Partial<CommandRequested> = {}): CommandRequested {
  const now = Date.now();
  return {
    commandId: uuidv7(),
    requestId: uuidv7(),
    agentUuid,
    action: { name: 'get-config', version: 'v1', args: {} },
    source: 'test',
    user: 'tester',
    requestedAt: new Date(now).toISOString(),
    expiresAt: new Date(now + 3600_000).toISOString(),
    timeout: 60,
    ...overrides,
  };
}

async function appendRequests(log: EventLog, requests: CommandRequested[]): Promise<void> {
  await log.append(
    requests.map((r) => ({
      topic: Topics.commandRequests,
      key: r.agentUuid,
      value: JSON.stringify(envelope('CommandRequested', r, { agentUuid: r.agentUuid })),
    })),
  );
}

async function commandEvents(log: EventLog): Promise<{ key: string; event: CommandEvent }[]> {
  const out: { key: string; event: CommandEvent }[] = [];
  for (const end of await log.endOffsets(Topics.commands)) {
    for (const record of await log.read(Topics.commands, end.partition, 0, 100000)) {
      const env = parseEnvelope(record.value, commandEventSchemas);
      out.push({ key: record.key, event: { type: env.type, data: env.data } as CommandEvent });
    }
  }
  return out;
}

function issuedSeqs(events: { key: string; event: CommandEvent }[], agent: string): number[] {
  return events
    .filter((e) => e.key === agent && e.event.type === 'CommandIssued')
    .map((e) => (e.event.type === 'CommandIssued' ? e.event.data.command.seq : 0));
}

describe('OrchestratorService on the embedded log', () => {
  let dir: string;
  let log: EventLog;
  let orchestrator: OrchestratorService | undefined;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'herald-orchestrator-'));
    log = new SqliteEventLogAdapter({ path: join(dir, 'log.db') });
  });
  afterEach(async () => {
    await orchestrator?.stop();
    orchestrator = undefined;
    await log.close();
  });

  it('issues dense per-agent seqs, once per command, and continues them after a restart', async () => {
    const agents = [uuidv7(), uuidv7(), uuidv7()];
    const first = agents.flatMap((a) => [request(a), request(a), request(a)]);
    await appendRequests(log, first);
    orchestrator = new OrchestratorService(log, logger, { graceSeconds: 0, tickMs: 50 });
    await orchestrator.start();
    await orchestrator.caughtUp();
    await orchestrator.stop();

    // A duplicate request (same commandId) and new ones, handled by a fresh instance.
    await appendRequests(log, [first[0] as CommandRequested, ...agents.map((a) => request(a))]);
    orchestrator = new OrchestratorService(log, logger, { graceSeconds: 0, tickMs: 50 });
    await orchestrator.start();
    await orchestrator.caughtUp();

    const events = await commandEvents(log);
    for (const agent of agents) expect(issuedSeqs(events, agent)).toEqual([1, 2, 3, 4]);
    expect(events.filter((e) => e.event.type === 'CommandIssued')).toHaveLength(12);
  });

  it('expires commands whose deliver-by passes while nobody fetches them (server-side deadline)', async () => {
    const agent = uuidv7();
    const req = request(agent, { expiresAt: new Date(Date.now() + 300).toISOString() });
    await appendRequests(log, [req]);
    orchestrator = new OrchestratorService(log, logger, { graceSeconds: 0, tickMs: 50 });
    await orchestrator.start();
    await expectEventually(async () => {
      const events = await commandEvents(log);
      expect(events.map((e) => e.event.type)).toEqual(['CommandIssued', 'CommandExpired']);
    });
  });

  it('applies agent feedback in order and records late claims without applying them', async () => {
    const agent = uuidv7();
    const req = request(agent);
    await appendRequests(log, [req]);
    orchestrator = new OrchestratorService(log, logger, { graceSeconds: 0, tickMs: 1000 });
    await orchestrator.start();
    const feedback = (type: string, data: Record<string, unknown>) => ({
      topic: Topics.agentFeedback,
      key: agent,
      value: JSON.stringify(envelope(type, data, { agentUuid: agent })),
    });
    await log.append([
      feedback('CommandDelivered', { commandId: req.commandId, seq: 1, via: 'websocket' }),
      feedback('CommandAcknowledged', { commandId: req.commandId, seq: 1 }),
      feedback('CommandResultReported', {
        commandId: req.commandId,
        seq: 1,
        status: 'success',
        result: { code: 0, message: 'ok' },
      }),
      feedback('CommandResultReported', {
        commandId: req.commandId,
        seq: 1,
        status: 'failure',
        result: { code: 1, message: 'late' },
      }),
    ]);
    await orchestrator.caughtUp();
    const types = (await commandEvents(log)).map((e) => e.event.type);
    expect(types).toEqual([
      'CommandIssued',
      'CommandSent',
      'CommandInProgress',
      'CommandSucceeded',
      'CommandClaimIgnored',
    ]);
  });

  it('dead-letters an unparseable record and keeps consuming', async () => {
    const agent = uuidv7();
    await log.append([
      { topic: Topics.commandRequests, key: agent, value: '{"type":"CommandRequested","nonsense":true}' },
    ]);
    await appendRequests(log, [request(agent)]);
    orchestrator = new OrchestratorService(log, logger, { graceSeconds: 0, tickMs: 1000 });
    await orchestrator.start();
    await orchestrator.caughtUp();
    expect(issuedSeqs(await commandEvents(log), agent)).toEqual([1]);
    const dead = await log.read(Topics.deadLetter, await log.partitionFor(Topics.deadLetter, agent), 0, 10);
    expect(dead).toHaveLength(1);
    expect(JSON.parse(dead[0]?.value ?? '{}')).toMatchObject({
      consumer: 'orchestrator',
      source: { topic: Topics.commandRequests },
    });
  });
});
