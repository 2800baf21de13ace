import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HeraldProcess, REPO_ROOT } from '@herald/testing';
import { runToCompletion } from './support';

/** The README's walkthrough block, verbatim. */
function walkthrough(): string {
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const match = /<!-- walkthrough:start -->\s*```bash\n([\s\S]*?)```\s*<!-- walkthrough:end -->/.exec(readme);
  if (!match?.[1]) throw new Error('README.md has no walkthrough block between the walkthrough markers');
  return match[1];
}

describe('README walkthrough', () => {
  let herald: HeraldProcess;

  beforeAll(async () => {
    herald = await HeraldProcess.create();
    await herald.start();
  });
  afterAll(async () => {
    await herald.stop();
  });

  it('runs verbatim against a fresh server and ends with the command succeeded', async () => {
    const work = mkdtempSync(join(tmpdir(), 'herald-walkthrough-'));
    const script = `set -euo pipefail\n${walkthrough()}`;
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      ...herald.environment,
      HERALD_AGENT_DATA_DIR: join(work, 'agent'),
    };
    const { code, output } = await runToCompletion('bash', ['-c', script], { cwd: REPO_ROOT, env });
    if (code !== 0) throw new Error(`walkthrough exited ${code}:\n${output}\n--- server ---\n${herald.output}`);
    const json = output.slice(output.lastIndexOf('{\n  "id"'));
    const view = JSON.parse(json.slice(0, json.lastIndexOf('}') + 1)) as Record<string, unknown>;
    expect(view).toMatchObject({ seq: 1, status: 'success', action: { name: 'get-config' } });
    const timestamps = view['timestamps'] as Record<string, string>;
    for (const t of ['issued', 'sent', 'inProgress', 'finished']) expect(Date.parse(timestamps[t] ?? '')).not.toBeNaN();
    expect(output).toMatch(/^agent: [0-9a-f-]{36}$/m);
    // Step 5 stopped the agent: its supervisor removed its pid file on the way out.
    expect(output).toMatch(/^stopped agent \(pid \d+\)$/m);
    expect(existsSync(join(work, 'agent', 'supervisor.pid'))).toBe(false);
    expect(readFileSync(join(work, 'agent', 'agent.log'), 'utf8')).toMatch(/command #1 get-config -> success/);
  });
});
