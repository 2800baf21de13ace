import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { uuidv7 } from '@herald/contracts';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, parseArgs, runCli } from './cli';
import { CommandStore } from './command-store';

describe('herald-agent CLI', () => {
  let dir: string;
  let out: string[];
  let err: string[];

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'herald-cli-'));
    out = [];
    err = [];
  });

  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const cli = (argv: string[], env: Record<string, string> = {}): Promise<number> =>
    runCli(argv, { env, io: { out: (l) => out.push(l), err: (l) => err.push(l) } });

  it('prints help', async () => {
    expect(await cli(['--help'])).toBe(EXIT_OK);
    expect(out.join('\n')).toContain('Usage: herald-agent <command> [options]');
    out = [];
    expect(await cli(['enroll', '--help'])).toBe(EXIT_OK);
    expect(out.join('\n')).toContain('--password P');
    expect(await cli(['run', '-h'])).toBe(EXIT_OK);
    expect(await cli(['status', '--help'])).toBe(EXIT_OK);
  });

  it.each([
    [[], 'missing command'],
    [['frobnicate'], 'unknown command frobnicate'],
    [['--verbose'], 'unknown option --verbose'],
    [['enroll', '--password', 'p'], 'enroll needs --user'],
    [['enroll', '--user'], 'option --user needs a value'],
    [['enroll', '--user', '--password', 'p'], 'option --user needs a value'],
    [['enroll', '--user', 'u'], 'enroll needs --password or the HERALD_PASSWORD variable'],
    [['enroll', '--user', 'u', '--password', 'p', '--bogus', 'x'], 'unknown option --bogus for enroll'],
    [['enroll', '--user', 'u', '--user', 'v', '--password', 'p'], 'option --user given twice'],
    [['enroll', '--user', '', '--password', 'p'], 'option --user must not be empty'],
    [
      ['enroll', '--user', 'u', '--password', 'p', '--manager', 'nope'],
      '--manager: manager URL nope is not a valid URL',
    ],
    [
      ['enroll', '--user', 'u', '--password', 'p', '--manager', 'http://localhost:55000'],
      '--manager: manager URL http://localhost:55000 must be an https:// URL',
    ],
    [
      ['enroll', '--user', 'u', '--password', 'p', '--ca', 'x.pem', '--insecure'],
      '--ca and --insecure exclude each other',
    ],
    [
      ['enroll', '--user', 'u', '--password', 'p', '--ca', '/nonexistent/ca.pem'],
      'cannot read CA file /nonexistent/ca.pem: ENOENT',
    ],
    [['enroll', '--user', 'u', '--password', 'p', '--insecure=yes'], 'option --insecure takes no value'],
    [['run', 'extra'], 'unexpected argument extra'],
    [['run', '--comms', 'ftp://x'], '--comms: comms URL ftp://x must be an https:// URL'],
    [['status', '--insecure'], 'unknown option --insecure for status'],
  ])('%j is a usage error (exit 2): %s', async (argv, message) => {
    expect(await cli(argv)).toBe(EXIT_USAGE);
    expect(err[0]).toBe(`herald-agent: ${message}`);
    expect(err.join('\n')).toContain('Usage: herald-agent');
  });

  it('accepts --option=value', () => {
    expect(parseArgs(['enroll', '--user=u', '--name=a=b', '--insecure'])).toEqual({
      command: 'enroll',
      values: { user: 'u', name: 'a=b' },
      flags: new Set(['insecure']),
    });
  });

  it('reports an unreachable server clearly (exit 1), taking the password from HERALD_PASSWORD', async () => {
    const code = await cli(['enroll', '--user', 'u', '--manager', 'https://127.0.0.1:1', '--data-dir', dir], {
      HERALD_PASSWORD: 'p',
    });
    expect(code).toBe(EXIT_FAILURE);
    expect(err).toEqual(['herald-agent: cannot reach https://127.0.0.1:1: ECONNREFUSED']);
  });

  it('status prints the identity (not the key), lastExecutedSeq and stored commands', async () => {
    expect(await cli(['status'], { HERALD_AGENT_DATA_DIR: dir })).toBe(EXIT_FAILURE);
    expect(err[0]).toContain(`not enrolled: no agent store in ${dir}`);

    const uuid = uuidv7();
    const store = new CommandStore(dir);
    store.saveIdentity({
      uuid,
      key: 'SECRETSECRETSECRETSECRETSECRET12',
      name: 'web-01',
      managerUrl: 'https://m:55000',
      commsUrl: 'https://c:27000',
      groups: ['linux'],
      enrolledAt: '2025-01-01T00:00:00.000Z',
    });
    const doc = (seq: number, name: string) => ({
      document_id: uuidv7(),
      request_id: 'r',
      order_id: 'r',
      source: 's',
      user: 'u',
      target: { type: 'agent' as const, id: uuid },
      action: { name, version: 'v6.0.0', args: {} },
      timeout: 60,
      status: 'sent' as const,
      seq,
    });
    store.receive(doc(1, 'get-config'));
    store.receive(doc(2, 'set-group'));
    store.markRunning(1);
    store.finish(1, { status: 'success', code: 0, message: 'agent configuration' });

    expect(await cli(['status', '--data-dir', dir])).toBe(EXIT_OK);
    store.close();
    const text = out.join('\n');
    expect(text).toContain(`agent            ${uuid}`);
    expect(text).toContain('groups           linux');
    expect(text).toContain('lastExecutedSeq  1');
    expect(text).toContain('stored commands  2');
    expect(text).toMatch(
      /#1 get-config \S+ done -> success \(agent configuration\), result not yet confirmed by the server/,
    );
    expect(text).toMatch(/#2 set-group \S+ received/);
    expect(text).not.toContain('SECRET');
  });

  it('stop: nothing running, a stale pid file, and a live supervisor that exits on SIGTERM', async () => {
    expect(await cli(['stop', '--data-dir', dir])).toBe(EXIT_OK);
    expect(out.join('\n')).toContain('no agent is running');

    const stale = spawn(process.execPath, ['-e', '']);
    await new Promise((r) => stale.once('exit', r));
    writeFileSync(join(dir, 'supervisor.pid'), `${stale.pid ?? 0}\n`);
    out = [];
    expect(await cli(['stop', '--data-dir', dir])).toBe(EXIT_OK);
    expect(out.join('\n')).toContain('removed a stale supervisor.pid');
    expect(existsSync(join(dir, 'supervisor.pid'))).toBe(false);

    const live = spawn(process.execPath, [
      '-e',
      "process.on('SIGTERM', () => process.exit(0)); console.log('ready'); setInterval(() => {}, 1000)",
    ]);
    await new Promise((r) => live.stdout.once('data', r)); // its SIGTERM handler is installed
    writeFileSync(join(dir, 'supervisor.pid'), `${live.pid ?? 0}\n`);
    const exited = new Promise<number | null>((r) => live.once('exit', (code) => r(code)));
    out = [];
    expect(await cli(['stop', '--data-dir', dir])).toBe(EXIT_OK);
    expect(out.join('\n')).toContain(`stopped agent (pid ${live.pid ?? 0})`);
    expect(await exited).toBe(0);
  });

  it('run refuses an unenrolled data directory before starting anything', async () => {
    expect(await cli(['run', '--data-dir', dir])).toBe(EXIT_FAILURE);
    expect(err[0]).toContain('not enrolled');
    expect(await cli(['run', '--worker', '--data-dir', dir])).toBe(EXIT_FAILURE);
  });
});
