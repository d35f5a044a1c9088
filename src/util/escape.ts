// The one escaping rule for text on its way into log lines, event fields and error messages.
// Peer-controlled strings (suite names, export names, refusal messages, NBD export names and
// option data: anything from the wire or an NBD socket) go through peerText() where they are
// read, so a peer can neither forge a log line (newline, CR), make the log binary (NUL), drive
// the operator's terminal (ESC), nor flood a line (length cap). The logger and the event bus
// escape control characters in everything once more, so text that skipped peerText() still
// cannot break a line: escaping is idempotent (a backslash is not escaped), so text escaped at
// its source passes the second time unchanged.
//
// Escapes: \n \r \t, \xHH for other C0 controls and DEL, \u{HHHH} for C1 controls, the
// Unicode line and paragraph separators (what some consumers treat as a line break) and the
// bidirectional marks and overrides (which make a line read differently from its bytes).
// Everything else, other Unicode included, is kept as it is.

/** Longest peer string kept (characters, after escaping); the rest is cut and counted. */
export const PEER_TEXT_MAX = 256;
/** Longest peer sentence kept (a refusal message from an export names nodes, addresses, suites). */
export const PEER_MESSAGE_MAX = 1024;

// eslint-disable-next-line no-control-regex
const SPECIAL = /[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028-\u202e\u2066-\u2069]/u;

function escapeChar(c: string): string {
  switch (c) {
    case '\n': return '\\n';
    case '\r': return '\\r';
    case '\t': return '\\t';
  }
  const code = c.codePointAt(0)!;
  return code < 0x80 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u{${code.toString(16)}}`;
}

/**
 * `s` with control characters escaped, cut to `max` characters (whole code
 * points, never inside an escape) with "…(+N)" naming how many input characters were dropped.
 */
export function escapeText(s: string, max = Infinity): string {
  if (s.length <= max && !SPECIAL.test(s)) return s;
  let out = '';
  let used = 0;
  for (const ch of s) {
    const e = SPECIAL.test(ch) ? escapeChar(ch) : ch;
    if (out.length + e.length > max) return `${out}…(+${[...s].length - used})`;
    out += e;
    used++;
  }
  return out;
}

/** A peer-controlled string, made safe for a log line, an event field or an error message. */
export function peerText(s: string, max = PEER_TEXT_MAX): string {
  return escapeText(s, max);
}

/** Does `s` need quoting as a log field value (empty, spaces, quotes, `=`, anything escaped)? */
const BARE = /^[!#-<>-[\]-~\u00a0-\u200d\u2010-\u2027\u202f-\u2065\u206a-\uffff]+$/u;

/** A log field value: bare when it is one plain word, else "…" with controls, `"` and `\` escaped. */
export function quoteText(s: string): string {
  return BARE.test(s) ? s : `"${escapeText(s.replace(/["\\]/g, '\\$&'))}"`;
}
