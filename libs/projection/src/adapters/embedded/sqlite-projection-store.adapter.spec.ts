import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeProjectionStoreContract } from '../../projection-store.contract';
import { InvalidIndexNameError } from '../../projection.errors';
import type { IndexDefinition } from '../../projection.port';
import { SqliteProjectionStoreAdapter } from './sqlite-projection-store.adapter';

const dir = mkdtempSync(join(tmpdir(), 'herald-projection-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let files = 0;
function newFile(): string {
  files += 1;
  return join(dir, `projection-${files}.db`);
}

describeProjectionStoreContract('embedded (SQLite)', {
  // One file per test: tests stay independent and the file is deleted with the temp dir.
  create: (prefix) => Promise.resolve(new SqliteProjectionStoreAdapter({ path: newFile(), indexPrefix: prefix })),
});

const COMMANDS: IndexDefinition = {
  name: 'commands',
  fields: { agent: 'keyword', seq: 'long', status: 'keyword', issuedAt: 'date' },
};

function commandDoc(n: number, status = 'pending'): Record<string, unknown> {
  return {
    id: `cmd-${n}`,
    agent: `agent-${n % 3}`,
    seq: n,
    status,
    action: { name: 'restart', version: '1', args: {} },
    issuedAt: new Date(Date.UTC(2025, 0, 1) + n * 1000).toISOString(),
  };
}

describe('SqliteProjectionStoreAdapter', () => {
  it('keeps documents, versions, index definitions and watermarks across close and reopen', async () => {
    const path = newFile();
    const first = new SqliteProjectionStoreAdapter({ path, indexPrefix: 'herald.' });
    await first.ensureIndices([COMMANDS]);
    await first.apply(
      Array.from({ length: 30 }, (_, n) => ({ index: 'commands', id: `cmd-${n}`, version: 10, doc: commandDoc(n) })),
      { name: 'commands', positions: { '0': 10, '1': 3 } },
    );
    await first.close();

    // No ensureIndices: the definitions are stored in the file.
    const second = new SqliteProjectionStoreAdapter({ path, indexPrefix: 'herald.' });
    try {
      expect(await second.count('commands', { agent: 'agent-1' })).toBe(10);
      expect(await second.get('commands', 'cmd-7')).toEqual({ id: 'cmd-7', version: 10, doc: commandDoc(7) });
      expect(await second.getWatermark('commands')).toEqual({ name: 'commands', positions: { '0': 10, '1': 3 } });
      const page = await second.query('commands', { sort: ['-seq'], limit: 2 });
      expect(page.items.map((i) => i.id)).toEqual(['cmd-29', 'cmd-28']);

      // The version guard and watermark merge still hold against the reopened state.
      await second.apply([{ index: 'commands', id: 'cmd-7', version: 9, doc: commandDoc(7, 'sent') }], {
        name: 'commands',
        positions: { '0': 2 },
      });
      expect((await second.get('commands', 'cmd-7'))?.doc).toMatchObject({ status: 'pending' });
      expect((await second.getWatermark('commands'))?.positions['0']).toBe(10);

      // A cursor stays valid across a reopen (it only holds sort values).
      const again = new SqliteProjectionStoreAdapter({ path, indexPrefix: 'herald.' });
      try {
        const next = await again.query('commands', {
          sort: ['-seq'],
          limit: 2,
          ...(page.nextCursor ? { cursor: page.nextCursor } : {}),
        });
        expect(next.items.map((i) => i.id)).toEqual(['cmd-27', 'cmd-26']);
      } finally {
        await again.close();
      }
    } finally {
      await second.close();
    }
  });

  it('uses WAL, one table per index and an SQL index per declared field', async () => {
    const path = newFile();
    const store = new SqliteProjectionStoreAdapter({ path, indexPrefix: 'p.' });
    await store.ensureIndices([COMMANDS]);
    await store.apply([{ index: 'commands', id: 'cmd-1', version: 1, doc: commandDoc(1) }]);
    await store.close();

    const db = new Database(path, { readonly: true });
    try {
      expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
      const indexes = db
        .prepare<[string], { name: string }>(
          `SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ? ORDER BY name`,
        )
        .all('p.commands')
        .map((row) => row.name)
        .filter((name) => !name.startsWith('sqlite_autoindex'));
      expect(indexes).toEqual(['p.commands#agent', 'p.commands#issuedAt', 'p.commands#seq', 'p.commands#status']);
      const plan = db
        .prepare<[string], { detail: string }>(`EXPLAIN QUERY PLAN SELECT id FROM "p.commands" WHERE "f:agent" = ?`)
        .all('agent-1')
        .map((row) => row.detail)
        .join('\n');
      expect(plan).toContain('USING INDEX p.commands#agent');
      expect(db.prepare(`SELECT "f:issuedAt" AS ms FROM "p.commands"`).get()).toEqual({
        ms: Date.UTC(2025, 0, 1) + 1000,
      });
    } finally {
      db.close();
    }
  });

  it('isolates stores with different prefixes in one file', async () => {
    const path = newFile();
    const a = new SqliteProjectionStoreAdapter({ path, indexPrefix: 'a.' });
    const b = new SqliteProjectionStoreAdapter({ path, indexPrefix: 'b.' });
    try {
      await a.ensureIndices([COMMANDS]);
      await a.apply([{ index: 'commands', id: 'cmd-1', version: 1, doc: commandDoc(1) }], {
        name: 'commands',
        positions: { '0': 1 },
      });
      await expect(b.count('commands')).rejects.toMatchObject({ code: 'index_not_found' });
      await b.ensureIndices([COMMANDS]);
      expect(await b.count('commands')).toBe(0);
      expect(await b.getWatermark('commands')).toBeUndefined();
      await b.reset(['commands']);
      expect(await a.count('commands')).toBe(1);
      expect(await a.getWatermark('commands')).toBeDefined();
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('sees indices and documents written by another connection to the same file', async () => {
    const path = newFile();
    const writer = new SqliteProjectionStoreAdapter({ path });
    const reader = new SqliteProjectionStoreAdapter({ path });
    try {
      await expect(reader.count('commands')).rejects.toMatchObject({ code: 'index_not_found' });
      await writer.ensureIndices([COMMANDS]);
      await writer.apply([{ index: 'commands', id: 'cmd-1', version: 1, doc: commandDoc(1) }]);
      expect(await reader.count('commands', { status: 'pending' })).toBe(1);

      await writer.ensureIndices([{ name: 'commands', fields: { actionName: 'keyword' } }]);
      await writer.apply([
        { index: 'commands', id: 'cmd-2', version: 1, doc: { ...commandDoc(2), actionName: 'restart' } },
      ]);
      expect(await reader.countBy('commands', 'actionName')).toEqual({ restart: 1 });
    } finally {
      await writer.close();
      await reader.close();
    }
  });

  it('makes existing documents filterable on a field declared later', async () => {
    const store = new SqliteProjectionStoreAdapter({ path: newFile() });
    try {
      await store.ensureIndices([{ name: 'commands', fields: { agent: 'keyword' } }]);
      await store.apply([1, 2, 3].map((n) => ({ index: 'commands', id: `cmd-${n}`, version: 1, doc: commandDoc(n) })));
      await expect(store.count('commands', { seq: { gte: 2 } })).rejects.toMatchObject({ code: 'unknown_field' });
      await store.ensureIndices([{ name: 'commands', fields: { seq: 'long' } }]);
      expect(await store.count('commands', { seq: { gte: 2 } })).toBe(2);
      expect(await store.count('commands', { agent: 'agent-1' })).toBe(1);
    } finally {
      await store.close();
    }
  });

  it('filters on nested fields declared with a dotted name', async () => {
    const store = new SqliteProjectionStoreAdapter({ path: newFile() });
    try {
      await store.ensureIndices([{ name: 'commands', fields: { 'action.name': 'keyword' } }]);
      await store.apply([
        { index: 'commands', id: 'a', version: 1, doc: { action: { name: 'restart' } } },
        { index: 'commands', id: 'b', version: 1, doc: { action: { name: 'upgrade' } } },
        { index: 'commands', id: 'c', version: 1, doc: {} },
      ]);
      expect(await store.countBy('commands', 'action.name')).toEqual({ restart: 1, upgrade: 1 });
      await expect(
        store.apply([{ index: 'commands', id: 'd', version: 1, doc: { action: { name: 7 } } }]),
      ).rejects.toMatchObject({ code: 'invalid_document' });
    } finally {
      await store.close();
    }
  });

  it('rejects bad prefixes, bad definitions and bad filter values with clear errors', async () => {
    expect(() => new SqliteProjectionStoreAdapter({ path: newFile(), indexPrefix: 'Herald/' })).toThrow(
      InvalidIndexNameError,
    );
    const store = new SqliteProjectionStoreAdapter({ path: newFile() });
    try {
      await expect(store.ensureIndices([{ name: 'x', fields: { 'bad name': 'keyword' } }])).rejects.toMatchObject({
        code: 'invalid_index_definition',
      });
      await expect(
        store.ensureIndices([{ name: 'x', fields: { seq: 'integer' as unknown as 'long' } }]),
      ).rejects.toMatchObject({ code: 'invalid_index_definition' });
      await expect(store.ensureIndices([{ name: 'x', fields: { id: 'keyword' } }])).rejects.toMatchObject({
        code: 'invalid_index_definition',
      });
      await store.ensureIndices([COMMANDS]);
      await expect(store.count('commands', { seq: 'many' })).rejects.toMatchObject({ code: 'invalid_filter' });
      await expect(store.count('commands', { issuedAt: { gte: 'yesterday' } })).rejects.toMatchObject({
        code: 'invalid_filter',
      });
      await expect(store.count('commands', { seq: { from: 1 } as unknown as { gte: number } })).rejects.toMatchObject({
        code: 'invalid_filter',
      });
      await expect(store.count('commands', { agent: undefined as unknown as string })).rejects.toMatchObject({
        code: 'invalid_filter',
      });
      await expect(store.query('commands', { limit: 0 })).rejects.toMatchObject({ code: 'invalid_query' });
      await expect(store.query('commands', { sort: ['-'] })).rejects.toMatchObject({ code: 'invalid_query' });
      await expect(store.apply([], { name: 'commands', positions: { '0': Number.NaN } })).rejects.toMatchObject({
        code: 'invalid_watermark',
      });
    } finally {
      await store.close();
    }
  });

  it('rejects use after close; close is idempotent', async () => {
    const store = new SqliteProjectionStoreAdapter({ path: newFile() });
    await store.close();
    await store.close();
    await expect(store.count('commands')).rejects.toMatchObject({ code: 'store_closed' });
  });
});
