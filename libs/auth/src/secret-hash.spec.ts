import { hashSecret, verifySecret } from './secret-hash';
import { TokenService, InvalidTokenError } from './token.service';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

describe('secret hashing', () => {
  it('verifies the right secret and rejects others; salts differ', async () => {
    const a = await hashSecret('s3cret-key-0123456789abcdefghijkl');
    const b = await hashSecret('s3cret-key-0123456789abcdefghijkl');
    expect(a).not.toEqual(b);
    expect(a).toMatch(/^scrypt\$16384\$8\$1\$/);
    await expect(verifySecret('s3cret-key-0123456789abcdefghijkl', a)).resolves.toBe(true);
    await expect(verifySecret('s3cret-key-0123456789abcdefghijklX', a)).resolves.toBe(false);
    await expect(verifySecret('anything', 'garbage')).resolves.toBe(false);
  });
});

describe('TokenService', () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-jwt-'));
  const tokens = TokenService.fromDataDir(dir, { issuer: 'herald', agentTtlSeconds: 900, operatorTtlSeconds: 60 });

  it('signs RS256 agent tokens with the documented claims', () => {
    const { token } = tokens.signAgent('018f3b8e-4b7a-7c1d-9e2f-0123456789ab');
    const [header, payload] = token
      .split('.')
      .slice(0, 2)
      .map((p) => JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>);
    expect(header).toMatchObject({ alg: 'RS256' });
    expect(payload).toMatchObject({
      iss: 'herald',
      aud: 'Wazuh Communications API',
      uuid: '018f3b8e-4b7a-7c1d-9e2f-0123456789ab',
    });
    expect(Number(payload?.['exp']) - Number(payload?.['iat'])).toBe(900);
    expect(tokens.verifyAgent(token).uuid).toBe('018f3b8e-4b7a-7c1d-9e2f-0123456789ab');
  });

  it('keeps agent and operator tokens apart and rejects tampering', () => {
    const op = tokens.signOperator('admin', 'administrator').token;
    expect(() => tokens.verifyAgent(op)).toThrow(InvalidTokenError);
    expect(tokens.verifyOperator(op)).toMatchObject({ sub: 'admin', role: 'administrator' });
    const agent = tokens.signAgent('018f3b8e-4b7a-7c1d-9e2f-0123456789ab').token;
    const [h, , s] = agent.split('.');
    const forged = `${h}.${Buffer.from(JSON.stringify({ uuid: 'x' })).toString('base64url')}.${s}`;
    expect(() => tokens.verifyAgent(forged)).toThrow('Invalid token');
  });

  it('reuses the key pair stored in the data directory', () => {
    const again = TokenService.fromDataDir(dir, { issuer: 'herald', agentTtlSeconds: 900, operatorTtlSeconds: 60 });
    expect(again.publicKey).toEqual(tokens.publicKey);
  });
});
