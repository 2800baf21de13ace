import type { DocumentWrite, IndexDefinition, ProjectionStore, QueryOptions, StoredDocument } from './projection.port';

/**
 * The ProjectionStore contract: ONE suite, using only the port, that every adapter must pass
 * (embedded SQLite in the unit tier, OpenSearch in the integration tier).
 *
 * Every test gets a fresh store from `factory.create(prefix)` with a unique index prefix
 * (`[a-z0-9._-]`), and closes it afterwards; the factory owns any further clean-up (deleting
 * files or indices). The tests do not wait or poll: a document must be searchable as soon as
 * `apply` resolves.
 *
 * Run it from an adapter's spec file:
 *
 *   describeProjectionStoreContract('embedded (SQLite)', {
 *     create: (prefix) => Promise.resolve(new SqliteProjectionStoreAdapter({ path, indexPrefix: prefix })),
 *   });
 *
 * Not exported from the library's index.ts: it needs Jest's globals, and tsconfig.build.json
 * leaves `*.contract.ts` out of the production build. Import it from this file.
 *
 * What the OpenSearch adapter has to do to pass: index the `id` as a keyword field (sort
 * tiebreaker, term/terms/range on `id`); bulk with `version_type=external` and treat 409s as the
 * ignored stale writes they are; validate every write (index exists, version is a non-negative
 * integer, declared field values fit their type) BEFORE sending the bulk, so a rejected apply
 * stores nothing; write the watermark (merged per partition with max) only after the bulk
 * succeeded, with `refresh=wait_for` (or `true`) on both; sort with `missing: _last`; size the
 * terms aggregation for countBy to return every bucket; encode the sort spec in the cursor.
 */
export interface ProjectionStoreContractFactory {
  create(prefix: string): Promise<ProjectionStore>;
}

type CommandStatus = 'pending' | 'sent' | 'in_progress' | 'success' | 'failure' | 'timed_out';

/** A command as the indexer projects it. */
interface CommandView {
  id: string;
  agent: string;
  seq: number;
  status: CommandStatus;
  requestId?: string;
  action: { name: string; version: string; args: Record<string, unknown> };
  actionName: string;
  issuedAt: string | number;
}

interface AgentView {
  id: string;
  name: string;
  group: string;
  connected: boolean;
  lastSeen: string;
  commandCount: number;
}

const COMMANDS: IndexDefinition = {
  name: 'commands',
  fields: {
    agent: 'keyword',
    seq: 'long',
    status: 'keyword',
    requestId: 'keyword',
    actionName: 'keyword',
    issuedAt: 'date',
  },
};

const AGENTS: IndexDefinition = {
  name: 'agents',
  fields: { group: 'keyword', connected: 'boolean', lastSeen: 'date', commandCount: 'long' },
};

const STATUSES: readonly CommandStatus[] = ['pending', 'sent', 'in_progress', 'success', 'failure', 'timed_out'];
const ACTIONS = ['restart', 'upgrade', 'run-scan', 'set-group', 'fetch-config'] as const;
const AGENT_COUNT = 7;
const BASE_TIME = Date.UTC(2025, 0, 15, 8, 0, 0);

function uuid(prefix: string, n: number): string {
  return `${prefix}-0000-7000-8000-${n.toString(16).padStart(12, '0')}`;
}

function agentId(n: number): string {
  return uuid('0190aaaa', n);
}

/**
 * The i-th command of a deterministic fleet of `total`: round-robin over agents (so `seq` is
 * dense per agent and ties across agents), statuses and actions repeat (ties for sorting),
 * issue times are a permutation (not aligned with ids), and every fifth has no requestId.
 */
function command(i: number, total: number): CommandView {
  const actionName = ACTIONS[i % ACTIONS.length] ?? 'restart';
  const view: CommandView = {
    id: uuid('0190c3a0', (i * 7919) % 100_003),
    agent: agentId(i % AGENT_COUNT),
    seq: Math.floor(i / AGENT_COUNT) + 1,
    status: STATUSES[(i * 5) % STATUSES.length] ?? 'pending',
    action: { name: actionName, version: '1', args: { reason: `test ${i}` } },
    actionName,
    issuedAt: new Date(BASE_TIME + ((i * 7919) % total) * 1000).toISOString(),
  };
  if (i % 5 !== 0) view.requestId = uuid('0190bbbb', Math.floor(i / 3));
  return view;
}

function fleet(total: number): CommandView[] {
  return Array.from({ length: total }, (_, i) => command(i, total));
}

function write(doc: CommandView, version = 1): DocumentWrite {
  return { index: 'commands', id: doc.id, version, doc: { ...doc } };
}

type SortValue = string | number | undefined;

function sortValue(doc: CommandView, field: string): SortValue {
  switch (field) {
    case 'id':
      return doc.id;
    case 'agent':
      return doc.agent;
    case 'seq':
      return doc.seq;
    case 'status':
      return doc.status;
    case 'requestId':
      return doc.requestId;
    case 'actionName':
      return doc.actionName;
    case 'issuedAt':
      return typeof doc.issuedAt === 'number' ? doc.issuedAt : Date.parse(doc.issuedAt);
    default:
      throw new Error(`no sort value for ${field}`);
  }
}

/** The order the port promises: the sort keys (missing values last either way), then id. */
function expectedOrder(docs: CommandView[], sort: string[]): string[] {
  const keys = [...sort.map((s) => ({ field: s.replace(/^-/, ''), descending: s.startsWith('-') }))];
  keys.push({ field: 'id', descending: false });
  const compare = (a: CommandView, b: CommandView): number => {
    for (const key of keys) {
      const x = sortValue(a, key.field);
      const y = sortValue(b, key.field);
      if (x === y) continue;
      if (x === undefined) return 1;
      if (y === undefined) return -1;
      const order = x < y ? -1 : 1;
      return key.descending ? -order : order;
    }
    return 0;
  };
  return [...docs].sort(compare).map((doc) => doc.id);
}

function tally(values: Array<string | number | undefined>): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const value of values) {
    if (value === undefined) continue;
    const key = String(value);
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}

/** Follows `nextCursor` from the first (or given) page until there is none. */
async function pageThrough(
  store: ProjectionStore,
  index: string,
  options: Omit<QueryOptions, 'cursor'>,
  startCursor?: string,
): Promise<{ ids: string[]; pages: Array<{ size: number; hasCursor: boolean }> }> {
  const ids: string[] = [];
  const pages: Array<{ size: number; hasCursor: boolean }> = [];
  let cursor: string | undefined = startCursor;
  for (let guard = 0; guard < 500; guard++) {
    const page = await store.query(index, { ...options, ...(cursor !== undefined ? { cursor } : {}) });
    ids.push(...page.items.map((item) => item.id));
    pages.push({ size: page.items.length, hasCursor: page.nextCursor !== undefined });
    cursor = page.nextCursor;
    if (cursor === undefined) return { ids, pages };
  }
  throw new Error('paging did not end');
}

export function describeProjectionStoreContract(adapterName: string, factory: ProjectionStoreContractFactory): void {
  describe(`ProjectionStore contract: ${adapterName}`, () => {
    const run = Math.random().toString(36).slice(2, 8);
    let counter = 0;
    let store: ProjectionStore;

    beforeEach(async () => {
      counter += 1;
      store = await factory.create(`contract-${run}-${counter}.`);
      await store.ensureIndices([COMMANDS, AGENTS]);
    });

    afterEach(async () => {
      await store.close();
    });

    describe('indices', () => {
      it('ensureIndices is idempotent and keeps existing documents', async () => {
        const doc = command(1, 10);
        await store.apply([write(doc)]);
        await store.ensureIndices([COMMANDS, AGENTS]);
        await store.ensureIndices([COMMANDS]);

        expect(await store.count('commands')).toBe(1);
        expect((await store.get<CommandView>('commands', doc.id))?.doc).toEqual(doc);
        expect((await store.query('commands', { filter: { agent: doc.agent } })).items).toHaveLength(1);
      });

      it('rejects changing the type of a declared field', async () => {
        await expect(
          store.ensureIndices([{ name: 'commands', fields: { ...COMMANDS.fields, seq: 'keyword' } }]),
        ).rejects.toMatchObject({ code: 'index_definition_conflict' });
      });

      it('rejects invalid index names', async () => {
        for (const name of ['Commands', 'com mands', 'commands/1', '', '_commands']) {
          await expect(store.ensureIndices([{ name, fields: {} }])).rejects.toMatchObject({
            code: 'invalid_index_name',
          });
        }
      });
    });

    describe('versioned upserts', () => {
      it('upserts a document and gets it back with its version', async () => {
        const doc = command(3, 10);
        await store.apply([write(doc, 42)]);

        const stored = await store.get<CommandView>('commands', doc.id);
        expect(stored).toEqual<StoredDocument<CommandView>>({ id: doc.id, version: 42, doc });
        expect(await store.get('commands', uuid('0190ffff', 1))).toBeUndefined();

        const updated: CommandView = { ...doc, status: 'sent' };
        await store.apply([write(updated, 43)]);
        expect(await store.get<CommandView>('commands', doc.id)).toEqual({ id: doc.id, version: 43, doc: updated });
      });

      it('ignores lower and equal versions within one apply (duplicates, out of order)', async () => {
        const doc = command(5, 10);
        await store.apply([
          write({ ...doc, status: 'pending' }, 10),
          write({ ...doc, status: 'in_progress' }, 12),
          write({ ...doc, status: 'sent' }, 11),
          write({ ...doc, status: 'failure' }, 12),
          write({ ...doc, status: 'pending' }, 10),
        ]);

        const stored = await store.get<CommandView>('commands', doc.id);
        expect(stored?.version).toBe(12);
        expect(stored?.doc.status).toBe('in_progress');
        expect(await store.count('commands')).toBe(1);
      });

      it('ignores lower and equal versions across applies; a greater version wins', async () => {
        const doc = command(6, 10);
        await store.apply([write({ ...doc, status: 'sent' }, 5)]);
        await store.apply([write({ ...doc, status: 'failure' }, 5)]);
        await store.apply([write({ ...doc, status: 'pending' }, 4)]);
        expect(await store.get<CommandView>('commands', doc.id)).toMatchObject({ version: 5, doc: { status: 'sent' } });

        await store.apply([write({ ...doc, status: 'success' }, 6)]);
        expect(await store.get<CommandView>('commands', doc.id)).toMatchObject({
          version: 6,
          doc: { status: 'success' },
        });
        expect(await store.count('commands', { status: 'sent' })).toBe(0);
        expect(await store.count('commands', { status: 'success' })).toBe(1);
      });

      it('replaying an already applied history is a no-op (rebuild / redelivery)', async () => {
        const docs = fleet(50);
        const history = docs.flatMap((doc, i) => [
          write({ ...doc, status: 'pending' }, i * 10 + 1),
          write({ ...doc, status: 'sent' }, i * 10 + 2),
          write(doc, i * 10 + 3),
        ]);
        await store.apply(history);
        await store.apply([...history].reverse());
        await store.apply(history.slice(0, 60));

        expect(await store.count('commands')).toBe(50);
        expect(await store.countBy('commands', 'status')).toEqual(tally(docs.map((d) => d.status)));
      });

      it('applies a batch of 10,000 writes, then counts them', async () => {
        const docs = fleet(10_000);
        await store.apply(docs.map((doc) => write(doc)));

        expect(await store.count('commands')).toBe(10_000);
        expect(await store.count('commands', { status: 'pending' })).toBe(
          docs.filter((d) => d.status === 'pending').length,
        );
        const last = docs[9_999];
        expect(last).toBeDefined();
        if (last) expect((await store.get<CommandView>('commands', last.id))?.doc).toEqual(last);
      }, 60_000);
    });

    describe('queries', () => {
      const docs = fleet(300);
      const idsOf = (list: CommandView[]): string[] => expectedOrder(list, []);
      const agent = agentId(3);

      beforeEach(async () => {
        await store.apply(docs.map((doc) => write(doc)));
      });

      it('filters by equality (term)', async () => {
        const page = await store.query<CommandView>('commands', { filter: { agent }, limit: 1000 });
        expect(page.items.map((item) => item.id)).toEqual(idsOf(docs.filter((d) => d.agent === agent)));
        expect(page.items.every((item) => item.doc.agent === agent && item.version === 1)).toBe(true);
        expect(page.nextCursor).toBeUndefined();

        expect(await store.count('commands', { agent, status: 'success' })).toBe(
          docs.filter((d) => d.agent === agent && d.status === 'success').length,
        );
        expect(await store.count('commands', { seq: 4 })).toBe(AGENT_COUNT);
        const one = docs[17];
        expect(one).toBeDefined();
        if (one)
          expect((await store.query('commands', { filter: { id: one.id } })).items.map((i) => i.id)).toEqual([one.id]);
      });

      it('filters by any of several values (terms)', async () => {
        const statuses: CommandStatus[] = ['sent', 'in_progress'];
        const page = await store.query('commands', { filter: { status: statuses, agent }, limit: 1000 });
        expect(page.items.map((item) => item.id)).toEqual(
          idsOf(docs.filter((d) => statuses.includes(d.status) && d.agent === agent)),
        );
        const someIds = docs.slice(10, 14).map((d) => d.id);
        expect(await store.count('commands', { id: [...someIds, uuid('0190ffff', 9)] })).toBe(4);
        expect(await store.count('commands', { status: [] })).toBe(0);
      });

      it('filters by ranges on numbers and dates', async () => {
        const seqRange = await store.query('commands', { filter: { agent, seq: { gt: 10, lte: 20 } }, limit: 1000 });
        expect(seqRange.items.map((i) => i.id)).toEqual(
          idsOf(docs.filter((d) => d.agent === agent && d.seq > 10 && d.seq <= 20)),
        );

        const from = new Date(BASE_TIME + 100_000).toISOString();
        const to = BASE_TIME + 150_000;
        const issuedAt = (d: CommandView): number => Number(sortValue(d, 'issuedAt'));
        expect(await store.count('commands', { issuedAt: { gte: from, lt: to } })).toBe(
          docs.filter((d) => issuedAt(d) >= BASE_TIME + 100_000 && issuedAt(d) < to).length,
        );
        expect(await store.count('commands', { status: { gte: 'success' } })).toBe(
          docs.filter((d) => d.status >= 'success').length,
        );
      });

      it('sorts ascending and descending, with id as the final tiebreaker', async () => {
        for (const sort of [['seq'], ['-seq'], ['status', '-issuedAt'], ['-actionName', 'seq'], []]) {
          const page = await store.query('commands', {
            filter: { status: ['success', 'failure', 'sent'] },
            sort,
            limit: 1000,
          });
          const expected = expectedOrder(
            docs.filter((d) => ['success', 'failure', 'sent'].includes(d.status)),
            sort,
          );
          expect({ sort, ids: page.items.map((i) => i.id) }).toEqual({ sort, ids: expected });
        }
      });

      it('puts documents missing a sort field last in both directions', async () => {
        for (const sort of [['requestId'], ['-requestId']]) {
          const { ids } = await pageThrough(store, 'commands', { sort, limit: 7, filter: { agent } });
          const expected = expectedOrder(
            docs.filter((d) => d.agent === agent),
            sort,
          );
          expect({ sort, ids }).toEqual({ sort, ids: expected });
          const missing = docs.filter((d) => d.agent === agent && d.requestId === undefined).length;
          expect(missing).toBeGreaterThan(0);
          expect(ids.slice(-missing)).toEqual(
            idsOf(docs.filter((d) => d.agent === agent && d.requestId === undefined)),
          );
        }
      });

      it('rejects a limit above 10,000 and accepts 10,000', async () => {
        await expect(store.query('commands', { limit: 10_001 })).rejects.toMatchObject({ code: 'invalid_query' });
        expect((await store.query('commands', { limit: 10_000 })).items).toHaveLength(300);
        expect((await store.query('commands')).items).toHaveLength(100);
      });
    });

    describe('cursor paging', () => {
      const docs = fleet(1_000);

      beforeEach(async () => {
        await store.apply(docs.map((doc) => write(doc)));
      });

      const cases: Array<{ sort: string[]; filter?: QueryOptions['filter'] }> = [
        { sort: [] },
        { sort: ['seq'] },
        { sort: ['-seq'] },
        { sort: ['-issuedAt'] },
        { sort: ['status', '-seq'] },
        { sort: ['requestId', 'seq'] },
        { sort: ['agent', 'seq'], filter: { status: ['pending', 'sent', 'in_progress'] } },
      ];

      it.each(cases)('visits every item exactly once, in order (sort $sort)', async ({ sort, filter }) => {
        const { ids, pages } = await pageThrough(store, 'commands', {
          sort,
          limit: 77,
          ...(filter !== undefined ? { filter } : {}),
        });
        const selected =
          filter === undefined ? docs : docs.filter((d) => ['pending', 'sent', 'in_progress'].includes(d.status));
        expect(ids).toEqual(expectedOrder(selected, sort));
        expect(new Set(ids).size).toBe(selected.length);
        // Every page but the last is full, and a page that is not full carries no cursor.
        expect(pages.slice(0, -1).every((page) => page.size === 77 && page.hasCursor)).toBe(true);
        expect(pages.filter((page) => page.size < 77 && page.hasCursor)).toEqual([]);
        if (filter === undefined) expect(pages.filter((page) => page.size > 0)).toHaveLength(Math.ceil(1_000 / 77));
      });

      it('sees documents written between pages at their place in the order', async () => {
        const first = await store.query<CommandView>('commands', { sort: ['seq'], limit: 77 });
        const lastOfFirst = first.items[first.items.length - 1];
        expect(first.nextCursor).toBeDefined();
        expect(lastOfFirst).toBeDefined();
        const late: CommandView = { ...command(5_000, 5_001), seq: 1_000 };
        await store.apply([write(late)]);

        const rest = await pageThrough(store, 'commands', { sort: ['seq'], limit: 500 }, first.nextCursor);
        const all = [...first.items.map((i) => i.id), ...rest.ids];
        expect(all).toEqual(expectedOrder([...docs, late], ['seq']));
      });

      it('rejects malformed cursors and cursors of another sort', async () => {
        const page = await store.query('commands', { sort: ['seq'], limit: 10 });
        expect(page.nextCursor).toBeDefined();
        const garbage = ['not a cursor!', 'AAAA', Buffer.from('{"x":1}').toString('base64url'), ''];
        for (const cursor of garbage) {
          await expect(store.query('commands', { sort: ['seq'], cursor })).rejects.toMatchObject({
            code: 'invalid_cursor',
          });
        }
        await expect(
          store.query('commands', { sort: ['-issuedAt'], ...(page.nextCursor ? { cursor: page.nextCursor } : {}) }),
        ).rejects.toMatchObject({ code: 'invalid_cursor' });
      });
    });

    describe('aggregations and types', () => {
      it('countBy returns a count per value, like a terms aggregation', async () => {
        const docs = fleet(500);
        await store.apply(docs.map((doc) => write(doc)));
        const agent = agentId(2);

        expect(await store.countBy('commands', 'status')).toEqual(tally(docs.map((d) => d.status)));
        expect(await store.countBy('commands', 'actionName', { agent })).toEqual(
          tally(docs.filter((d) => d.agent === agent).map((d) => d.actionName)),
        );
        // Documents without the field are not counted.
        expect(await store.countBy('commands', 'requestId', { agent, seq: { lte: 10 } })).toEqual(
          tally(docs.filter((d) => d.agent === agent && d.seq <= 10).map((d) => d.requestId)),
        );
        expect(await store.countBy('commands', 'seq', { seq: { lte: 2 } })).toEqual({ '1': 7, '2': 7 });
        expect(await store.countBy('commands', 'status', { agent: 'nobody' })).toEqual({});
      });

      it('compares dates as instants (ISO-8601 with offsets and epoch milliseconds)', async () => {
        const instant = Date.UTC(2025, 4, 1, 10, 0, 0);
        const base = command(1, 10);
        const variants: Array<[string, string | number]> = [
          ['a', '2025-05-01T10:00:00.000Z'],
          ['b', '2025-05-01T12:00:00+02:00'],
          ['c', instant],
          ['d', '2025-05-01T10:00:00.001Z'],
          ['e', '2025-05-01'],
        ];
        await store.apply(
          variants.map(([suffix, issuedAt]) => write({ ...base, id: `${base.id}-${suffix}`, issuedAt })),
        );

        expect(await store.count('commands', { issuedAt: '2025-05-01T10:00:00Z' })).toBe(3);
        expect(await store.count('commands', { issuedAt: instant })).toBe(3);
        expect(await store.count('commands', { issuedAt: { gt: '2025-05-01T09:59:59.999Z' } })).toBe(4);
        expect(await store.count('commands', { issuedAt: { lt: '2025-05-01T11:00:00+01:00' } })).toBe(1);
        const page = await store.query('commands', { sort: ['-issuedAt'] });
        expect(page.items.map((i) => i.id.slice(-1))).toEqual(['d', 'a', 'b', 'c', 'e']);
        expect(await store.countBy('commands', 'issuedAt', { issuedAt: { gte: instant } })).toEqual({
          '2025-05-01T10:00:00.000Z': 3,
          '2025-05-01T10:00:00.001Z': 1,
        });
      });

      it('filters, sorts and counts booleans and longs', async () => {
        const agents: AgentView[] = Array.from({ length: 40 }, (_, i) => ({
          id: agentId(i),
          name: `host-${i}`,
          group: i % 4 === 0 ? 'linux' : 'windows',
          connected: i % 3 === 0,
          lastSeen: new Date(BASE_TIME + i * 60_000).toISOString(),
          commandCount: (i * 37) % 11,
        }));
        await store.apply(agents.map((a, i) => ({ index: 'agents', id: a.id, version: i + 1, doc: { ...a } })));

        const connected = agents.filter((a) => a.connected);
        expect(await store.count('agents', { connected: true })).toBe(connected.length);
        expect(await store.countBy('agents', 'connected')).toEqual({
          true: connected.length,
          false: agents.length - connected.length,
        });
        const page = await store.query<AgentView>('agents', {
          filter: { connected: false, group: 'windows' },
          sort: ['-commandCount', '-lastSeen'],
          limit: 100,
        });
        const expected = agents
          .filter((a) => !a.connected && a.group === 'windows')
          .sort((x, y) => y.commandCount - x.commandCount || y.lastSeen.localeCompare(x.lastSeen))
          .map((a) => a.id);
        expect(page.items.map((i) => i.id)).toEqual(expected);
        expect(await store.count('agents', { commandCount: { gte: 5 }, group: 'linux' })).toBe(
          agents.filter((a) => a.commandCount >= 5 && a.group === 'linux').length,
        );
      });
    });

    describe('watermarks', () => {
      it('stores a watermark, merges partitions, and never moves a partition backwards', async () => {
        expect(await store.getWatermark('commands')).toBeUndefined();

        await store.apply([write(command(1, 10), 11)], { name: 'commands', positions: { '0': 11, '1': 4 } });
        expect(await store.getWatermark('commands')).toEqual({ name: 'commands', positions: { '0': 11, '1': 4 } });

        await store.apply([], { name: 'commands', positions: { '1': 9, '2': 3 } });
        expect(await store.getWatermark('commands')).toEqual({
          name: 'commands',
          positions: { '0': 11, '1': 9, '2': 3 },
        });

        await store.apply([write(command(2, 10), 7)], { name: 'commands', positions: { '0': 7, '2': 3 } });
        expect(await store.getWatermark('commands')).toEqual({
          name: 'commands',
          positions: { '0': 11, '1': 9, '2': 3 },
        });

        await store.apply([], { name: 'agents', positions: { '0': 1 } });
        expect(await store.getWatermark('agents')).toEqual({ name: 'agents', positions: { '0': 1 } });
        expect((await store.getWatermark('commands'))?.positions['0']).toBe(11);
      });

      it('a failed apply stores neither its documents nor its watermark', async () => {
        const good = command(1, 10);
        await expect(
          store.apply([write(good), { index: 'no-such-index', id: 'x', version: 1, doc: {} }], {
            name: 'commands',
            positions: { '0': 100 },
          }),
        ).rejects.toMatchObject({ code: 'index_not_found' });
        await expect(
          store.apply([write(good), write({ ...command(2, 10), seq: 'three' as unknown as number })], {
            name: 'commands',
            positions: { '0': 100 },
          }),
        ).rejects.toMatchObject({ code: 'invalid_document' });
        await expect(store.apply([{ ...write(good), version: -1 }])).rejects.toMatchObject({
          code: 'invalid_document',
        });
        await expect(store.apply([{ ...write(good), version: 1.5 }])).rejects.toMatchObject({
          code: 'invalid_document',
        });

        expect(await store.get('commands', good.id)).toBeUndefined();
        expect(await store.getWatermark('commands')).toBeUndefined();
      });
    });

    describe('visibility', () => {
      it('a document is searchable as soon as apply resolves', async () => {
        const agent = agentId(1);
        for (let i = 1; i <= 20; i++) {
          const doc: CommandView = { ...command(i, 100), agent, seq: i, status: 'pending' };
          await store.apply([write(doc, i)], { name: 'commands', positions: { '0': i } });

          expect((await store.get<CommandView>('commands', doc.id))?.version).toBe(i);
          expect(await store.count('commands', { agent })).toBe(i);
          const newest = await store.query<CommandView>('commands', { filter: { agent }, sort: ['-seq'], limit: 1 });
          expect(newest.items[0]?.id).toBe(doc.id);
          expect((await store.countBy('commands', 'status', { agent }))['pending']).toBe(i);
          expect((await store.getWatermark('commands'))?.positions['0']).toBe(i);
        }
      });
    });

    describe('reset', () => {
      it('deletes documents and watermarks; the indices stay usable', async () => {
        const docs = fleet(100);
        await store.apply(
          docs.map((doc) => write(doc, 50)),
          { name: 'commands', positions: { '0': 50 } },
        );
        await store.apply([], { name: 'agents', positions: { '3': 2 } });

        await store.reset(['commands', 'agents']);

        expect(await store.count('commands')).toBe(0);
        expect(await store.get('commands', docs[0]?.id ?? '')).toBeUndefined();
        expect(await store.getWatermark('commands')).toBeUndefined();
        expect(await store.getWatermark('agents')).toBeUndefined();

        // A rebuild starts again from scratch: lower versions than before the reset are accepted.
        const first = docs[0];
        expect(first).toBeDefined();
        if (first) {
          await store.apply([write(first, 1)], { name: 'commands', positions: { '0': 1 } });
          expect(await store.get<CommandView>('commands', first.id)).toEqual({ id: first.id, version: 1, doc: first });
          expect(await store.count('commands', { agent: first.agent })).toBe(1);
          expect(await store.getWatermark('commands')).toEqual({ name: 'commands', positions: { '0': 1 } });
        }
      });
    });

    describe('errors', () => {
      it('rejects every operation on an index that was not ensured', async () => {
        const expected = { code: 'index_not_found' };
        await expect(store.get('missing', 'x')).rejects.toMatchObject(expected);
        await expect(store.query('missing')).rejects.toMatchObject(expected);
        await expect(store.count('missing')).rejects.toMatchObject(expected);
        await expect(store.countBy('missing', 'status')).rejects.toMatchObject(expected);
        await expect(store.apply([{ index: 'missing', id: 'x', version: 1, doc: {} }])).rejects.toMatchObject(expected);
        await expect(store.query('missing')).rejects.toThrow(/missing/);
      });

      it('rejects filters, sorts and counts on undeclared fields, naming the field', async () => {
        await store.apply([write(command(1, 10))]);
        const expected = { code: 'unknown_field' };
        await expect(store.query('commands', { filter: { colour: 'red' } })).rejects.toMatchObject(expected);
        await expect(store.query('commands', { filter: { colour: 'red' } })).rejects.toThrow(/colour/);
        await expect(store.count('commands', { 'action.name': 'restart' })).rejects.toMatchObject(expected);
        await expect(store.query('commands', { sort: ['-priority'] })).rejects.toThrow(/priority/);
        await expect(store.query('commands', { sort: ['-priority'] })).rejects.toMatchObject(expected);
        await expect(store.countBy('commands', 'colour')).rejects.toMatchObject(expected);
        await expect(store.countBy('commands', 'colour')).rejects.toThrow(/colour/);
      });
    });
  });
}
