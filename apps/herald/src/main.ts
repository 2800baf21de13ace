import { relative } from 'node:path';
import { ConfigError, loadConfig } from '@herald/config';
import { createLogger } from '@herald/platform';
import { startHerald } from './herald';

async function main(): Promise<void> {
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
  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
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
