// The remote connection's state table (libnbd style, reference/style.md §2): the states are
// data, every change goes through transition(), an illegal one throws; and why a connection
// closed, with the mapping of an export's refusal to that reason. Pure: no sockets, no timers.
import { DstError, errnoName } from '../../util/errors.js';

/** Connection states. */
export enum ConnState {
  /** Created; nothing sent, no socket yet. */
  IDLE = 'idle',
  /** TCP connect in progress; bounded by resend-timeout. */
  CONNECTING = 'connecting',
  /** TCP up and HELLO written; awaiting HELLO_REPLY, bounded by resend-timeout. */
  HELLO_SENT = 'hello-sent',
  /** Keyed suite: our AUTH written; awaiting the export's AUTH (same bound). */
  AUTH_SENT = 'auth-sent',
  /** Handshake done: IO frames flow, liveness (PING/PONG) is watched. */
  READY = 'ready',
  /** Terminal: socket destroyed or ended, timers cancelled, onClose reported once. */
  CLOSED = 'closed',
}

/** What moves a connection from one state to the next. */
export type ConnEvent =
  | 'start'     // begin the TCP connect
  | 'tcp-up'    // TCP connected, HELLO written
  | 'hello-ok'  // an acceptable HELLO_REPLY arrived (suite without a key: done)
  | 'auth-sent' // an acceptable HELLO_REPLY arrived for a keyed suite; our AUTH written
  | 'auth-ok'   // the export's AUTH proved its key
  | 'fail'      // error: socket error/close, timeout, refusal, bad frame, dead link
  | 'close';    // local decision to close (node stop, reconnect request)

const TRANSITIONS: Readonly<Record<ConnState, Partial<Record<ConnEvent, ConnState>>>> = {
  [ConnState.IDLE]: { start: ConnState.CONNECTING, close: ConnState.CLOSED },
  [ConnState.CONNECTING]: { 'tcp-up': ConnState.HELLO_SENT, fail: ConnState.CLOSED, close: ConnState.CLOSED },
  [ConnState.HELLO_SENT]: {
    'hello-ok': ConnState.READY, 'auth-sent': ConnState.AUTH_SENT, fail: ConnState.CLOSED, close: ConnState.CLOSED,
  },
  [ConnState.AUTH_SENT]: { 'auth-ok': ConnState.READY, fail: ConnState.CLOSED, close: ConnState.CLOSED },
  [ConnState.READY]: { fail: ConnState.CLOSED, close: ConnState.CLOSED },
  [ConnState.CLOSED]: {},
};

/** The next state for `event` in `from`; throws DST_ERR_INTERNAL for an illegal transition. */
export function transition(from: ConnState, event: ConnEvent): ConnState {
  const to = TRANSITIONS[from][event];
  if (to === undefined) {
    throw new DstError('DST_ERR_INTERNAL', `connection: illegal transition from ${from} on ${event}`);
  }
  return to;
}

/** Why a connection closed; the node maps it to its backoff reason. */
export type ConnCloseReason = 'link' | 'denied' | 'suite-mismatch' | 'auth-failed' | 'taken-over' | 'closed';

export interface ConnCloseInfo {
  reason: ConnCloseReason;
  /** human-readable cause, logged by the node */
  detail: string;
  /** errno behind it when there is one (ECONNREFUSED, ETIMEDOUT, EACCES, ...) */
  errno: string | null;
  /** the handshake had completed */
  wasReady: boolean;
}

/** Map a refusal status (errno number in HELLO_REPLY or AUTH) and its message to a close reason. */
export function refusalReason(status: number, message = ''): ConnCloseReason {
  const name = errnoName(status);
  if (name === 'EACCES') return message.startsWith('authentication failed') ? 'auth-failed' : 'denied';
  if (name === 'EPROTO') return 'suite-mismatch';
  // the one HELLO refusal with EPERM: the mirror claim is older than the export's highest
  if (name === 'EPERM') return 'taken-over';
  return 'link';
}
