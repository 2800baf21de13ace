import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocketServer, type WebSocket } from 'ws';
import { agentFrameSchema, uuidv7, type AgentFrame, type CommandDocument, type ServerFrame } from '@herald/contracts';
import { Agent, type AgentOptions, type AgentRunResult } from './agent';
import { CommandStore } from './command-store';
import { done, type ActionDefinitions } from './executors';
import { expectEventually } from './testing/expect-eventually';
import { selfSignedCertificate, type TestCertificate } from './testing/tls';

/**
 * A small comms API peer speaking the real protocol over real sockets: `POST
 * /api/v1/authentication` and the `/api/v1/stream` WebSocket. It records every frame the agent
 * sends; the tests script what it answers.
 */
class TestCommsServer {
  readonly frames: AgentFrame[] = [];
  readonly issuedTokens: string[] = [];
  /** Answer the next N upgrades with this status before the handshake. */
  refuseUpgrades: { count: number; status: number } = { count: 0, status: 401 };
  /** Answer `result` frames with `result-ack` at once. */
  autoResultAck = true;
  tokenTtlSeconds = 900;
  connections = 0;
  socket: WebSocket | undefined;
  onFrame: ((frame: AgentFrame) => void) | undefined;
  private readonly http: http.Server;
  private readonly wss: WebSocketServer;

  constructor(
    private readonly credentials: { uuid: string; key: string },
    options: { autoPong?: boolean; tls?: TestCertificate } = {},
  ) {
    this.wss = new WebSocketServer({
      noServer: true,
      ...(options.autoPong !== undefined ? { autoPong: options.autoPong } : {}),
    });
    const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => this.onRequest(req, res);
    this.http = options.tls
      ? https.createServer({ cert: options.tls.cert, key: options.tls.key }, handler)
      : http.createServer(handler);
    this.scheme = options.tls ? 'https' : 'http';
    this.http.on('upgrade', (req: http.IncomingMessage, socket: import('node:stream').Duplex, head: Buffer) => {
      const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
      const refuse = this.refuseUpgrades.count > 0 ? this.refuseUpgrades.status : undefined;
      if (refuse !== undefined) this.refuseUpgrades.count--;
      const status =
        req.url !== '/api/v1/stream' ? 404 : (refuse ?? (token && this.issuedTokens.includes(token) ? 0 : 403));
      if (status !== 0) {
        const body = JSON.stringify({ message: 'Invalid token', code: status });
        socket.end(
          `HTTP/1.1 ${status} Refused\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
        );
        return;
      }
      this.wss.handleUpgrade(req, socket, head, (ws) => this.onConnection(ws));
    });
  }

  private readonly scheme: 'http' | 'https';

  get url(): string {
    return `${this.scheme}://127.0.0.1:${(this.http.address() as AddressInfo).port}`;
  }

  async listen(port = 0): Promise<void> {
    await new Promise<void>((resolve) => this.http.listen(port, '127.0.0.1', resolve));
  }

  async close(): Promise<void> {
    for (const client of this.wss.clients) client.terminate();
    this.wss.close();
    this.http.closeAllConnections();
    await new Promise<void>((resolve) => this.http.close(() => resolve()));
  }

  send(frame: ServerFrame | Record<string, unknown>): void {
    if (!this.socket) throw new Error('no agent connected');
    this.socket.send(JSON.stringify(frame));
  }

  sendRaw(data: string | Buffer): void {
    if (!this.socket) throw new Error('no agent connected');
    this.socket.send(data);
  }

  command(document: CommandDocument): void {
    this.send({ type: 'command', ...document });
  }

  /** Drop the agent's connection as a crashing server would. */
  dropConnection(): void {
    this.socket?.terminate();
  }

  framesOf<T extends AgentFrame['type']>(type: T): Array<Extract<AgentFrame, { type: T }>> {
    return this.frames.filter((f): f is Extract<AgentFrame, { type: T }> => f.type === type);
  }

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/api/v1/authentication') {
        res.writeHead(404, { 'Content-Type': 'application/json' }).end('{"message":"Not found","code":404}');
        return;
      }
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { uuid?: string; key?: string };
      if (body.uuid !== this.credentials.uuid) {
        res.writeHead(403, { 'Content-Type': 'application/json' }).end('{"message":"Agent does not exist","code":403}');
        return;
      }
      if (body.key !== this.credentials.key) {
        res.writeHead(401, { 'Content-Type': 'application/json' }).end('{"message":"Invalid key","code":401}');
        return;
      }
      const now = Math.floor(Date.now() / 1000);
      const b64 = (o: object): string => Buffer.from(JSON.stringify(o)).toString('base64url');
      const token = `${b64({ alg: 'none' })}.${b64({ uuid: body.uuid, iat: now, exp: now + this.tokenTtlSeconds, n: this.issuedTokens.length })}.sig`;
      this.issuedTokens.push(token);
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ token }));
    });
  }

  private onConnection(ws: WebSocket): void {
    this.connections++;
    this.socket = ws;
    ws.on('close', () => {
      if (this.socket === ws) this.socket = undefined;
    });
    ws.on('message', (data: Buffer) => {
      const frame = agentFrameSchema.parse(JSON.parse(data.toString('utf8')));
      this.frames.push(frame);
      if (frame.type === 'result' && this.autoResultAck) {
        ws.send(JSON.stringify({ type: 'result-ack', commandId: frame.commandId }));
      }
      this.onFrame?.(frame);
    });
  }
}

const key = 'A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6';

function commandDoc(
  agentUuid: string,
  seq: number,
  name: string,
  args: Record<string, unknown> = {},
  timeout = 60,
): CommandDocument {
  return {
    document_id: uuidv7(),
    request_id: `req-${seq}`,
    order_id: `req-${seq}`,
    source: 'test',
    user: 'tester',
    target: { type: 'agent', id: agentUuid },
    action: { name, version: 'v6.0.0', args },
    timeout,
    status: 'sent',
    seq,
  };
}

describe('Agent', () => {
  let dir: string;
  let uuid: string;
  let server: TestCommsServer;
  let agent: Agent | undefined;
  let runResult: Promise<AgentRunResult> | undefined;
  let executions: Array<{ name: string; seq: number }>;
  let logs: string[];

  /** Actions the tests add: `count` records every execution, `sleep` waits until aborted. */
  const testActions: ActionDefinitions = {
    count: {
      run: (_args, { command }) => (executions.push({ name: 'count', seq: command.seq }), done('success', 'counted')),
    },
    sleep: {
      run: (_args, { command, signal }) => {
        executions.push({ name: 'sleep', seq: command.seq });
        return new Promise((resolve) =>
          signal.addEventListener('abort', () => resolve(done('failure', 'aborted')), { once: true }),
        );
      },
    },
  };

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'herald-agent-'));
    uuid = uuidv7();
    executions = [];
    logs = [];
    server = new TestCommsServer({ uuid, key });
    await server.listen();
    const store = new CommandStore(dir);
    store.saveIdentity({
      uuid,
      key,
      name: 'spec-agent',
      managerUrl: 'http://127.0.0.1:1',
      commsUrl: server.url,
      groups: ['default'],
      enrolledAt: new Date().toISOString(),
    });
    store.close();
  });

  afterEach(async () => {
    await agent?.stop();
    agent = undefined;
    runResult = undefined;
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  function start(options: Partial<AgentOptions> = {}): Agent {
    const line = (level: string) => (message: string) => logs.push(`${level} ${message}`);
    agent = new Agent({
      dataDir: dir,
      tls: { allowPlainText: true },
      actions: testActions,
      backoff: { initialMs: 20, maxMs: 200 },
      logger: { info: line('info'), warn: line('warn'), error: line('error') },
      ...options,
    });
    runResult = agent.run();
    return agent;
  }

  const results = (): Array<{ seq: number; status: string }> =>
    server.framesOf('result').map((r) => ({ seq: r.seq, status: r.status }));

  it('says hello with lastExecutedSeq and capabilities, acks only stored commands, reports the result', async () => {
    const a = start();
    await expectEventually(() => expect(server.framesOf('hello')).toHaveLength(1));
    expect(server.frames[0]).toEqual({
      type: 'hello',
      lastExecutedSeq: 0,
      capabilities: ['count', 'get-config', 'restart', 'set-group', 'sleep'],
    });

    const storedWhenAcked: boolean[] = [];
    server.onFrame = (frame) => {
      if (frame.type === 'ack') {
        const reader = new CommandStore(dir, { readonly: true });
        storedWhenAcked.push(reader.get(frame.seq)?.id === frame.commandId);
        reader.close();
      }
    };
    const cmd = commandDoc(uuid, 1, 'get-config');
    server.command(cmd);

    await expectEventually(() => expect(server.framesOf('result')).toHaveLength(1));
    expect(server.framesOf('ack')).toEqual([{ type: 'ack', commandId: cmd.document_id, seq: 1 }]);
    expect(storedWhenAcked).toEqual([true]);
    expect(server.framesOf('result')[0]).toEqual({
      type: 'result',
      commandId: cmd.document_id,
      seq: 1,
      status: 'success',
      code: 0,
      message: 'agent configuration',
      data: {
        uuid,
        name: 'spec-agent',
        groups: ['default'],
        version: 'v6.0.0',
        capabilities: ['count', 'get-config', 'restart', 'set-group', 'sleep'],
      },
    });
    // result-ack: the command is forgotten, lastExecutedSeq stays.
    await expectEventually(() => expect(a.store.list()).toEqual([]));
    expect(a.lastExecutedSeq).toBe(1);
    expect(logs).toEqual(
      expect.arrayContaining([
        `info connected to ${server.url.replace('http:', 'ws:')}/api/v1/stream`,
        'info command #1 get-config received',
        'info command #1 get-config -> success',
      ]),
    );

    // A new session resumes from there.
    server.dropConnection();
    await expectEventually(() => expect(server.framesOf('hello')).toHaveLength(2));
    expect(server.framesOf('hello')[1]?.lastExecutedSeq).toBe(1);
  });

  it('executes in seq order when frames arrive out of order: asks for the gap once, then runs 1 then 2', async () => {
    const a = start();
    const executed: number[] = [];
    a.on('command-executed', (c) => executed.push(c.seq));
    await expectEventually(() => expect(server.framesOf('hello')).toHaveLength(1));
    const one = commandDoc(uuid, 1, 'count');
    const two = commandDoc(uuid, 2, 'count');
    server.command(two);
    await expectEventually(() => expect(server.framesOf('resend')).toEqual([{ type: 'resend', fromSeq: 1 }]));
    expect(server.framesOf('ack').map((f) => f.seq)).toEqual([2]); // stored and acked, not run
    server.command(two); // a duplicate while waiting: acked again, no second resend
    await expectEventually(() => expect(server.framesOf('ack').map((f) => f.seq)).toEqual([2, 2]));
    expect(server.framesOf('resend')).toHaveLength(1);
    expect(executions).toEqual([]);

    server.command(one);
    await expectEventually(() =>
      expect(results()).toEqual([
        { seq: 1, status: 'success' },
        { seq: 2, status: 'success' },
      ]),
    );
    expect(executed).toEqual([1, 2]);
    expect(executions.map((e) => e.seq)).toEqual([1, 2]);
  });

  it('never executes a command twice, however often it is delivered', async () => {
    const a = start();
    server.autoResultAck = false;
    await expectEventually(() => expect(server.framesOf('hello')).toHaveLength(1));
    const cmd = commandDoc(uuid, 1, 'count');
    server.command(cmd);
    server.command(cmd);
    await expectEventually(() => expect(results()).toHaveLength(1));
    expect(server.framesOf('ack')).toHaveLength(2);

    server.command(cmd); // executed, result not confirmed: the result again, no execution
    await expectEventually(() => expect(results()).toHaveLength(2));
    expect(server.framesOf('result')[1]?.commandId).toBe(cmd.document_id);

    server.send({ type: 'result-ack', commandId: cmd.document_id });
    await expectEventually(() => expect(a.store.list()).toEqual([]));
    server.command(cmd); // old and confirmed: ignored
    server.command(commandDoc(uuid, 2, 'count'));
    await expectEventually(() => expect(results()).toHaveLength(3));
    expect(executions.map((e) => e.seq)).toEqual([1, 2]);
    expect(server.framesOf('ack')).toHaveLength(3);
  });

  it('re-sends results after a reconnect until the server confirms them', async () => {
    const a = start();
    server.autoResultAck = false;
    await expectEventually(() => expect(server.framesOf('hello')).toHaveLength(1));
    const cmd = commandDoc(uuid, 1, 'count');
    server.command(cmd);
    await expectEventually(() => expect(results()).toHaveLength(1));

    server.dropConnection();
    await expectEventually(() => expect(results()).toHaveLength(2));
    const hello2 = server.frames.findIndex((f, i) => f.type === 'hello' && i > 0);
    expect(server.frames[hello2 + 1]).toMatchObject({ type: 'result', commandId: cmd.document_id, seq: 1 });
    expect(server.frames[hello2]).toMatchObject({ lastExecutedSeq: 1 });

    server.send({ type: 'result-ack', commandId: cmd.document_id });
    await expectEventually(() => expect(a.store.unackedResults()).toEqual([]));
    server.dropConnection();
    await expectEventually(() => expect(server.framesOf('hello')).toHaveLength(3));
    await a.stop(); // the third session sends nothing more
    expect(results()).toHaveLength(2);
    expect(executions).toHaveLength(1);
  });

  it('cancel voids a seq: a stored command is skipped, an unknown seq lets the sequence advance', async () => {
    const a = start();
    const voided: number[] = [];
    a.on('command-voided', (v) => voided.push(v.seq));
    await expectEventually(() => expect(server.framesOf('hello')).toHaveLength(1));

    const two = commandDoc(uuid, 2, 'count');
    server.command(two); // #1 missing
    await expectEventually(() => expect(server.framesOf('resend')).toEqual([{ type: 'resend', fromSeq: 1 }]));
    server.send({ type: 'cancel', commandId: two.document_id }); // stored, not started
    server.send({ type: 'cancel', commandId: uuidv7(), seq: 1 }); // never received: void
    await expectEventually(() => expect(a.lastExecutedSeq).toBe(2));
    expect(voided.sort()).toEqual([1, 2]);

    server.command(two); // a late delivery of a voided command
    server.command(commandDoc(uuid, 3, 'count'));
    await expectEventually(() => expect(results()).toEqual([{ seq: 3, status: 'success' }]));
    expect(executions.map((e) => e.seq)).toEqual([3]);
  });

  it('set-group: rejects invalid groups, stores valid ones', async () => {
    const a = start();
    await expectEventually(() => expect(server.framesOf('hello')).toHaveLength(1));
    server.command(commandDoc(uuid, 1, 'set-group', { groups: [] }));
    server.command(commandDoc(uuid, 2, 'set-group', { groups: ['linux', ''] }));
    server.command(commandDoc(uuid, 3, 'set-group', { groups: 'linux' }));
    server.command(commandDoc(uuid, 4, 'set-group', { groups: ['linux', 'web'] }));
    server.command(commandDoc(uuid, 5, 'frobnicate'));
    await expectEventually(() => expect(server.framesOf('result')).toHaveLength(5));
    const [r1, r2, r3, r4, r5] = server.framesOf('result');
    for (const r of [r1, r2, r3]) {
      expect(r).toMatchObject({
        status: 'rejected',
        code: 1,
        message: 'invalid args: groups must be a non-empty array of non-empty strings',
      });
    }
    expect(r4).toMatchObject({ seq: 4, status: 'success', code: 0, data: { groups: ['linux', 'web'] } });
    expect(r5).toMatchObject({ seq: 5, status: 'rejected', code: 1, message: 'unsupported action frobnicate' });
    expect(a.identity.groups).toEqual(['linux', 'web']);
  });

  it('enforces the timeout: timed_out, code 3, and goes on with the next command', async () => {
    start();
    await expectEventually(() => expect(server.framesOf('hello')).toHaveLength(1));
    server.command(commandDoc(uuid, 1, 'sleep', {}, 1));
    server.command(commandDoc(uuid, 2, 'count'));
    await expectEventually(() => expect(server.framesOf('result')).toHaveLength(2), { timeoutMs: 5000 });
    expect(server.framesOf('result')[0]).toMatchObject({
      seq: 1,
      status: 'timed_out',
      code: 3,
      message: 'timed out after 1 s',
    });
    expect(server.framesOf('result')[1]).toMatchObject({ seq: 2, status: 'success' });
  });

  it('restart: acked, the run ends with a restart, and the next start reports success', async () => {
    const a = start();
    const restarts: number[] = [];
    a.on('restart', (c) => restarts.push(c.seq));
    await expectEventually(() => expect(server.framesOf('hello')).toHaveLength(1));
    const cmd = commandDoc(uuid, 1, 'restart');
    server.command(cmd);
    server.command(commandDoc(uuid, 2, 'count')); // must wait for the restarted agent
    await expect(runResult).resolves.toEqual({ reason: 'restart', commandId: cmd.document_id, seq: 1 });
    expect(restarts).toEqual([1]);
    expect(server.framesOf('ack').map((f) => f.seq)).toEqual([1, 2]);
    expect(results()).toEqual([]);
    expect(executions).toEqual([]);

    const b = start();
    await expectEventually(() =>
      expect(results()).toEqual([
        { seq: 1, status: 'success' },
        { seq: 2, status: 'success' },
      ]),
    );
    expect(server.framesOf('result')[0]).toMatchObject({
      commandId: cmd.document_id,
      message: 'agent restarted',
      code: 0,
    });
    expect(b.lastExecutedSeq).toBe(2);
  });

  it('reports a command found running at start as a failure and never runs it again', async () => {
    const store = new CommandStore(dir);
    const cmd = commandDoc(uuid, 1, 'count');
    store.receive(cmd);
    store.markRunning(1); // the agent died here
    store.close();

    start();
    await expectEventually(() => expect(server.framesOf('result')).toHaveLength(1));
    expect(server.framesOf('result')[0]).toMatchObject({
      commandId: cmd.document_id,
      status: 'failure',
      code: 1,
      message: 'agent stopped while the command ran',
    });
    server.command(cmd); // replayed by the server: old, confirmed → ignored
    server.command(commandDoc(uuid, 2, 'count'));
    await expectEventually(() => expect(results()).toHaveLength(2));
    expect(executions.map((e) => e.seq)).toEqual([2]);
  });

  it('re-authenticates when the upgrade is refused with 401/403, and on token-expiring', async () => {
    server.refuseUpgrades = { count: 2, status: 401 };
    const a = start();
    await expectEventually(() => expect(server.connections).toBe(1));
    expect(server.issuedTokens).toHaveLength(3);
    expect(logs).toContain(
      `warn stream refused by ${server.url.replace('http:', 'ws:')}/api/v1/stream: Invalid token (HTTP 401)`,
    );

    const connected: string[] = [];
    a.on('connected', (c) => connected.push(c.url));
    server.send({ type: 'token-expiring', inSeconds: 30 });
    await expectEventually(() => expect(server.connections).toBe(2));
    expect(server.issuedTokens).toHaveLength(4);
    // The server counts the socket before the agent has seen the upgrade complete.
    await expectEventually(() => expect(connected).toHaveLength(1));
  });

  it('renews a token close to its expiry before the server has to say so', async () => {
    server.tokenTtlSeconds = 2; // renewed at half its life here (the margin is larger than the life)
    start();
    await expectEventually(() => expect(server.connections).toBe(2), { timeoutMs: 4000 });
    expect(server.issuedTokens).toHaveLength(2);
  });

  it('comes back after retry-after', async () => {
    start();
    await expectEventually(() => expect(server.connections).toBe(1));
    const asked = Date.now();
    server.send({ type: 'retry-after', inSeconds: 0.3 });
    await expectEventually(() => expect(server.connections).toBe(2));
    expect(Date.now() - asked).toBeGreaterThanOrEqual(250);
  });

  it('ignores malformed frames, and closes after too many in a row', async () => {
    const a = start({ maxMalformedFrames: 5 });
    const rejected: string[] = [];
    a.on('frame-rejected', (r) => rejected.push(r.reason));
    await expectEventually(() => expect(server.connections).toBe(1));
    server.sendRaw('not json');
    server.sendRaw(Buffer.from([1, 2, 3]));
    server.send({ type: 'bogus' });
    server.send({ type: 'command', seq: 1 });
    server.command(commandDoc(uuid, 1, 'count'));
    await expectEventually(() => expect(results()).toHaveLength(1));
    expect(rejected).toHaveLength(4);
    expect(server.connections).toBe(1);

    for (let i = 0; i < 5; i++) server.sendRaw('{');
    await expectEventually(() => expect(server.connections).toBe(2));
    expect(logs).toContain('warn too many malformed frames: closing the connection');
  });

  it('detects a dead server (no pong) and reconnects', async () => {
    await server.close();
    server = new TestCommsServer({ uuid, key }, { autoPong: false });
    await server.listen();
    const store = new CommandStore(dir);
    const identity = store.getIdentity();
    if (!identity) throw new Error('no identity');
    store.saveIdentity({ ...identity, commsUrl: server.url });
    store.close();

    start({ pingIntervalMs: 50, deadAfterMs: 300 });
    await expectEventually(() => expect(server.connections).toBe(2), { timeoutMs: 3000 });
    expect(logs).toContain('warn nothing from the server for 0.3 s: reconnecting');
  });

  it('keeps trying with backoff while the server is down, then connects', async () => {
    const url = server.url;
    const port = Number(new URL(url).port);
    await server.close();
    start();
    await expectEventually(() =>
      expect(logs.filter((l) => l.includes('ECONNREFUSED')).length).toBeGreaterThanOrEqual(2),
    );
    server = new TestCommsServer({ uuid, key });
    await server.listen(port);
    await expectEventually(() => expect(server.connections).toBe(1), { timeoutMs: 3000 });
  });

  it('stops cleanly: run() resolves "stopped" and the data dir can be used again', async () => {
    const a = start();
    await expectEventually(() => expect(server.connections).toBe(1));
    await a.stop();
    await expect(runResult).resolves.toEqual({ reason: 'stopped' });
    const again = new Agent({ dataDir: dir, tls: { allowPlainText: true } });
    expect(() => new Agent({ dataDir: dir, tls: { allowPlainText: true } })).toThrow(/already running/);
    await again.stop();
  });

  it('refuses plain-text URLs unless allowed, and an unenrolled data dir', () => {
    expect(() => new Agent({ dataDir: dir })).toThrow(/must be an https:\/\/ URL/);
    const empty = mkdtempSync(join(tmpdir(), 'herald-empty-'));
    try {
      expect(() => new Agent({ dataDir: empty })).toThrow(/not enrolled/);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });
});

describe('herald-agent run (real processes, TLS)', () => {
  const main = join(__dirname, 'main.ts');
  let dir: string;
  let server: TestCommsServer;

  afterEach(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the supervisor restarts the worker on a restart command; the new worker reports it', async () => {
    dir = mkdtempSync(join(tmpdir(), 'herald-agent-cli-'));
    const certificate = await selfSignedCertificate();
    const caFile = join(dir, 'ca.pem');
    writeFileSync(caFile, certificate.cert);
    const uuid = uuidv7();
    server = new TestCommsServer({ uuid, key }, { tls: certificate });
    await server.listen();
    const store = new CommandStore(dir);
    store.saveIdentity({
      uuid,
      key,
      name: 'cli-agent',
      managerUrl: 'https://127.0.0.1:1',
      commsUrl: server.url,
      groups: [],
      enrolledAt: new Date().toISOString(),
    });
    store.close();

    let output = '';
    const child = spawn(process.execPath, ['--import', 'tsx', main, 'run', '--data-dir', dir, '--ca', caFile], {
      cwd: join(__dirname, '../../..'),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      await expectEventually(() => expect(server.framesOf('hello')).toHaveLength(1), { timeoutMs: 20_000 });
      const restart = commandDoc(uuid, 1, 'restart');
      server.command(restart);
      server.command(commandDoc(uuid, 2, 'get-config'));
      await expectEventually(
        () =>
          expect(server.framesOf('result').map((r) => [r.seq, r.status, r.message])).toEqual([
            [1, 'success', 'agent restarted'],
            [2, 'success', 'agent configuration'],
          ]),
        { timeoutMs: 20_000 },
      );
      expect(server.framesOf('hello').map((h) => h.lastExecutedSeq)).toEqual([0, 2]);
      expect(output).toContain(`connected to ${server.url.replace('https:', 'wss:')}/api/v1/stream`);
      expect(output).toContain('command #1 restart received');
      expect(output).toContain('agent restarting');
      expect(output).toContain('command #1 restart -> success');
      expect(output).toContain('command #2 get-config -> success');
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  }, 60_000);
});
