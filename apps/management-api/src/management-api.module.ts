import { DynamicModule, Module } from '@nestjs/common';
import { HealthController } from '@herald/platform';
import { PassportModule } from '@nestjs/passport';
import type { AgentDirectory } from '@herald/agents';
import { OperatorDirectory, OperatorJwtStrategy, TokenService } from '@herald/auth';
import type { EventLog } from '@herald/event-log';
import type { ProjectionStore } from '@herald/projection';
import { AgentsService } from './agents.service';
import { CommandsService, type CommandSettings } from './commands.service';
import { AgentsController, CommandsController, SecurityController } from './management-api.controllers';
import type { RequestRegistry } from './request-registry';

export interface ManagementApiDeps {
  log: EventLog;
  store: ProjectionStore;
  tokens: TokenService;
  operators: OperatorDirectory;
  directory: AgentDirectory;
  registry: RequestRegistry;
  commands: CommandSettings;
}

/** The operator REST API (port 55000). Appends requests to the log; never talks to agents. */
@Module({})
export class ManagementApiModule {
  static register(deps: ManagementApiDeps): DynamicModule {
    return {
      module: ManagementApiModule,
      imports: [PassportModule],
      controllers: [HealthController, SecurityController, AgentsController, CommandsController],
      providers: [
        { provide: TokenService, useValue: deps.tokens },
        { provide: OperatorDirectory, useValue: deps.operators },
        { provide: AgentsService, useValue: new AgentsService(deps.directory) },
        {
          provide: CommandsService,
          useValue: new CommandsService(deps.log, deps.store, deps.directory, deps.registry, deps.commands),
        },
        OperatorJwtStrategy,
      ],
    };
  }
}
