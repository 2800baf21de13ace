import { ExecutionContext, Injectable, SetMetadata } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { AuthGuard, PassportStrategy } from '@nestjs/passport';
import { ExtractJwt, Strategy } from 'passport-jwt';
import { ForbiddenError, UnauthorizedError } from '@herald/platform';
import { AGENT_AUDIENCE, OPERATOR_AUDIENCE, ROLES, type Role, TokenService } from './token.service';

/** What guards put on `request.user`. */
export interface AgentPrincipal {
  kind: 'agent';
  uuid: string;
  exp: number;
}
export interface OperatorPrincipal {
  kind: 'operator';
  user: string;
  role: Role;
}

@Injectable()
export class AgentJwtStrategy extends PassportStrategy(Strategy, 'agent-jwt') {
  constructor(tokens: TokenService) {
    super({
      jwtFromRequest: ExtractJwt.fromAuthHeaderAsBearerToken(),
      secretOrKey: tokens.publicKey,
      algorithms: ['RS256'],
      issuer: tokens.issuer,
      audience: AGENT_AUDIENCE,
    });
  }

  validate(payload: Record<string, unknown>): AgentPrincipal {
    if (typeof payload['uuid'] !== 'string') throw new ForbiddenError('Invalid token');
    return { kind: 'agent', uuid: payload['uuid'], exp: Number(payload['exp']) };
  }
}

@Injectable()
export class OperatorJwtStrategy extends PassportStrategy(Strategy, 'operator-jwt') {
  constructor(tokens: TokenService) {
    super({
      jwtFromRequest: ExtractJwt.fromAuthHeaderAsBearerToken(),
      secretOrKey: tokens.publicKey,
      algorithms: ['RS256'],
      issuer: tokens.issuer,
      audience: OPERATOR_AUDIENCE,
    });
  }

  validate(payload: Record<string, unknown>): OperatorPrincipal {
    const role = payload['role'];
    if (typeof payload['sub'] !== 'string' || !ROLES.includes(role as Role)) {
      throw new UnauthorizedError('Invalid token');
    }
    return { kind: 'operator', user: payload['sub'], role: role as Role };
  }
}

/** Agent routes: a missing, invalid, expired or revoked token is 403 (Wazuh compatibility). */
@Injectable()
export class AgentAuthGuard extends AuthGuard('agent-jwt') {
  override handleRequest<T>(err: unknown, user: T | false, info: unknown): T {
    if (err instanceof ForbiddenError) throw err;
    if (err || !user) throw new ForbiddenError(describeJwtFailure(info));
    return user;
  }
}

export const ROLES_KEY = 'herald:roles';
/** Roles allowed on a route (default for operator routes: every role may read). */
export const RequireRoles = (...roles: Role[]): MethodDecorator & ClassDecorator => SetMetadata(ROLES_KEY, roles);

/** Operator routes: 401 without a valid token, 403 when the role is not allowed. */
@Injectable()
export class OperatorAuthGuard extends AuthGuard('operator-jwt') {
  constructor(private readonly reflector: Reflector) {
    super();
  }

  override handleRequest<T>(err: unknown, user: T | false, info: unknown, context: ExecutionContext): T {
    if (err instanceof UnauthorizedError) throw err;
    if (err || !user) throw new UnauthorizedError(describeJwtFailure(info));
    const allowed = this.reflector.getAllAndOverride<Role[] | undefined>(ROLES_KEY, [
      context.getHandler(),
      context.getClass(),
    ]);
    const principal = user as unknown as OperatorPrincipal;
    if (allowed && !allowed.includes(principal.role)) {
      throw new ForbiddenError(`Role ${principal.role} may not do this (needs ${allowed.join(' or ')})`);
    }
    return user;
  }
}

function describeJwtFailure(info: unknown): string {
  if (info instanceof Error) {
    if (info.name === 'TokenExpiredError') return 'Token expired';
    if (info.message === 'No auth token') return 'Missing bearer token';
  }
  return 'Invalid token';
}
