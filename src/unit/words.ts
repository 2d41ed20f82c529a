/**
 * Splitting a value into words the way systemd does (its `extract_first_word()`): quotes, C escapes,
 * separators. Work is done on UTF-8 bytes because `\xNN` and `\nnn` insert raw bytes, which only make
 * sense once the whole word is reassembled.
 */

/** systemd's WHITESPACE set; note that it is narrower than JavaScript's `\s`. */
export const WHITESPACE = ' \t\n\r';

/** How to split. Every flag is off unless given. */
export interface ExtractOptions {
  /** Characters that end a word (default {@link WHITESPACE}). */
  readonly separators?: string;
  /** Remove `'…'` and `"…"` quoting; text inside quotes keeps its separators. */
  readonly unquote?: boolean;
  /** Decode C escapes (`\n`, `\x41`, `\u00e9`, …); without it a backslash just protects the next byte. */
  readonly cunescape?: boolean;
  /** Keep unknown escapes and a trailing backslash verbatim instead of failing. */
  readonly unescapeRelax?: boolean;
  /** Accept an unterminated quote or a trailing backslash by ending the word there. */
  readonly relax?: boolean;
  /** Treat a backslash as an ordinary character. */
  readonly retainEscape?: boolean;
  /** Each separator ends a word, so two in a row give an empty word. */
  readonly dontCoalesce?: boolean;
}

/** Why a word could not be extracted. */
export type ExtractError = 'escape' | 'quote' | 'backslash';

/** The outcome of one extraction. */
export type ExtractResult =
  | { readonly kind: 'word'; readonly word: string; readonly invalidUtf8: boolean }
  | { readonly kind: 'end' }
  | { readonly kind: 'error'; readonly error: ExtractError };

const BACKSLASH = 0x5c;
const SQUOTE = 0x27;
const DQUOTE = 0x22;

const strictDecoder = new TextDecoder('utf-8', { fatal: true });
const lossyDecoder = new TextDecoder('utf-8');

/** Decodes bytes as UTF-8, reporting rather than throwing on invalid input. */
export function decodeUtf8(bytes: Uint8Array): { text: string; valid: boolean } {
  try {
    return { text: strictDecoder.decode(bytes), valid: true };
  } catch {
    return { text: lossyDecoder.decode(bytes), valid: false };
  }
}

function hexValue(c: number | undefined): number {
  if (c === undefined) return -1;
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  return -1;
}

function octValue(c: number | undefined): number {
  return c !== undefined && c >= 0x30 && c <= 0x37 ? c - 0x30 : -1;
}

/** Whether systemd accepts a code point from a `\U` escape (it rejects surrogates and non-characters). */
export function unicharIsValid(ch: number): boolean {
  if (ch >= 0x110000) return false;
  if ((ch & 0xfffff800) === 0xd800) return false;
  if (ch >= 0xfdd0 && ch <= 0xfdef) return false;
  if ((ch & 0xfffe) === 0xfffe) return false;
  return true;
}

function pushUtf8(out: number[], cp: number): void {
  // Encoded by hand so that a lone surrogate from `\uD800` stays as the (invalid) bytes systemd would
  // produce, which the caller then reports, instead of silently becoming U+FFFD here.
  if (cp < 0x80) out.push(cp);
  else if (cp < 0x800) out.push(0xc0 | (cp >> 6), 0x80 | (cp & 0x3f));
  else if (cp < 0x10000) out.push(0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f));
  else out.push(0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 0x3f), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f));
}

/**
 * Decodes one C escape whose letter is at `b[i]` (the byte after the backslash). Returns how many
 * bytes it used, or 0 when the escape is not one systemd knows.
 */
function cunescapeOne(b: Uint8Array, i: number, out: number[]): number {
  const c = b[i];
  switch (c) {
    case 0x61: out.push(0x07); return 1; // a
    case 0x62: out.push(0x08); return 1; // b
    case 0x66: out.push(0x0c); return 1; // f
    case 0x6e: out.push(0x0a); return 1; // n
    case 0x72: out.push(0x0d); return 1; // r
    case 0x74: out.push(0x09); return 1; // t
    case 0x76: out.push(0x0b); return 1; // v
    case BACKSLASH: out.push(BACKSLASH); return 1;
    case DQUOTE: out.push(DQUOTE); return 1;
    case SQUOTE: out.push(SQUOTE); return 1;
    case 0x73: out.push(0x20); return 1; // s
    case 0x78: { // x: one raw byte
      const a = hexValue(b[i + 1]);
      const d = hexValue(b[i + 2]);
      if (a < 0 || d < 0 || (a === 0 && d === 0)) return 0;
      out.push((a << 4) | d);
      return 3;
    }
    case 0x75: { // u: 16-bit code point
      let v = 0;
      for (let k = 1; k <= 4; k++) {
        const h = hexValue(b[i + k]);
        if (h < 0) return 0;
        v = (v << 4) | h;
      }
      if (v === 0) return 0;
      pushUtf8(out, v);
      return 5;
    }
    case 0x55: { // U: 32-bit code point
      let v = 0;
      for (let k = 1; k <= 8; k++) {
        const h = hexValue(b[i + k]);
        if (h < 0) return 0;
        v = v * 16 + h;
      }
      if (v === 0 || !unicharIsValid(v)) return 0;
      pushUtf8(out, v);
      return 9;
    }
    default: {
      const a = octValue(c);
      if (a < 0) return 0;
      const d = octValue(b[i + 1]);
      const e = octValue(b[i + 2]);
      if (d < 0 || e < 0) return 0;
      const v = (a << 6) | (d << 3) | e;
      if (v === 0 || v > 255) return 0;
      out.push(v);
      return 3;
    }
  }
}

/**
 * A cursor over a value that hands out one word at a time, so that callers such as the `Exec*=` parser
 * can look at the raw text between words (a lone `;` separates commands there).
 */
export class WordReader {
  private readonly bytes: Uint8Array;
  /** Byte offset of the next unread byte; -1 once the input is used up. */
  private pos = 0;

  constructor(text: string) {
    this.bytes = Buffer.from(text, 'utf8');
  }

  /** True when nothing but the end is left (systemd's `isempty(p)`). */
  get done(): boolean {
    return this.pos < 0 || this.pos >= this.bytes.length;
  }

  /** The raw byte `offset` bytes ahead, or undefined past the end. */
  peek(offset = 0): number | undefined {
    if (this.pos < 0) return undefined;
    return this.bytes[this.pos + offset];
  }

  /** Moves forward `n` bytes, then past any whitespace. */
  skip(n: number): void {
    if (this.pos < 0) return;
    this.pos += n;
    while (this.pos < this.bytes.length && WHITESPACE.includes(String.fromCharCode(this.bytes[this.pos]!))) this.pos++;
  }

  /** The unread rest of the input, undecoded escapes and all. */
  rest(): string {
    if (this.done) return '';
    return decodeUtf8(this.bytes.subarray(this.pos)).text;
  }

  /** Extracts the next word; on error the cursor is left where it was, so a caller may retry. */
  next(options: ExtractOptions = {}): ExtractResult {
    const start = this.pos;
    const result = this.extract(options);
    if (result.kind === 'error') this.pos = start;
    return result;
  }

  /**
   * Like {@link next}, but first strictly and then, if only an escape was bad, again keeping unknown
   * escapes verbatim; `relaxedEscapes` says the second attempt was needed (systemd warns about it).
   */
  nextLenient(options: ExtractOptions = {}): ExtractResult & { relaxedEscapes?: boolean } {
    const first = this.next(options);
    if (first.kind !== 'error' || options.unescapeRelax) return first;
    const second = this.next({ ...options, unescapeRelax: true });
    if (second.kind === 'word') return { ...second, relaxedEscapes: true };
    return second.kind === 'error' ? second : first;
  }

  private extract(o: ExtractOptions): ExtractResult {
    const b = this.bytes;
    const seps = o.separators ?? WHITESPACE;
    const isSep = (c: number): boolean => c < 0x80 && seps.includes(String.fromCharCode(c));
    if (this.pos < 0) return { kind: 'end' };

    const out: number[] = [];
    let haveWord = o.dontCoalesce === true;
    const finishWord = (): ExtractResult => {
      const { text, valid } = decodeUtf8(Uint8Array.from(out));
      return { kind: 'word', word: text, invalidUtf8: !valid };
    };
    const terminate = (): ExtractResult => {
      this.pos = -1;
      return haveWord ? finishWord() : { kind: 'end' };
    };

    for (;; this.pos++) {
      const c = b[this.pos];
      if (c === undefined) return terminate();
      if (isSep(c)) {
        if (o.dontCoalesce) {
          this.pos++;
          return finishWord();
        }
      } else {
        haveWord = true;
        break;
      }
    }

    let quote = 0;
    let backslash = false;
    for (;; this.pos++) {
      let c = b[this.pos];
      if (backslash) {
        if (c === undefined) {
          if (o.unescapeRelax && (quote === 0 || o.relax)) {
            out.push(BACKSLASH);
            return terminate();
          }
          if (o.relax) return terminate();
          return { kind: 'error', error: quote !== 0 ? 'quote' : 'backslash' };
        }
        if (o.cunescape) {
          const used = cunescapeOne(b, this.pos, out);
          if (used > 0) this.pos += used - 1;
          else if (o.unescapeRelax) out.push(BACKSLASH, c);
          else return { kind: 'error', error: 'escape' };
        } else {
          out.push(c);
        }
        backslash = false;
      } else if (quote !== 0) {
        for (;; this.pos++) {
          c = b[this.pos];
          if (c === undefined) {
            if (o.relax) return terminate();
            return { kind: 'error', error: 'quote' };
          }
          if (c === quote) {
            quote = 0;
            break;
          }
          if (c === BACKSLASH && !o.retainEscape) {
            backslash = true;
            break;
          }
          out.push(c);
        }
      } else {
        for (;; this.pos++) {
          c = b[this.pos];
          if (c === undefined) return terminate();
          if ((c === SQUOTE || c === DQUOTE) && o.unquote) {
            quote = c;
            break;
          }
          if (c === BACKSLASH && !o.retainEscape) {
            backslash = true;
            break;
          }
          if (isSep(c)) {
            if (o.dontCoalesce) {
              this.pos++;
              return finishWord();
            }
            for (;; this.pos++) {
              const d = b[this.pos];
              if (d === undefined) {
                this.pos = -1;
                return finishWord();
              }
              if (!isSep(d)) break;
            }
            return finishWord();
          }
          out.push(c);
        }
      }
    }
  }
}

/** Splits a whole value into words; stops at the first error and reports it. */
export function splitWords(text: string, options: ExtractOptions = {}): { words: string[]; error?: ExtractError; invalidUtf8: boolean } {
  const reader = new WordReader(text);
  const words: string[] = [];
  let invalidUtf8 = false;
  for (;;) {
    const r = reader.next(options);
    if (r.kind === 'end') return { words, invalidUtf8 };
    if (r.kind === 'error') return { words, error: r.error, invalidUtf8 };
    invalidUtf8 ||= r.invalidUtf8;
    words.push(r.word);
  }
}

/** systemd's `strstrip()`: trims only {@link WHITESPACE}, not every Unicode space. */
export function strip(text: string): string {
  let a = 0;
  let z = text.length;
  while (a < z && WHITESPACE.includes(text[a]!)) a++;
  while (z > a && WHITESPACE.includes(text[z - 1]!)) z--;
  return text.slice(a, z);
}
