import { Body, Controller, Get, Headers, HttpCode, Inject, Param, Post, Query, Req, UseGuards } from '@nestjs/common';
import { OperatorAuthGuard, OperatorDirectory, RequireRoles, TokenService, type OperatorPrincipal } from '@herald/auth';
import { UnauthorizedError } from '@herald/platform';
import type { Request } from 'express';
import { AgentsService } from './agents.service';
import { CommandsService } from './commands.service';

function principal(req: Request): OperatorPrincipal {
  return (req as Request & { user: OperatorPrincipal }).user;
}

@Controller('security')
export class SecurityController {
  constructor(
    @Inject(OperatorDirectory) private readonly operators: OperatorDirectory,
    @Inject(TokenService) private readonly tokens: TokenService,
  ) {}

  /** Basic credentials → a short-lived operator JWT (Wazuh: `{"data":{"token"}}`). */
  @Post('user/authenticate')
  @HttpCode(200)
  async authenticate(@Headers('authorization') authorization?: string): Promise<{ data: { token: string } }> {
    const match = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(authorization ?? '');
    if (!match?.[1])
      throw new UnauthorizedError('Basic credentials required (Authorization: Basic base64(user:password))');
    const decoded = Buffer.from(match[1], 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 1) throw new UnauthorizedError('Malformed Basic credentials');
    const account = await this.operators.authenticate(decoded.slice(0, colon), decoded.slice(colon + 1));
    if (!account) throw new UnauthorizedError('Invalid credentials');
    return { data: { token: this.tokens.signOperator(account.user, account.role).token } };
  }
}

@Controller('agents')
@UseGuards(OperatorAuthGuard)
export class AgentsController {
  constructor(@Inject(AgentsService) private readonly agents: AgentsService) {}

  @Post()
  @HttpCode(201)
  @RequireRoles('administrator', 'operator')
  async register(@Body() body: unknown, @Req() req: Request): Promise<{ message: string; data: { id: string } }> {
    const { id } = await this.agents.register(body, principal(req).user);
    return { message: 'Agent registered', data: { id } };
  }
}

@Controller()
@UseGuards(OperatorAuthGuard)
export class CommandsController {
  constructor(@Inject(CommandsService) private readonly commands: CommandsService) {}

  @Post('commands')
  @HttpCode(202)
  @RequireRoles('administrator', 'operator')
  create(@Body() body: unknown, @Req() req: Request): ReturnType<CommandsService['create']> {
    return this.commands.create(body, principal(req).user);
  }

  @Get('commands')
  list(@Query() query: unknown): ReturnType<CommandsService['list']> {
    return this.commands.list(query);
  }

  @Get('commands/:id')
  get(@Param('id') id: string): ReturnType<CommandsService['get']> {
    return this.commands.get(id);
  }

  @Post('commands/:id/cancel')
  @HttpCode(202)
  @RequireRoles('administrator', 'operator')
  cancel(@Param('id') id: string, @Req() req: Request): ReturnType<CommandsService['cancelCommand']> {
    return this.commands.cancelCommand(id, principal(req).user);
  }

  @Get('requests/:requestId')
  request(@Param('requestId') requestId: string): ReturnType<CommandsService['requestSummary']> {
    return this.commands.requestSummary(requestId);
  }

  @Post('requests/:requestId/cancel')
  @HttpCode(202)
  @RequireRoles('administrator', 'operator')
  cancelRequest(
    @Param('requestId') requestId: string,
    @Req() req: Request,
  ): ReturnType<CommandsService['cancelRequest']> {
    return this.commands.cancelRequest(requestId, principal(req).user);
  }
}
