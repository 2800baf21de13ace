import { randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as os from 'node:os';
import { z } from 'zod';
import { uuidv7 } from '@herald/contracts';
import { CommandStore, type AgentIdentity } from './command-store';
import { AGENT_VERSION } from './executors';

/** How to trust the server's certificate. */
export interface TlsOptions {
  /** PEM CA bundle (contents) to trust, e.g. the server's self-signed certificate. */
  ca?: string | Buffer;
  /** Accept any certificate (development only). */
  insecure?: boolean;
  /** Allow plain `http://` / `ws://` URLs (tests only). */
  allowPlainText?: boolean;
}

export const DEFAULT_MANAGER_URL = 'https://localhost:55000';
export const DEFAULT_COMMS_URL = 'https://localhost:27000';

/** Anything that went wrong talking to the server, with a message fit for a human. */
export class EnrollmentError extends Error {
  constructor(
    message: string,
    /** HTTP status, when the server answered. */
    readonly status?: number,
    /** The server's error code (`{"code"}`) or the network error code (`ECONNREFUSED`). */
    readonly code?: string | number,
  ) {
    super(message);
    this.name = 'EnrollmentError';
  }
}

export interface HttpResponse {
  status: number;
  body: unknown;
}

/** Read a CA file for `TlsOptions.ca`, with a clear error. */
export function readCaFile(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    throw new EnrollmentError(`cannot read CA file ${file}: ${errorCode(error) ?? String(error)}`);
  }
}

/** Check a server URL (http(s) only; plain http only when allowed). Returns it without a trailing slash. */
export function checkServerUrl(raw: string, what: string, tls: TlsOptions = {}): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new EnrollmentError(`${what} ${raw} is not a valid URL`);
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && tls.allowPlainText)) {
    throw new EnrollmentError(`${what} ${raw} must be an https:// URL`);
  }
  return url.toString().replace(/\/+$/, '');
}

/** One JSON request over HTTPS (or HTTP when allowed). Network errors become EnrollmentError. */
export function requestJson(
  url: string,
  options: {
    method: string;
    headers?: Record<string, string>;
    body?: unknown;
    tls?: TlsOptions;
    timeoutMs?: number;
    /** Abort the request (the agent is stopping). */
    signal?: AbortSignal;
  },
): Promise<HttpResponse> {
  const target = new URL(url);
  const origin = target.origin;
  const payload = options.body === undefined ? undefined : Buffer.from(JSON.stringify(options.body));
  const headers: Record<string, string> = {
    Accept: 'application/json',
    'User-Agent': userAgent(),
    ...(payload ? { 'Content-Type': 'application/json', 'Content-Length': String(payload.length) } : {}),
    ...options.headers,
  };
  const tls = options.tls ?? {};
  if (target.protocol === 'http:' && !tls.allowPlainText) {
    return Promise.reject(new EnrollmentError(`${origin} must be an https:// URL`));
  }
  return new Promise<HttpResponse>((resolve, reject) => {
    const onResponse = (res: http.IncomingMessage): void => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > 1024 * 1024) {
          req.destroy(new Error('response too large'));
          return;
        }
        chunks.push(chunk);
      });
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown = text;
        if (text.length > 0) {
          try {
            body = JSON.parse(text);
          } catch {
            body = text;
          }
        }
        resolve({ status: res.statusCode ?? 0, body });
      });
      res.on('error', (error) => reject(networkError(origin, error)));
    };
    const req =
      target.protocol === 'http:'
        ? http.request(target, { method: options.method, headers, ...signalOf(options.signal) }, onResponse)
        : https.request(
            target,
            {
              method: options.method,
              headers,
              ...signalOf(options.signal),
              ...(tls.ca !== undefined ? { ca: tls.ca } : {}),
              rejectUnauthorized: !tls.insecure,
            },
            onResponse,
          );
    req.setTimeout(options.timeoutMs ?? 30_000, () =>
      req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })),
    );
    req.on('error', (error) => reject(networkError(origin, error)));
    req.end(payload);
  });
}

/** The message of a JSON error body (`{"message"}`, or `{"error":{"message"}}`), else a fallback. */
export function errorMessage(res: HttpResponse, what: string): EnrollmentError {
  const parsed = z
    .object({ message: z.string(), code: z.union([z.number(), z.string()]).optional() })
    .safeParse(res.body);
  const detail = parsed.success
    ? parsed.data.message
    : typeof res.body === 'string' && res.body.length > 0 && res.body.length < 300
      ? res.body
      : `HTTP ${res.status}`;
  return new EnrollmentError(
    `${what}: ${detail} (HTTP ${res.status})`,
    res.status,
    parsed.success ? parsed.data.code : undefined,
  );
}

/* ---------------- comms API authentication ---------------- */

export interface AgentToken {
  token: string;
  /** Milliseconds since the epoch (the JWT's `exp`; 900 s from now when it has none). */
  expiresAt: number;
}

/** `POST /api/v1/authentication {uuid, key}` → a short-lived agent JWT. */
export async function authenticate(
  commsUrl: string,
  credentials: { uuid: string; key: string },
  tls: TlsOptions = {},
  signal?: AbortSignal,
): Promise<AgentToken> {
  const base = checkServerUrl(commsUrl, 'comms URL', tls);
  const res = await requestJson(`${base}/api/v1/authentication`, {
    method: 'POST',
    body: { uuid: credentials.uuid, key: credentials.key },
    tls,
    ...(signal ? { signal } : {}),
  });
  if (res.status !== 200) throw errorMessage(res, 'authentication failed');
  const parsed = z.object({ token: z.string().min(1) }).safeParse(res.body);
  if (!parsed.success)
    throw new EnrollmentError(`authentication failed: no token in the answer of ${base}`, res.status);
  return { token: parsed.data.token, expiresAt: jwtExpiry(parsed.data.token) ?? Date.now() + 900_000 };
}

/** The `exp` claim of a JWT in milliseconds, without verifying it (the agent only schedules by it). */
export function jwtExpiry(token: string): number | undefined {
  const payload = token.split('.')[1];
  if (payload === undefined) return undefined;
  try {
    const claims: unknown = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
    const exp = z.object({ exp: z.number().finite() }).safeParse(claims);
    return exp.success ? exp.data.exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

/* ---------------- enrollment ---------------- */

export interface HostInfo {
  architecture: string;
  hostname: string;
  ip: string[];
  os: { name: string; type: string; version: string };
}

export interface EnrollOptions {
  dataDir: string;
  managerUrl?: string;
  commsUrl?: string;
  user: string;
  password: string;
  /** Defaults to the host name. */
  name?: string;
  tls?: TlsOptions;
  /** Remembered for `run` (the file, not its contents). */
  caFile?: string;
  /** Replace an existing identity in the data directory (its pending commands are dropped). */
  force?: boolean;
  /** Host description sent to the server; detected when absent (a simulator passes its own). */
  host?: HostInfo;
}

export interface EnrollResult {
  identity: AgentIdentity;
  /** Where the identity was saved. */
  storeFile: string;
}

const ALPHANUMERIC = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** 32 random alphanumeric characters from the CSPRNG (unbiased). */
export function generateKey(length = 32): string {
  let key = '';
  for (let i = 0; i < length; i++) key += ALPHANUMERIC[randomInt(ALPHANUMERIC.length)];
  return key;
}

/**
 * Register this agent: log in to the management API, `POST /agents` with a fresh UUIDv7 and
 * key, then save the identity in the data directory (file mode 0600).
 */
export async function enroll(options: EnrollOptions): Promise<EnrollResult> {
  const tls = options.tls ?? {};
  const managerUrl = checkServerUrl(options.managerUrl ?? DEFAULT_MANAGER_URL, 'manager URL', tls);
  const commsUrl = checkServerUrl(options.commsUrl ?? DEFAULT_COMMS_URL, 'comms URL', tls);
  const name = options.name ?? os.hostname();
  if (name.trim().length === 0) throw new EnrollmentError('the agent name must not be empty');

  if (!options.force && CommandStore.exists(options.dataDir)) {
    const store = new CommandStore(options.dataDir);
    try {
      const existing = store.getIdentity();
      if (existing) {
        throw new EnrollmentError(
          `${options.dataDir} already holds agent ${existing.uuid} (${existing.name}); use another data directory, or force to replace it`,
        );
      }
    } finally {
      store.close();
    }
  }

  const login = await requestJson(`${managerUrl}/security/user/authenticate`, {
    method: 'POST',
    headers: { Authorization: `Basic ${Buffer.from(`${options.user}:${options.password}`).toString('base64')}` },
    tls,
  });
  if (login.status !== 200) throw errorMessage(login, `login to ${managerUrl} failed`);
  const token = z.object({ data: z.object({ token: z.string().min(1) }) }).safeParse(login.body);
  if (!token.success) throw new EnrollmentError(`login to ${managerUrl} failed: no token in the answer`, login.status);

  const uuid = uuidv7();
  const key = generateKey();
  const registered = await requestJson(`${managerUrl}/agents`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token.data.data.token}` },
    body: { id: uuid, name, key, type: 'Endpoint', version: AGENT_VERSION, host: options.host ?? hostInfo() },
    tls,
  });
  if (registered.status !== 201 && registered.status !== 200) {
    throw errorMessage(registered, 'registration failed');
  }

  const identity: AgentIdentity = {
    uuid,
    key,
    name,
    managerUrl,
    commsUrl,
    groups: [],
    enrolledAt: new Date().toISOString(),
    ...(options.caFile !== undefined ? { caFile: options.caFile } : {}),
  };
  const store = new CommandStore(options.dataDir);
  try {
    store.saveIdentity(identity);
    return { identity, storeFile: store.file };
  } finally {
    store.close();
  }
}

/* ---------------- host description ---------------- */

export function hostInfo(): HostInfo {
  const release = osRelease();
  return {
    architecture: architecture(),
    hostname: os.hostname().slice(0, 255),
    ip: Object.values(os.networkInterfaces())
      .flatMap((addresses) => addresses ?? [])
      .filter((a) => !a.internal)
      .map((a) => a.address)
      .slice(0, 64),
    os: {
      name: (release['NAME'] ?? os.type()).slice(0, 128),
      type: os.platform().slice(0, 64),
      version: (release['VERSION_ID'] ?? os.release()).slice(0, 64),
    },
  };
}

function architecture(): string {
  switch (os.arch()) {
    case 'x64':
      return 'x86_64';
    case 'arm64':
      return 'aarch64';
    case 'ia32':
      return 'i686';
    default:
      return os.arch();
  }
}

function osRelease(): Record<string, string> {
  if (os.platform() !== 'linux') return {};
  try {
    const entries = readFileSync('/etc/os-release', 'utf8')
      .split('\n')
      .map((line) => /^([A-Z_]+)=("?)(.*)\2$/.exec(line.trim()))
      .flatMap((m) => (m && m[1] !== undefined && m[3] !== undefined ? [[m[1], m[3]] as const] : []));
    return Object.fromEntries(entries);
  } catch {
    return {};
  }
}

function signalOf(signal: AbortSignal | undefined): { signal?: AbortSignal } {
  return signal ? { signal } : {};
}

function userAgent(): string {
  return `HeraldAgent/${AGENT_VERSION} (Endpoint; ${architecture()}; ${os.type()})`;
}

/* ---------------- errors ---------------- */

export function errorCode(error: unknown): string | undefined {
  if (typeof error === 'object' && error !== null && 'code' in error) {
    const code = (error as { code: unknown }).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}

function networkError(origin: string, error: unknown): EnrollmentError {
  const code = errorCode(error);
  const detail = code ?? (error instanceof Error ? error.message : String(error));
  const hint = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(detail)
    ? ' (the server certificate is not trusted: pass its CA with --ca FILE, or --insecure)'
    : '';
  return new EnrollmentError(`cannot reach ${origin}: ${detail}${hint}`, undefined, code);
}
