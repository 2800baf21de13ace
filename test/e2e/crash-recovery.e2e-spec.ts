import { Agent, silentLogger } from '@herald/agent';
import { expectEventually, HeraldProcess, httpsRequest } from '@herald/testing';
import { enrollAgent } from './support';

interface View {
  id: string;
  seq: number;
  status: string;
  timestamps: Record<string, string>;
}

describe('a server killed with SIGKILL between accepting a command and delivering it', () => {
  let herald: HeraldProcess;
  let agent: Agent | undefined;

  beforeAll(async () => {
    herald = await HeraldProcess.create();
    await herald.start();
  });
  afterAll(async () => {
    await agent?.stop();
    await herald.stop();
  });

  it('delivers the command after the restart, exactly once, with the same seq', async () => {
    const { dataDir: agentDir, identity } = await enrollAgent(herald);
    const token = await herald.operatorToken();
    const auth = { authorization: `Bearer ${token}` };

    // Two commands accepted while the agent is offline; the server dies right after the 202s.
    const ids: string[] = [];
    for (const name of ['get-config', 'set-group']) {
      const res = await httpsRequest(`${herald.managementUrl}/commands`, {
        method: 'POST',
        ca: herald.ca,
        headers: auth,
        body: {
          targets: { agents: [identity.uuid] },
          action: { name, ...(name === 'set-group' ? { args: { groups: ['linux'] } } : {}) },
        },
      });
      expect(res.status).toBe(202);
      ids.push((res.json as { commands: { id: string }[] }).commands[0]?.id ?? '');
    }
    await herald.kill();
    await herald.start();

    const executed: { seq: number; id: string }[] = [];
    agent = new Agent({ dataDir: agentDir, tls: { ca: herald.ca }, logger: silentLogger });
    agent.on('command-executed', (c) => executed.push({ seq: c.seq, id: c.id }));
    void agent.run();

    const newToken = await herald.operatorToken();
    const views = await expectEventually(
      async () => {
        const got: View[] = [];
        for (const id of ids) {
          const res = await httpsRequest(`${herald.managementUrl}/commands/${id}`, {
            ca: herald.ca,
            headers: { authorization: `Bearer ${newToken}` },
          });
          const view = res.json as View;
          if (view.status !== 'success') return false;
          got.push(view);
        }
        return got;
      },
      { timeoutMs: 30000, what: 'both commands to succeed after the restart' },
    );
    expect(views.map((v) => v.seq)).toEqual([1, 2]);
    expect(executed).toEqual([
      { seq: 1, id: ids[0] },
      { seq: 2, id: ids[1] },
    ]);

    // Kill again after execution: a restart must neither re-deliver nor re-issue anything.
    await agent.stop();
    await herald.kill();
    await herald.start();
    agent = new Agent({ dataDir: agentDir, tls: { ca: herald.ca }, logger: silentLogger });
    agent.on('command-executed', (c) => executed.push({ seq: c.seq, id: c.id }));
    const connected = new Promise<void>((r) => agent?.once('connected', () => r()));
    void agent.run();
    await connected;
    const lastToken = await herald.operatorToken();
    const third = await httpsRequest(`${herald.managementUrl}/commands`, {
      method: 'POST',
      ca: herald.ca,
      headers: { authorization: `Bearer ${lastToken}` },
      body: { targets: { agents: [identity.uuid] }, action: { name: 'get-config' } },
    });
    expect(third.status).toBe(202);
    await expectEventually(() => executed.length >= 3, { timeoutMs: 30000, what: 'the third command to run' });
    expect(executed.map((e) => e.seq)).toEqual([1, 2, 3]);
    // The projection is eventually consistent: wait until it shows all three, then check them.
    await expectEventually(async () => {
      const list = await httpsRequest(`${herald.managementUrl}/commands?agent=${identity.uuid}`, {
        ca: herald.ca,
        headers: { authorization: `Bearer ${lastToken}` },
      });
      expect((list.json as { items: View[] }).items.map((v) => [v.seq, v.status])).toEqual([
        [1, 'success'],
        [2, 'success'],
        [3, 'success'],
      ]);
    });
  });
});
