import { Agent, silentLogger } from '@herald/agent';
import { expectEventually, HeraldProcess, httpsRequest } from '@herald/testing';
import { enrollAgent } from './support';

const AGENTS = 6;

/**
 * Two comms-api processes (gateways) in front of one log: every agent gets its commands in
 * order whichever gateway holds its socket, also after it moves to the other gateway.
 */
describe('scale-out: two gateway processes', () => {
  let core: HeraldProcess;
  const gateways: HeraldProcess[] = [];
  const agents: Agent[] = [];

  beforeAll(async () => {
    core = await HeraldProcess.create({ env: { HERALD_COMPONENTS: 'orchestrator,indexer,management-api' } });
    await core.start();
    for (let i = 0; i < 2; i++) {
      const gateway = await HeraldProcess.create({
        dataDir: core.dataDir,
        env: { HERALD_COMPONENTS: 'comms-api', HERALD_TOPIC_PREFIX: core.topicPrefix },
      });
      await gateway.start();
      gateways.push(gateway);
    }
  });
  afterAll(async () => {
    for (const agent of agents) await agent.stop();
    for (const gateway of gateways) await gateway.stop();
    await core.stop();
  });

  it('delivers to agents on either gateway, in order, once', async () => {
    const token = await core.operatorToken();
    const send = async (name: string): Promise<void> => {
      const res = await httpsRequest(`${core.managementUrl}/commands`, {
        method: 'POST',
        ca: core.ca,
        headers: { authorization: `Bearer ${token}` },
        body: { targets: { all: true }, action: { name } },
      });
      expect(res.status).toBe(202);
    };
    const executed = new Map<string, number[]>();
    const dirs: string[] = [];
    for (let i = 0; i < AGENTS; i++) {
      const { dataDir: dir, identity } = await enrollAgent(core, (gateways[i % 2] as HeraldProcess).commsUrl);
      dirs.push(dir);
      executed.set(identity.uuid, []);
    }
    const startAgent = (dir: string, commsUrl?: string): Agent => {
      const agent = new Agent({
        dataDir: dir,
        tls: { ca: core.ca },
        logger: silentLogger,
        ...(commsUrl ? { commsUrl } : {}),
      });
      const uuid = agent.identity.uuid;
      agent.on('command-executed', (c) => executed.get(uuid)?.push(c.seq));
      agents.push(agent);
      void agent.run();
      return agent;
    };
    const running = dirs.map((dir) => startAgent(dir));

    await send('get-config');
    await expectEventually(() => [...executed.values()].every((seqs) => seqs.length === 1), {
      what: 'the first command on every agent',
    });

    // Move the first agent to the other gateway while a command is sent to everyone.
    const moved = running[0] as Agent;
    await moved.stop();
    await send('get-config');
    startAgent(dirs[0] as string, gateways[1]?.commsUrl);

    await expectEventually(() => [...executed.values()].every((seqs) => seqs.length === 2), {
      timeoutMs: 30000,
      what: 'the second command on every agent',
    });
    for (const seqs of executed.values()) expect(seqs).toEqual([1, 2]);
  });
});
