/**
 * Projection indices (plain data; structurally an IndexDefinition of the ProjectionStore port).
 * The indexer writes them; the management and comms APIs read them.
 */
export const CommandsIndex = {
  name: 'commands',
  fields: {
    agent: 'keyword',
    seq: 'long',
    status: 'keyword',
    requestId: 'keyword',
    actionName: 'keyword',
    issuedAt: 'date',
  },
} as const;

export const AgentsIndex = {
  name: 'agents',
  fields: {
    uuid: 'keyword',
    name: 'keyword',
    registeredAt: 'date',
  },
} as const;

/** Name of the watermark the indexer keeps for the `commands` topic. */
export const COMMANDS_WATERMARK = 'commands';

/**
 * The current state of stateful agent events (one document per agent, module and event id; the
 * comms API's `POST /api/v1/events/stateful` answers only once its writes here are searchable).
 */
export const StatefulEventsIndex = {
  name: 'events-stateful',
  fields: {
    agent: 'keyword',
    module: 'keyword',
    collector: 'keyword',
    eventId: 'keyword',
    updatedAt: 'date',
  },
} as const;

/** Every index Herald's projection keeps (created by the indexer at start and by rebuilds). */
export const HERALD_INDICES = [CommandsIndex, AgentsIndex, StatefulEventsIndex] as const;
