import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteEventLogAdapter } from '@herald/event-log';
import pino from 'pino';
import { DEFAULT_GROUP, DEFAULT_GROUP_CONFIGURATION, GroupDirectory, sha256Hex } from './group-directory';

describe('GroupDirectory', () => {
  let dir: string;
  let log: SqliteEventLogAdapter;
  const logger = pino({ level: 'silent' });
  const started: GroupDirectory[] = [];

  async function directory(): Promise<GroupDirectory> {
    const d = new GroupDirectory(log, logger);
    await d.start();
    started.push(d);
    return d;
  }

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'herald-groups-'));
    log = new SqliteEventLogAdapter({ path: join(dir, 'log.db'), topicPrefix: 't.', defaultPartitions: 2 });
  });
  afterEach(async () => {
    for (const d of started.splice(0)) await d.stop();
    await log.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('given a fresh log, when two processes ensure the default group, then it exists once with version 1', async () => {
    const a = await directory();
    const b = await directory();
    await Promise.all([a.ensureDefault(), b.ensureDefault()]);
    const c = await directory();
    const group = c.get(DEFAULT_GROUP);
    expect(group?.configuration).toMatchObject({
      version: 1,
      yaml: DEFAULT_GROUP_CONFIGURATION,
      sha256: sha256Hex(DEFAULT_GROUP_CONFIGURATION),
    });
    expect(c.all().map((g) => g.name)).toEqual([DEFAULT_GROUP]);
  });

  it('versions configurations by hash, keeps the previous ones, and ignores an identical one', async () => {
    const d = await directory();
    expect(await d.create('linux', 'alice')).toBe(true);
    expect(await d.create('linux', 'alice')).toBe(false);
    expect((await d.setConfiguration('linux', 'a: 1\n', 'alice'))?.version).toBe(1);
    expect((await d.setConfiguration('linux', 'a: 2\n', 'bob'))?.version).toBe(2);
    expect((await d.setConfiguration('linux', 'a: 2\n', 'bob'))?.version).toBe(2);
    expect(await d.setConfiguration('nope', 'a: 1\n', 'bob')).toBeUndefined();
    const reread = await directory();
    const group = reread.get('linux');
    expect(group?.configuration).toMatchObject({ version: 2, yaml: 'a: 2\n', updatedBy: 'bob' });
    expect(group?.history.map((h) => h.version)).toEqual([1]);
  });

  it('deletes a group, and a deleted group can be created again from scratch', async () => {
    const d = await directory();
    await d.create('tmp', 'alice');
    await d.setConfiguration('tmp', 'x: 1\n', 'alice');
    expect(await d.delete('tmp', 'alice')).toBe(true);
    expect(await d.delete('tmp', 'alice')).toBe(false);
    expect(d.has('tmp')).toBe(false);
    await d.create('tmp', 'alice');
    expect((await directory()).get('tmp')?.configuration).toBeUndefined();
  });
});
