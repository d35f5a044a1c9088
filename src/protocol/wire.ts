// DST wire protocol v2: the codec's public face. Byte layout documented in man/dst-protocol.7.
// The rooms: wire-header.ts (the 48-byte frame header, frame encoding), wire-hello.ts (HELLO /
// HELLO_REPLY / AUTH fields), stream-buffer.ts (one stream's bytes, shared with the NBD decoder),
// frame-decoder.ts (chunks in, frames out). All pure: no I/O, no global state; the payload pool
// the decoders draw from is the engine's (src/engine/io/payload-pool.ts).
export * from './wire-header.js';
export * from './wire-hello.js';
export * from './frame-decoder.js';
