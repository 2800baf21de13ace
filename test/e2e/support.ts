import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { enroll, type AgentIdentity } from '@herald/agent';
import { uuidv7 } from '@herald/contracts';
import { httpsRequest, type HeraldProcess, type HttpResult } from '@herald/testing';

export type ManagementApi = (path: string, method?: string, body?: unknown) => Promise<HttpResult>;

/** Calls the management API of `herald` as the operator holding `token`. */
export function managementApi(herald: HeraldProcess, token: string): ManagementApi {
  return (path, method = 'GET', body) =>
    httpsRequest(`${herald.managementUrl}${path}`, {
      method,
      ca: herald.ca,
      headers: { authorization: `Bearer ${token}` },
      ...(body === undefined ? {} : { body }),
    });
}

/** Registers `count` agents through `POST /agents` (no agent process behind them). */
export async function registerAgents(api: ManagementApi, count: number): Promise<string[]> {
  const agents = Array.from({ length: count }, () => uuidv7());
  for (let i = 0; i < agents.length; i += 10) {
    await Promise.all(
      agents.slice(i, i + 10).map(async (id) => {
        const res = await api('/agents', 'POST', {
          id,
          name: `sim-${id.slice(-6)}`,
          key: randomBytes(24).toString('hex'),
        });
        if (res.status !== 201) throw new Error(`registering ${id} failed: ${res.status} ${res.text}`);
      }),
    );
  }
  return agents;
}

/** Enrolls a reference agent into a fresh data directory, as `herald-agent enroll` does. */
export async function enrollAgent(
  herald: HeraldProcess,
  commsUrl: string = herald.commsUrl,
): Promise<{ dataDir: string; identity: AgentIdentity }> {
  const dataDir = join(mkdtempSync(join(tmpdir(), 'herald-agent-')), 'agent');
  const { identity } = await enroll({
    dataDir,
    managerUrl: herald.managementUrl,
    commsUrl,
    user: 'admin',
    password: herald.adminPassword,
    tls: { ca: herald.ca },
  });
  return { dataDir, identity };
}

/** Runs a command to completion in its own process group (nothing it starts survives it). */
export function runToCompletion(
  command: string,
  args: string[],
  options: { cwd: string; env: NodeJS.ProcessEnv },
): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('exit', () => {
      try {
        process.kill(-(child.pid ?? 0), 'SIGKILL');
      } catch {
        // the group is already gone
      }
    });
    // 'close' comes once every pipe is drained (after the group is gone).
    child.on('close', (code) => resolve({ code, output }));
  });
}
