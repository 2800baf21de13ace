import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expectEventually, freePort, HeraldProcess } from '@herald/testing';
import { managementApi, registerAgents } from '../e2e/support';
import { startKafka, type KafkaServer } from '../../infra/provision';

const AGENTS = 10;
const REQUESTS = 30;

/**
 * The Kafka broker is restarted (same port, same data) while operators keep sending commands.
 * Requests answered 202 during the outage were durable before the answer; after the restart
 * every acknowledged command is issued exactly once, seq dense per agent, and reaches a
 * terminal state. (Requests that failed while the broker was away may or may not exist: the
 * client was told so.) This needs its own broker, so it runs only in the distributed tier.
 */
describe('Kafka broker restarted during a run', () => {
  let kafka: KafkaServer;
  let herald: HeraldProcess;
  let port: number;
  let dataDir: string;

  beforeAll(async () => {
    port = await freePort();
    dataDir = join(mkdtempSync(join(tmpdir(), 'herald-kafka-restart-')), 'kafka');
    kafka = await startKafka({ port, dataDir, log: () => undefined });
    herald = await HeraldProcess.create({ env: { KAFKA_BROKERS: kafka.brokers, HERALD_KAFKA_SESSION_TIMEOUT: '6' } });
    await herald.start();
  });
  afterAll(async () => {
    await herald.stop();
    await kafka.stop();
  });

  it('loses nothing acknowledged', async () => {
    const token = await herald.operatorToken();
    const call = managementApi(herald, token);
    const agents = await registerAgents(call, AGENTS);

    const acknowledged: string[] = [];
    const refused: number[] = [];
    let restarted: Promise<void> | undefined;
    for (let n = 0; n < REQUESTS; n++) {
      if (n === 10) {
        await kafka.stop();
        // Bring it back a few seconds later while requests keep coming.
        restarted = new Promise<void>((resolve, reject) =>
          setTimeout(() => {
            startKafka({ port, dataDir, log: () => undefined }).then((k) => {
              kafka = k;
              resolve();
            }, reject);
          }, 3000),
        );
      }
      const requestId = `restart-${n}`;
      const res = await call('/commands', 'POST', {
        requestId,
        targets: { all: true },
        action: { name: 'get-config' },
        expiresIn: 20,
      });
      if (res.status === 202) acknowledged.push(requestId);
      else refused.push(res.status);
    }
    await restarted;
    expect(acknowledged.length).toBeGreaterThanOrEqual(20);
    for (const status of refused) expect(status).toBeGreaterThanOrEqual(500);

    await expectEventually(
      async () => {
        for (const requestId of acknowledged) {
          const summary = (await call(`/requests/${requestId}`)).json as {
            total: number;
            byStatus: Record<string, number>;
          };
          expect(summary).toEqual({ requestId, total: AGENTS, byStatus: { expired: AGENTS } });
        }
      },
      { timeoutMs: 120000, intervalMs: 1000, what: 'every acknowledged command to expire' },
    );
    for (const agent of agents) {
      const items = (
        (await call(`/commands?agent=${agent}&limit=100`)).json as { items: { seq: number; requestId: string }[] }
      ).items;
      expect(items.map((v) => v.seq)).toEqual(items.map((_, i) => i + 1));
      for (const requestId of acknowledged) expect(items.map((v) => v.requestId)).toContain(requestId);
    }
  });
});
