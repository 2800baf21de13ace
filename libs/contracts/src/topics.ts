/** Logical topic names; the deployment adds a configurable prefix (e.g. `herald.`). */
export const Topics = {
  commandRequests: 'command-requests',
  agentFeedback: 'agent-feedback',
  commands: 'commands',
  agents: 'agents',
  groups: 'groups',
  eventsStateless: 'events.stateless',
  eventsStateful: 'events.stateful',
  deadLetter: 'dead-letter',
} as const;

export type TopicName = (typeof Topics)[keyof typeof Topics];

export const ALL_TOPICS: readonly TopicName[] = Object.values(Topics);
