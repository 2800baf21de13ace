import { DynamicModule, Module } from '@nestjs/common';
import { HealthController } from '@herald/platform';
import { PassportModule } from '@nestjs/passport';
import { AgentDirectory } from '@herald/agents';
import { AgentJwtStrategy, TokenService } from '@herald/auth';
import { AuthenticationController } from './comms-api.controllers';

export interface CommsApiDeps {
  tokens: TokenService;
  directory: AgentDirectory;
}

/** The agent gateway's HTTP side (port 27000); the WebSocket side is StreamGateway. */
@Module({})
export class CommsApiModule {
  static register(deps: CommsApiDeps): DynamicModule {
    return {
      module: CommsApiModule,
      imports: [PassportModule],
      controllers: [HealthController, AuthenticationController],
      providers: [
        { provide: TokenService, useValue: deps.tokens },
        { provide: AgentDirectory, useValue: deps.directory },
        AgentJwtStrategy,
      ],
    };
  }
}
