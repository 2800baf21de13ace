import { z } from 'zod';
import { actionNameSchema, agentResultStatusSchema } from './command.schema';

/* WebSocket frames of `/api/v1/stream` (PROTOCOL.md). One JSON object per text frame. */

export const MAX_FRAME_BYTES = 1024 * 1024;

export const agentFrameSchemas = {
  hello: z.object({
    type: z.literal('hello'),
    lastExecutedSeq: z.number().int().min(0),
    capabilities: z.array(actionNameSchema).max(256).default([]),
  }),
  ack: z.object({
    type: z.literal('ack'),
    commandId: z.string().uuid(),
    seq: z.number().int().positive(),
  }),
  result: z.object({
    type: z.literal('result'),
    commandId: z.string().uuid(),
    seq: z.number().int().positive(),
    status: agentResultStatusSchema,
    code: z.number().int(),
    message: z.string().max(65536),
    data: z.unknown().optional(),
  }),
  resend: z.object({
    type: z.literal('resend'),
    fromSeq: z.number().int().positive(),
  }),
};

export const agentFrameSchema = z.discriminatedUnion('type', [
  agentFrameSchemas.hello,
  agentFrameSchemas.ack,
  agentFrameSchemas.result,
  agentFrameSchemas.resend,
]);
export type AgentFrame = z.infer<typeof agentFrameSchema>;
export type HelloFrame = z.infer<typeof agentFrameSchemas.hello>;
export type AckFrame = z.infer<typeof agentFrameSchemas.ack>;
export type ResultFrame = z.infer<typeof agentFrameSchemas.result>;

export type ServerFrame =
  | ({ type: 'command' } & import('./command.schema').CommandDocument)
  | { type: 'result-ack'; commandId: string }
  | { type: 'cancel'; commandId: string; seq?: number }
  | { type: 'token-expiring'; inSeconds: number }
  | { type: 'retry-after'; inSeconds: number }
  | { type: 'error'; code: number | string; message: string };

/** WebSocket close codes used by the gateway. */
export const CloseCodes = {
  normal: 1000,
  goingAway: 1001,
  badData: 1007,
  policy: 1008,
  tooBig: 1009,
  serverError: 1011,
} as const;
