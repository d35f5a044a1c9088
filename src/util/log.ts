// Logging to stderr. Each line names the node and the operation; text or JSON.
// Keys never reach a log: callers log paths and suites, never key bytes.
// One line per call, whatever the text: in the text format control characters in the message are
// escaped and every string field value that is not one plain word is quoted (util/escape.ts);
// the JSON format escapes them as JSON does.
import { escapeText, quoteText } from './escape.js';

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';
export type LogFormat = 'text' | 'json';

const ORDER: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 };

export interface LogFields {
  node?: string;
  op?: string;
  errno?: string | null;
  [key: string]: unknown;
}

export interface Logger {
  level: LogLevel;
  error(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  debug(msg: string, fields?: LogFields): void;
  enabled(level: LogLevel): boolean;
  /** A logger whose lines carry these fields too. */
  child(fields: LogFields): Logger;
}

export type LogSink = (line: string) => void;

export function createLogger(level: LogLevel = 'info', format: LogFormat = 'text',
  sink: LogSink = (line) => process.stderr.write(line + '\n'), base: LogFields = {}): Logger {
  const state = { level };
  const emit = (lvl: LogLevel, msg: string, fields: LogFields = {}): void => {
    if (ORDER[lvl] > ORDER[state.level]) return;
    const all = { ...base, ...fields };
    if (format === 'json') {
      sink(JSON.stringify({ ts: new Date().toISOString(), level: lvl, msg, ...all }));
      return;
    }
    const { node, op, ...rest } = all;
    const where = escapeText([node ? `node ${String(node)}` : '', op ? String(op) : ''].filter(Boolean).join(': '));
    const extra = Object.entries(rest).filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k}=${typeof v === 'string' ? quoteText(v) : escapeText(JSON.stringify(v) ?? String(v))}`).join(' ');
    sink(`${new Date().toISOString()} ${lvl}${where ? ' ' + where + ':' : ''} ${escapeText(msg)}${extra ? ' ' + extra : ''}`);
  };
  const logger: Logger = {
    get level() { return state.level; },
    set level(l: LogLevel) { state.level = l; },
    error: (m, f) => emit('error', m, f),
    warn: (m, f) => emit('warn', m, f),
    info: (m, f) => emit('info', m, f),
    debug: (m, f) => emit('debug', m, f),
    enabled: (l) => ORDER[l] <= ORDER[state.level],
    child: (fields) => createLogger(state.level, format, sink, { ...base, ...fields }),
  };
  return logger;
}

/** A logger that drops everything (unit tests). */
export const silentLogger: Logger = createLogger('error', 'text', () => {});
