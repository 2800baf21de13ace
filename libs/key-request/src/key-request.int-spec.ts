/**
 * Key request against real programs and the real MariaDB of this machine (root over its Unix
 * socket): the example source `examples/key-request/herald-keys.pl` (program and socket methods),
 * and small Perl programs that answer badly on purpose.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { expectEventually } from '@herald/testing';
import pino from 'pino';
import { KeyRequestBusyError, KeyRequestRateLimitedError } from './key-request.errors';
import { KeyRequestService, type KeyLookupAudit, type KeyRequestSettings } from './key-request.service';

const EXAMPLE = resolve(__dirname, '../../../examples/key-request/herald-keys.pl');
const PERL = '/usr/bin/perl';
const DB = `herald_kr_${randomBytes(4).toString('hex')}`;
const DSN = `DBI:MariaDB:database=${DB}`;
const AGENT_UUID = '019a0c1e-1111-7000-8000-00000000abcd';
const KEY_UUID = 'u'.repeat(40);
const KEY_LEGACY = 'ac575526e8bbcddf6654e5aa0a39fa60a0020e5d34ed1370916368bdaf5f0c71';

function sql(statements: string): void {
  const r = spawnSync('mariadb', ['-uroot', '-e', statements], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`mariadb failed: ${r.stderr}`);
}

describe('KeyRequestService with real key sources', () => {
  let dir: string;
  const services: KeyRequestService[] = [];
  const children: ChildProcess[] = [];
  let audit: KeyLookupAudit[];

  function service(settings: Partial<KeyRequestSettings>): KeyRequestService {
    const s = new KeyRequestService(
      {
        enabled: true,
        timeoutSeconds: 10,
        threads: 2,
        queueSize: 16,
        negativeTtlSeconds: 0,
        ratePerSourcePerMinute: 1000,
        ...settings,
      },
      pino({ level: 'silent' }),
      (record) => {
        audit.push(record);
      },
    );
    services.push(s);
    return s;
  }

  /** A Perl program (no shell involved) written into the test directory. */
  function program(name: string, body: string): string {
    const file = join(dir, name);
    writeFileSync(file, `use strict; use warnings;\n${body}\n`);
    chmodSync(file, 0o755);
    return file;
  }

  /** A program that records every call and the name of the process that started it (never a shell). */
  function recordingProgram(): { calls: string; recorder: string } {
    const calls = join(dir, 'calls.log');
    const recorder = program(
      'recorder.pl',
      `open(my $f, '>>', '${calls}') or die; my $parent = \`cat /proc/\${\\getppid()}/comm\`; chomp $parent;
       print $f join("\\t", $parent, @ARGV), "\\n"; close $f; print '{"error": 4, "message": "No agent key found"}';`,
    );
    return { calls, recorder };
  }

  async function listen(socketPath: string): Promise<void> {
    const child = spawn(PERL, [EXAMPLE, '--dsn', DSN, '--listen', socketPath], { stdio: 'ignore' });
    children.push(child);
    await expectEventually(() => expect(existsSync(socketPath)).toBe(true), { timeoutMs: 10_000 });
  }

  beforeAll(() => {
    sql(
      `CREATE DATABASE ${DB}; USE ${DB};
       CREATE TABLE agent (id VARCHAR(36) PRIMARY KEY, name VARCHAR(128), ip VARCHAR(43), agent_key VARCHAR(128));
       INSERT INTO agent VALUES ('${AGENT_UUID}', 'laptop-7', 'any', '${KEY_UUID}'),
                                ('001', 'web-1', '10.1.2.3', '${KEY_LEGACY}');`,
    );
  });
  afterAll(() => sql(`DROP DATABASE IF EXISTS ${DB}`));
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'herald-kr-'));
    audit = [];
  });
  afterEach(() => {
    for (const c of children.splice(0)) c.kill('SIGKILL');
    services.splice(0);
    rmSync(dir, { recursive: true, force: true });
  });

  describe('program method (examples/key-request/herald-keys.pl, MariaDB)', () => {
    it('finds an agent by its UUID', async () => {
      const s = service({ exec: [PERL, EXAMPLE, '--dsn', DSN] });
      await s.start();
      expect(await s.resolve(AGENT_UUID, '203.0.113.9')).toEqual({
        id: AGENT_UUID,
        name: 'laptop-7',
        ip: 'any',
        key: KEY_UUID,
        by: 'id',
      });
      expect(audit).toEqual([expect.objectContaining({ kind: 'id', outcome: 'found', via: 'program', exitCode: 0 })]);
    });

    it('finds an agent by its source address when the id is unknown (legacy id)', async () => {
      const s = service({ exec: [PERL, EXAMPLE, '--dsn', DSN] });
      const other = '019a0c1e-2222-7000-8000-000000000001';
      expect(await s.resolve(other, '::ffff:10.1.2.3')).toMatchObject({
        id: '001',
        name: 'web-1',
        key: KEY_LEGACY,
        by: 'ip',
      });
      expect(audit.map((a) => `${a.kind}:${a.value}:${a.outcome}`)).toEqual([
        `id:${other}:not-found`,
        'ip:10.1.2.3:found',
      ]);
    });

    it('answers not found for an unknown agent from an unknown address', async () => {
      const s = service({ exec: [PERL, EXAMPLE, '--dsn', DSN] });
      expect(await s.resolve('019a0c1e-3333-7000-8000-000000000001', '198.51.100.7')).toBeUndefined();
      expect(audit.map((a) => a.outcome)).toEqual(['not-found', 'not-found']);
      expect(audit[0]?.reason).toContain('No agent key found');
    });

    it('treats a database that is down as not found, with the reason logged', async () => {
      const s = service({
        exec: [PERL, EXAMPLE, '--dsn', 'DBI:MariaDB:database=herald_kr_missing;host=127.0.0.1;port=1'],
      });
      expect(await s.resolve(AGENT_UUID, '10.1.2.3')).toBeUndefined();
      expect(audit[0]?.outcome).toBe('not-found');
      expect(audit[0]?.reason).toContain('Could not connect');
    });
  });

  describe('socket method', () => {
    it('health-checks the socket at start and finds the agent through it', async () => {
      const socketPath = join(dir, 'keys.sock');
      await listen(socketPath);
      const s = service({ socket: socketPath });
      await s.start();
      expect(await s.resolve(AGENT_UUID, '10.9.9.9')).toMatchObject({ id: AGENT_UUID, key: KEY_UUID });
      expect(audit[0]).toMatchObject({ via: 'socket', outcome: 'found' });
    });

    it('falls back to the program when the socket is unavailable (at start and per look-up)', async () => {
      const s = service({ socket: join(dir, 'absent.sock'), exec: [PERL, EXAMPLE, '--dsn', DSN] });
      await s.start();
      expect(await s.resolve(AGENT_UUID, '10.9.9.9')).toMatchObject({ id: AGENT_UUID });
      expect(audit[0]).toMatchObject({ via: 'program', outcome: 'found' });
    });
  });

  describe('hostile values never reach the source', () => {
    it.each([
      ['SQL injection', "001' OR '1'='1"],
      ['command substitution', '$(touch herald-pwned)'],
      ['command separator', ';reboot'],
      ['backticks', '`touch herald-pwned`'],
      ['newline', '001\n002'],
      ['100,000 characters', 'x'.repeat(100_000)],
    ])('%s', async (_what, hostile) => {
      const { calls, recorder } = recordingProgram();
      const s = service({ exec: [PERL, recorder] });
      const before = existsSync('herald-pwned');
      expect(await s.resolve(hostile, hostile)).toBeUndefined();
      expect(audit.map((a) => a.outcome)).toEqual(['refused-value', 'refused-value']);
      expect(existsSync(calls)).toBe(false);
      expect(existsSync('herald-pwned') || existsSync(join(dir, 'herald-pwned'))).toBe(before);
    });

    it('runs the program without a shell, with exactly the two arguments', async () => {
      const { calls, recorder } = recordingProgram();
      const s = service({ exec: [PERL, recorder] });
      await s.resolve(AGENT_UUID, '10.0.0.1');
      const lines = readFileSync(calls, 'utf8').trim().split('\n');
      expect(lines).toEqual([`node\tid\t${AGENT_UUID}`, 'node\tip\t10.0.0.1']);
    });
  });

  describe('malformed answers are not found, logged with the reason', () => {
    const good = { id: '001', name: 'web-1', ip: 'any', key: KEY_LEGACY };
    const cases: [string, string][] = [
      ['no output', ''],
      ['not JSON', 'print "key=abc";'],
      ['trailing junk', `print '${JSON.stringify({ error: 0, data: good })} junk';`],
      ['error not a digit', `print '${JSON.stringify({ error: 'zero', data: good })}';`],
      ['id broken', `print '${JSON.stringify({ error: 0, data: { ...good, id: '1' } })}';`],
      ['name broken', `print '${JSON.stringify({ error: 0, data: { ...good, name: 'a b' } })}';`],
      ['ip broken', `print '${JSON.stringify({ error: 0, data: { ...good, ip: '10.0.0.0/99' } })}';`],
      ['key broken', `print '${JSON.stringify({ error: 0, data: { ...good, key: '' } })}';`],
      ['field missing', `print '${JSON.stringify({ error: 0, data: { id: '001', name: 'web-1', ip: 'any' } })}';`],
      ['huge output', `print "{" . ("x" x 1000000) . "}";`],
      ['crash', 'die "boom\\n";'],
      ['hang past the timeout', 'sleep 30;'],
    ];
    it.each(cases)('%s', async (name, body) => {
      const s = service({ exec: [PERL, program('answer.pl', body)], timeoutSeconds: 1 });
      expect(await s.resolve(AGENT_UUID, 'not-an-ip')).toBeUndefined();
      const first = audit[0];
      expect(first?.outcome).toMatch(/invalid-answer|failed/);
      expect(first?.reason).toBeTruthy();
      if (name === 'crash') expect([first?.exitCode, first?.stderr]).toEqual([255, 'boom']);
      if (name === 'hang past the timeout') expect(first?.reason).toContain('timed out');
    });
  });

  describe('bounded under floods', () => {
    it('shares one call among concurrent look-ups of the same value', async () => {
      const s = service({ exec: [PERL, program('slow.pl', `sleep 1; print '{"error": 4, "message": "none"}';`)] });
      await Promise.all(Array.from({ length: 10 }, () => s.resolve(AGENT_UUID, 'x')));
      expect(s.calls).toBe(1);
    });

    it('remembers not found for the configured time', async () => {
      const s = service({ exec: [PERL, EXAMPLE, '--dsn', DSN], negativeTtlSeconds: 60 });
      const unknown = '019a0c1e-4444-7000-8000-000000000001';
      await s.resolve(unknown, '198.51.100.1');
      await s.resolve(unknown, '198.51.100.1');
      expect(s.calls).toBe(2); // id + ip once each
      expect(audit.filter((a) => a.outcome === 'cached-not-found')).toHaveLength(2);
    });

    it('answers busy when the running and waiting look-ups are full', async () => {
      const s = service({
        exec: [PERL, program('slow.pl', `sleep 2; print '{"error": 4, "message": "none"}';`)],
        threads: 1,
        queueSize: 1,
      });
      const ids = ['019a0c1e-5555-7000-8000-000000000001', '019a0c1e-5555-7000-8000-000000000002'];
      const running = ids.map((id) => s.resolve(id, 'x'));
      await expect(s.resolve('019a0c1e-5555-7000-8000-000000000003', 'x')).rejects.toBeInstanceOf(KeyRequestBusyError);
      await Promise.all(running);
    });

    it('limits look-ups per source address', async () => {
      const s = service({ exec: [PERL, EXAMPLE, '--dsn', DSN], ratePerSourcePerMinute: 2 });
      await s.resolve(AGENT_UUID, '10.7.7.7');
      await s.resolve(AGENT_UUID, '10.7.7.7');
      await expect(s.resolve(AGENT_UUID, '10.7.7.7')).rejects.toBeInstanceOf(KeyRequestRateLimitedError);
      await expect(s.resolve(AGENT_UUID, '10.7.7.8')).resolves.toBeDefined();
    });
  });

  it('refuses to start with a program that does not exist', async () => {
    await expect(service({ exec: ['/nonexistent/keys'] }).start()).rejects.toThrow(/not an executable program/);
  });
});
