import { relative } from 'node:path';
import { ConfigError, loadConfig } from '@herald/config';
import { createLogger } from '@herald/platform';
import { rebuildProjection, startHerald } from './herald';

const USAGE = `Usage: node dist/apps/herald/src/main.js [command]

Commands:
  start                (default) run the components of HERALD_COMPONENTS (all of them by default)
  rebuild-projection   rebuild the projection from offset 0 of the log (stop the indexers first)

Configuration: environment variables, see README.md ("Configuration").`;

async function main(): Promise<void> {
  const command = process.argv[2] ?? 'start';
  if (command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (command !== 'start' && command !== 'rebuild-projection') {
    process.stderr.write(`herald: unknown command "${command}"\n\n${USAGE}\n`);
    process.exit(2);
  }
  let config;
  try {
    config = loadConfig();
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
  const logger = createLogger(config.logLevel);
  if (command === 'rebuild-projection') {
    process.stdout.write('Rebuilding the projection from offset 0 of the log...\n');
    const { records, ms } = await rebuildProjection(config, logger, (handled, total) =>
      process.stdout.write(`  ${handled} / ${total} records\n`),
    );
    process.stdout.write(`Projection rebuilt: ${records} records in ${(ms / 1000).toFixed(1)} s\n`);
    return;
  }
  const herald = await startHerald(config, logger);
  const rel = (p: string): string =>
    relative(process.cwd(), p).startsWith('..') ? p : relative(process.cwd(), p) || '.';
  const lines = ['', `Herald is running: ${herald.components.join(', ')} (${herald.storage})`];
  if (herald.managementUrl) lines.push(`  management API  ${herald.managementUrl}   (operators, scripts)`);
  if (herald.commsUrl) lines.push(`  comms API       ${herald.commsUrl}   (agents: HTTP + WebSocket /api/v1/stream)`);
  if (herald.certFile) lines.push(`  TLS certificate ${rel(herald.certFile)}`);
  const admin = herald.admin;
  if (admin && herald.managementUrl && herald.certFile) {
    const passwordFile = admin.passwordFile ? rel(admin.passwordFile) : undefined;
    const password = admin.generatedPassword
      ? `generated for you: ${admin.generatedPassword}  (kept in ${passwordFile ?? '?'})`
      : passwordFile
        ? `in ${passwordFile}`
        : 'from HERALD_ADMIN_PASSWORD';
    const ca = rel(herald.certFile);
    lines.push(
      `  admin user      ${admin.user}`,
      `  admin password  ${password}`,
      '',
      'Try it (in another terminal, from this directory):',
      `  npm run agent -- enroll --manager ${herald.managementUrl} --comms ${herald.commsUrl ?? 'https://<comms-host>:27000'} --user ${admin.user} --password "${passwordFile ? `$(cat ${passwordFile})` : '$HERALD_ADMIN_PASSWORD'}" --ca ${ca}`,
      `  npm run agent -- run --ca ${ca}`,
      '  then send it a command with curl: see README.md, "Walkthrough".',
    );
  }
  process.stdout.write(`${lines.join('\n')}\n\n`);
  // Components without a listening socket (an indexer alone) must not let the process exit.
  const keepAlive = setInterval(() => undefined, 1 << 30);
  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    clearInterval(keepAlive);
    logger.info({ signal }, 'shutting down');
    herald.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
}

main().catch((err: unknown) => {
  process.stderr.write(`Herald failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
