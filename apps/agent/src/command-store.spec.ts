import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { uuidv7, type CommandDocument } from '@herald/contracts';
import { CommandStore, type AgentIdentity } from './command-store';

const AGENT = uuidv7();

function doc(seq: number, name = 'get-config', args: Record<string, unknown> = {}): CommandDocument {
  return {
    document_id: uuidv7(),
    request_id: `req-${seq}`,
    order_id: `req-${seq}`,
    source: 'test',
    user: 'tester',
    target: { type: 'agent', id: AGENT },
    action: { name, version: 'v6.0.0', args },
    timeout: 60,
    status: 'sent',
    seq,
  };
}

const identity: AgentIdentity = {
  uuid: AGENT,
  key: 'k'.repeat(32),
  name: 'test-agent',
  managerUrl: 'https://localhost:55000',
  commsUrl: 'https://localhost:27000',
  groups: [],
  enrolledAt: new Date().toISOString(),
};

const ok = { status: 'success' as const, code: 0, message: 'done' };

describe('CommandStore', () => {
  let dir: string;
  let store: CommandStore;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'herald-store-'));
    store = new CommandStore(dir);
    store.saveIdentity(identity);
  });

  afterEach(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  function reopen(): CommandStore {
    store.close();
    store = new CommandStore(dir);
    return store;
  }

  it('keeps identity, lastExecutedSeq and commands across a reopen, in a 0600 file', () => {
    const one = doc(1);
    const two = doc(2);
    store.receive(one);
    store.receive(two);
    store.markRunning(1);
    store.finish(1, ok);

    reopen();
    expect(store.getIdentity()).toEqual(identity);
    expect(store.lastExecutedSeq()).toBe(1);
    expect(store.list().map((c) => [c.seq, c.id, c.state])).toEqual([
      [1, one.document_id, 'done'],
      [2, two.document_id, 'received'],
    ]);
    expect(store.get(2)?.document).toEqual(two);
    expect(store.get(1)?.result).toEqual(ok);
    expect(statSync(store.file).mode & 0o777).toBe(0o600);
  });

  it('hands out commands strictly in seq order, only the next one', () => {
    store.receive(doc(2));
    expect(store.next()).toBeUndefined(); // #1 is missing: #2 must wait
    expect(store.firstMissingSeq()).toBe(1);
    expect(() => store.markRunning(2)).toThrow(/next in order is #1/);

    store.receive(doc(1));
    expect(store.firstMissingSeq()).toBeUndefined();
    expect(store.next()?.seq).toBe(1);
    store.markRunning(1);
    store.finish(1, ok);
    expect(store.next()?.seq).toBe(2);
    expect(store.highestKnownSeq()).toBe(2);
  });

  it('stores a duplicate delivery once and says so', () => {
    const one = doc(1);
    expect(store.receive(one).kind).toBe('stored');
    expect(store.receive(one).kind).toBe('duplicate');
    expect(store.list()).toHaveLength(1);

    // The same seq with another command id is not taken over.
    const impostor = { ...doc(1), document_id: uuidv7() };
    const outcome = store.receive(impostor);
    expect(outcome.kind === 'ignored' && outcome.reason).toMatch(/already taken/);
    expect(store.get(1)?.id).toBe(one.document_id);
  });

  it('never hands back an executed command; it re-reports the result until it is acknowledged', () => {
    const one = doc(1);
    store.receive(one);
    store.markRunning(1);
    store.finish(1, ok);

    const again = store.receive(one);
    expect(again.kind).toBe('executed');
    expect(again.kind === 'executed' && again.command.result).toEqual(ok);
    expect(store.next()).toBeUndefined();
    expect(store.unackedResults().map((c) => c.seq)).toEqual([1]);

    reopen();
    expect(store.unackedResults().map((c) => c.seq)).toEqual([1]);

    expect(store.ackResult(one.document_id)?.seq).toBe(1);
    expect(store.list()).toEqual([]);
    expect(store.unackedResults()).toEqual([]);
    expect(store.lastExecutedSeq()).toBe(1);
    // After the ack it is simply old: ignored, never executed.
    expect(store.receive(one).kind).toBe('ignored');
  });

  it('a crash between storing and executing leaves the command to run once; a crash while running never re-runs it', () => {
    const one = doc(1);
    store.receive(one);
    reopen(); // "crash" after the ack, before execution
    expect(store.next()?.state).toBe('received');
    store.markRunning(1);

    reopen(); // "crash" while the executor ran
    expect(store.running().map((c) => c.seq)).toEqual([1]);
    expect(store.next()?.state).toBe('running');
    expect(() => store.markRunning(1)).toThrow(/is running, cannot run it/);
    expect(store.receive(one).kind).toBe('duplicate');
  });

  it('finish commits the result, lastExecutedSeq and the local effect together', () => {
    store.receive(doc(1, 'set-group', { groups: ['a'] }));
    store.markRunning(1);
    expect(() =>
      store.finish(1, ok, (s) => {
        s.setGroups(['a']);
        throw new Error('disk on fire');
      }),
    ).toThrow('disk on fire');
    expect(store.getIdentity()?.groups).toEqual([]);
    expect(store.lastExecutedSeq()).toBe(0);
    expect(store.get(1)?.state).toBe('running');

    store.finish(1, ok, (s) => s.setGroups(['a', 'b']));
    reopen();
    expect(store.getIdentity()?.groups).toEqual(['a', 'b']);
    expect(store.lastExecutedSeq()).toBe(1);
  });

  it('cancel voids a stored command that has not started, and an unknown seq, so the sequence advances', () => {
    const one = doc(1);
    store.receive(one);
    expect(store.cancel(one.document_id)).toEqual({ kind: 'voided', seq: 1 });
    const voidId = uuidv7();
    expect(store.cancel(voidId, 2)).toEqual({ kind: 'voided', seq: 2 });
    expect(store.get(2)).toMatchObject({ id: voidId, state: 'void' });
    expect(store.get(2)?.document).toBeUndefined();

    store.skipVoid(1);
    store.skipVoid(2);
    expect(store.lastExecutedSeq()).toBe(2);
    expect(store.list()).toEqual([]);
    expect(store.receive({ ...one }).kind).toBe('ignored');
  });

  it('cancel leaves started, executed and old commands alone', () => {
    const one = doc(1);
    store.receive(one);
    store.markRunning(1);
    expect(store.cancel(one.document_id, 1)).toEqual({ kind: 'ignored', reason: 'command #1 already started' });
    store.finish(1, ok);
    expect(store.cancel(one.document_id, 1).kind).toBe('ignored');
    expect(store.cancel(uuidv7(), 1).kind).toBe('ignored');
    expect(store.cancel(uuidv7()).kind).toBe('ignored');
    expect(store.get(1)?.state).toBe('done');
  });

  it('a delivered command whose seq was voided is not taken', () => {
    const two = doc(2);
    store.cancel(two.document_id, 2);
    expect(store.receive(two)).toEqual({ kind: 'ignored', reason: 'seq 2 was cancelled' });
  });

  it('a new identity starts a new command stream', () => {
    store.receive(doc(1));
    store.markRunning(1);
    store.finish(1, ok);
    store.saveIdentity({ ...identity, name: 'renamed' });
    expect(store.lastExecutedSeq()).toBe(1);
    store.saveIdentity({ ...identity, uuid: uuidv7() });
    expect(store.lastExecutedSeq()).toBe(0);
    expect(store.list()).toEqual([]);
  });

  it('opens read-only beside a writer', () => {
    store.receive(doc(1));
    const reader = new CommandStore(dir, { readonly: true });
    try {
      expect(reader.list().map((c) => c.seq)).toEqual([1]);
      expect(reader.getIdentity()?.uuid).toBe(AGENT);
    } finally {
      reader.close();
    }
    expect(() => new CommandStore(join(dir, 'nope'), { readonly: true })).toThrow(/no agent store/);
  });
});
