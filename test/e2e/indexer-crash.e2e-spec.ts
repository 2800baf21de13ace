import { expectEventually, HeraldProcess } from '@herald/testing';
import { managementApi, registerAgents } from './support';

const AGENTS = 20;
const REQUESTS = 10;

/**
 * The indexer runs as its own process and is killed with SIGKILL while the log moves on; after
 * a restart the projection converges to the log: every command, in seq order, in its final state.
 */
describe('indexer killed with SIGKILL mid-run', () => {
  let rest: HeraldProcess;
  let indexer: HeraldProcess;

  beforeAll(async () => {
    const env = { HERALD_KAFKA_SESSION_TIMEOUT: '6' };
    rest = await HeraldProcess.create({ env: { ...env, HERALD_COMPONENTS: 'orchestrator,comms-api,management-api' } });
    await rest.start();
    indexer = await HeraldProcess.create({
      dataDir: rest.dataDir,
      env: { ...env, HERALD_COMPONENTS: 'indexer', HERALD_TOPIC_PREFIX: rest.topicPrefix },
    });
    await indexer.start();
  });
  afterAll(async () => {
    await indexer.stop();
    await rest.stop();
  });

  it('converges to the log after a restart', async () => {
    const token = await rest.operatorToken();
    const call = managementApi(rest, token);
    const agents = await registerAgents(call, AGENTS);
    const requestIds: string[] = [];
    const send = async (n: number): Promise<void> => {
      const requestId = `idx-${n}`;
      const body = { requestId, targets: { all: true }, action: { name: 'restart' }, expiresIn: 15 };
      expect((await call('/commands', 'POST', body)).status).toBe(202);
      requestIds.push(requestId);
    };
    for (let n = 0; n < 3; n++) await send(n);
    await indexer.kill();
    for (let n = 3; n < REQUESTS; n++) await send(n);
    // Cancel one request while the indexer is down: its events must be projected too.
    expect((await call('/requests/idx-9/cancel', 'POST')).status).toBe(202);
    await indexer.start();

    await expectEventually(
      async () => {
        for (const requestId of requestIds) {
          const summary = (await call(`/requests/${requestId}`)).json as { byStatus: Record<string, number> };
          expect(summary.byStatus).toEqual(requestId === 'idx-9' ? { cancelled: AGENTS } : { expired: AGENTS });
        }
      },
      { timeoutMs: 90000, intervalMs: 500, what: 'the projection to converge' },
    );
    for (const agent of agents) {
      const items = ((await call(`/commands?agent=${agent}&limit=100`)).json as { items: { seq: number }[] }).items;
      expect(items.map((v) => v.seq)).toEqual(Array.from({ length: REQUESTS }, (_, i) => i + 1));
    }
  });
});
