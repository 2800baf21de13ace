import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { expectEventually } from './expect-eventually';
import { freePort, httpsRequest } from './net';

export const REPO_ROOT = resolve(__dirname, '../../..');
export const HERALD_MAIN = join(REPO_ROOT, 'dist/apps/herald/src/main.js');

export interface HeraldProcessOptions {
  dataDir?: string;
  managementPort?: number;
  commsPort?: number;
  env?: Record<string, string>;
}

/**
 * Runs the built all-in-one server (`dist/apps/herald/src/main.js`, what `npm start` runs) as a
 * child process on free ports, for end-to-end tests over real sockets.
 */
export class HeraldProcess {
  private child?: ChildProcess;
  output = '';
  /** Every server of one test shares these unless told otherwise (HERALD_TOPIC_PREFIX in env wins). */
  readonly topicPrefix = `e2e-${randomBytes(4).toString('hex')}.`;

  private constructor(
    readonly dataDir: string,
    readonly managementPort: number,
    readonly commsPort: number,
    private readonly env: Record<string, string>,
  ) {}

  static async create(options: HeraldProcessOptions = {}): Promise<HeraldProcess> {
    if (!existsSync(HERALD_MAIN)) throw new Error(`${HERALD_MAIN} is missing: run "npm run build" first`);
    return new HeraldProcess(
      options.dataDir ?? join(mkdtempSync(join(tmpdir(), 'herald-e2e-')), 'server'),
      options.managementPort ?? (await freePort()),
      options.commsPort ?? (await freePort()),
      options.env ?? {},
    );
  }

  get managementUrl(): string {
    return `https://localhost:${this.managementPort}`;
  }
  get commsUrl(): string {
    return `https://localhost:${this.commsPort}`;
  }
  get caFile(): string {
    return join(this.dataDir, 'tls', 'cert.pem');
  }
  get ca(): string {
    return readFileSync(this.caFile, 'utf8');
  }
  get adminPassword(): string {
    return this.env['HERALD_ADMIN_PASSWORD'] ?? readFileSync(join(this.dataDir, 'admin-password'), 'utf8').trim();
  }
  get environment(): Record<string, string> {
    return {
      HERALD_DATA_DIR: this.dataDir,
      HERALD_MANAGEMENT_PORT: String(this.managementPort),
      HERALD_COMMS_PORT: String(this.commsPort),
      HERALD_HOST: '127.0.0.1',
      HERALD_LOG_LEVEL: 'warn',
      // Distributed runs share one Kafka and one OpenSearch: every server gets its own topics and indices.
      HERALD_TOPIC_PREFIX: this.topicPrefix,
      // A SIGKILLed server's Kafka consumers hold their partitions for this long after a restart.
      HERALD_KAFKA_SESSION_TIMEOUT: '6',
      ...this.env,
    };
  }

  async start(): Promise<void> {
    this.output = '';
    const child = spawn(process.execPath, [HERALD_MAIN], {
      cwd: REPO_ROOT,
      env: { ...process.env, ...this.environment },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    child.stdout?.on('data', (d: Buffer) => (this.output += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (this.output += d.toString()));
    await expectEventually(
      async () => {
        if (child.exitCode !== null) throw new Error(`herald exited with ${child.exitCode}:\n${this.output}`);
        if (!this.output.includes('Herald is running')) return false;
        const components = this.environment['HERALD_COMPONENTS'];
        if (components && components !== 'all' && !components.includes('management-api')) return true;
        const res = await httpsRequest(`${this.managementUrl}/security/user/authenticate`, {
          method: 'POST',
          ca: this.ca,
        });
        return res.status === 401;
      },
      { timeoutMs: 60000, what: 'herald to start' },
    );
  }

  /** SIGKILL: no shutdown hooks run, nothing is flushed that was not already durable. */
  async kill(): Promise<void> {
    await this.signal('SIGKILL');
  }

  async stop(): Promise<void> {
    await this.signal('SIGTERM');
  }

  private async signal(signal: NodeJS.Signals): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill(signal);
    await exited;
  }

  async operatorToken(): Promise<string> {
    const res = await httpsRequest(`${this.managementUrl}/security/user/authenticate`, {
      method: 'POST',
      ca: this.ca,
      headers: { authorization: `Basic ${Buffer.from(`admin:${this.adminPassword}`).toString('base64')}` },
    });
    const token = (res.json as { data?: { token?: string } } | undefined)?.data?.token;
    if (res.status !== 200 || !token) throw new Error(`login failed: ${res.status} ${res.text}`);
    return token;
  }
}
