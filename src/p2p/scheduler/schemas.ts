/**
 * zod schemas of the request bodies in src/p2p/protocol.ts: what the scheduler accepts, checked before
 * anything touches its state. Unknown keys are dropped (a newer peer may send more).
 */
import { z } from 'zod';
import { isDigest } from '../../lib/digest.js';
import { pieceCount, type AnnounceRequest, type PreheatRequest, type ProgressRequest, type RegisterPeerRequest } from '../protocol.js';

/** Enough for a 16 GiB blob in 1 MiB pieces; bounds what one report may list. */
export const MAX_PIECES = 1 << 16;

export const PEER_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/;
export const peerId = z.string().regex(PEER_ID_RE, 'a peer id: letters, digits and ._:@- (at most 128)');
export const taskId = z.string().refine(isDigest, 'a task id is a blob digest: sha256:<64 hex>');

const httpUrl = (what: string) =>
  z
    .string()
    .max(4096)
    .refine((v) => {
      try {
        const u = new URL(v);
        return (u.protocol === 'http:' || u.protocol === 'https:') && !u.username && !u.password;
      } catch {
        return false;
      }
    }, `${what}: an http(s) URL without credentials`);

const peerRef = {
  peerId,
  addr: httpUrl('addr').transform((v) => v.replace(/\/+$/, '')),
  zone: z.string().min(1).max(128).optional(),
};

const uploadSlots = z.number().int().min(0).max(100_000);
const piece = z.number().int().min(0).max(MAX_PIECES - 1);

const meta = z
  .object({
    size: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
    pieceSize: z.number().int().min(1).max(1 << 30),
    pieceDigests: z.array(z.string().regex(/^[a-f0-9]{64}$/, 'a piece digest is 64 lowercase hex')).max(MAX_PIECES),
  })
  .refine((m) => pieceCount(m.size, m.pieceSize) <= MAX_PIECES, `more than ${MAX_PIECES} pieces: use a larger pieceSize`)
  .refine((m) => m.pieceDigests.length <= pieceCount(m.size, m.pieceSize), 'more piece digests than pieces');

export const RegisterPeerSchema = z.object({ ...peerRef, uploadSlots }) satisfies z.ZodType<RegisterPeerRequest>;

export const AnnounceSchema = z.object({
  ...peerRef,
  url: httpUrl('url'),
  uploadSlots,
  pieces: z.array(piece).max(MAX_PIECES).optional(),
  finished: z.boolean().optional(),
  meta: meta.optional(),
}) satisfies z.ZodType<AnnounceRequest>;

export const ProgressSchema = z.object({
  pieces: z.array(piece).max(MAX_PIECES).optional(),
  failed: z
    .array(
      z.object({
        // -1: a parent that failed before a piece was asked of it (a broken piece list, a dropped connection)
        piece: z.number().int().min(-1).max(MAX_PIECES - 1),
        parent: peerId,
        reason: z.enum(['digest', 'timeout', 'gone', 'busy']),
      }),
    )
    .max(4096)
    .optional(),
  meta: meta.optional(),
  digestsKnown: z.number().int().nonnegative().optional(),
  finished: z.boolean().optional(),
  failedTask: z.boolean().optional(),
}) satisfies z.ZodType<ProgressRequest>;

export const PreheatSchema = z.object({
  image: z.string().min(1).max(1024),
  zone: z.string().min(1).max(128).optional(),
  authorization: z.string().min(1).max(8192).optional(),
}) satisfies z.ZodType<PreheatRequest>;
