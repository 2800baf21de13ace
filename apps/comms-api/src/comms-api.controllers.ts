import { Body, Controller, HttpCode, Inject, Post } from '@nestjs/common';
import { uuidSchema } from '@herald/contracts';
import { AgentDirectory } from '@herald/agents';
import { TokenService, verifySecret } from '@herald/auth';
import { ForbiddenError, parseInput, UnauthorizedError } from '@herald/platform';
import { z } from 'zod';

const authenticationSchema = z.object({
  uuid: uuidSchema,
  key: z.string().min(1).max(128),
});

@Controller('api/v1')
export class AuthenticationController {
  constructor(
    @Inject(AgentDirectory) private readonly directory: AgentDirectory,
    @Inject(TokenService) private readonly tokens: TokenService,
  ) {}

  /** Agent UUID + key → RS256 JWT (PROTOCOL.md: unknown agent 403, wrong key 401). */
  @Post('authentication')
  @HttpCode(200)
  async authenticate(@Body() body: unknown): Promise<{ token: string }> {
    const input = parseInput(authenticationSchema, body);
    const agent = this.directory.get(input.uuid);
    if (!agent) throw new ForbiddenError('Agent does not exist');
    if (!(await verifySecret(input.key, agent.keyHash))) throw new UnauthorizedError('Invalid key');
    return { token: this.tokens.signAgent(agent.uuid).token };
  }
}
