import { ConfigError, loadConfig } from './herald.config';

describe('loadConfig', () => {
  it('applies the documented defaults to an empty environment', () => {
    const config = loadConfig({});
    expect(config.management.port).toBe(55000);
    expect(config.comms.port).toBe(27000);
    expect(config.dataDir).toBe('.herald/server');
    expect(config.admin).toEqual({ user: 'admin' });
    expect(config.eventLog).toEqual({ kind: 'embedded' });
    expect(config.projection).toEqual({ kind: 'embedded' });
    expect(config.jwt.agentTokenTtlSeconds).toBe(900);
    expect(config.comms.longPollMaxWaitSeconds).toBe(60);
    expect(config.comms.longPollMaxCommands).toBe(100);
  });

  it('reads every variable', () => {
    const config = loadConfig({
      HERALD_DATA_DIR: '/var/lib/herald',
      HERALD_MANAGEMENT_PORT: '1',
      HERALD_COMMS_PORT: '2',
      HERALD_ADMIN_USER: 'root',
      HERALD_ADMIN_PASSWORD: 'correct horse',
      HERALD_TLS_CERT: '/c.pem',
      HERALD_TLS_KEY: '/k.pem',
      KAFKA_BROKERS: 'a:9092,b:9093',
      OPENSEARCH_URL: 'http://localhost:9200',
    });
    expect(config).toMatchObject({
      dataDir: '/var/lib/herald',
      management: { port: 1 },
      comms: { port: 2 },
      admin: { user: 'root', password: 'correct horse' },
      tls: { certFile: '/c.pem', keyFile: '/k.pem' },
      eventLog: { kind: 'kafka', brokers: ['a:9092', 'b:9093'], sessionTimeoutSeconds: 30 },
      projection: { kind: 'opensearch', url: 'http://localhost:9200' },
    });
  });

  it('treats empty strings as unset', () => {
    expect(loadConfig({ KAFKA_BROKERS: '', OPENSEARCH_URL: ' ', HERALD_ADMIN_PASSWORD: '' })).toMatchObject({
      eventLog: { kind: 'embedded' },
      projection: { kind: 'embedded' },
      admin: { user: 'admin' },
    });
  });

  it('lists every bad variable at once and never echoes secrets', () => {
    let error: unknown;
    try {
      loadConfig({
        HERALD_MANAGEMENT_PORT: 'http',
        HERALD_COMMS_PORT: '70000',
        HERALD_ADMIN_PASSWORD: 'short',
        KAFKA_BROKERS: 'no port',
        OPENSEARCH_URL: 'nope',
        HERALD_LOG_LEVEL: 'loud',
      });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems.join('\n');
    for (const name of [
      'HERALD_MANAGEMENT_PORT',
      'HERALD_COMMS_PORT',
      'HERALD_ADMIN_PASSWORD',
      'KAFKA_BROKERS',
      'OPENSEARCH_URL',
      'HERALD_LOG_LEVEL',
    ]) {
      expect(problems).toContain(name);
    }
    expect(problems).not.toContain('short');
    expect(problems).toContain('(got "http")');
  });

  it('selects components: all by default, or a comma list', () => {
    expect(loadConfig({}).components).toEqual(['orchestrator', 'indexer', 'comms-api', 'management-api']);
    expect(loadConfig({ HERALD_COMPONENTS: 'comms-api, indexer' }).components).toEqual(['indexer', 'comms-api']);
    expect(() => loadConfig({ HERALD_COMPONENTS: 'gateway' })).toThrow(
      /HERALD_COMPONENTS.*must be all or a comma list/,
    );
    expect(() => loadConfig({ HERALD_COMPONENTS: ' , ' })).toThrow(/HERALD_COMPONENTS/);
  });

  it('reads an optional log retention in hours', () => {
    expect(loadConfig({}).retentionHours).toBeUndefined();
    expect(loadConfig({ HERALD_RETENTION_HOURS: '168' }).retentionHours).toBe(168);
    expect(() => loadConfig({ HERALD_RETENTION_HOURS: '-1' })).toThrow(/HERALD_RETENTION_HOURS/);
  });

  it('requires the TLS certificate and key together', () => {
    expect(() => loadConfig({ HERALD_TLS_CERT: '/c.pem' })).toThrow(/HERALD_TLS_KEY.*set together/);
  });

  it('rejects equal ports for the two APIs', () => {
    expect(() => loadConfig({ HERALD_MANAGEMENT_PORT: '9000', HERALD_COMMS_PORT: '9000' })).toThrow(
      /HERALD_COMMS_PORT: must differ/,
    );
  });
});
