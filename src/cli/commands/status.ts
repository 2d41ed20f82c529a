/** Verbs that show units: status, list, show, is-active, is-failed. */
import { parseArgs } from 'node:util';
import type { UnitStatus } from '../../manager/types.js';
import type { Command } from '../command.js';
import { UsageError } from '../command.js';
import { clientOptions, explain, method, unitName, withDaemon } from '../client.js';
import { paint, printJson } from '../output.js';
import { formatLogLine, type LogLine } from './log-lines.js';

function dot(unit: UnitStatus): string {
  if (unit.activeState === 'active' || unit.activeState === 'reloading') return paint('green', '●');
  if (unit.activeState === 'failed' || unit.loadState === 'error') return paint('red', '×');
  if (unit.activeState === 'activating' || unit.activeState === 'deactivating') return paint('yellow', '●');
  return '○';
}

/** "3min 2s", "1h 5min", "12ms". */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`;
  const s = Math.floor(ms / 1000);
  const parts: string[] = [];
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (d > 0) parts.push(`${d}d`);
  if (h > 0) parts.push(`${h}h`);
  if (m > 0) parts.push(`${m}min`);
  if (sec > 0 && d === 0) parts.push(`${sec}s`);
  return parts.join(' ') || '0s';
}

/** "12.5M", "640K". */
function formatBytes(bytes: number): string {
  const units = ['B', 'K', 'M', 'G', 'T'];
  let value = bytes;
  let i = 0;
  while (value >= 1024 && i < units.length - 1) {
    value /= 1024;
    i++;
  }
  return `${i === 0 ? value : value.toFixed(1)}${units[i]}`;
}

function stateText(unit: UnitStatus): string {
  const state = `${unit.activeState} (${unit.subState})`;
  const colored = unit.activeState === 'active' ? paint('green', state) : unit.activeState === 'failed' ? paint('red', state) : state;
  const since = new Date(unit.stateChangeTimestamp);
  const result = unit.activeState === 'failed' ? ` (Result: ${unit.result})` : '';
  return `${colored}${result} since ${since.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC')}; ${formatDuration(Date.now() - unit.stateChangeTimestamp)} ago`;
}

/**
 * Tasks, memory, CPU time and the cgroup. In a unit's cgroup the kernel reports memory.current only
 * where the memory controller is enabled (and cpu.stat always): a figure that is missing is said to
 * be missing, and a daemon without cgroups says that nothing is measured or limited.
 */
function resourceLines(unit: UnitStatus): string[] {
  const lines: string[] = [];
  if (unit.cgroup !== undefined && unit.cgroup !== null) {
    if (unit.tasks !== undefined && unit.tasks !== null) lines.push(`      Tasks: ${unit.tasks}`);
    const memory = unit.memoryCurrent ?? null;
    lines.push(`     Memory: ${memory === null ? 'not measured (the memory controller is not enabled in holdfast\'s cgroups)' : formatBytes(memory)}`);
    const cpu = unit.cpuUsageUsec ?? null;
    lines.push(`        CPU: ${cpu === null ? 'not measured (no cpu.stat in the unit\'s cgroup)' : formatDuration(cpu / 1000)}`);
    lines.push(`     CGroup: ${unit.cgroup}`);
  } else if (unit.cgroupUnavailable !== undefined) {
    lines.push(`     CGroup: none (${unit.cgroupUnavailable}); processes are tracked by session`);
    lines.push('  Resources: not measured, and MemoryMax=, CPUQuota=, TasksMax= are not applied without cgroups');
  }
  return lines;
}

/** The status block, as readable as `systemctl status`. */
export function formatStatus(unit: UnitStatus, logs: LogLine[]): string {
  const lines = [`${dot(unit)} ${unit.name} - ${unit.description}`];
  if (unit.loadState === 'error') {
    lines.push(`     Loaded: ${paint('red', 'error')} (${unit.fragmentPath ?? 'no file'})`);
    for (const error of unit.loadErrors ?? []) lines.push(`             ${error}`);
    return lines.join('\n');
  }
  const source = unit.transient ? 'transient' : (unit.fragmentPath ?? '?');
  lines.push(`     Loaded: loaded (${source}; ${unit.enabled})`);
  for (const dropIn of unit.dropInPaths) lines.push(`    Drop-In: ${dropIn}`);
  lines.push(`     Active: ${stateText(unit)}`);
  if (unit.mainProcess !== null) {
    const id = unit.mainProcess.pidfdId === undefined ? '' : ` (pidfd id ${unit.mainProcess.pidfdId})`;
    lines.push(`   Main PID: ${unit.mainProcess.pid}${id}`);
  }
  if (unit.controlProcess !== null) lines.push(`    Control: ${unit.controlProcess.pid}${unit.controlProcess.pidfdId === undefined ? '' : ` (pidfd id ${unit.controlProcess.pidfdId})`}`);
  if (unit.statusText !== null) lines.push(`     Status: "${unit.statusText}"`);
  const exit = unit.lastExit === null ? 'none' : unit.lastExit.code !== null ? `code ${unit.lastExit.code}` : `signal ${unit.lastExit.signal}`;
  lines.push(`   Restarts: ${unit.restarts}; last exit: ${exit}`);
  if (unit.invocationId !== null) lines.push(` Invocation: ${unit.invocationId}`);
  lines.push(...resourceLines(unit));
  if (logs.length > 0) {
    lines.push('');
    for (const record of logs) lines.push(formatLogLine(unit.name, record));
  }
  return lines.join('\n');
}

async function fetchStatus(client: Parameters<Parameters<typeof withDaemon>[1]>[0], name: string): Promise<UnitStatus> {
  try {
    return (await client.call<{ unit: UnitStatus }>(method('Status'), { name })).unit;
  } catch (error) {
    explain(error, 4);
  }
}

export const status: Command = {
  name: 'status',
  summary: 'the state of units: main process with pidfd id, uptime, restarts, last log lines',
  usage: `Usage: holdfast status [-n LINES] [--json] [--socket PATH] [UNIT|PID|PID:PIDFDID...]

Without a unit, every unit. A PID shows the unit that process belongs to (the daemon checks the
PID against its pidfd just before answering). Exit codes as systemctl's: 0 all active; 3 a unit is not active;
4 no such unit.`,
  async run(args) {
    const { values, positionals } = parseArgs({ args, options: { ...clientOptions, lines: { type: 'string', short: 'n', default: '10' } }, allowPositionals: true });
    const lines = Number(values.lines);
    if (!Number.isInteger(lines) || lines < 0) throw new UsageError(`-n takes a number of lines, not ${values.lines}`);
    return withDaemon(values.socket, async (client) => {
      const units = positionals.length === 0 ? (await client.call<{ units: UnitStatus[] }>(method('List'), {})).units : [];
      for (const name of positionals) {
        if (/^\d+$/.test(name) || /^\d+:\d+/.test(name)) {
          // A PID (or PID:PIDFDID): the unit it belongs to, checked by the daemon against its pidfd.
          const [pid, id] = name.split(':');
          let owner: string;
          try {
            ({ unit: owner } = await client.call<{ unit: string }>(method('UnitByProcess'), { process: { pid: Number(pid), ...(id === undefined ? {} : { pidfdId: Number(id) }) } }));
          } catch (error) {
            explain(error, 4);
          }
          units.push(await fetchStatus(client, owner));
        } else {
          units.push(await fetchStatus(client, unitName(name)));
        }
      }
      if (values.json === true) {
        printJson(positionals.length === 1 ? units[0] : units);
      } else {
        const blocks: string[] = [];
        for (const unit of units) {
          const records = lines > 0 && unit.loadState === 'loaded' ? (await client.call<{ records: LogLine[] }>(method('Logs'), { name: unit.name, lines })).records : [];
          blocks.push(formatStatus(unit, records));
        }
        process.stdout.write(blocks.join('\n\n') + '\n');
      }
      return units.every((u) => u.activeState === 'active' || u.activeState === 'reloading') ? 0 : 3;
    });
  },
};

export const list: Command = {
  name: 'list',
  summary: 'a table of every unit',
  usage: 'Usage: holdfast list [--json] [--socket PATH]',
  async run(args) {
    const { values } = parseArgs({ args, options: clientOptions });
    return withDaemon(values.socket, async (client) => {
      const { units } = await client.call<{ units: UnitStatus[] }>(method('List'), {});
      if (values.json === true) {
        printJson(units);
        return 0;
      }
      const rows = units.map((u) => [
        `${dot(u)} ${u.name}`,
        u.loadState,
        u.activeState,
        u.subState,
        u.mainProcess === null ? '-' : `${u.mainProcess.pid}${u.mainProcess.pidfdId === undefined ? '' : `/${u.mainProcess.pidfdId}`}`,
        String(u.restarts),
        u.activeEnterTimestamp !== null && u.activeState === 'active' ? formatDuration(Date.now() - u.activeEnterTimestamp) : '-',
        u.description,
      ]);
      const header = ['  UNIT', 'LOAD', 'ACTIVE', 'SUB', 'PID/PIDFDID', '↺', 'UPTIME', 'DESCRIPTION'];
      // Widths ignore colour codes, so measure the uncoloured text.
      const plain = (s: string): string => s.replace(/\x1b\[[0-9;]*m/g, '');
      const widths = header.map((h, i) => Math.max(plain(h).length, ...rows.map((r) => plain(r[i]!).length)));
      const line = (cells: string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : c + ' '.repeat(widths[i]! - plain(c).length))).join('  ');
      process.stdout.write([line(header), ...rows.map(line)].join('\n') + `\n\n${units.length} unit(s).\n`);
      return 0;
    });
  },
};

export const show: Command = {
  name: 'show',
  summary: 'every property of a unit, KEY=VALUE (or --json)',
  usage: 'Usage: holdfast show [--json] [--socket PATH] UNIT',
  async run(args) {
    const { values, positionals } = parseArgs({ args, options: clientOptions, allowPositionals: true });
    if (positionals.length !== 1) throw new UsageError('show takes one unit');
    return withDaemon(values.socket, async (client) => {
      const unit = await fetchStatus(client, unitName(positionals[0]!));
      if (values.json === true) printJson(unit);
      else {
        for (const [key, value] of Object.entries(unit)) {
          const text = value === null ? '' : typeof value === 'object' ? JSON.stringify(value) : String(value);
          process.stdout.write(`${key[0]!.toUpperCase()}${key.slice(1)}=${text}\n`);
        }
      }
      return 0;
    });
  },
};

function checkVerb(name: 'is-active' | 'is-failed'): Command {
  return {
    name,
    summary: name === 'is-active' ? 'exit 0 if every unit is active, else 3' : 'exit 0 if a unit has failed, else 1',
    usage: `Usage: holdfast ${name} [--quiet] [--socket PATH] UNIT...\n\nPrints each unit's ActiveState unless --quiet.`,
    async run(args) {
      const { values, positionals } = parseArgs({ args, options: { ...clientOptions, quiet: { type: 'boolean', short: 'q' } }, allowPositionals: true });
      if (positionals.length === 0) throw new UsageError(`${name} needs a unit`);
      return withDaemon(values.socket, async (client) => {
        const states: string[] = [];
        for (const n of positionals) {
          try {
            states.push((await client.call<{ unit: UnitStatus }>(method('Status'), { name: unitName(n) })).unit.activeState);
          } catch {
            states.push('inactive');
          }
        }
        if (values.quiet !== true) process.stdout.write(states.join('\n') + '\n');
        if (name === 'is-active') return states.every((s) => s === 'active' || s === 'reloading') ? 0 : 3;
        return states.some((s) => s === 'failed') ? 0 : 1;
      });
    },
  };
}

export const isActive = checkVerb('is-active');
export const isFailed = checkVerb('is-failed');
