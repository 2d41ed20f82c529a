import { styleText } from 'node:util';

type Style = Parameters<typeof styleText>[0];

/** Colours text only when the stream is a terminal and NO_COLOR is unset. */
export function paint(style: Style, text: string, stream: NodeJS.WriteStream = process.stdout): string {
  if (!stream.isTTY || process.env['NO_COLOR'] !== undefined) return text;
  return styleText(style, text);
}

/** One line a person understands, from any thrown value. */
export function formatError(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as NodeJS.ErrnoException).code;
    const message = error.message.replace(/\s+/g, ' ').trim();
    return code !== undefined && !message.includes(code) ? `${message} (${code})` : message;
  }
  return String(error);
}

/** Writes a value as JSON on one line, bigints as numbers (ids are u64 but JSON has no bigint). */
export function printJson(value: unknown): void {
  process.stdout.write(toJson(value) + '\n');
}

/** JSON text in which bigints appear as plain integers, the form systemd's Varlink uses for ids. */
export function toJson(value: unknown, indent?: number): string {
  const marker = '@@holdfast-bigint@@';
  const text = JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? marker + v.toString() : v), indent);
  return text.replace(new RegExp(`"${marker}(\\d+)"`, 'g'), '$1');
}
