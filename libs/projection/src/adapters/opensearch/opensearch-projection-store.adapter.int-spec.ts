import { HERALD_INDICES } from '@herald/contracts';
import { Client } from '@opensearch-project/opensearch';
import { freePorts, useOpenSearch } from '../../../../../infra/provision';
import { describeProjectionStoreContract } from '../../projection-store.contract';
import type { IndexDefinition, ProjectionStore } from '../../projection.port';
import {
  OpenSearchProjectionStoreAdapter,
  type OpenSearchProjectionStoreOptions,
} from './opensearch-projection-store.adapter';

// Real OpenSearch: OPENSEARCH_URL when set, else a node started for this file (infra/provision.ts).
// Every store gets its own index prefix under FILE_PREFIX; afterAll deletes them all.
// Also run under the unit config (5 s default timeout), e.g. with --testMatch for this file alone.
jest.setTimeout(30_000);

const FILE_PREFIX = `it-os-${Math.random().toString(36).slice(2, 8)}-`;
let server: { url: string; stop(): Promise<void> } | undefined;
let admin: Client;

function url(): string {
  if (!server) throw new Error('OpenSearch did not start (see beforeAll)');
  return server.url;
}

const stores: OpenSearchProjectionStoreAdapter[] = [];
function newStore(
  prefix: string,
  options: Partial<OpenSearchProjectionStoreOptions> = {},
): OpenSearchProjectionStoreAdapter {
  const store = new OpenSearchProjectionStoreAdapter({
    node: url(),
    indexPrefix: `${FILE_PREFIX}${prefix}`,
    ...options,
  });
  stores.push(store);
  return store;
}

beforeAll(async () => {
  server = await useOpenSearch({ log: () => undefined });
  admin = new Client({ node: server.url });
}, 120_000);

afterAll(async () => {
  await Promise.all(stores.map((store) => store.close()));
  if (admin) {
    // Concrete names (not a wildcard delete, which a shared server may forbid), a few per request.
    const listed = await admin.transport.request({
      method: 'GET',
      path: `/_cat/indices/${FILE_PREFIX}*`,
      querystring: { format: 'json', h: 'index' },
    });
    const body: unknown = listed.body;
    const names = Array.isArray(body)
      ? body.flatMap((row: unknown) => (isRecord(row) && typeof row.index === 'string' ? [row.index] : []))
      : [];
    for (let i = 0; i < names.length; i += 20) {
      const batch = names.slice(i, i + 20).map((name) => encodeURIComponent(name));
      await admin.transport.request({ method: 'DELETE', path: `/${batch.join(',')}` });
    }
    await admin.close();
  }
  await server?.stop();
}, 60_000);

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

async function getJson(path: string): Promise<Record<string, unknown>> {
  const response = await admin.transport.request({ method: 'GET', path });
  const body: unknown = response.body;
  if (!isRecord(body)) throw new Error(`GET ${path}: not an object`);
  return body;
}

// The default `refresh: 'wait_for'`, with a short refresh interval: every apply waits for the next
// scheduled refresh, and the suite applies sequentially a few hundred times. The tests below use
// OpenSearch's default interval (1 s).
describeProjectionStoreContract('OpenSearch', {
  create: (prefix) => Promise.resolve<ProjectionStore>(newStore(prefix, { refreshInterval: '100ms' })),
});

const COMMANDS: IndexDefinition = {
  name: 'commands',
  fields: { agent: 'keyword', seq: 'long', status: 'keyword', issuedAt: 'date', urgent: 'boolean' },
};

function commandDoc(n: number, status = 'pending'): Record<string, unknown> {
  return {
    id: `cmd-${n}`,
    agent: `agent-${n % 3}`,
    seq: n,
    status,
    urgent: n % 2 === 0,
    action: { name: 'restart', version: '1', args: { reason: `r${n}` } },
    issuedAt: new Date(Date.UTC(2025, 0, 1) + n * 1000).toISOString(),
  };
}

function writes(
  range: number[],
  version: number,
  status = 'pending',
): Array<{ index: string; id: string; version: number; doc: Record<string, unknown> }> {
  return range.map((n) => ({ index: 'commands', id: `cmd-${n}`, version, doc: commandDoc(n, status) }));
}

const range = (count: number): number[] => Array.from({ length: count }, (_, n) => n);

describe('OpenSearchProjectionStoreAdapter', () => {
  it('keeps documents, versions, definitions and watermarks for a new adapter (no ensureIndices)', async () => {
    const first = newStore('persist.');
    await first.ensureIndices([COMMANDS]);
    await first.apply(writes(range(30), 10), { name: 'commands', positions: { '0': 10, '1': 3 } });
    await first.close();

    const second = newStore('persist.');
    expect(await second.count('commands', { agent: 'agent-1' })).toBe(10);
    expect(await second.get('commands', 'cmd-7')).toEqual({ id: 'cmd-7', version: 10, doc: commandDoc(7) });
    expect(await second.getWatermark('commands')).toEqual({ name: 'commands', positions: { '0': 10, '1': 3 } });
    expect(await second.countBy('commands', 'urgent', { seq: { lt: 10 } })).toEqual({ true: 5, false: 5 });
    const page = await second.query('commands', { sort: ['-seq'], limit: 2 });
    expect(page.items.map((i) => i.id)).toEqual(['cmd-29', 'cmd-28']);

    // The version guard and the watermark merge hold against the stored state.
    await second.apply(writes([7], 9, 'sent'), { name: 'commands', positions: { '0': 2 } });
    expect((await second.get('commands', 'cmd-7'))?.doc).toMatchObject({ status: 'pending' });
    expect((await second.getWatermark('commands'))?.positions).toEqual({ '0': 10, '1': 3 });

    // A cursor only holds sort values: a third adapter continues the page.
    const third = newStore('persist.');
    const next = await third.query('commands', {
      sort: ['-seq'],
      limit: 2,
      ...(page.nextCursor ? { cursor: page.nextCursor } : {}),
    });
    expect(next.items.map((i) => i.id)).toEqual(['cmd-27', 'cmd-26']);
  });

  it('lets versions decide between two adapters writing the same documents concurrently', async () => {
    const a = newStore('race.');
    const b = newStore('race.');
    await Promise.all([a.ensureIndices([COMMANDS]), b.ensureIndices([COMMANDS])]);
    const ids = range(200);
    // a writes odd versions 1..19, b even versions 2..20, interleaved, each with a watermark.
    await Promise.all([
      (async () => {
        for (let v = 1; v <= 19; v += 2)
          await a.apply(writes(ids, v, `v${v}`), { name: 'commands', positions: { a: v, shared: v } });
      })(),
      (async () => {
        for (let v = 20; v >= 2; v -= 2)
          await b.apply(writes(ids, v, `v${v}`), { name: 'commands', positions: { b: v, shared: v } });
      })(),
    ]);

    expect(await a.count('commands')).toBe(200);
    expect(await a.countBy('commands', 'status')).toEqual({ v20: 200 });
    expect(await b.get('commands', 'cmd-42')).toMatchObject({ version: 20, doc: { status: 'v20' } });
    expect(await b.getWatermark('commands')).toEqual({ name: 'commands', positions: { a: 19, b: 20, shared: 20 } });
  });

  it('creates an alias over one shard with explicit types, dynamic false and the whole document in _source', async () => {
    const store = newStore('mapping.');
    await store.ensureIndices([COMMANDS, { name: 'agents', fields: { 'host.name': 'keyword', _kind: 'keyword' } }]);
    await store.apply([{ index: 'commands', id: 'cmd-1', version: 3, doc: commandDoc(1) }]);
    const alias = `${FILE_PREFIX}mapping.commands`;

    const mappings = await getJson(`/${alias}/_mapping`);
    expect(Object.keys(mappings)).toEqual([`${alias}~0`]);
    expect(mappings[`${alias}~0`]).toMatchObject({
      mappings: {
        dynamic: 'false',
        _meta: { herald: { store: 'projection' } },
        properties: {
          '~id': { type: 'keyword' },
          agent: { type: 'keyword' },
          status: { type: 'keyword' },
          seq: { type: 'long' },
          issuedAt: { type: 'date' },
          urgent: { type: 'boolean' },
        },
      },
    });
    const agents = await getJson(`/${FILE_PREFIX}mapping.agents/_mapping`);
    expect(agents[`${FILE_PREFIX}mapping.agents~0`]).toMatchObject({
      mappings: { properties: { host: { properties: { name: { type: 'keyword' } } }, '~_kind': { type: 'keyword' } } },
    });
    const settings = await getJson(`/${alias}/_settings`);
    expect(settings[`${alias}~0`]).toMatchObject({
      settings: { index: { number_of_shards: '1', number_of_replicas: '0', max_result_window: '10001' } },
    });

    const raw = await getJson(`/${alias}/_doc/cmd-1`);
    expect(raw).toMatchObject({ _version: 3, _source: { '~id': 'cmd-1', ...commandDoc(1) } });
    // Undeclared fields are stored, not indexed.
    await expect(store.count('commands', { 'action.name': 'restart' })).rejects.toMatchObject({
      code: 'unknown_field',
    });
  });

  it("creates Herald's indices (commands, agents, stateful events) with explicit mappings", async () => {
    const store = newStore('herald.');
    await store.ensureIndices([...HERALD_INDICES]);
    const expectedType = { keyword: 'keyword', long: 'long', date: 'date', boolean: 'boolean' } as const;
    for (const index of HERALD_INDICES) {
      const alias = `${FILE_PREFIX}herald.${index.name}`;
      const mappings = await getJson(`/${alias}/_mapping`);
      const properties = Object.fromEntries(
        Object.entries(index.fields).map(([field, type]) => [field, { type: expectedType[type] }]),
      );
      expect(mappings[`${alias}~0`]).toMatchObject({ mappings: { dynamic: 'false', properties } });
    }
  });

  it('adds a field to an existing index and makes the stored documents filterable on it', async () => {
    const store = newStore('addfield.');
    await store.ensureIndices([{ name: 'commands', fields: { agent: 'keyword' } }]);
    await store.apply(writes(range(5), 7));
    await expect(store.count('commands', { seq: { gte: 2 } })).rejects.toMatchObject({ code: 'unknown_field' });

    await store.ensureIndices([{ name: 'commands', fields: { seq: 'long', 'action.name': 'keyword' } }]);
    expect(await store.count('commands', { seq: { gte: 2 } })).toBe(3);
    expect(await store.countBy('commands', 'action.name')).toEqual({ restart: 5 });
    expect(await store.get('commands', 'cmd-3')).toEqual({ id: 'cmd-3', version: 7, doc: commandDoc(3) });

    // Another adapter sees the new field without ensureIndices; the type cannot change.
    const other = newStore('addfield.');
    expect(await other.count('commands', { seq: 4, agent: 'agent-1' })).toBe(1);
    await expect(other.ensureIndices([{ name: 'commands', fields: { seq: 'keyword' } }])).rejects.toMatchObject({
      code: 'index_definition_conflict',
    });
    // OpenSearch cannot map one path as a value and an object at once.
    await expect(
      store.ensureIndices([{ name: 'commands', fields: { 'agent.name': 'keyword' } }]),
    ).rejects.toMatchObject({
      code: 'index_definition_conflict',
    });
  });

  it('stores documents with keys OpenSearch would refuse or misread, and gives them back unchanged', async () => {
    const store = newStore('keys.');
    await store.ensureIndices([{ name: 'things', fields: { _kind: 'keyword', 'a.b': 'keyword', when: 'date' } }]);
    const doc: Record<string, unknown> = JSON.parse(
      JSON.stringify({
        '': 'empty',
        'a.b': 'flat dotted key',
        a: { b: 'nested', 'c.d': 1, '': [{ '.': 2 }] },
        _id: 'not the id',
        _source: { _seq_no: 3 },
        _kind: 'probe',
        '~id': 'mine',
        '~': '%2E%25.',
        'x%2Ey': 'percent',
        constructor: { prototype: { polluted: true } },
        list: [{ 'k.k': [] }, null, 1.5, 'text'],
        when: '2025-05-01 12:00:00.5+02:00',
      }),
    ) as Record<string, unknown>;
    Object.defineProperty(doc, '__proto__', {
      value: { own: true },
      enumerable: true,
      writable: true,
      configurable: true,
    });

    await store.apply([{ index: 'things', id: 'thing/1 ?#', version: 1, doc }]);
    const stored = await store.get('things', 'thing/1 ?#');
    expect(stored?.doc).toEqual(doc);
    expect(Object.prototype.hasOwnProperty.call(stored?.doc, '__proto__')).toBe(true);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();

    expect(await store.count('things', { _kind: 'probe' })).toBe(1);
    expect(await store.count('things', { 'a.b': 'nested' })).toBe(1);
    expect(await store.count('things', { 'a.b': 'flat dotted key' })).toBe(0); // as in the embedded adapter
    expect(await store.count('things', { when: '2025-05-01T10:00:00.500Z' })).toBe(1);
    expect(await store.count('things', { id: 'thing/1 ?#' })).toBe(1);
  });

  it('reset swaps in an empty index behind the alias and deletes the old one', async () => {
    const store = newStore('reset.');
    await store.ensureIndices([COMMANDS]);
    await store.apply(writes(range(10), 5), { name: 'commands', positions: { '0': 5 } });
    const alias = `${FILE_PREFIX}reset.commands`;

    await store.reset(['commands', 'never-created']);

    const concrete = Object.keys(await getJson(`/${alias}/_mapping`));
    expect(concrete).toHaveLength(1);
    expect(concrete[0]).not.toBe(`${alias}~0`);
    const old = await admin.transport.request({ method: 'HEAD', path: `/${alias}~0` }, { ignore: [404] });
    expect(old.statusCode).toBe(404);
    expect(await store.count('commands')).toBe(0);
    expect(await store.getWatermark('commands')).toBeUndefined();

    // A second adapter that cached the old index keeps working; mapping and alias survive.
    const other = newStore('reset.');
    await other.apply(writes([1], 1), { name: 'commands', positions: { '0': 1 } });
    expect(await store.count('commands', { urgent: false, issuedAt: { gt: 0 } })).toBe(1);
    await store.reset(['commands']);
    expect(await other.count('commands')).toBe(0);
  });

  it('pages through long, date and boolean sorts with missing values last in both directions', async () => {
    // OpenSearch reports a missing sort value as the type's extreme (±2^63-1, ±2^31-1 for
    // booleans); the cursor stores null and search_after gets the extreme back.
    const store = newStore('missing.', { refresh: true });
    await store.ensureIndices([COMMANDS]);
    const docs = range(23).map((n) => {
      const doc = commandDoc(n);
      if (n % 3 === 0) delete doc['seq'];
      if (n % 4 === 0) delete doc['issuedAt'];
      if (n % 5 === 0) delete doc['urgent'];
      return { index: 'commands', id: `cmd-${String(n).padStart(2, '0')}`, version: 1, doc };
    });
    await store.apply(docs);

    const value = (doc: Record<string, unknown>, field: string): number | undefined => {
      const raw = doc[field];
      if (typeof raw === 'boolean') return raw ? 1 : 0;
      if (typeof raw === 'string') return Date.parse(raw);
      return typeof raw === 'number' ? raw : undefined;
    };
    for (const sort of [['seq'], ['-seq'], ['issuedAt'], ['-issuedAt'], ['urgent', '-seq'], ['-urgent', 'issuedAt']]) {
      const keys = sort.map((s) => ({ field: s.replace(/^-/, ''), descending: s.startsWith('-') }));
      const expected = [...docs]
        .sort((a, b) => {
          for (const key of keys) {
            const [x, y] = [value(a.doc, key.field), value(b.doc, key.field)];
            if (x === y) continue;
            if (x === undefined) return 1;
            if (y === undefined) return -1;
            return (x < y ? -1 : 1) * (key.descending ? -1 : 1);
          }
          return a.id < b.id ? -1 : 1;
        })
        .map((d) => d.id);
      const ids: string[] = [];
      let cursor: string | undefined;
      do {
        const page = await store.query('commands', { sort, limit: 2, ...(cursor !== undefined ? { cursor } : {}) });
        ids.push(...page.items.map((item) => item.id));
        cursor = page.nextCursor;
      } while (cursor !== undefined);
      expect({ sort, ids }).toEqual({ sort, ids: expected });
    }
  });

  it('reports an unreachable node with its URL (without credentials)', async () => {
    const [port] = await freePorts(1);
    const store = new OpenSearchProjectionStoreAdapter({
      node: `http://herald:secret@127.0.0.1:${port ?? 1}`,
      clientOptions: { maxRetries: 0, requestTimeout: 2_000 },
    });
    try {
      const failure = store.count('commands');
      await expect(failure).rejects.toMatchObject({ code: 'store_unavailable' });
      await expect(store.count('commands')).rejects.toThrow(
        `OpenSearch at http://127.0.0.1:${port ?? 1} is unreachable`,
      );
      await expect(store.count('commands')).rejects.not.toThrow(/secret/);
    } finally {
      await store.close();
    }
  });

  it('makes documents searchable with refresh: true too, and rejects use after close', async () => {
    const store = newStore('refresh.', { refresh: true });
    await store.ensureIndices([COMMANDS]);
    for (let n = 1; n <= 5; n++) {
      await store.apply(writes([n], n));
      expect(await store.count('commands', { seq: { lte: n } })).toBe(n);
    }
    await store.close();
    await store.close();
    await expect(store.count('commands')).rejects.toMatchObject({ code: 'store_closed' });
    await expect(store.apply([])).rejects.toMatchObject({ code: 'store_closed' });
  });
});
