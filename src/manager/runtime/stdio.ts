/**
 * A spawned process's standard fds: /dev/null, files, or pipes into the log store (StandardInput=,
 * StandardOutput=, StandardError=). Our copies of the child's ends are closed right after the spawn.
 */
import { closeSync, mkdirSync, openSync, constants as fsConstants } from 'node:fs';
import { dirname } from 'node:path';
import type { ServiceSection } from '../../unit/index.js';
import type { CaptureHandle, OutputSink } from '../manager.js';

/** The child's standard fds for one spawn, and what to do around the spawn. */
export interface SpawnIo {
  readonly fds: (number | null)[];
  /** Called right after the spawn attempt, success or not (closes our copies of the child's ends). */
  afterSpawn(): void;
  /** Called with the new process, so its output is attributed to it. */
  attach(writer: { pid: number; pidfdId: bigint | null }): void;
}

/** Hands a capture's read ends to whoever keeps them across a daemon crash; returns how to name the writer later. */
export type HoldCapture = (capture: CaptureHandle) => (writer: { pid: number; pidfdId: bigint | null }) => void;

/** Linux's O_CLOEXEC: fds the daemon opens must not leak into other services. */
const O_CLOEXEC = 0o2000000;

/** Opens the fds one spawn of `unit` needs. */
export function makeIo(unit: string, invocationId: string | null, service: ServiceSection, logs: OutputSink, hold: HoldCapture): SpawnIo {
  const opened: number[] = [];
  const openFile = (path: string, flags: number): number => {
    mkdirSync(dirname(path), { recursive: true });
    const fd = openSync(path, flags | O_CLOEXEC, 0o644);
    opened.push(fd);
    return fd;
  };
  const closeOurs = (): void => {
    capture?.closeWriteEnds();
    for (const fd of opened.splice(0)) closeSync(fd);
  };
  let capture: CaptureHandle | undefined;
  try {
    const devNull = (): number => openFile('/dev/null', fsConstants.O_RDWR);
    const stdin = service.standardInput.type === 'file' ? openFile(service.standardInput.path, fsConstants.O_RDONLY) : devNull();
    const wantLog = service.standardOutput.type === 'log' || service.standardError.type === 'log';
    capture = wantLog
      ? logs.capture(unit, {
          invocationId,
          stdout: service.standardOutput.type === 'log',
          stderr: service.standardError.type === 'log' || (service.standardError.type === 'inherit' && service.standardOutput.type === 'log'),
        })
      : undefined;
    const target = (spec: ServiceSection['standardOutput'], captured: number | null | undefined): number => {
      switch (spec.type) {
        case 'log':
          return captured!;
        case 'null':
          return devNull();
        case 'file':
          return openFile(spec.path, fsConstants.O_WRONLY | fsConstants.O_CREAT);
        case 'append':
          return openFile(spec.path, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_APPEND);
        case 'truncate':
          return openFile(spec.path, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_TRUNC);
      }
    };
    const rehold = capture === undefined ? undefined : hold(capture);
    const stdout = target(service.standardOutput, capture?.stdoutFd);
    // StandardError=inherit means "where stdout goes"; into the log it goes through its own pipe, so lines keep their stream.
    const stderr =
      service.standardError.type === 'inherit'
        ? service.standardOutput.type === 'log'
          ? capture!.stderrFd!
          : stdout
        : target(service.standardError, capture?.stderrFd);
    const attached = capture;
    return {
      fds: [stdin, stdout, stderr],
      afterSpawn: closeOurs,
      attach(writer) {
        attached?.attach(writer);
        rehold?.(writer);
      },
    };
  } catch (error) {
    closeOurs();
    throw error;
  }
}
