export * from './management-api.module';
export * from './request-registry';
export * from './commands.service';
export * from './agents.service';
