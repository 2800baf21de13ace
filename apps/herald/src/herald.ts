import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { INestApplication } from '@nestjs/common';
import { AgentDirectory, GroupDirectory } from '@herald/agents';
import { OperatorDirectory, TokenService, type AdminBootstrap } from '@herald/auth';
import { CommandBacklog, CommandFeed, CommsApiModule, StreamGateway } from '@herald/comms-api';
import type { HeraldComponent, HeraldConfig } from '@herald/config';
import { AgentsIndex, ALL_TOPICS, CommandsIndex, HERALD_INDICES, Topics } from '@herald/contracts';
import { KafkaEventLogAdapter, SqliteEventLogAdapter, type EventLog } from '@herald/event-log';
import { IndexerService } from '@herald/indexer';
import { ManagementApiModule, RequestRegistry } from '@herald/management-api';
import { OrchestratorService } from '@herald/orchestrator';
import { createHttpApp, ensureTlsMaterial, type Logger, type TlsMaterial } from '@herald/platform';
import {
  OpenSearchProjectionStoreAdapter,
  SqliteProjectionStoreAdapter,
  type ProjectionStore,
} from '@herald/projection';

export interface HeraldHandle {
  components: HeraldComponent[];
  managementUrl?: string;
  commsUrl?: string;
  certFile?: string;
  admin?: AdminBootstrap;
  dataDir: string;
  storage: string;
  stop(): Promise<void>;
}

function createEventLog(config: HeraldConfig, logger: Logger): EventLog {
  if (config.eventLog.kind === 'kafka') {
    const kafkaLogger = logger.child({ component: 'kafka' });
    return new KafkaEventLogAdapter({
      brokers: config.eventLog.brokers,
      topicPrefix: config.topicPrefix,
      defaultPartitions: config.partitions,
      sessionTimeoutMs: config.eventLog.sessionTimeoutSeconds * 1000,
      heartbeatIntervalMs: Math.max(1000, Math.floor((config.eventLog.sessionTimeoutSeconds * 1000) / 10)),
      logger: ({ level, namespace, message, fields }) => kafkaLogger[level]({ namespace, ...fields }, message),
    });
  }
  return new SqliteEventLogAdapter({
    path: join(config.dataDir, 'log.db'),
    topicPrefix: config.topicPrefix,
    defaultPartitions: config.partitions,
  });
}

function createProjectionStore(config: HeraldConfig): ProjectionStore {
  if (config.projection.kind === 'opensearch') {
    return new OpenSearchProjectionStoreAdapter({ node: config.projection.url, indexPrefix: config.topicPrefix });
  }
  return new SqliteProjectionStoreAdapter({ path: join(config.dataDir, 'projection.db') });
}

/**
 * Rebuilds the projection from offset 0 of the log into emptied indices (run it with the
 * indexers stopped). Versions are log offsets, so the result equals what the live indexer built.
 */
export async function rebuildProjection(
  config: HeraldConfig,
  logger: Logger,
  progress: (handled: number, total: number) => void,
): Promise<{ records: number; ms: number }> {
  const started = Date.now();
  const cfg = { ...config, dataDir: resolve(config.dataDir) };
  const log = createEventLog(cfg, logger);
  const store = createProjectionStore(cfg);
  try {
    let total = 0;
    for (const topic of [Topics.commands, Topics.agents]) {
      for (const end of await log.endOffsets(topic)) total += end.offset;
    }
    await store.ensureIndices([...HERALD_INDICES]);
    await store.reset([CommandsIndex.name, AgentsIndex.name]);
    const indexer = new IndexerService(log, store, logger.child({ component: 'rebuild' }), null);
    await indexer.start();
    const timer = setInterval(() => progress(indexer.handled, total), 1000);
    try {
      await indexer.caughtUp();
    } finally {
      clearInterval(timer);
      await indexer.stop();
    }
    progress(indexer.handled, total);
    return { records: indexer.handled, ms: Date.now() - started };
  } finally {
    await store.close();
    await log.close();
  }
}

/**
 * Starts the configured components (all of them by default: the whole system in one process)
 * on one event log and one projection store. Stopping reverses the start order.
 */
export async function startHerald(config: HeraldConfig, logger: Logger): Promise<HeraldHandle> {
  const dataDir = resolve(config.dataDir);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const cfg = { ...config, dataDir };
  const runs = (component: HeraldComponent): boolean => cfg.components.includes(component);
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
  const handle: HeraldHandle = {
    components: cfg.components,
    dataDir,
    storage: [
      cfg.eventLog.kind === 'kafka' ? `Kafka ${cfg.eventLog.brokers.join(',')}` : `embedded log in ${dataDir}`,
      cfg.projection.kind === 'opensearch' ? `OpenSearch ${cfg.projection.url}` : 'embedded projection',
    ].join(', '),
    stop,
  };
  try {
    const log = createEventLog(cfg, logger);
    stops.push(() => log.close());
    await log.ensureTopics(
      ALL_TOPICS.map((topic) =>
        topic === Topics.agents
          ? { topic, partitions: cfg.partitions, compacted: true }
          : {
              topic,
              partitions: cfg.partitions,
              ...(cfg.retentionHours !== undefined ? { retentionMs: cfg.retentionHours * 3600_000 } : {}),
            },
      ),
    );
    const store = createProjectionStore(cfg);
    stops.push(() => store.close());

    if (runs('orchestrator')) {
      const orchestrator = new OrchestratorService(log, logger.child({ component: 'orchestrator' }), {
        graceSeconds: cfg.commands.graceSeconds,
      });
      await orchestrator.start();
      stops.push(() => orchestrator.stop());
    }
    if (runs('indexer')) {
      const indexer = new IndexerService(log, store, logger.child({ component: 'indexer' }));
      await indexer.start();
      stops.push(() => indexer.stop());
    }
    if (!runs('comms-api') && !runs('management-api')) return handle;

    const tokens = TokenService.fromDataDir(dataDir, {
      issuer: cfg.jwt.issuer,
      agentTtlSeconds: cfg.jwt.agentTokenTtlSeconds,
      operatorTtlSeconds: cfg.jwt.operatorTokenTtlSeconds,
    });
    const tls = await ensureTlsMaterial(dataDir, cfg.tls, [cfg.publicHost]);
    handle.certFile = tls.certFile;
    const directory = new AgentDirectory(log, logger.child({ component: 'agent-directory' }));
    await directory.start();
    stops.push(() => directory.stop());
    const groups = new GroupDirectory(log, logger.child({ component: 'group-directory' }));
    await groups.start();
    stops.push(() => groups.stop());
    await groups.ensureDefault();

    if (runs('comms-api')) {
      await startCommsApi(cfg, logger, { log, store, tokens, directory, tls }, stops);
      handle.commsUrl = `https://${cfg.publicHost}:${cfg.comms.port}`;
    }
    if (runs('management-api')) {
      const { directory: operators, admin } = await OperatorDirectory.bootstrap(dataDir, cfg.admin);
      handle.admin = admin;
      const registry = new RequestRegistry(log, logger.child({ component: 'request-registry' }));
      await registry.start();
      stops.push(() => registry.stop());
      const management = await createHttpApp(
        ManagementApiModule.register({ log, store, tokens, operators, directory, registry, commands: cfg.commands }),
        {
          tls,
          host: cfg.host,
          maxBodyBytes: cfg.limits.maxBodyBytes,
          port: cfg.management.port,
          logger: logger.child({ component: 'management-api' }),
        },
      );
      await management.listen(cfg.management.port, cfg.host);
      stops.push(() => closeApp(management));
      handle.managementUrl = `https://${cfg.publicHost}:${cfg.management.port}`;
    }
    return handle;
  } catch (err) {
    await stop();
    throw err;
  }
}

async function startCommsApi(
  cfg: HeraldConfig,
  logger: Logger,
  deps: { log: EventLog; store: ProjectionStore; tokens: TokenService; directory: AgentDirectory; tls: TlsMaterial },
  stops: (() => Promise<void>)[],
): Promise<void> {
  const { log, store, tokens, directory, tls } = deps;
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
  const comms = await createHttpApp(CommsApiModule.register({ tokens, directory }), {
    tls,
    host: cfg.host,
    maxBodyBytes: cfg.limits.maxBodyBytes,
    port: cfg.comms.port,
    logger: logger.child({ component: 'comms-api' }),
  });
  gateway.attach(comms.getHttpServer());
  await comms.listen(cfg.comms.port, cfg.host);
  stops.push(() => closeApp(comms, () => gateway.close()));
}

async function closeApp(app: INestApplication, before?: () => Promise<void>): Promise<void> {
  if (before) await before();
  await app.close();
}
