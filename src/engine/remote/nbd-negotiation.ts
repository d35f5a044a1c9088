// NBD option negotiation for one client (fixed newstyle with NO_ZEROES): the greeting, the client
// flags, and the options GO, INFO, LIST, EXPORT_NAME, ABORT, STRUCTURED_REPLY; every other option
// (EXTENDED_HEADERS, STARTTLS, meta contexts, …) → NBD_REP_ERR_UNSUP. It only decides and encodes:
// the connection owns the socket and acts on the outcome of each option.
import type { BlockTarget } from './target.js';
import type { Logger } from '../../util/log.js';
import { peerText } from '../../util/escape.js';
import { ClientFlag, HandshakeFlag, Info, MAX_PAYLOAD, Opt, Rep, TxFlag, optName } from '../../protocol/nbd.js';
import {
  encodeExportNameReply, encodeGreeting, encodeInfoBlockSize, encodeInfoExport, encodeInfoName, encodeOptionAck,
  encodeOptionError, encodeRepServer, parseInfoRequest,
} from '../../protocol/nbd-options.js';

// Block sizes: minimum 1 (the target is byte-addressed), preferred 4096, maximum 32 MiB; sent
// in every INFO/GO reply (the spec lets the server send them unasked).
export const BLOCK_MIN = 1;
export const BLOCK_PREFERRED = 4096;
export const BLOCK_MAX = MAX_PAYLOAD;

/**
 * What the connection does after an option: keep negotiating, enter transmission, end the
 * socket gracefully (ABORT), or drop it at once (a client we cannot serve).
 */
export type OptionOutcome = 'options' | 'transmission' | 'end' | 'drop';

export class NbdNegotiation {
  /** structured replies agreed (they apply to the whole transmission phase) */
  structured = false;
  private noZeroes = false;

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

  /**
   * CAN_MULTI_CONN holds: every connection submits to the same target (one transaction table, one
   * export), a WRITE is answered only once the export has it, and the export's FLUSH is one
   * fdatasync of the whole file, so a flush on any connection covers writes answered on all.
   */
  private txFlags(): number {
    let f = TxFlag.HAS_FLAGS | TxFlag.SEND_FLUSH | TxFlag.SEND_FUA | TxFlag.SEND_TRIM | TxFlag.SEND_WRITE_ZEROES | TxFlag.CAN_MULTI_CONN;
    if (!this.target.permissions().includes('w')) f |= TxFlag.READ_ONLY;
    return f;
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
        this.send(encodeExportNameReply(this.target.size(), this.txFlags(), this.noZeroes));
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
          this.send(encodeOptionError(option, Rep.ERR_UNKNOWN, `unknown export "${peerText(info.name)}"; this server has "${this.target.name}"`));
          return 'options';
        }
        this.send(encodeInfoExport(option, this.target.size(), this.txFlags()));
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
      default:
        this.send(encodeOptionError(option, Rep.ERR_UNSUP, `${optName(option)} is not supported by this server`));
        return 'options';
    }
  }
}
