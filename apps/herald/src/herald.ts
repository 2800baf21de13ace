import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { INestApplication } from '@nestjs/common';
import { AgentDirectory } from '@herald/agents';
import { OperatorDirectory, TokenService, type AdminBootstrap } from '@herald/auth';
import { CommandBacklog, CommandFeed, CommsApiModule, StreamGateway } from '@herald/comms-api';
import type { HeraldConfig } from '@herald/config';
import { ALL_TOPICS, Topics } from '@herald/contracts';
import { SqliteEventLogAdapter, type EventLog } from '@herald/event-log';
import { IndexerService } from '@herald/indexer';
import { ManagementApiModule, RequestRegistry } from '@herald/management-api';
import { OrchestratorService } from '@herald/orchestrator';
import { createHttpApp, ensureTlsMaterial, type Logger } from '@herald/platform';
import { SqliteProjectionStoreAdapter, type ProjectionStore } from '@herald/projection';

export interface HeraldHandle {
  managementUrl: string;
  commsUrl: string;
  certFile: string;
  admin: AdminBootstrap;
  dataDir: string;
  stop(): Promise<void>;
}

function createEventLog(config: HeraldConfig): EventLog {
  if (config.eventLog.kind !== 'embedded') {
    throw new Error(
      'KAFKA_BROKERS is set, but the Kafka event log adapter is not available in this build yet; unset it to use embedded storage',
    );
  }
  return new SqliteEventLogAdapter({ path: join(config.dataDir, 'log.db'), topicPrefix: config.topicPrefix });
}

function createProjectionStore(config: HeraldConfig): ProjectionStore {
  if (config.projection.kind !== 'embedded') {
    throw new Error(
      'OPENSEARCH_URL is set, but the OpenSearch projection adapter is not available in this build yet; unset it to use embedded storage',
    );
  }
  return new SqliteProjectionStoreAdapter({ path: join(config.dataDir, 'projection.db') });
}

/**
 * The whole system in one process: orchestrator, indexer, comms API (HTTP + WebSocket) and
 * management API, sharing one event log and one projection store.
 */
export async function startHerald(config: HeraldConfig, logger: Logger): Promise<HeraldHandle> {
  const dataDir = resolve(config.dataDir);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const cfg = { ...config, dataDir };
  const stops: (() => Promise<void>)[] = [];
  const stop = async (): Promise<void> => {
    for (const s of stops.reverse()) {
      try {
        await s();
      } catch (err) {
        logger.error({ err }, 'error while stopping');
      }
    }
  };
  try {
    const log = createEventLog(cfg);
    stops.push(() => log.close());
    await log.ensureTopics(ALL_TOPICS.map((topic) => ({ topic, compacted: topic === Topics.agents })));
    const store = createProjectionStore(cfg);
    stops.push(() => store.close());

    const tokens = TokenService.fromDataDir(dataDir, {
      issuer: cfg.jwt.issuer,
      agentTtlSeconds: cfg.jwt.agentTokenTtlSeconds,
      operatorTtlSeconds: cfg.jwt.operatorTokenTtlSeconds,
    });
    const { directory: operators, admin } = await OperatorDirectory.bootstrap(dataDir, cfg.admin);
    const tls = await ensureTlsMaterial(dataDir, cfg.tls, [cfg.publicHost]);

    const directory = new AgentDirectory(log, logger.child({ component: 'agent-directory' }));
    await directory.start();
    stops.push(() => directory.stop());
    const registry = new RequestRegistry(log, logger.child({ component: 'request-registry' }));
    await registry.start();
    stops.push(() => registry.stop());

    const orchestrator = new OrchestratorService(log, logger.child({ component: 'orchestrator' }), {
      graceSeconds: cfg.commands.graceSeconds,
    });
    await orchestrator.start();
    stops.push(() => orchestrator.stop());
    const indexer = new IndexerService(log, store, logger.child({ component: 'indexer' }));
    await indexer.start();
    stops.push(() => indexer.stop());

    const gateway = new StreamGateway(
      log,
      tokens,
      directory,
      new CommandBacklog(log, store),
      logger.child({ component: 'stream' }),
    );
    const feed = new CommandFeed(log, logger.child({ component: 'command-feed' }), (agent, event) =>
      gateway.onCommandEvent(agent, event),
    );
    await feed.start();
    stops.push(() => feed.stop());

    const http = { tls, host: cfg.host, maxBodyBytes: cfg.limits.maxBodyBytes };
    const comms = await createHttpApp(CommsApiModule.register({ tokens, directory }), {
      ...http,
      port: cfg.comms.port,
      logger: logger.child({ component: 'comms-api' }),
    });
    gateway.attach(comms.getHttpServer());
    await comms.listen(cfg.comms.port, cfg.host);
    stops.push(() => closeApp(comms, () => gateway.close()));

    const management = await createHttpApp(
      ManagementApiModule.register({ log, store, tokens, operators, directory, registry, commands: cfg.commands }),
      { ...http, port: cfg.management.port, logger: logger.child({ component: 'management-api' }) },
    );
    await management.listen(cfg.management.port, cfg.host);
    stops.push(() => closeApp(management));

    return {
      managementUrl: `https://${cfg.publicHost}:${cfg.management.port}`,
      commsUrl: `https://${cfg.publicHost}:${cfg.comms.port}`,
      certFile: tls.certFile,
      admin,
      dataDir,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function closeApp(app: INestApplication, before?: () => Promise<void>): Promise<void> {
  if (before) await before();
  await app.close();
}
