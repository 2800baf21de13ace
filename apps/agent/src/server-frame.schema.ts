import { z } from 'zod';
import {
  actionSchema,
  commandStatusSchema,
  uuidSchema,
  type CommandDocument,
  type ServerFrame,
} from '@herald/contracts';

/*
 * Schemas of the frames the server sends on `/api/v1/stream` (PROTOCOL.md "WebSocket channel").
 * The contracts only have the `ServerFrame` TypeScript type; these are its runtime twin. They
 * belong in `libs/contracts/src/protocol.schema.ts` once the gateway wants them too.
 */

/** The command document (Wazuh shape plus Herald's `seq`) as a `command` frame. */
export const commandDocumentSchema = z.object({
  document_id: uuidSchema,
  request_id: z.string().min(1).max(128),
  order_id: z.string().max(128),
  source: z.string().max(128),
  user: z.string().max(128),
  target: z.object({ type: z.literal('agent'), id: uuidSchema }),
  action: actionSchema,
  timeout: z.number().int().positive(),
  status: commandStatusSchema,
  seq: z.number().int().positive(),
});

const inSeconds = z.number().finite().min(0).max(86_400);

export const serverFrameSchemas = {
  command: commandDocumentSchema.extend({ type: z.literal('command') }),
  'result-ack': z.object({ type: z.literal('result-ack'), commandId: z.string().min(1).max(128) }),
  cancel: z.object({
    type: z.literal('cancel'),
    commandId: z.string().min(1).max(128),
    seq: z.number().int().positive().optional(),
  }),
  'token-expiring': z.object({ type: z.literal('token-expiring'), inSeconds }),
  'retry-after': z.object({ type: z.literal('retry-after'), inSeconds }),
  error: z.object({
    type: z.literal('error'),
    code: z.union([z.number().int(), z.string().max(128)]),
    message: z.string().max(65536),
  }),
};

export const serverFrameSchema = z.discriminatedUnion('type', [
  serverFrameSchemas.command,
  serverFrameSchemas['result-ack'],
  serverFrameSchemas.cancel,
  serverFrameSchemas['token-expiring'],
  serverFrameSchemas['retry-after'],
  serverFrameSchemas.error,
]);

export type ParsedServerFrame = z.infer<typeof serverFrameSchema>;
export type CommandFrame = z.infer<typeof serverFrameSchemas.command>;

// Compile-time checks that the schemas and the contract types describe the same frames.
type Equivalent<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const documentMatchesContract: Equivalent<z.infer<typeof commandDocumentSchema>, CommandDocument> = true;
const framesMatchContract: Equivalent<ParsedServerFrame, ServerFrame> = true;
void documentMatchesContract;
void framesMatchContract;
