import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isUuid } from '@herald/contracts';
import { runCli } from './cli';
import { CommandStore } from './command-store';
import { authenticate, enroll, EnrollmentError, generateKey, jwtExpiry, type HostInfo } from './enrollment';
import { selfSignedCertificate, type TestCertificate } from './testing/tls';

interface Recorded {
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
}

/** A management + comms API peer over real TLS, answering the enrollment calls. */
class TestManagementServer {
  readonly requests: Recorded[] = [];
  registerStatus = 201;
  private readonly server: https.Server;

  constructor(certificate: TestCertificate) {
    this.server = https.createServer({ cert: certificate.cert, key: certificate.key }, (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        const body: unknown = text ? JSON.parse(text) : undefined;
        this.requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
        const json = (status: number, value: unknown): void => {
          res.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify(value));
        };
        if (req.url === '/security/user/authenticate') {
          const ok = req.headers.authorization === `Basic ${Buffer.from('admin:s3cret').toString('base64')}`;
          return ok
            ? json(200, { data: { token: 'operator-jwt' } })
            : json(401, { message: 'Invalid credentials', code: 401 });
        }
        if (req.url === '/agents') {
          if (req.headers.authorization !== 'Bearer operator-jwt') return json(401, { message: 'No token', code: 401 });
          if (this.registerStatus !== 201)
            return json(this.registerStatus, { message: 'Agent already exists', code: 1708 });
          return json(201, { data: { id: (body as { id: string }).id } });
        }
        if (req.url === '/api/v1/authentication') {
          const exp = Math.floor(Date.now() / 1000) + 900;
          const claims = Buffer.from(JSON.stringify({ uuid: 'x', exp })).toString('base64url');
          return json(200, { token: `e30.${claims}.sig` });
        }
        return json(404, { message: 'Not found', code: 404 });
      });
    });
  }

  get url(): string {
    return `https://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  listen(): Promise<void> {
    return new Promise((resolve) => this.server.listen(0, '127.0.0.1', resolve));
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

const host: HostInfo = {
  architecture: 'x86_64',
  hostname: 'box',
  ip: ['10.0.0.2'],
  os: { name: 'Ubuntu', type: 'linux', version: '24.04' },
};

describe('enrollment', () => {
  let certificate: TestCertificate;
  let server: TestManagementServer;
  let dir: string;

  beforeAll(async () => {
    certificate = await selfSignedCertificate();
  });

  beforeEach(async () => {
    server = new TestManagementServer(certificate);
    await server.listen();
    dir = mkdtempSync(join(tmpdir(), 'herald-enroll-'));
  });

  afterEach(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('logs in, registers a fresh uuid v7 and key, and saves the identity (0600)', async () => {
    const { identity, storeFile } = await enroll({
      dataDir: dir,
      managerUrl: server.url,
      commsUrl: 'https://comms.example:27000',
      user: 'admin',
      password: 's3cret',
      name: 'web-01',
      tls: { ca: certificate.cert },
      caFile: '/etc/herald/ca.pem',
      host,
    });
    expect(isUuid(identity.uuid)).toBe(true);
    expect(identity.uuid[14]).toBe('7');
    expect(identity.key).toMatch(/^[A-Za-z0-9]{32}$/);
    expect(server.requests.map((r) => `${r.method} ${r.url}`)).toEqual([
      'POST /security/user/authenticate',
      'POST /agents',
    ]);
    expect(server.requests[1]?.body).toEqual({
      id: identity.uuid,
      name: 'web-01',
      key: identity.key,
      type: 'Endpoint',
      version: 'v6.0.0',
      host,
    });
    expect(server.requests[1]?.headers['user-agent']).toMatch(/^HeraldAgent\/v6\.0\.0 \(Endpoint; /);

    expect(statSync(storeFile).mode & 0o777).toBe(0o600);
    const store = new CommandStore(dir, { readonly: true });
    expect(store.getIdentity()).toEqual({
      ...identity,
      managerUrl: server.url,
      commsUrl: 'https://comms.example:27000',
      caFile: '/etc/herald/ca.pem',
      groups: [],
    });
    store.close();
  });

  it('refuses to replace an identity unless forced', async () => {
    const options = {
      dataDir: dir,
      managerUrl: server.url,
      user: 'admin',
      password: 's3cret',
      tls: { insecure: true },
      host,
    };
    const first = await enroll(options);
    await expect(enroll(options)).rejects.toThrow(`already holds agent ${first.identity.uuid}`);
    const second = await enroll({ ...options, force: true });
    expect(second.identity.uuid).not.toBe(first.identity.uuid);
  });

  it('says clearly what went wrong', async () => {
    const base = { dataDir: dir, managerUrl: server.url, user: 'admin', password: 's3cret', host };
    await expect(enroll(base)).rejects.toThrow(
      /^cannot reach https:\/\/127\.0\.0\.1:\d+: [A-Z_]+ \(the server certificate is not trusted: pass its CA with --ca FILE, or --insecure\)$/,
    );
    await expect(enroll({ ...base, password: 'wrong', tls: { insecure: true } })).rejects.toThrow(
      `login to ${server.url} failed: Invalid credentials (HTTP 401)`,
    );
    server.registerStatus = 409;
    const error: unknown = await enroll({ ...base, tls: { insecure: true } }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EnrollmentError);
    expect(error).toMatchObject({
      message: 'registration failed: Agent already exists (HTTP 409)',
      status: 409,
      code: 1708,
    });
    await expect(enroll({ ...base, managerUrl: 'https://127.0.0.1:1' })).rejects.toThrow(
      'cannot reach https://127.0.0.1:1: ECONNREFUSED',
    );
    await expect(enroll({ ...base, managerUrl: 'http://127.0.0.1:1' })).rejects.toThrow(
      'manager URL http://127.0.0.1:1 must be an https:// URL',
    );
    expect(CommandStore.exists(dir)).toBe(false);
  });

  it('authenticates an agent and reads the token expiry', async () => {
    const token = await authenticate(server.url, { uuid: 'x', key: 'y' }, { ca: certificate.cert });
    expect(token.expiresAt).toBeGreaterThan(Date.now() + 890_000);
    expect(server.requests[0]).toMatchObject({ url: '/api/v1/authentication', body: { uuid: 'x', key: 'y' } });
    expect(jwtExpiry('not-a-jwt')).toBeUndefined();
  });

  it('herald-agent enroll: --ca file, password from HERALD_PASSWORD, prints the uuid and the next step', async () => {
    const caFile = join(dir, 'ca.pem');
    writeFileSync(caFile, certificate.cert);
    const dataDir = join(dir, 'agent');
    const out: string[] = [];
    const err: string[] = [];
    const code = await runCli(
      ['enroll', '--manager', server.url, '--user', 'admin', '--name', 'cli-01', '--data-dir', dataDir, '--ca', caFile],
      { env: { HERALD_PASSWORD: 's3cret' }, io: { out: (l) => out.push(l), err: (l) => err.push(l) } },
    );
    expect(err).toEqual([]);
    expect(code).toBe(0);
    const store = new CommandStore(dataDir, { readonly: true });
    const identity = store.getIdentity();
    store.close();
    expect(identity).toMatchObject({ name: 'cli-01', caFile, commsUrl: 'https://localhost:27000' });
    expect(out).toEqual([
      `enrolling with ${server.url} ...`,
      `enrolled agent ${identity?.uuid} (cli-01)`,
      `identity saved in ${join(dataDir, 'agent.db')} (mode 0600)`,
      `next: herald-agent run --data-dir ${dataDir}`,
    ]);
    expect(statSync(dataDir).mode & 0o777).toBe(0o700);
  });

  it('generates unbiased alphanumeric keys', () => {
    const keys = new Set(Array.from({ length: 200 }, () => generateKey()));
    expect(keys.size).toBe(200);
    for (const key of keys) expect(key).toMatch(/^[A-Za-z0-9]{32}$/);
  });
});
