import { expectEventually, HeraldProcess } from '@herald/testing';
import { managementApi, registerAgents } from './support';

const AGENTS = 50;
const REQUESTS = 20; // x 50 agents = 1,000 commands

interface View {
  seq: number;
  status: string;
}

/**
 * The orchestrator runs as its own process and is killed with SIGKILL while 1,000 commands for
 * 50 agents are in flight. After a restart every command is issued exactly once, `seq` is dense
 * per agent, and every command reaches a terminal state (here: expiry, enforced server-side).
 */
describe('orchestrator killed with SIGKILL mid-run', () => {
  let api: HeraldProcess;
  let orchestrator: HeraldProcess;

  beforeAll(async () => {
    const env = { HERALD_KAFKA_SESSION_TIMEOUT: '6' };
    api = await HeraldProcess.create({ env: { ...env, HERALD_COMPONENTS: 'indexer,comms-api,management-api' } });
    await api.start();
    orchestrator = await HeraldProcess.create({
      dataDir: api.dataDir,
      env: { ...env, HERALD_COMPONENTS: 'orchestrator', HERALD_TOPIC_PREFIX: api.topicPrefix },
    });
    await orchestrator.start();
  });
  afterAll(async () => {
    await orchestrator.stop();
    await api.stop();
  });

  it('issues every command once with dense seqs, and all reach a terminal state', async () => {
    const token = await api.operatorToken();
    const call = managementApi(api, token);
    const agents = await registerAgents(call, AGENTS);
    const send = async (n: number): Promise<string> => {
      const res = await call('/commands', 'POST', {
        requestId: `crash-${n}`,
        targets: { all: true },
        action: { name: 'get-config' },
        expiresIn: 20,
      });
      expect(res.status).toBe(202);
      expect((res.json as { count: number }).count).toBe(AGENTS);
      return `crash-${n}`;
    };

    const requestIds: string[] = [];
    for (let n = 0; n < 5; n++) requestIds.push(await send(n));
    await orchestrator.kill();
    for (let n = 5; n < REQUESTS; n++) requestIds.push(await send(n));
    await orchestrator.start();

    await expectEventually(
      async () => {
        for (const requestId of requestIds) {
          const summary = (await call(`/requests/${requestId}`)).json as {
            total: number;
            byStatus: Record<string, number>;
          };
          expect(summary).toEqual({ requestId, total: AGENTS, byStatus: { expired: AGENTS } });
        }
      },
      { timeoutMs: 90000, intervalMs: 500, what: 'all 1,000 commands to expire' },
    );
    for (const agent of agents) {
      const items = ((await call(`/commands?agent=${agent}&limit=100`)).json as { items: View[] }).items;
      expect(items.map((v) => v.seq)).toEqual(Array.from({ length: REQUESTS }, (_, i) => i + 1));
    }
  });
});
