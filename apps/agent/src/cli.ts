import { fork } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Agent, AgentConfigError, type AgentLogger } from './agent';
import { CommandStore, type StoredCommand } from './command-store';
import {
  checkServerUrl,
  DEFAULT_COMMS_URL,
  DEFAULT_MANAGER_URL,
  enroll,
  EnrollmentError,
  readCaFile,
  type TlsOptions,
} from './enrollment';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
/** The worker exits with this code when a `restart` command asks for it; the supervisor starts a new one. */
export const EXIT_RESTART = 75;

export const DEFAULT_DATA_DIR = '.herald/agent';

export interface CliIo {
  out(line: string): void;
  err(line: string): void;
}

/** What the `run` worker needs from its process; main.ts gives the real one, tests their own. */
export interface WorkerProcess {
  /** Call `stop` on SIGINT/SIGTERM (and when the supervisor goes away). */
  onStopRequest(stop: () => void): void;
}

export interface CliContext {
  env: Record<string, string | undefined>;
  io: CliIo;
  /** The script to fork for the supervised worker (main.js / main.ts). */
  entry?: string;
  worker?: WorkerProcess;
}

const USAGE = `Usage: herald-agent <command> [options]

Commands:
  enroll   register this agent with the management API and save its identity
  run      connect to the comms API and execute commands (restarts itself on a restart command)
  status   print the identity, lastExecutedSeq and the stored commands
  stop     stop the agent that "run" started for this data directory

Run "herald-agent <command> --help" for the options of a command.`;

const COMMON_HELP = `  --data-dir DIR     agent data directory (env HERALD_AGENT_DATA_DIR; default ${DEFAULT_DATA_DIR})`;
const TLS_HELP = `  --ca FILE          trust this CA certificate (PEM) for the server (env HERALD_CA)
  --insecure         accept any server certificate (development only)`;

const COMMAND_HELP: Record<CommandName, string> = {
  enroll: `Usage: herald-agent enroll --user U [--password P] [options]

Registers this agent (a new UUIDv7 and a random 32-character key) with the management API
and saves its identity in the data directory (file mode 0600).

  --manager URL      management API (default ${DEFAULT_MANAGER_URL})
  --user U           operator user name (required)
  --password P       operator password (or env HERALD_PASSWORD, which keeps it off the command line)
  --name N           agent name (default: the host name)
  --comms URL        comms API the agent will use (default ${DEFAULT_COMMS_URL})
${COMMON_HELP}
${TLS_HELP}
  --force            replace an identity already saved in the data directory`,
  run: `Usage: herald-agent run [options]

Connects to the comms API and executes commands in order, each exactly once. A supervisor
process runs the agent as a worker and starts it again when a restart command asks for it.

  --comms URL        comms API (default: the one saved at enrollment)
${COMMON_HELP}
${TLS_HELP}`,
  status: `Usage: herald-agent status [options]

Prints the identity (never the key), lastExecutedSeq and the commands stored locally.

${COMMON_HELP}`,
  stop: `Usage: herald-agent stop [options]

Stops the agent that "herald-agent run" started for this data directory (SIGTERM to its
supervisor, which stops the worker after the running command is recorded) and waits for it.

${COMMON_HELP}`,
};

type CommandName = 'enroll' | 'run' | 'status' | 'stop';

const OPTIONS: Record<CommandName, { values: readonly string[]; flags: readonly string[] }> = {
  enroll: {
    values: ['manager', 'user', 'password', 'name', 'comms', 'data-dir', 'ca'],
    flags: ['insecure', 'force', 'help'],
  },
  run: { values: ['comms', 'data-dir', 'ca'], flags: ['insecure', 'worker', 'help'] },
  status: { values: ['data-dir'], flags: ['help'] },
  stop: { values: ['data-dir'], flags: ['help'] },
};

/** File in the data directory holding the pid of the running supervisor (`run`). */
export const SUPERVISOR_PID_FILE = 'supervisor.pid';

export class UsageError extends Error {
  constructor(
    message: string,
    readonly help: string = USAGE,
  ) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface ParsedArgs {
  command: CommandName;
  values: Record<string, string>;
  flags: Set<string>;
}

/** Parse `<command> [--option value | --option=value | --flag]...`; throws UsageError. */
export function parseArgs(argv: readonly string[]): ParsedArgs | 'help' {
  const [first, ...rest] = argv;
  if (first === undefined) throw new UsageError('missing command');
  if (first === '--help' || first === '-h' || first === 'help') return 'help';
  if (first !== 'enroll' && first !== 'run' && first !== 'status' && first !== 'stop') {
    throw new UsageError(first.startsWith('-') ? `unknown option ${first}` : `unknown command ${first}`);
  }
  const command: CommandName = first;
  const spec = OPTIONS[command];
  const help = COMMAND_HELP[command];
  const values: Record<string, string> = {};
  const flags = new Set<string>();
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i] ?? '';
    if (arg === '-h') {
      flags.add('help');
      continue;
    }
    const match = /^--([a-z-]+)(?:=(.*))?$/s.exec(arg);
    if (!match || match[1] === undefined) throw new UsageError(`unexpected argument ${arg}`, help);
    const name = match[1];
    if (spec.flags.includes(name)) {
      if (match[2] !== undefined) throw new UsageError(`option --${name} takes no value`, help);
      flags.add(name);
      continue;
    }
    if (!spec.values.includes(name)) throw new UsageError(`unknown option --${name} for ${command}`, help);
    let value = match[2];
    if (value === undefined) {
      value = rest[i + 1];
      if (value === undefined || value.startsWith('--')) throw new UsageError(`option --${name} needs a value`, help);
      i++;
    }
    if (name in values) throw new UsageError(`option --${name} given twice`, help);
    if (value.trim() === '') throw new UsageError(`option --${name} must not be empty`, help);
    values[name] = value;
  }
  return { command, values, flags };
}

/** Run the CLI; resolves the process exit code. Never calls process.exit itself. */
export async function runCli(argv: readonly string[], context: CliContext): Promise<number> {
  const { io } = context;
  try {
    const parsed = parseArgs(argv);
    if (parsed === 'help') {
      io.out(USAGE);
      return EXIT_OK;
    }
    if (parsed.flags.has('help')) {
      io.out(COMMAND_HELP[parsed.command]);
      return EXIT_OK;
    }
    switch (parsed.command) {
      case 'enroll':
        return await enrollCommand(parsed, context);
      case 'status':
        return statusCommand(parsed, context);
      case 'stop':
        return await stopCommand(parsed, context);
      case 'run':
        return parsed.flags.has('worker') ? await workerCommand(parsed, context) : await supervise(argv, context);
    }
  } catch (error) {
    if (error instanceof UsageError) {
      io.err(`herald-agent: ${error.message}`);
      io.err('');
      io.err(error.help);
      return EXIT_USAGE;
    }
    if (error instanceof EnrollmentError || error instanceof AgentConfigError) {
      io.err(`herald-agent: ${error.message}`);
      return EXIT_FAILURE;
    }
    io.err(`herald-agent: ${error instanceof Error ? error.message : String(error)}`);
    return EXIT_FAILURE;
  }
}

/* ---------------- shared option handling ---------------- */

function dataDirOf(args: ParsedArgs, env: CliContext['env']): string {
  return resolve(args.values['data-dir'] ?? nonEmpty(env['HERALD_AGENT_DATA_DIR']) ?? DEFAULT_DATA_DIR);
}

/** TLS options from --ca / --insecure / HERALD_CA / the CA file saved at enrollment. */
function tlsOf(args: ParsedArgs, env: CliContext['env'], savedCaFile?: string): { tls: TlsOptions; caFile?: string } {
  const help = COMMAND_HELP[args.command];
  const insecure = args.flags.has('insecure');
  const flagCa = args.values['ca'];
  if (insecure && flagCa !== undefined) throw new UsageError('--ca and --insecure exclude each other', help);
  if (insecure) return { tls: { insecure: true } };
  const caFile = flagCa ?? nonEmpty(env['HERALD_CA']) ?? savedCaFile;
  if (caFile === undefined) return { tls: {} };
  const absolute = resolve(caFile);
  try {
    return { tls: { ca: readCaFile(absolute) }, caFile: absolute };
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error), help);
  }
}

function urlOf(args: ParsedArgs, option: string, fallback: string, what: string): string {
  try {
    return checkServerUrl(args.values[option] ?? fallback, what);
  } catch (error) {
    throw new UsageError(
      `--${option}: ${error instanceof Error ? error.message : String(error)}`,
      COMMAND_HELP[args.command],
    );
  }
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value;
}

/* ---------------- enroll ---------------- */

async function enrollCommand(args: ParsedArgs, { env, io }: CliContext): Promise<number> {
  const help = COMMAND_HELP.enroll;
  const user = args.values['user'];
  if (user === undefined) throw new UsageError('enroll needs --user', help);
  const password = args.values['password'] ?? nonEmpty(env['HERALD_PASSWORD']);
  if (password === undefined) throw new UsageError('enroll needs --password or the HERALD_PASSWORD variable', help);
  const managerUrl = urlOf(args, 'manager', DEFAULT_MANAGER_URL, 'manager URL');
  const commsUrl = urlOf(args, 'comms', DEFAULT_COMMS_URL, 'comms URL');
  const dataDir = dataDirOf(args, env);
  const { tls, caFile } = tlsOf(args, env);

  io.out(`enrolling with ${managerUrl} ...`);
  const { identity, storeFile } = await enroll({
    dataDir,
    managerUrl,
    commsUrl,
    user,
    password,
    tls,
    ...(args.values['name'] !== undefined ? { name: args.values['name'] } : {}),
    ...(caFile !== undefined ? { caFile } : {}),
    force: args.flags.has('force'),
  });
  io.out(`enrolled agent ${identity.uuid} (${identity.name})`);
  io.out(`identity saved in ${storeFile} (mode 0600)`);
  const next = ['herald-agent run'];
  if (args.values['data-dir'] !== undefined || env['HERALD_AGENT_DATA_DIR'] !== undefined)
    next.push(`--data-dir ${dataDir}`);
  if (tls.insecure) next.push('--insecure');
  io.out(`next: ${next.join(' ')}`);
  return EXIT_OK;
}

/* ---------------- status ---------------- */

function statusCommand(args: ParsedArgs, { env, io }: CliContext): number {
  const dataDir = dataDirOf(args, env);
  if (!CommandStore.exists(dataDir)) {
    io.err(`herald-agent: not enrolled: no agent store in ${dataDir} (run "herald-agent enroll" first)`);
    return EXIT_FAILURE;
  }
  const store = new CommandStore(dataDir, { readonly: true });
  try {
    const identity = store.getIdentity();
    if (!identity) {
      io.err(`herald-agent: not enrolled: no identity in ${store.file}`);
      return EXIT_FAILURE;
    }
    const commands = store.list();
    io.out(`agent            ${identity.uuid}`);
    io.out(`name             ${identity.name}`);
    io.out(`groups           ${identity.groups.length > 0 ? identity.groups.join(', ') : '(none)'}`);
    io.out(`manager          ${identity.managerUrl}`);
    io.out(`comms            ${identity.commsUrl}`);
    if (identity.caFile !== undefined) io.out(`ca               ${identity.caFile}`);
    io.out(`enrolled         ${identity.enrolledAt}`);
    io.out(`store            ${store.file}`);
    io.out(`lastExecutedSeq  ${store.lastExecutedSeq()}`);
    io.out(`stored commands  ${commands.length}`);
    for (const command of commands) io.out(`  ${describeCommand(command)}`);
    return EXIT_OK;
  } finally {
    store.close();
  }
}

function describeCommand(command: StoredCommand): string {
  const action = command.document?.action.name ?? '(not received)';
  const base = `#${command.seq} ${action} ${command.id} ${command.state}`;
  if (command.result) {
    return `${base} -> ${command.result.status} (${command.result.message})${command.resultAcked ? '' : ', result not yet confirmed by the server'}`;
  }
  return base;
}

/* ---------------- run: supervisor and worker ---------------- */

/**
 * The supervisor: runs the agent as a forked worker (same entry, `--worker`) and forks a new
 * one each time the worker exits with EXIT_RESTART. Forwards SIGINT/SIGTERM.
 */
async function supervise(argv: readonly string[], context: CliContext): Promise<number> {
  // Validate everything before forking, so a usage error is reported once, by the supervisor.
  const args = parseArgs(argv);
  if (args === 'help') return EXIT_OK;
  const dataDir = dataDirOf(args, context.env);
  if (args.values['comms'] !== undefined) urlOf(args, 'comms', DEFAULT_COMMS_URL, 'comms URL');
  tlsOf(args, context.env);
  if (!CommandStore.exists(dataDir)) {
    throw new AgentConfigError(`not enrolled: no agent store in ${dataDir} (run "herald-agent enroll" first)`);
  }
  const entry = context.entry;
  if (entry === undefined) throw new Error('cannot supervise: the entry script is unknown');

  let stopping: NodeJS.Signals | undefined;
  let child: ReturnType<typeof fork> | undefined;
  const forward = (signal: NodeJS.Signals): void => {
    stopping = signal;
    child?.kill(signal);
  };
  const onSigint = (): void => forward('SIGINT');
  const onSigterm = (): void => forward('SIGTERM');
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', onSigterm);
  const pidFile = join(dataDir, SUPERVISOR_PID_FILE);
  writeFileSync(pidFile, `${process.pid}\n`, { mode: 0o600 });
  try {
    for (;;) {
      const worker = fork(entry, [...argv, '--worker'], { stdio: 'inherit' });
      child = worker;
      const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((done) =>
        worker.once('exit', (c, s) => done([c, s])),
      );
      child = undefined;
      if (code === EXIT_RESTART && stopping === undefined) {
        context.io.out('agent restarting');
        continue;
      }
      if (stopping !== undefined) return EXIT_OK;
      if (signal !== null) {
        context.io.err(`herald-agent: the agent worker was killed by ${signal}`);
        return EXIT_FAILURE;
      }
      return code ?? EXIT_FAILURE;
    }
  } finally {
    process.off('SIGINT', onSigint);
    process.off('SIGTERM', onSigterm);
    rmSync(pidFile, { force: true });
  }
}

/** `stop`: SIGTERM to the supervisor recorded in the data directory, then wait for it to exit. */
async function stopCommand(args: ParsedArgs, { env, io }: CliContext): Promise<number> {
  const dataDir = dataDirOf(args, env);
  const pidFile = join(dataDir, SUPERVISOR_PID_FILE);
  let pid: number;
  try {
    pid = Number.parseInt(readFileSync(pidFile, 'utf8').trim(), 10);
  } catch {
    io.out(`no agent is running for ${dataDir}`);
    return EXIT_OK;
  }
  if (!Number.isSafeInteger(pid) || pid <= 0 || !isAlive(pid)) {
    rmSync(pidFile, { force: true });
    io.out(`no agent is running for ${dataDir} (removed a stale ${SUPERVISOR_PID_FILE})`);
    return EXIT_OK;
  }
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + 30_000;
  while (isAlive(pid)) {
    if (Date.now() > deadline) {
      io.err(`herald-agent: agent ${pid} did not stop within 30 s`);
      return EXIT_FAILURE;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  io.out(`stopped agent (pid ${pid})`);
  return EXIT_OK;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The worker: one Agent until it stops (exit 0) or must restart (EXIT_RESTART). */
async function workerCommand(args: ParsedArgs, { env, io, worker }: CliContext): Promise<number> {
  const dataDir = dataDirOf(args, env);
  if (!CommandStore.exists(dataDir)) {
    throw new AgentConfigError(`not enrolled: no agent store in ${dataDir} (run "herald-agent enroll" first)`);
  }
  const reader = new CommandStore(dataDir, { readonly: true });
  const savedCaFile = reader.getIdentity()?.caFile;
  reader.close();
  const { tls } = tlsOf(args, env, savedCaFile);
  const commsUrl =
    args.values['comms'] !== undefined ? urlOf(args, 'comms', DEFAULT_COMMS_URL, 'comms URL') : undefined;

  const agent = new Agent({
    dataDir,
    tls,
    ...(commsUrl !== undefined ? { commsUrl } : {}),
    logger: consoleLogger(io),
  });
  io.out(`agent ${agent.identity.uuid} (${agent.identity.name}) starting, lastExecutedSeq ${agent.lastExecutedSeq}`);
  worker?.onStopRequest(() => {
    io.out('stopping');
    void agent.stop();
  });
  const result = await agent.run();
  if (result.reason === 'restart') return EXIT_RESTART;
  io.out('stopped');
  return EXIT_OK;
}

export function consoleLogger(io: CliIo): AgentLogger {
  const time = (): string => new Date().toISOString();
  return {
    info: (message) => io.out(`${time()} ${message}`),
    warn: (message) => io.err(`${time()} warning: ${message}`),
    error: (message) => io.err(`${time()} error: ${message}`),
  };
}
