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
