import { HeraldProcess, httpsRequest, type HttpResult } from '@herald/testing';
import WebSocket from 'ws';
import { enrollAgent } from './support';

function expectError(res: HttpResult, status: number, message?: RegExp): void {
  expect({ status: res.status, body: res.json }).toMatchObject({
    status,
    body: { code: expect.any(Number) as number },
  });
  const body = res.json as { message: unknown; code: number };
  expect(typeof body.message).toBe('string');
  if (message) expect(body.message).toMatch(message);
}

describe('bad input on the skeleton endpoints', () => {
  let herald: HeraldProcess;
  let token: string;
  let agentUuid: string;
  let agentKey: string;

  beforeAll(async () => {
    herald = await HeraldProcess.create({ env: { HERALD_MAX_BODY_BYTES: '65536' } });
    await herald.start();
    token = await herald.operatorToken();
    const { identity } = await enrollAgent(herald);
    agentUuid = identity.uuid;
    agentKey = identity.key;
  });
  afterAll(async () => {
    await herald.stop();
  });

  const mgmt = (path: string, init: { method?: string; headers?: Record<string, string>; body?: unknown } = {}) =>
    httpsRequest(`${herald.managementUrl}${path}`, {
      ca: herald.ca,
      ...init,
      headers: { authorization: `Bearer ${token}`, ...(init.headers ?? {}) },
    });
  const comms = (path: string, init: { method?: string; headers?: Record<string, string>; body?: unknown } = {}) =>
    httpsRequest(`${herald.commsUrl}${path}`, { ca: herald.ca, ...init });

  it('login: missing, malformed and wrong credentials are 401', async () => {
    expectError(
      await httpsRequest(`${herald.managementUrl}/security/user/authenticate`, { method: 'POST', ca: herald.ca }),
      401,
    );
    expectError(
      await httpsRequest(`${herald.managementUrl}/security/user/authenticate`, {
        method: 'POST',
        ca: herald.ca,
        headers: { authorization: 'Basic !!!' },
      }),
      401,
    );
    expectError(
      await httpsRequest(`${herald.managementUrl}/security/user/authenticate`, {
        method: 'POST',
        ca: herald.ca,
        headers: { authorization: `Basic ${Buffer.from('admin:wrong-password').toString('base64')}` },
      }),
      401,
      /Invalid credentials/,
    );
  });

  it('operator routes: missing, forged and agent tokens are 401', async () => {
    expectError(await httpsRequest(`${herald.managementUrl}/commands`, { ca: herald.ca }), 401, /Missing bearer token/);
    expectError(await mgmt('/commands', { headers: { authorization: 'Bearer abc.def.ghi' } }), 401);
    const agentToken = (
      await comms('/api/v1/authentication', { method: 'POST', body: { uuid: agentUuid, key: agentKey } })
    ).json as { token: string };
    expectError(await mgmt('/commands', { headers: { authorization: `Bearer ${agentToken.token}` } }), 401);
  });

  it('POST /agents: malformed JSON, missing fields, wrong types, duplicates', async () => {
    expectError(await mgmt('/agents', { method: 'POST', body: '{"id": ' }), 400, /Malformed JSON/);
    expectError(await mgmt('/agents', { method: 'POST', body: {} }), 400, /id is required/);
    expectError(
      await mgmt('/agents', { method: 'POST', body: { id: 'not-a-uuid', name: 7, key: 'short' } }),
      400,
      /id is not a valid uuid.*name.*key must be at least 32/,
    );
    expectError(
      await mgmt('/agents', { method: 'POST', body: { id: agentUuid, name: 'again', key: 'k'.repeat(32) } }),
      409,
      /already exists/,
    );
  });

  it('POST /commands: unknown action, bad args, unknown agents, bad targets', async () => {
    const targets = { agents: [agentUuid] };
    expectError(
      await mgmt('/commands', { method: 'POST', body: { targets, action: { name: 'format-disk' } } }),
      400,
      /not a known action/,
    );
    expectError(
      await mgmt('/commands', {
        method: 'POST',
        body: { targets, action: { name: 'set-group', args: { groups: 'linux' } } },
      }),
      400,
      /action\.args.*groups/,
    );
    expectError(
      await mgmt('/commands', {
        method: 'POST',
        body: { targets: { agents: ['01900000-0000-7000-8000-000000000000'] }, action: { name: 'restart' } },
      }),
      400,
      /unknown agent/,
    );
    expectError(
      await mgmt('/commands', { method: 'POST', body: { targets: {}, action: { name: 'restart' } } }),
      400,
      /targets/,
    );
    expectError(
      await mgmt('/commands', { method: 'POST', body: { targets, action: { name: 'restart' }, timeout: 'soon' } }),
      400,
      /timeout/,
    );
    expectError(await mgmt('/commands', { method: 'POST', body: [] }), 400);
  });

  it('oversized bodies are 413 and the server stays up', async () => {
    const big = JSON.stringify({
      targets: { agents: [agentUuid] },
      action: { name: 'restart', args: { pad: 'x'.repeat(70000) } },
    });
    expectError(await mgmt('/commands', { method: 'POST', body: big }), 413);
    expectError(
      await comms('/api/v1/authentication', { method: 'POST', body: JSON.stringify({ uuid: 'x'.repeat(70000) }) }),
      413,
    );
  });

  it('queries: bad ids, unknown commands and bad filters', async () => {
    expectError(await mgmt('/commands/not-a-uuid'), 400);
    expectError(await mgmt('/commands/01900000-0000-7000-8000-000000000000'), 404);
    expectError(await mgmt('/commands?status=bogus'), 400, /status/);
    expectError(await mgmt('/commands?limit=0'), 400, /limit/);
    expectError(await mgmt('/commands?cursor=garbage'), 400);
    expectError(await mgmt('/requests/nope'), 404);
    expectError(await mgmt('/no-such-route'), 404);
  });

  it('agent authentication: bad body 400, unknown agent 403, wrong key 401', async () => {
    expectError(await comms('/api/v1/authentication', { method: 'POST', body: '{oops' }), 400);
    expectError(await comms('/api/v1/authentication', { method: 'POST', body: { uuid: 'x', key: 'y' } }), 400, /uuid/);
    expectError(
      await comms('/api/v1/authentication', {
        method: 'POST',
        body: { uuid: '01900000-0000-7000-8000-000000000000', key: 'k'.repeat(32) },
      }),
      403,
      /Agent does not exist/,
    );
    expectError(
      await comms('/api/v1/authentication', { method: 'POST', body: { uuid: agentUuid, key: 'k'.repeat(32) } }),
      401,
      /Invalid key/,
    );
  });

  it('WebSocket: bad tokens are refused before the upgrade; bad frames get an error and close 1007', async () => {
    const url = `${herald.commsUrl.replace('https', 'wss')}/api/v1/stream`;
    const refused = (headers: Record<string, string>) =>
      new Promise<number>((resolve, reject) => {
        const ws = new WebSocket(url, { ca: herald.ca, headers });
        ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
        ws.on('open', () => reject(new Error('upgrade should have been refused')));
        ws.on('error', () => undefined);
      });
    expect(await refused({})).toBe(401);
    expect(await refused({ authorization: 'Bearer nope' })).toBe(403);

    const { token: agentToken } = (
      await comms('/api/v1/authentication', { method: 'POST', body: { uuid: agentUuid, key: agentKey } })
    ).json as { token: string };
    for (const frame of [
      'not json',
      JSON.stringify({ type: 'ack', commandId: 'x' }),
      JSON.stringify({ type: 'bogus' }),
    ]) {
      const ws = new WebSocket(url, { ca: herald.ca, headers: { authorization: `Bearer ${agentToken}` } });
      const messages: unknown[] = [];
      ws.on('message', (d: Buffer) => messages.push(JSON.parse(d.toString())));
      await new Promise<void>((r) => ws.once('open', () => r()));
      const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
      ws.send(frame);
      expect(await closed).toBe(1007);
      expect(messages).toContainEqual(expect.objectContaining({ type: 'error', code: 400 }));
    }
  });

  it('the server is still up and serving', async () => {
    const res = await mgmt('/commands', {
      method: 'POST',
      body: { targets: { agents: [agentUuid] }, action: { name: 'get-config' } },
    });
    expect(res.status).toBe(202);
  });
});
