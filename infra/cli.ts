/**
 * Local Kafka and OpenSearch for development: `npx tsx infra/cli.ts <command>`.
 *
 *   up [kafka|opensearch]     start both (or one) in the background; prints KAFKA_BROKERS=... and
 *                             OPENSEARCH_URL=... on stdout (progress goes to stderr)
 *        --kafka-port N --opensearch-port N    fixed ports instead of free ones
 *   down [kafka|opensearch]   stop them (SIGTERM, SIGKILL after 30 s) and delete their data
 *   status                    what runs, where, its memory and health
 *   env                       print the KEY=value lines again
 *   smoke                     produce/consume through Kafka and index/search in OpenSearch
 *   jars                      only fetch the jars into the cache (e.g. to warm a CI machine)
 *
 * State: .herald/infra/state.json (pids, ports, data directories); logs: .herald/infra/*.log.
 */
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  REPO_ROOT,
  ensureKafkaJars,
  ensureOpenSearchJars,
  http,
  isHeraldServer,
  kafkaMetadata,
  openSearchHealth,
  rssMiB,
  runKafkaTool,
  startKafka,
  startOpenSearch,
  stderrLogger,
  stopPid,
} from './provision';

type Service = 'kafka' | 'opensearch';
const SERVICES: Service[] = ['kafka', 'opensearch'];

interface ServiceState {
  pid: number;
  port: number;
  /** KAFKA_BROKERS or OPENSEARCH_URL */
  address: string;
  dataDir: string;
  tempData: boolean;
  logFile: string;
  startedAt: string;
}
type State = Partial<Record<Service, ServiceState>>;

const STATE_DIR = join(REPO_ROOT, '.herald', 'infra');
const STATE_FILE = join(STATE_DIR, 'state.json');
const ENV_NAME: Record<Service, string> = { kafka: 'KAFKA_BROKERS', opensearch: 'OPENSEARCH_URL' };
const LABEL: Record<Service, string> = { kafka: 'Kafka', opensearch: 'OpenSearch' };
const log = stderrLogger;

function readState(): State {
  try {
    return JSON.parse(readFileSync(STATE_FILE, 'utf8')) as State;
  } catch {
    return {};
  }
}

function writeState(state: State): void {
  if (Object.keys(state).length === 0) {
    rmSync(STATE_FILE, { force: true });
    return;
  }
  mkdirSync(STATE_DIR, { recursive: true });
  const tmp = `${STATE_FILE}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(state, null, 2) + '\n');
  renameSync(tmp, STATE_FILE);
}

function updateState(fn: (state: State) => void): void {
  const state = readState();
  fn(state);
  writeState(state);
}

/** The entry when its pid is still our server (not a dead one, nor a reused pid). */
function live(service: Service, s: ServiceState | undefined): ServiceState | undefined {
  return s !== undefined && isHeraldServer(s.pid, service) ? s : undefined;
}

function parseArgs(argv: string[]): { command: string; services: Service[]; flags: Map<string, string> } {
  const flags = new Map<string, string>();
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      if (eq > 0) flags.set(a.slice(2, eq), a.slice(eq + 1));
      else flags.set(a.slice(2), argv[++i] ?? '');
    } else positional.push(a);
  }
  const [command = 'help', ...rest] = positional;
  const services: Service[] = [];
  for (const r of rest) {
    if (r === 'all') services.push(...SERVICES);
    else if (r === 'kafka' || r === 'opensearch') services.push(r);
    else throw new Error(`unknown service "${r}" (kafka, opensearch or all)`);
  }
  return { command, services: services.length ? [...new Set(services)] : SERVICES, flags };
}

function portFlag(flags: Map<string, string>, name: string): number | undefined {
  const v = flags.get(name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0 || n > 65535) throw new Error(`--${name}: not a port: ${v}`);
  return n;
}

function printEnv(state: State): void {
  for (const service of SERVICES) {
    const s = live(service, state[service]);
    if (s) process.stdout.write(`${ENV_NAME[service]}=${s.address}\n`);
  }
}

async function up(services: Service[], flags: Map<string, string>): Promise<void> {
  const state = readState();
  const toStart: Service[] = [];
  for (const service of services) {
    const s = state[service];
    const alive = live(service, s);
    if (alive) {
      log(`${LABEL[service]} already runs at ${alive.address} (pid ${alive.pid})`);
    } else {
      if (s) {
        // left over from a server that died: forget it and its data
        if (s.tempData) rmSync(s.dataDir, { recursive: true, force: true });
        updateState((st) => delete st[service]);
      }
      toStart.push(service);
    }
  }
  if (toStart.length > 0) {
    mkdirSync(STATE_DIR, { recursive: true });
    // one Maven at a time: on a first run both would compete for the same two cores
    if (toStart.includes('kafka')) await ensureKafkaJars({ log });
    if (toStart.includes('opensearch')) await ensureOpenSearchJars({ log });

    const started = Date.now();
    const results = await Promise.allSettled(
      toStart.map(async (service) => {
        const logFile = join(STATE_DIR, `${service}.log`);
        rmSync(logFile, { force: true });
        const server =
          service === 'kafka'
            ? await startKafka({ detached: true, logFile, port: portFlag(flags, 'kafka-port'), log })
            : await startOpenSearch({ detached: true, logFile, port: portFlag(flags, 'opensearch-port'), log });
        const address = 'brokers' in server ? server.brokers : server.url;
        updateState((st) => {
          st[service] = {
            pid: server.pid,
            port: server.port,
            address,
            dataDir: server.dataDir,
            tempData: server.tempData,
            logFile: server.logFile,
            startedAt: new Date().toISOString(),
          };
        });
        return server;
      }),
    );
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed.length > 0) {
      // all or nothing: stop what did start
      for (const r of results) if (r.status === 'fulfilled') await r.value.stop();
      updateState((st) => {
        for (const service of toStart) delete st[service];
      });
      throw new Error(failed.map((f) => (f.reason instanceof Error ? f.reason.message : String(f.reason))).join('\n'));
    }
    log(`up in ${((Date.now() - started) / 1000).toFixed(1)} s; stop with: npx tsx infra/cli.ts down`);
  }
  printEnv(readState());
}

async function down(services: Service[]): Promise<void> {
  const state = readState();
  await Promise.all(
    services.map(async (service) => {
      const s = state[service];
      if (!s) {
        log(`${LABEL[service]}: not running`);
        return;
      }
      if (live(service, s)) {
        const t = Date.now();
        await stopPid(s.pid, 30_000);
        log(`${LABEL[service]} stopped (pid ${s.pid}) in ${((Date.now() - t) / 1000).toFixed(1)} s`);
      } else {
        log(`${LABEL[service]}: pid ${s.pid} was no longer running`);
      }
      if (s.tempData) rmSync(s.dataDir, { recursive: true, force: true });
      updateState((st) => delete st[service]);
    }),
  );
}

async function status(): Promise<boolean> {
  const state = readState();
  let allUp = true;
  for (const service of SERVICES) {
    const entry = state[service];
    const s = live(service, entry);
    if (!s) {
      process.stdout.write(`${LABEL[service]}: not running${entry ? ` (stale entry for pid ${entry.pid})` : ''}\n`);
      allUp = false;
      continue;
    }
    let health: string;
    if (service === 'kafka') {
      try {
        const md = await kafkaMetadata('127.0.0.1', s.port, 3_000);
        health = `metadata ok, ${md.brokers.length} broker(s), cluster ${md.clusterId ?? '?'}`;
      } catch (e) {
        health = `no metadata answer (${(e as Error).message})`;
        allUp = false;
      }
    } else {
      const h = await openSearchHealth(s.address, 3_000);
      health = h ? `cluster health ${h}` : 'no health answer';
      if (!h || h === 'red') allUp = false;
    }
    process.stdout.write(
      `${LABEL[service]}: ${ENV_NAME[service]}=${s.address}  pid ${s.pid}  rss ${rssMiB(s.pid) ?? '?'} MiB  ` +
        `since ${s.startedAt}  ${health}\n  data ${s.dataDir}\n  log  ${s.logFile}\n`,
    );
  }
  return allUp;
}

/** End-to-end check of what `up` started: a Kafka round trip and an OpenSearch index/search. */
async function smoke(): Promise<boolean> {
  const state = readState();
  let ok = true;
  const suffix = Date.now().toString(36);
  const k = live('kafka', state.kafka);
  if (k) {
    const topic = `herald-smoke-${suffix}`;
    const b = ['--bootstrap-server', k.address];
    const messages = ['one', 'two', 'three'];
    const t = Date.now();
    const create = await runKafkaTool('org.apache.kafka.tools.TopicCommand', [
      ...b,
      '--create',
      '--topic',
      topic,
      '--partitions',
      '1',
      '--replication-factor',
      '1',
    ]);
    const produce = await runKafkaTool('kafka.tools.ConsoleProducer', [...b, '--topic', topic], {
      input: messages.join('\n') + '\n',
    });
    const consume = await runKafkaTool('org.apache.kafka.tools.consumer.ConsoleConsumer', [
      ...b,
      '--topic',
      topic,
      '--from-beginning',
      '--max-messages',
      String(messages.length),
      '--timeout-ms',
      '30000',
    ]);
    const got = consume.stdout.trim().split('\n');
    const autoCreate = await runKafkaTool(
      'kafka.tools.ConsoleProducer',
      [...b, '--topic', `${topic}-absent`, '--producer-property', 'max.block.ms=3000'],
      { input: 'x\n' },
    );
    await runKafkaTool('org.apache.kafka.tools.TopicCommand', [...b, '--delete', '--topic', topic]);
    const kafkaOk =
      create.code === 0 && produce.code === 0 && consume.code === 0 && got.join(',') === messages.join(',');
    process.stdout.write(
      `Kafka: create topic ${create.code === 0 ? 'ok' : 'FAILED'}, produce ${produce.code === 0 ? 'ok' : 'FAILED'}, ` +
        `consume ${JSON.stringify(got)} ${kafkaOk ? 'ok' : 'FAILED'}, ` +
        `auto-create refused: ${/UNKNOWN_TOPIC_OR_PARTITION|not present in metadata|TimeoutException/.test(autoCreate.output) ? 'yes' : 'no?'} ` +
        `(${((Date.now() - t) / 1000).toFixed(1)} s)\n`,
    );
    if (!kafkaOk) {
      process.stdout.write([create.output, produce.output, consume.output].join('\n') + '\n');
      ok = false;
    }
  } else {
    process.stdout.write('Kafka: not running\n');
  }
  const o = live('opensearch', state.opensearch);
  if (o) {
    const index = `herald-smoke-${suffix}`;
    const t = Date.now();
    const put = await http('PUT', `${o.address}/${index}/_doc/1?refresh=true`, 10_000, { msg: 'hello herald' });
    const search = await http('POST', `${o.address}/${index}/_search`, 10_000, { query: { match: { msg: 'herald' } } });
    const hits = (JSON.parse(search.body) as { hits?: { total?: { value?: number } } }).hits?.total?.value;
    const health = await http('GET', `${o.address}/_cluster/health/${index}`, 10_000);
    const indexHealth = (JSON.parse(health.body) as { status?: string }).status;
    await http('DELETE', `${o.address}/${index}`, 10_000);
    const osOk = put.status === 201 && hits === 1;
    process.stdout.write(
      `OpenSearch: index ${put.status === 201 ? 'ok' : `FAILED ${put.status} ${put.body}`}, search hits ${hits} ` +
        `${osOk ? 'ok' : 'FAILED'}, index health ${indexHealth} (${((Date.now() - t) / 1000).toFixed(1)} s)\n`,
    );
    ok &&= osOk;
  } else {
    process.stdout.write('OpenSearch: not running\n');
  }
  return ok;
}

const HELP = `usage: npx tsx infra/cli.ts <command> [kafka|opensearch|all]
  up      start in the background (default: both); prints KAFKA_BROKERS=... / OPENSEARCH_URL=...
          --kafka-port N  --opensearch-port N   fixed ports (default: free ones)
  down    stop and delete their data
  status  what runs (exit code 1 when something is down or unhealthy)
  env     print KAFKA_BROKERS=... / OPENSEARCH_URL=... for what runs
  smoke   Kafka produce/consume and OpenSearch index/search against what runs
  jars    fetch the jars into the cache only
Use in a shell:  export $(npx tsx infra/cli.ts up)
`;

async function main(): Promise<number> {
  const { command, services, flags } = parseArgs(process.argv.slice(2));
  switch (command) {
    case 'up':
      await up(services, flags);
      return 0;
    case 'down':
      await down(services);
      return 0;
    case 'status':
      return (await status()) ? 0 : 1;
    case 'env':
      printEnv(readState());
      return 0;
    case 'smoke':
      return (await smoke()) ? 0 : 1;
    case 'jars':
      if (services.includes('kafka')) await ensureKafkaJars({ log });
      if (services.includes('opensearch')) await ensureOpenSearchJars({ log });
      return 0;
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(HELP);
      return 0;
    default:
      process.stderr.write(`unknown command "${command}"\n${HELP}`);
      return 2;
  }
}

if (require.main === module) {
  main().then(
    (code) => process.exit(code),
    (e: unknown) => {
      const message = e instanceof Error ? e.message : String(e);
      process.stderr.write(`[herald-infra] ${message.replace(/^herald-infra: /gm, '')}\n`);
      process.exit(1);
    },
  );
}
