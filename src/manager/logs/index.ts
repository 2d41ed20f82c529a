/** Per-unit log capture and storage. See docs/logs.md. */
export {
  LogStore,
  DEFAULT_MAX_FILE_BYTES,
  DEFAULT_MAX_ROTATED_FILES,
  DEFAULT_HIGH_WATER_BYTES,
  type LogStoreOptions,
  type LogStoreEvents,
  type AppendInput,
} from './store.js';
export type { ReadOptions } from './record-reader.js';
export { LogCapture, type CaptureOptions, type CaptureFromFdsOptions, type LogWriter } from './capture.js';
export { LineSplitter, DEFAULT_LINE_MAX } from './lines.js';
export { formatRecord, formatParts, formatTimestamp, escapeControl, type FormatOptions, type FormattedParts } from './format.js';
export { nowMicros } from './clock.js';
export type { LogRecord } from '../types.js';
