import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import jwt from 'jsonwebtoken';

/** Audience of agent tokens: the Wazuh agent checks nothing, but we keep its value. */
export const AGENT_AUDIENCE = 'Wazuh Communications API';
export const OPERATOR_AUDIENCE = 'Herald Management API';

export type Role = 'administrator' | 'operator' | 'read-only';
export const ROLES: readonly Role[] = ['administrator', 'operator', 'read-only'];

export interface AgentClaims {
  uuid: string;
  iat: number;
  exp: number;
}
export interface OperatorClaims {
  sub: string;
  role: Role;
  iat: number;
  exp: number;
}

export class InvalidTokenError extends Error {
  readonly code = 'token_invalid';
}

export interface TokenSettings {
  issuer: string;
  agentTtlSeconds: number;
  operatorTtlSeconds: number;
}

/**
 * Signs and verifies RS256 JWTs. The key pair is generated into `<dataDir>/jwt/` on first start
 * (every app of one deployment shares that directory or the same key files).
 */
export class TokenService {
  private constructor(
    private readonly privateKey: string,
    readonly publicKey: string,
    private readonly settings: TokenSettings,
  ) {}

  static fromDataDir(dataDir: string, settings: TokenSettings): TokenService {
    const dir = join(dataDir, 'jwt');
    const privFile = join(dir, 'private.pem');
    const pubFile = join(dir, 'public.pem');
    if (!existsSync(privFile) || !existsSync(pubFile)) {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const { privateKey, publicKey } = generateKeyPairSync('rsa', {
        modulusLength: 2048,
        publicKeyEncoding: { type: 'spki', format: 'pem' },
        privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
      });
      writeFileSync(privFile, privateKey, { mode: 0o600 });
      writeFileSync(pubFile, publicKey, { mode: 0o644 });
    }
    return new TokenService(readFileSync(privFile, 'utf8'), readFileSync(pubFile, 'utf8'), settings);
  }

  get issuer(): string {
    return this.settings.issuer;
  }

  signAgent(uuid: string): { token: string; expiresIn: number } {
    const token = jwt.sign({ uuid }, this.privateKey, {
      algorithm: 'RS256',
      issuer: this.settings.issuer,
      audience: AGENT_AUDIENCE,
      expiresIn: this.settings.agentTtlSeconds,
    });
    return { token, expiresIn: this.settings.agentTtlSeconds };
  }

  signOperator(user: string, role: Role): { token: string; expiresIn: number } {
    const token = jwt.sign({ role }, this.privateKey, {
      algorithm: 'RS256',
      issuer: this.settings.issuer,
      audience: OPERATOR_AUDIENCE,
      subject: user,
      expiresIn: this.settings.operatorTtlSeconds,
    });
    return { token, expiresIn: this.settings.operatorTtlSeconds };
  }

  verifyAgent(token: string): AgentClaims {
    const claims = this.verify(token, AGENT_AUDIENCE);
    if (typeof claims['uuid'] !== 'string') throw new InvalidTokenError('token has no uuid claim');
    return { uuid: claims['uuid'], iat: Number(claims['iat']), exp: Number(claims['exp']) };
  }

  verifyOperator(token: string): OperatorClaims {
    const claims = this.verify(token, OPERATOR_AUDIENCE);
    const role = claims['role'];
    if (typeof claims['sub'] !== 'string' || !ROLES.includes(role as Role)) {
      throw new InvalidTokenError('token has no valid subject or role');
    }
    return { sub: claims['sub'], role: role as Role, iat: Number(claims['iat']), exp: Number(claims['exp']) };
  }

  private verify(token: string, audience: string): Record<string, unknown> {
    try {
      const claims = jwt.verify(token, this.publicKey, {
        algorithms: ['RS256'],
        issuer: this.settings.issuer,
        audience,
      });
      if (typeof claims !== 'object') throw new InvalidTokenError('unexpected token payload');
      return claims as Record<string, unknown>;
    } catch (e) {
      if (e instanceof InvalidTokenError) throw e;
      const reason = e instanceof jwt.TokenExpiredError ? 'Token expired' : 'Invalid token';
      throw new InvalidTokenError(reason);
    }
  }
}
