// NBD option negotiation for one client (fixed newstyle with NO_ZEROES): the greeting, the client
// flags, and the options GO, INFO, LIST, EXPORT_NAME, ABORT, STRUCTURED_REPLY, LIST_META_CONTEXT
// and SET_META_CONTEXT (the one context: base:allocation); every other option (EXTENDED_HEADERS,
// STARTTLS, …) → NBD_REP_ERR_UNSUP. It only decides and encodes: the connection owns the socket
// and acts on the outcome of each option, and hands what was agreed to the transmission loop.
import type { BlockTarget } from './target.js';
import type { Agreed } from './nbd-validate.js';
import type { Logger } from '../../util/log.js';
import { peerText } from '../../util/escape.js';
import { ClientFlag, HandshakeFlag, Info, MAX_PAYLOAD, Opt, Rep, TxFlag, optName } from '../../protocol/nbd.js';
import {
  BASE_ALLOCATION, encodeExportNameReply, encodeGreeting, encodeInfoBlockSize, encodeInfoExport, encodeInfoName, encodeOptionAck,
  encodeOptionError, encodeRepMetaContext, encodeRepServer, parseInfoRequest, parseMetaContextRequest,
} from '../../protocol/nbd-options.js';

// Block sizes: minimum 1 (the target is byte-addressed), preferred 4096, maximum 32 MiB; sent
// in every INFO/GO reply (the spec lets the server send them unasked).
export const BLOCK_MIN = 1;
export const BLOCK_PREFERRED = 4096;
export const BLOCK_MAX = MAX_PAYLOAD;
/** The id base:allocation is selected under (any value the connection keeps to itself works). */
export const ALLOCATION_CONTEXT_ID = 1;

/**
 * What the connection does after an option: keep negotiating, enter transmission, end the
 * socket gracefully (ABORT), or drop it at once (a client we cannot serve).
 */
export type OptionOutcome = 'options' | 'transmission' | 'end' | 'drop';

export class NbdNegotiation {
  /** structured replies agreed (they apply to the whole transmission phase) */
  private structured = false;
  private noZeroes = false;
  /** the transmission flags sent with the export (GO or EXPORT_NAME): what requests may use */
  private advertised = 0;
  /** base:allocation selected by the last SET_META_CONTEXT */
  private allocation = false;

  constructor(
    private readonly target: BlockTarget,
    private readonly log: Logger,
    private readonly send: (b: Buffer) => void,
  ) {}

  /** The server's first bytes. */
  greet(): void {
    this.send(encodeGreeting(HandshakeFlag.FIXED_NEWSTYLE | HandshakeFlag.NO_ZEROES));
  }

  /** The client's flags: false → drop the connection (flags we do not know). */
  clientFlags(flags: number): boolean {
    const known = ClientFlag.C_FIXED_NEWSTYLE | ClientFlag.C_NO_ZEROES;
    if ((flags & ~known) !== 0) {
      this.log.warn('NBD client sent unknown client flags, dropping the connection', { flags: `0x${flags.toString(16)}` });
      return false;
    }
    this.noZeroes = (flags & ClientFlag.C_NO_ZEROES) !== 0;
    return true;
  }

  private exportNameOk(name: string): boolean {
    return name === '' || name === this.target.name;
  }

  private unknownExport(option: number, name: string): Buffer {
    return encodeOptionError(option, Rep.ERR_UNKNOWN, `unknown export "${peerText(name)}"; this server has "${this.target.name}"`);
  }

  /**
   * CAN_MULTI_CONN holds: every connection submits to the same target (one transaction table, one
   * export), a WRITE is answered only once the export has it, and the export's FLUSH is one
   * fdatasync of the whole file, so a flush on any connection covers writes answered on all.
   */
  private txFlags(): number {
    let f = TxFlag.HAS_FLAGS | TxFlag.SEND_FLUSH | TxFlag.SEND_FUA | TxFlag.SEND_TRIM | TxFlag.SEND_WRITE_ZEROES | TxFlag.CAN_MULTI_CONN;
    if (!this.target.permissions().includes('w')) f |= TxFlag.READ_ONLY;
    if (this.target.fastZero()) f |= TxFlag.SEND_FAST_ZERO;
    return f;
  }

  /** The flags of the export reply, remembered: a request may use only what they offered. */
  private exportFlags(): number {
    this.advertised = this.txFlags();
    return this.advertised;
  }

  /** What transmission may rely on (read once negotiation is over). */
  agreed(): Agreed {
    return {
      structured: this.structured,
      fastZero: (this.advertised & TxFlag.SEND_FAST_ZERO) !== 0,
      allocationContext: this.allocation ? ALLOCATION_CONTEXT_ID : null,
    };
  }

  /**
   * LIST_META_CONTEXT / SET_META_CONTEXT. LIST names base:allocation for no query, "base:" or
   * itself; SET selects it only by its full name and replaces any earlier selection (even when
   * refused, so a client never keeps a selection it cannot see). Unknown contexts are left out.
   */
  private metaContext(option: number, data: Buffer): void {
    const set = option === Opt.SET_META_CONTEXT;
    if (set) this.allocation = false;
    if (set && !this.structured) {
      this.send(encodeOptionError(option, Rep.ERR_INVALID, `${optName(option)} needs structured replies negotiated first`));
      return;
    }
    let req;
    try {
      req = parseMetaContextRequest(data);
    } catch (err) {
      this.send(encodeOptionError(option, Rep.ERR_INVALID, (err as Error).message));
      return;
    }
    if (!this.exportNameOk(req.name)) {
      this.send(this.unknownExport(option, req.name));
      return;
    }
    const matches = set ? req.queries.includes(BASE_ALLOCATION)
      : req.queries.length === 0 || req.queries.some((q) => q === BASE_ALLOCATION || q === 'base:');
    if (matches) this.send(encodeRepMetaContext(option, set ? ALLOCATION_CONTEXT_ID : 0, BASE_ALLOCATION));
    this.allocation = set && matches;
    this.send(encodeOptionAck(option));
  }

  /** Answer one option. */
  option(option: number, data: Buffer): OptionOutcome {
    this.log.debug('NBD option', { option: optName(option), length: data.length });
    switch (option) {
      case Opt.EXPORT_NAME: {
        const name = data.toString('utf8');
        if (!this.exportNameOk(name)) {
          this.log.warn('NBD client asked for an unknown export, dropping the connection', { export: peerText(name) });
          return 'drop';
        }
        this.send(encodeExportNameReply(this.target.size(), this.exportFlags(), this.noZeroes));
        return 'transmission';
      }
      case Opt.ABORT:
        this.send(encodeOptionAck(option));
        return 'end';
      case Opt.LIST:
        if (data.length !== 0) {
          this.send(encodeOptionError(option, Rep.ERR_INVALID, 'NBD_OPT_LIST takes no data'));
          return 'options';
        }
        this.send(encodeRepServer(option, this.target.name));
        this.send(encodeOptionAck(option));
        return 'options';
      case Opt.INFO:
      case Opt.GO: {
        let info;
        try {
          info = parseInfoRequest(data);
        } catch (err) {
          this.send(encodeOptionError(option, Rep.ERR_INVALID, (err as Error).message));
          return 'options';
        }
        if (!this.exportNameOk(info.name)) {
          this.send(this.unknownExport(option, info.name));
          return 'options';
        }
        this.send(encodeInfoExport(option, this.target.size(), option === Opt.GO ? this.exportFlags() : this.txFlags()));
        this.send(encodeInfoBlockSize(option, BLOCK_MIN, BLOCK_PREFERRED, BLOCK_MAX));
        if (info.infos.includes(Info.NAME)) this.send(encodeInfoName(option, this.target.name));
        // Unknown info requests (and DESCRIPTION, which we do not have) are ignored.
        this.send(encodeOptionAck(option));
        return option === Opt.GO ? 'transmission' : 'options';
      }
      case Opt.STRUCTURED_REPLY:
        if (data.length !== 0) {
          this.send(encodeOptionError(option, Rep.ERR_INVALID, 'NBD_OPT_STRUCTURED_REPLY takes no data'));
        } else if (this.structured) {
          this.send(encodeOptionError(option, Rep.ERR_INVALID, 'structured replies already negotiated'));
        } else {
          this.structured = true;
          this.send(encodeOptionAck(option));
        }
        return 'options';
      case Opt.LIST_META_CONTEXT:
      case Opt.SET_META_CONTEXT:
        this.metaContext(option, data);
        return 'options';
      default:
        this.send(encodeOptionError(option, Rep.ERR_UNSUP, `${optName(option)} is not supported by this server`));
        return 'options';
    }
  }
}
