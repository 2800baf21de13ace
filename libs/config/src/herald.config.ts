import { isIP } from 'node:net';
import { z } from 'zod';

/**
 * The one typed, validated configuration of Herald. `process.env` is read only here.
 * Every bad variable is reported at once (ConfigError lists them all).
 */

/** The server components; `npm start` runs them all in one process. */
export const HERALD_COMPONENTS = ['orchestrator', 'indexer', 'comms-api', 'management-api'] as const;
export type HeraldComponent = (typeof HERALD_COMPONENTS)[number];

const port = z.coerce.number().int().min(1).max(65535);
const positiveInt = z.coerce.number().int().positive();
const optionalText = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v.trim()));

const envSchema = z
  .object({
    HERALD_DATA_DIR: z.string().min(1).default('.herald/server'),
    HERALD_HOST: z.string().min(1).default('0.0.0.0'),
    HERALD_PUBLIC_HOST: z.string().min(1).default('localhost'),
    HERALD_MANAGEMENT_PORT: port.default(55000),
    HERALD_COMMS_PORT: port.default(27000),
    HERALD_ADMIN_USER: z
      .string()
      .regex(/^[A-Za-z0-9._@-]{1,64}$/, 'must be 1-64 letters, digits or ._@-')
      .default('admin'),
    HERALD_ADMIN_PASSWORD: optionalText.pipe(z.string().min(8, 'must be at least 8 characters').optional()),
    HERALD_TLS_CERT: optionalText,
    HERALD_TLS_KEY: optionalText,
    HERALD_JWT_ISSUER: z.string().min(1).default('herald'),
    HERALD_AGENT_TOKEN_TTL: positiveInt.default(900),
    HERALD_OPERATOR_TOKEN_TTL: positiveInt.default(900),
    HERALD_TOPIC_PREFIX: z
      .string()
      .regex(/^[A-Za-z0-9._-]*$/, 'may contain only letters, digits and ._-')
      .default('herald.'),
    HERALD_COMMAND_EXPIRES_IN: positiveInt.default(86400),
    HERALD_COMMAND_TIMEOUT: positiveInt.default(600),
    HERALD_COMMAND_GRACE: z.coerce.number().int().min(0).default(30),
    HERALD_LONG_POLL_MAX_WAIT: positiveInt.default(60),
    HERALD_LONG_POLL_MAX_COMMANDS: positiveInt.default(100),
    HERALD_MAX_BODY_BYTES: positiveInt.default(1024 * 1024),
    HERALD_COMPONENTS: z
      .string()
      .default('all')
      .transform((v) =>
        v
          .split(',')
          .map((c) => c.trim())
          .filter((c) => c.length > 0),
      )
      .pipe(
        z
          .array(
            z.enum(['all', ...HERALD_COMPONENTS], {
              message: `must be all or a comma list of ${HERALD_COMPONENTS.join(', ')}`,
            }),
          )
          .min(1, 'must name at least one component'),
      ),
    HERALD_KAFKA_SESSION_TIMEOUT: z.coerce.number().int().min(6).max(1800).default(30),
    HERALD_RETENTION_HOURS: optionalText.pipe(z.coerce.number().int().positive().max(876000).optional()),
    HERALD_PARTITIONS: z.coerce.number().int().min(1).max(1024).default(4),
    HERALD_LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
    HERALD_KEY_REQUEST_ENABLED: z
      .enum(['true', 'false', '1', '0', 'yes', 'no'], { message: 'must be true or false' })
      .default('false')
      .transform((v) => v === 'true' || v === '1' || v === 'yes'),
    HERALD_KEY_REQUEST_EXEC_PATH: optionalText.pipe(
      z
        .string()
        .max(4096)
        .refine((v) => v.startsWith('/'), 'must be an absolute program path, optionally followed by arguments')
        .refine((v) => !/[\0\n\r]/.test(v), 'must not contain NUL or newlines')
        .optional(),
    ),
    HERALD_KEY_REQUEST_SOCKET: optionalText.pipe(
      z
        .string()
        .max(107, 'must be at most 107 bytes (Unix socket path limit)')
        .refine((v) => v.startsWith('/'), 'must be an absolute Unix socket path')
        .optional(),
    ),
    HERALD_KEY_REQUEST_TIMEOUT: z.coerce.number().int().min(1).max(3600).default(60),
    HERALD_KEY_REQUEST_THREADS: z.coerce.number().int().min(1).max(32).default(1),
    HERALD_KEY_REQUEST_QUEUE_SIZE: z.coerce.number().int().min(1).max(220000).default(1024),
    HERALD_KEY_REQUEST_NEGATIVE_TTL: z.coerce.number().int().min(0).max(86400).default(60),
    HERALD_KEY_REQUEST_RATE_PER_SOURCE: z.coerce.number().int().min(1).max(100000).default(30),
    HERALD_KEY_REQUEST_TRUSTED_PROXIES: optionalText.pipe(
      z
        .string()
        .refine((v) => v.split(',').every((a) => isIP(a.trim()) !== 0), 'must be a comma list of IP addresses')
        .optional(),
    ),
    KAFKA_BROKERS: optionalText.pipe(
      z
        .string()
        .regex(/^[^\s,]+:\d+(,[^\s,]+:\d+)*$/, 'must be host:port[,host:port...]')
        .optional(),
    ),
    OPENSEARCH_URL: optionalText.pipe(z.string().url('must be a URL such as http://localhost:9200').optional()),
  })
  .superRefine((env, ctx) => {
    if ((env.HERALD_TLS_CERT === undefined) !== (env.HERALD_TLS_KEY === undefined)) {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: [env.HERALD_TLS_CERT === undefined ? 'HERALD_TLS_CERT' : 'HERALD_TLS_KEY'],
        message: 'HERALD_TLS_CERT and HERALD_TLS_KEY must be set together',
      });
    }
    if (
      env.HERALD_KEY_REQUEST_ENABLED &&
      env.HERALD_KEY_REQUEST_EXEC_PATH === undefined &&
      env.HERALD_KEY_REQUEST_SOCKET === undefined
    ) {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ['HERALD_KEY_REQUEST_ENABLED'],
        message: 'key request needs HERALD_KEY_REQUEST_EXEC_PATH or HERALD_KEY_REQUEST_SOCKET (or both)',
      });
    }
    if (env.HERALD_MANAGEMENT_PORT === env.HERALD_COMMS_PORT) {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ['HERALD_COMMS_PORT'],
        message: 'must differ from HERALD_MANAGEMENT_PORT',
      });
    }
  });

/** Every environment variable Herald reads (docs and deployment files are checked against it). */
export const CONFIG_VARIABLES: readonly string[] = Object.keys(envSchema.innerType().shape);

export interface HeraldConfig {
  dataDir: string;
  host: string;
  publicHost: string;
  management: { port: number };
  comms: { port: number; longPollMaxWaitSeconds: number; longPollMaxCommands: number };
  admin: { user: string; password?: string };
  tls: { certFile?: string; keyFile?: string };
  jwt: { issuer: string; agentTokenTtlSeconds: number; operatorTokenTtlSeconds: number };
  commands: { defaultExpiresInSeconds: number; defaultTimeoutSeconds: number; graceSeconds: number };
  limits: { maxBodyBytes: number };
  logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
  eventLog: { kind: 'embedded' } | { kind: 'kafka'; brokers: string[]; sessionTimeoutSeconds: number };
  projection: { kind: 'embedded' } | { kind: 'opensearch'; url: string };
  topicPrefix: string;
  /** Partitions of every agent-keyed topic (they must be equal: the orchestrator co-partitions). */
  partitions: number;
  /** Retention of every log topic but the compacted `agents`; undefined: the broker's default. */
  retentionHours?: number;
  components: HeraldComponent[];
  /** Key request: enroll unknown agents from an external key source (program and/or Unix socket). */
  keyRequest: KeyRequestConfig;
}

export interface KeyRequestConfig {
  enabled: boolean;
  /** argv of the key source program: its path, optionally preceded by an interpreter, plus fixed arguments. */
  exec?: string[];
  socket?: string;
  timeoutSeconds: number;
  /** Look-ups running at once. */
  threads: number;
  /** Look-ups waiting beyond those running; more get 503 with Retry-After. */
  queueSize: number;
  /** How long a "not found" answer is remembered (0: never). */
  negativeTtlSeconds: number;
  /** Look-ups per source address per minute. */
  ratePerSourcePerMinute: number;
  /** Peers whose X-Forwarded-For names the agent's address. */
  trustedProxies: string[];
}

export class ConfigError extends Error {
  readonly code = 'config_invalid';
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

export type Environment = Record<string, string | undefined>;

export function loadConfig(env: Environment = process.env): HeraldConfig {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((i) => {
        const name = i.path.join('.') || '(environment)';
        const value = env[name];
        const shown = value === undefined || /PASSWORD|KEY/.test(name) ? '' : ` (got "${value}")`;
        return `${name}: ${i.message}${shown}`;
      }),
    );
  }
  const e = parsed.data;
  return {
    dataDir: e.HERALD_DATA_DIR,
    host: e.HERALD_HOST,
    publicHost: e.HERALD_PUBLIC_HOST,
    management: { port: e.HERALD_MANAGEMENT_PORT },
    comms: {
      port: e.HERALD_COMMS_PORT,
      longPollMaxWaitSeconds: e.HERALD_LONG_POLL_MAX_WAIT,
      longPollMaxCommands: e.HERALD_LONG_POLL_MAX_COMMANDS,
    },
    admin: { user: e.HERALD_ADMIN_USER, ...(e.HERALD_ADMIN_PASSWORD ? { password: e.HERALD_ADMIN_PASSWORD } : {}) },
    tls: {
      ...(e.HERALD_TLS_CERT ? { certFile: e.HERALD_TLS_CERT } : {}),
      ...(e.HERALD_TLS_KEY ? { keyFile: e.HERALD_TLS_KEY } : {}),
    },
    jwt: {
      issuer: e.HERALD_JWT_ISSUER,
      agentTokenTtlSeconds: e.HERALD_AGENT_TOKEN_TTL,
      operatorTokenTtlSeconds: e.HERALD_OPERATOR_TOKEN_TTL,
    },
    commands: {
      defaultExpiresInSeconds: e.HERALD_COMMAND_EXPIRES_IN,
      defaultTimeoutSeconds: e.HERALD_COMMAND_TIMEOUT,
      graceSeconds: e.HERALD_COMMAND_GRACE,
    },
    limits: { maxBodyBytes: e.HERALD_MAX_BODY_BYTES },
    logLevel: e.HERALD_LOG_LEVEL,
    eventLog: e.KAFKA_BROKERS
      ? { kind: 'kafka', brokers: e.KAFKA_BROKERS.split(','), sessionTimeoutSeconds: e.HERALD_KAFKA_SESSION_TIMEOUT }
      : { kind: 'embedded' },
    projection: e.OPENSEARCH_URL ? { kind: 'opensearch', url: e.OPENSEARCH_URL } : { kind: 'embedded' },
    topicPrefix: e.HERALD_TOPIC_PREFIX,
    partitions: e.HERALD_PARTITIONS,
    ...(e.HERALD_RETENTION_HOURS !== undefined ? { retentionHours: e.HERALD_RETENTION_HOURS } : {}),
    keyRequest: {
      enabled: e.HERALD_KEY_REQUEST_ENABLED,
      ...(e.HERALD_KEY_REQUEST_EXEC_PATH ? { exec: e.HERALD_KEY_REQUEST_EXEC_PATH.split(/\s+/) } : {}),
      ...(e.HERALD_KEY_REQUEST_SOCKET ? { socket: e.HERALD_KEY_REQUEST_SOCKET } : {}),
      timeoutSeconds: e.HERALD_KEY_REQUEST_TIMEOUT,
      threads: e.HERALD_KEY_REQUEST_THREADS,
      queueSize: e.HERALD_KEY_REQUEST_QUEUE_SIZE,
      negativeTtlSeconds: e.HERALD_KEY_REQUEST_NEGATIVE_TTL,
      ratePerSourcePerMinute: e.HERALD_KEY_REQUEST_RATE_PER_SOURCE,
      trustedProxies: (e.HERALD_KEY_REQUEST_TRUSTED_PROXIES ?? '')
        .split(',')
        .map((a) => a.trim())
        .filter((a) => a.length > 0),
    },
    components: e.HERALD_COMPONENTS.includes('all')
      ? [...HERALD_COMPONENTS]
      : HERALD_COMPONENTS.filter((c) => e.HERALD_COMPONENTS.includes(c)),
  };
}
