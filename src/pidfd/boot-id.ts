import { readFileSync } from 'node:fs';

let cached: string | undefined;

/** This boot's id: 32 lowercase hex digits without dashes, as systemd's Varlink `ProcessId.bootId`. */
export function bootId(): string {
  cached ??= readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim().replaceAll('-', '').toLowerCase();
  return cached;
}
