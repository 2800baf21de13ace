import { uuidv7, type CommandDocument } from '@herald/contracts';
import type { AgentIdentity } from './command-store';
import { done, Executors, INTERRUPTED_MESSAGE, toResult } from './executors';

const identity: AgentIdentity = {
  uuid: uuidv7(),
  key: 'k'.repeat(32),
  name: 'a',
  managerUrl: 'https://m',
  commsUrl: 'https://c',
  groups: [],
  enrolledAt: new Date().toISOString(),
};

function command(name: string, args: Record<string, unknown> = {}, timeout = 60): CommandDocument {
  return {
    document_id: uuidv7(),
    request_id: 'r',
    order_id: 'r',
    source: 's',
    user: 'u',
    target: { type: 'agent', id: identity.uuid },
    action: { name, version: 'v6.0.0', args },
    timeout,
    status: 'sent',
    seq: 1,
  };
}

describe('Executors', () => {
  it('turns an executor error into a failure and an unknown action into a rejection', async () => {
    const executors = new Executors({
      boom: {
        run: () => {
          throw new Error('kaput');
        },
      },
    });
    await expect(executors.execute({ command: command('boom'), identity })).resolves.toEqual(done('failure', 'kaput'));
    await expect(executors.execute({ command: command('nope'), identity })).resolves.toEqual(
      done('rejected', 'unsupported action nope'),
    );
  });

  it('ends a running command when the agent stops', async () => {
    const executors = new Executors({ hang: { run: () => new Promise(() => undefined) } });
    const stop = new AbortController();
    const running = executors.execute({ command: command('hang'), identity }, stop.signal);
    stop.abort();
    await expect(running).resolves.toEqual(done('failure', INTERRUPTED_MESSAGE));
  });

  it('refuses action names the protocol cannot carry', () => {
    expect(() => new Executors({ 'Bad Name': { run: () => done('success', '') } })).toThrow(/invalid action name/);
  });

  it('reports a restart found running as success, anything else as interrupted', () => {
    const executors = new Executors();
    expect(executors.resultAfterInterruption(command('restart'))).toEqual({
      status: 'success',
      code: 0,
      message: 'agent restarted',
    });
    expect(executors.resultAfterInterruption(command('set-group'))).toEqual({
      status: 'failure',
      code: 1,
      message: INTERRUPTED_MESSAGE,
    });
  });

  it('keeps results sendable: long messages truncated, oversized or unserializable data dropped', () => {
    expect(toResult('timed_out', 'late')).toEqual({ status: 'timed_out', code: 3, message: 'late' });
    expect(toResult('rejected', 'no').code).toBe(1);
    expect(toResult('success', 'x'.repeat(70_000)).message).toHaveLength(65_536);
    expect(toResult('success', 'ok', { blob: 'x'.repeat(600_000) })).toEqual({
      status: 'success',
      code: 0,
      message: 'ok (result data too large: dropped)',
    });
    expect(toResult('success', 'ok', { n: 10n }).message).toBe('ok (result data not serializable)');
    expect(toResult('success', 'ok', { when: new Date(0) }).data).toEqual({ when: '1970-01-01T00:00:00.000Z' });
  });
});
