/** Docker's multiplexed stream (stdcopy): stdout and stderr in frames on one connection. */

/** Docker's stdcopy framing: 8-byte header [stream, 0, 0, 0, size(4, big-endian)] then the payload. */
export function frame(stream: 0 | 1 | 2, payload: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h[0] = stream;
  h.writeUInt32BE(payload.length, 4);
  return Buffer.concat([h, payload]);
}
