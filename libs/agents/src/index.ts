export * from './agent-directory';
export * from './group-directory';
