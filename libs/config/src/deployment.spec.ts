import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { CONFIG_VARIABLES, HERALD_COMPONENTS, loadConfig } from './herald.config';

const ROOT = join(__dirname, '../../..');

interface ComposeService {
  image?: string;
  build?: unknown;
  environment?: Record<string, string | number | boolean>;
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: unknown };
  ports?: string[];
}

/**
 * docker-compose.yml cannot run here (no Docker engine), so its syntax and its consistency with
 * the configuration are checked instead: every Herald variable it sets is one Herald reads and
 * validates, dependencies point at services that exist and have health checks.
 */
describe('docker-compose.yml', () => {
  const compose = parse(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
    services: Record<string, ComposeService>;
  };
  const services = compose.services;
  const heraldServices = Object.entries(services).filter(([, s]) => s.environment?.['HERALD_COMPONENTS'] !== undefined);

  it('has Kafka, OpenSearch, OpenSearch Dashboards and one service per Herald component', () => {
    expect(Object.keys(services)).toEqual(
      expect.arrayContaining(['kafka', 'opensearch', 'opensearch-dashboards', ...HERALD_COMPONENTS]),
    );
    expect(heraldServices.map(([name]) => name).sort()).toEqual([...HERALD_COMPONENTS].sort());
  });

  it.each(HERALD_COMPONENTS.map((c) => [c]))('%s: its environment is a valid Herald configuration', (name) => {
    const env = Object.fromEntries(Object.entries(services[name]?.environment ?? {}).map(([k, v]) => [k, String(v)]));
    for (const key of Object.keys(env)) expect(CONFIG_VARIABLES).toContain(key);
    const config = loadConfig(env);
    expect(config.components).toEqual([name]);
    expect(config.eventLog.kind).toBe('kafka');
    expect(config.projection.kind).toBe('opensearch');
    const port =
      name === 'management-api' ? config.management.port : name === 'comms-api' ? config.comms.port : undefined;
    if (port !== undefined) expect(services[name]?.ports).toContain(`${port}:${port}`);
  });

  it('depends only on services that exist, and waits for health only where there is a health check', () => {
    for (const [name, service] of Object.entries(services)) {
      for (const [dep, { condition }] of Object.entries(service.depends_on ?? {})) {
        expect({ name, dep, exists: dep in services }).toEqual({ name, dep, exists: true });
        expect(['service_started', 'service_healthy', 'service_completed_successfully']).toContain(condition);
        if (condition === 'service_healthy') expect(services[dep]?.healthcheck).toBeDefined();
      }
    }
    for (const name of ['kafka', 'opensearch', 'opensearch-dashboards', 'management-api', 'comms-api']) {
      expect(services[name]?.healthcheck?.test).toBeDefined();
    }
  });
});

describe('README configuration reference', () => {
  it('documents every variable Herald reads', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const missing = CONFIG_VARIABLES.filter((name) => !readme.includes(`\`${name}\``));
    expect(missing).toEqual([]);
  });
});
