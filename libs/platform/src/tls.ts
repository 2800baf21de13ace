import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generate } from 'selfsigned';

export interface TlsMaterial {
  cert: string;
  key: string;
  certFile: string;
  generated: boolean;
}

/**
 * The server's TLS certificate: the configured pair, or a self-signed one generated into
 * `<dataDir>/tls/` on first start (and reused after).
 */
export async function ensureTlsMaterial(
  dataDir: string,
  configured: { certFile?: string; keyFile?: string },
  hostnames: string[] = ['localhost'],
): Promise<TlsMaterial> {
  if (configured.certFile && configured.keyFile) {
    return {
      cert: readFileSync(configured.certFile, 'utf8'),
      key: readFileSync(configured.keyFile, 'utf8'),
      certFile: configured.certFile,
      generated: false,
    };
  }
  const dir = join(dataDir, 'tls');
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  if (existsSync(certFile) && existsSync(keyFile)) {
    return { cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8'), certFile, generated: false };
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const names = [...new Set(['localhost', ...hostnames])];
  const pems = await generate([{ name: 'commonName', value: names[0] ?? 'localhost' }], {
    keySize: 2048,
    algorithm: 'sha256',
    notAfterDate: new Date(Date.now() + 825 * 24 * 3600 * 1000),
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [
          ...names.map((value) => ({ type: 2 as const, value })),
          { type: 7 as const, ip: '127.0.0.1' },
          { type: 7 as const, ip: '::1' },
        ],
      },
    ],
  });
  writeFileSync(keyFile, pems.private, { mode: 0o600 });
  writeFileSync(certFile, pems.cert, { mode: 0o644 });
  return { cert: pems.cert, key: pems.private, certFile, generated: true };
}
