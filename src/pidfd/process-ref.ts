import { bootId } from './boot-id.js';
import { errnoError } from './errors.js';
import { parsePidfdId, Pidfd } from './pidfd.js';

/** The JSON form, identical to systemd's Varlink `ProcessId`: `{"pid": 1234, "pidfdId": 5678, "bootId": "…"}`. */
export interface ProcessIdJson {
  pid: number;
  pidfdId?: number;
  bootId?: string;
}

const BOOT_ID = /^[0-9a-f]{32}$/;

/**
 * A reference to a process that can leave this machine: boot id + PID + pidfd id. Within the
 * boot it names, no two processes ever share it. Turn it back into a handle with {@link ProcessRef.resolve}.
 */
export class ProcessRef {
  /** The PID. */
  readonly pid: number;
  /** The pidfs inode id, when known. */
  readonly pidfdId: bigint | undefined;
  /** 32 lowercase hex digits; present only together with `pidfdId`, as in systemd. */
  readonly bootId: string | undefined;

  constructor(pid: number, pidfdId?: bigint, bootIdValue?: string) {
    if (!Number.isSafeInteger(pid) || pid < 0) throw errnoError('EINVAL', `not a PID: ${String(pid)}`);
    this.pid = pid;
    this.pidfdId = pidfdId;
    this.bootId = pidfdId === undefined ? undefined : (bootIdValue ?? bootId());
  }

  /** The reference of an open handle, on this boot. */
  static of(handle: Pidfd): ProcessRef {
    return new ProcessRef(handle.pid, handle.id, bootId());
  }

  /**
   * Parses what systemd's `ProcessId` parser accepts: the object form (`pid` required,
   * `pidfdId` and `bootId` optional), a bare integer, or a numeric string. `bootId` may carry
   * dashes (UUID form). Throws `EINVAL` with the reason otherwise.
   */
  static parse(value: unknown): ProcessRef {
    if (typeof value === 'number') return new ProcessRef(checkPid(value));
    if (typeof value === 'string') {
      if (!/^\d+$/.test(value.trim())) throw errnoError('EINVAL', `not a PID: ${JSON.stringify(value)}`);
      return new ProcessRef(checkPid(Number(value.trim())));
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw errnoError('EINVAL', 'a ProcessId is an object {pid, pidfdId?, bootId?}, an integer or a numeric string');
    }
    const record = value as Record<string, unknown>;
    for (const key of Object.keys(record)) {
      if (key !== 'pid' && key !== 'pidfdId' && key !== 'bootId') throw errnoError('EINVAL', `unknown field in ProcessId: ${key}`);
    }
    const pid = record['pid'];
    if (typeof pid !== 'number') throw errnoError('EINVAL', 'ProcessId.pid must be an integer');
    let id: bigint | undefined;
    const rawId = record['pidfdId'];
    if (rawId !== undefined && rawId !== null) {
      if (typeof rawId !== 'number' && typeof rawId !== 'bigint' && typeof rawId !== 'string') {
        throw errnoError('EINVAL', 'ProcessId.pidfdId must be an integer');
      }
      id = parsePidfdId(rawId);
    }
    let boot: string | undefined;
    const rawBoot = record['bootId'];
    if (rawBoot !== undefined && rawBoot !== null) {
      if (typeof rawBoot !== 'string') throw errnoError('EINVAL', 'ProcessId.bootId must be a string');
      boot = rawBoot.replaceAll('-', '').toLowerCase();
      if (!BOOT_ID.test(boot)) throw errnoError('EINVAL', `ProcessId.bootId is not a 128-bit id: ${rawBoot}`);
    }
    if (boot !== undefined && id === undefined) {
      // Without an id the boot id adds nothing a PID can be checked against.
      boot = undefined;
    }
    return new ProcessRef(checkPid(pid), id, boot ?? (id === undefined ? undefined : bootId()));
  }

  /**
   * Parses the shell form `PID[:PIDFDID[:BOOTID]]` (what {@link ProcessRef.toString} prints), or
   * JSON text in any form {@link ProcessRef.parse} accepts.
   */
  static fromString(text: string): ProcessRef {
    const trimmed = text.trim();
    if (trimmed.startsWith('{')) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(trimmed.replace(/("pidfdId"\s*:\s*)(\d{16,})/, '$1"$2"'));
      } catch {
        throw errnoError('EINVAL', `not a process reference: ${text}`);
      }
      return ProcessRef.parse(parsed);
    }
    const match = /^(\d+)(?::(\d+)(?::([0-9a-fA-F-]{32,36}))?)?$/.exec(trimmed);
    if (match === null) throw errnoError('EINVAL', `not a process reference (PID[:PIDFDID[:BOOTID]]): ${text}`);
    const [, pid, id, boot] = match;
    return ProcessRef.parse({ pid: Number(pid), ...(id === undefined ? {} : { pidfdId: id }), ...(boot === undefined ? {} : { bootId: boot }) });
  }

  /** True unless the reference names another boot (or machine). */
  isLocal(): boolean {
    return this.bootId === undefined || this.bootId === bootId();
  }

  /**
   * A verified handle to the process. `EREMOTE` when the reference is of another boot (nothing is
   * opened), `ESTALE` when the PID was recycled, `ESRCH` when the process is gone. A reference
   * without an id gives an unverified handle (`verified: false`).
   */
  resolve(): Pidfd {
    if (!this.isLocal()) {
      throw errnoError('EREMOTE', `process ${this.pid} belongs to boot ${this.bootId}, not this one (${bootId()})`);
    }
    if (this.pid === 0) throw errnoError('EINVAL', 'PID 0 means "the caller" and only resolves on a connection');
    return this.pidfdId === undefined ? Pidfd.open(this.pid) : Pidfd.verify(this.pid, this.pidfdId);
  }

  /** The `ProcessId` JSON object. Ids are small in practice; beyond 2^53 JSON numbers lose precision, so use {@link ProcessRef.toJSONText}. */
  toJSON(): ProcessIdJson {
    if (this.pidfdId === undefined) return { pid: this.pid };
    return { pid: this.pid, pidfdId: Number(this.pidfdId), bootId: this.bootId ?? bootId() };
  }

  /** The `ProcessId` JSON text with the id written exactly, whatever its size. */
  toJSONText(): string {
    if (this.pidfdId === undefined) return `{"pid":${this.pid}}`;
    return `{"pid":${this.pid},"pidfdId":${this.pidfdId},"bootId":"${this.bootId ?? bootId()}"}`;
  }

  /** The shell form `PID:PIDFDID:BOOTID` (just `PID` when there is no id). */
  toString(): string {
    return this.pidfdId === undefined ? String(this.pid) : `${this.pid}:${this.pidfdId}:${this.bootId ?? bootId()}`;
  }

  /** Same process: same PID, and same id and boot where both sides have them. */
  equals(other: ProcessRef): boolean {
    if (this.pid !== other.pid) return false;
    if (this.pidfdId === undefined || other.pidfdId === undefined) return true;
    return this.pidfdId === other.pidfdId && this.bootId === other.bootId;
  }
}

function checkPid(pid: number): number {
  if (!Number.isSafeInteger(pid) || pid < 0 || pid > 0x3fffffff) throw errnoError('EINVAL', `not a PID: ${String(pid)}`);
  return pid;
}
