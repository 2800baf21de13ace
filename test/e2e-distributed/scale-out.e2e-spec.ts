import { Agent, silentLogger } from '@herald/agent';
import { expectEventually, HeraldProcess } from '@herald/testing';
import { enrollAgent, managementApi, registerAgents } from '../e2e/support';

const REAL_AGENTS = 4;
const SIMULATED_AGENTS = 40;
const REQUESTS = 10;

/**
 * Two orchestrators and two indexers share the partitions of the log, two gateways share the
 * agents. One
 * orchestrator is killed with SIGKILL mid-run (its partitions move to the other, which rebuilds
 * their state after fencing the dead one) and comes back (they move again). Every agent still
 * gets one dense, ordered stream: real agents execute 1..N exactly once, in order, whichever
 * gateway holds them; commands of agents that never connect all expire.
 */
describe('scale-out: two orchestrators, two gateways and two indexers on Kafka', () => {
  let core: HeraldProcess;
  const orchestrators: HeraldProcess[] = [];
  const gateways: HeraldProcess[] = [];
  const agents: Agent[] = [];
  let indexer: HeraldProcess | undefined;

  beforeAll(async () => {
    core = await HeraldProcess.create({ env: { HERALD_COMPONENTS: 'indexer,management-api', HERALD_PARTITIONS: '8' } });
    await core.start();
    const shared = { HERALD_TOPIC_PREFIX: core.topicPrefix, HERALD_PARTITIONS: '8' };
    for (let i = 0; i < 2; i++) {
      const orchestrator = await HeraldProcess.create({
        dataDir: core.dataDir,
        env: { ...shared, HERALD_COMPONENTS: 'orchestrator' },
      });
      await orchestrator.start();
      orchestrators.push(orchestrator);
      const gateway = await HeraldProcess.create({
        dataDir: core.dataDir,
        env: { ...shared, HERALD_COMPONENTS: 'comms-api' },
      });
      await gateway.start();
      gateways.push(gateway);
    }
  });
  afterAll(async () => {
    for (const agent of agents) await agent.stop();
    for (const p of [...gateways, ...orchestrators]) await p.stop();
    await indexer?.stop();
    await core.stop();
  });

  it('keeps one dense, ordered stream per agent through a crash and a rebalance', async () => {
    const call = managementApi(core, await core.operatorToken());
    const executed = new Map<string, number[]>();
    for (let i = 0; i < REAL_AGENTS; i++) {
      const { dataDir, identity } = await enrollAgent(core, (gateways[i % 2] as HeraldProcess).commsUrl);
      const agent = new Agent({ dataDir, tls: { ca: core.ca }, logger: silentLogger });
      executed.set(identity.uuid, []);
      agent.on('command-executed', (c) => executed.get(identity.uuid)?.push(c.seq));
      agents.push(agent);
      void agent.run();
    }
    const simulated = await registerAgents(call, SIMULATED_AGENTS);

    const requestIds: string[] = [];
    const send = async (n: number): Promise<void> => {
      const requestId = `scale-${n}`;
      const res = await call('/commands', 'POST', {
        requestId,
        targets: { all: true },
        action: { name: 'get-config' },
        expiresIn: 30,
      });
      expect(res.status).toBe(202);
      requestIds.push(requestId);
    };
    for (let n = 0; n < 3; n++) await send(n);
    await (orchestrators[0] as HeraldProcess).kill();
    for (let n = 3; n < 6; n++) await send(n);
    await (orchestrators[0] as HeraldProcess).start();
    for (let n = 6; n < REQUESTS; n++) await send(n);

    const expected = Array.from({ length: REQUESTS }, (_, i) => i + 1);
    await expectEventually(() => [...executed.values()].every((seqs) => seqs.length >= REQUESTS), {
      timeoutMs: 90000,
      intervalMs: 250,
      what: 'every real agent to execute every command',
    });
    for (const seqs of executed.values()) expect(seqs).toEqual(expected);
    await expectEventually(
      async () => {
        for (const agent of simulated) {
          const items = (
            (await call(`/commands?agent=${agent}&limit=100`)).json as { items: { seq: number; status: string }[] }
          ).items;
          expect(items.map((v) => [v.seq, v.status])).toEqual(expected.map((seq) => [seq, 'expired']));
        }
      },
      { timeoutMs: 90000, intervalMs: 1000, what: 'the commands of agents that never connect to expire' },
    );
  });
});
