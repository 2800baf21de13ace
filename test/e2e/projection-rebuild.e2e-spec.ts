import { Agent, silentLogger } from '@herald/agent';
import { expectEventually, HERALD_MAIN, HeraldProcess, REPO_ROOT } from '@herald/testing';
import { enrollAgent, managementApi, runToCompletion } from './support';

interface View {
  id: string;
  seq: number;
  status: string;
}

describe('rebuild-projection', () => {
  let herald: HeraldProcess;

  beforeAll(async () => {
    herald = await HeraldProcess.create();
    await herald.start();
  });
  afterAll(async () => {
    await herald.stop();
  });

  it('rebuilds from offset 0 a projection equal to the live one', async () => {
    const { dataDir: agentDir, identity } = await enrollAgent(herald);
    const token = await herald.operatorToken();
    const api = managementApi(herald, token);
    const send = async (name: string, args?: unknown): Promise<string> => {
      const res = await api('/commands', 'POST', { targets: { agents: [identity.uuid] }, action: { name, args } });
      expect(res.status).toBe(202);
      return (res.json as { commands: { id: string }[] }).commands[0]?.id ?? '';
    };

    // A mix of states: success and rejected (executed), then pending and cancelled while offline.
    const running = new Agent({ dataDir: agentDir, tls: { ca: herald.ca }, logger: silentLogger });
    void running.run();
    await send('get-config');
    await send('set-group', { groups: ['linux'] });
    await send('upgrade', { package: 'herald-agent-7.0.0.deb' }); // the reference agent rejects it
    await expectEventually(async () => {
      const items = ((await api(`/commands?agent=${identity.uuid}`)).json as { items: View[] }).items;
      expect(items.map((v) => v.status)).toEqual(['success', 'success', 'rejected']);
    });
    await running.stop();
    await send('get-config');
    const toCancel = await send('restart');
    expect((await api(`/commands/${toCancel}/cancel`, 'POST')).status).toBe(202);
    const live = await expectEventually(async () => {
      const items = ((await api(`/commands?agent=${identity.uuid}`)).json as { items: View[] }).items;
      expect(items.map((v) => v.status)).toEqual(['success', 'success', 'rejected', 'pending', 'cancelled']);
      return items;
    });

    await herald.stop();
    const output = await runToCompletion(process.execPath, [HERALD_MAIN, 'rebuild-projection'], {
      cwd: REPO_ROOT,
      env: { ...process.env, ...herald.environment },
    });
    expect(output).toMatchObject({
      code: 0,
      output: expect.stringMatching(/Projection rebuilt: \d+ records/) as string,
    });

    await herald.start();
    const newToken = await herald.operatorToken();
    const rebuilt = await managementApi(herald, newToken)(`/commands?agent=${identity.uuid}`);
    expect((rebuilt.json as { items: View[] }).items).toEqual(live);
  });
});
