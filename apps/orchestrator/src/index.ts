export * from './orchestrator.service';
