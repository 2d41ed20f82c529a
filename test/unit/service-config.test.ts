import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatDiagnostic, parseServiceUnit, parseServiceUnitText, RLIMIT_NAMES, type ParseResult, type ServiceUnitConfig } from '../../src/unit/index.js';
import { HOST, USER_HOST } from './fixtures.js';

const FILE = '/etc/holdfast/units/app.service';

function parse(body: string, unitName = 'app.service', host = HOST): ParseResult {
  return parseServiceUnitText(body, FILE, { unitName, host });
}

/** Parses `[Service]` lines after a working ExecStart=; the unit must load. */
function service(lines: string[], extra = ''): ServiceUnitConfig['service'] {
  return load(['[Service]', 'ExecStart=/bin/true', ...lines].join('\n') + '\n' + extra).service;
}

function load(body: string, unitName = 'app.service', host = HOST): ServiceUnitConfig {
  const r = parse(body, unitName, host);
  assert.deepEqual(r.diagnostics.filter((d) => d.severity === 'error').map(formatDiagnostic), []);
  assert.ok(r.config);
  return r.config;
}

/** `LINE severity message` of every diagnostic. */
function diags(body: string, unitName = 'app.service'): string[] {
  return parse(body, unitName).diagnostics.map((d) => `${d.line} ${d.severity} ${d.message}`);
}

describe('defaults', () => {
  it('fills in systemd defaults for a minimal service', () => {
    const c = load('[Service]\nExecStart=/usr/bin/app\n');
    const s = c.service;
    assert.equal(c.name, 'app.service');
    assert.deepEqual(c.names, ['app.service']);
    assert.equal(c.fragmentPath, FILE);
    assert.deepEqual(c.dropInPaths, []);
    assert.equal(s.type, 'simple');
    assert.equal(s.restart, 'no');
    assert.equal(s.restartMs, 100);
    assert.equal(s.restartSteps, 0);
    assert.equal(s.restartMaxDelayMs, Infinity);
    assert.equal(s.timeoutStartMs, 90_000);
    assert.equal(s.timeoutStopMs, 90_000);
    assert.equal(s.timeoutAbortMs, 90_000);
    assert.equal(s.runtimeMaxMs, Infinity);
    assert.equal(s.watchdogMs, 0);
    assert.equal(s.notifyAccess, 'none');
    assert.equal(s.killMode, 'control-group');
    assert.deepEqual([s.killSignal, s.restartKillSignal, s.finalKillSignal, s.watchdogSignal, s.reloadSignal], [15, 15, 9, 6, 1]);
    assert.deepEqual([s.sendSigkill, s.sendSighup, s.remainAfterExit, s.guessMainPid], [true, false, false, true]);
    assert.equal(s.umask, 0o022);
    assert.deepEqual(s.standardInput, { type: 'null' });
    assert.deepEqual(s.standardOutput, { type: 'log' });
    assert.deepEqual(s.standardError, { type: 'inherit' });
    assert.deepEqual(s.workingDirectory, { type: 'path', path: '/', missingOk: false });
    assert.deepEqual(s.successExitStatus, { codes: [], signals: [] });
    assert.deepEqual(s.limits, {});
    assert.equal(s.memoryMax, Infinity);
    assert.equal(s.user, undefined);
    assert.equal(s.cpuQuotaPercent, undefined);
    assert.equal(c.unit.startLimitIntervalMs, 10_000);
    assert.equal(c.unit.startLimitBurst, 5);
    assert.equal(c.unit.defaultDependencies, true);
  });

  it('starts a per-user service in the home directory', () => {
    assert.deepEqual(load('[Service]\nExecStart=/bin/true\n', 'app.service', USER_HOST).service.workingDirectory, { type: 'home', missingOk: false });
  });

  it('makes a service without ExecStart= a oneshot without start timeout', () => {
    const s = load('[Service]\nExecStop=/bin/true\nRemainAfterExit=yes\n').service;
    assert.equal(s.type, 'oneshot');
    assert.equal(s.timeoutStartMs, Infinity);
    assert.equal(load('[Service]\nType=oneshot\nExecStart=/bin/true\nTimeoutStartSec=10\n').service.timeoutStartMs, 10_000);
  });

  it('raises NotifyAccess= to main for notify services and watchdogs, but keeps an explicit value', () => {
    assert.equal(service(['Type=notify']).notifyAccess, 'main');
    assert.equal(service(['Type=notify-reload']).notifyAccess, 'main');
    assert.equal(service(['WatchdogSec=5']).notifyAccess, 'main');
    assert.equal(service(['Type=notify', 'NotifyAccess=all']).notifyAccess, 'all');
    assert.equal(service(['NotifyAccess=exec']).notifyAccess, 'exec');
  });
});

describe('[Service] Type=', () => {
  it('accepts the supported types', () => {
    for (const t of ['simple', 'exec', 'forking', 'oneshot', 'notify', 'notify-reload'] as const) assert.equal(service([`Type=${t}`]).type, t);
  });

  it('reads idle as simple with a warning and refuses dbus', () => {
    assert.deepEqual(diags('[Service]\nExecStart=/bin/true\nType=idle\n'), ['3 warning Type=idle is treated as Type=simple by holdfast (it has no console to keep quiet).']);
    assert.equal(service(['Type=idle']).type, 'simple');
    const r = parse('[Service]\nExecStart=/bin/true\nType=dbus\nBusName=org.example\n');
    assert.equal(r.config, undefined);
    assert.deepEqual(r.diagnostics.map(formatDiagnostic), [
      `${FILE}:3: Type=dbus is not supported by holdfast (it does not watch D-Bus names); use Type=notify or Type=exec.`,
      `${FILE}:4: BusName= is not supported by holdfast, ignoring.`,
    ]);
    assert.deepEqual(diags('[Service]\nExecStart=/bin/true\nType=fast\n'), ["3 error Invalid Type=: 'fast' is not one of simple, exec, forking, oneshot, notify, notify-reload"]);
  });
});

describe('[Service] commands', () => {
  it('collects each Exec*= list and resets it on an empty assignment', () => {
    const s = load(
      [
        '[Service]',
        'ExecCondition=/bin/test -f /x',
        'ExecStartPre=/bin/a',
        'ExecStartPre=-/bin/b',
        'ExecStart=/bin/old',
        'ExecStart=',
        'ExecStart=/bin/main --flag',
        'ExecStartPost=/bin/post',
        'ExecReload=/bin/kill -HUP $MAINPID',
        'ExecStop=/bin/stop',
        'ExecStopPost=/bin/cleanup',
        'ExecStopPost=',
      ].join('\n'),
    ).service;
    const argv = (l: readonly { argv: readonly string[] }[]) => l.map((c) => c.argv.join(' '));
    assert.deepEqual(argv(s.execCondition), ['/bin/test -f /x']);
    assert.deepEqual(argv(s.execStartPre), ['/bin/a', '/bin/b']);
    assert.equal(s.execStartPre[1]!.ignoreFailure, true);
    assert.deepEqual(argv(s.execStart), ['/bin/main --flag']);
    assert.equal(s.execStart[0]!.source.line, 7);
    assert.deepEqual(argv(s.execStartPost), ['/bin/post']);
    assert.deepEqual(argv(s.execReload), ['/bin/kill -HUP $MAINPID']);
    assert.deepEqual(argv(s.execStop), ['/bin/stop']);
    assert.deepEqual(argv(s.execStopPost), []);
  });

  it('refuses a second ExecStart= unless the service is a oneshot', () => {
    assert.deepEqual(diags('[Service]\nExecStart=/bin/a\nExecStart=/bin/b\n'), [
      '3 error Service has more than one ExecStart= command, which is only allowed for Type=oneshot services. Refusing.',
    ]);
    assert.equal(load('[Service]\nType=oneshot\nExecStart=/bin/a\nExecStart=/bin/b\n').service.execStart.length, 2);
  });

  it('refuses a service that has nothing to run', () => {
    assert.deepEqual(diags('[Unit]\nDescription=x\n[Service]\nType=simple\n'), ['3 error Service has no ExecStart= and no ExecStop= setting. Refusing.']);
    assert.deepEqual(diags('[Service]\nType=simple\nExecStop=/bin/x\n'), ['1 error Service has no ExecStart= setting, which is only allowed for Type=oneshot services. Refusing.']);
    assert.deepEqual(diags('[Service]\nExecStop=/bin/x\n'), ['1 error Service has no ExecStart= setting and does not have RemainAfterExit=yes. Refusing.']);
    assert.deepEqual(diags(''), ['1 error Service has no ExecStart= and no ExecStop= setting. Refusing.']);
  });
});

describe('[Service] restart', () => {
  it('reads the restart settings', () => {
    for (const r of ['no', 'on-success', 'on-failure', 'on-abnormal', 'on-watchdog', 'on-abort', 'always'] as const) assert.equal(service([`Restart=${r}`]).restart, r);
    const s = service(['RestartSec=1min 30s', 'RestartSteps=5', 'RestartMaxDelaySec=10min']);
    assert.deepEqual([s.restartMs, s.restartSteps, s.restartMaxDelayMs], [90_000, 5, 600_000]);
  });

  it('lowers RestartSec= to RestartMaxDelaySec= with a warning', () => {
    const body = '[Service]\nExecStart=/bin/true\nRestartSec=10\nRestartSteps=3\nRestartMaxDelaySec=2\n';
    assert.deepEqual(diags(body), ['1 warning RestartMaxDelaySec= is smaller than RestartSec=, lowering RestartSec= to RestartMaxDelaySec=.']);
    assert.equal(load(body).service.restartMs, 2000);
    assert.deepEqual(diags('[Service]\nExecStart=/bin/true\nRestartSteps=3\n'), ['1 warning Service has RestartSteps= but no RestartMaxDelaySec= setting. Ignoring.']);
  });

  it('refuses Restart=always for a oneshot', () => {
    assert.deepEqual(diags('[Service]\nType=oneshot\nExecStart=/bin/true\nRestart=always\n'), ['1 error Service has Restart=always, which is not allowed for Type=oneshot services. Refusing.']);
  });

  it('merges exit status sets across lines and resets them on empty', () => {
    const s = service(['SuccessExitStatus=TEMPFAIL 250 SIGKILL', 'SuccessExitStatus=1 TERM 250', 'RestartPreventExitStatus=1 2', 'RestartPreventExitStatus=', 'RestartPreventExitStatus=3', 'RestartForceExitStatus=SIGABRT EXEC']);
    assert.deepEqual(s.successExitStatus, { codes: [1, 75, 250], signals: [9, 15] });
    assert.deepEqual(s.restartPreventExitStatus, { codes: [3], signals: [] });
    assert.deepEqual(s.restartForceExitStatus, { codes: [203], signals: [6] });
    // Every signal the table knows, not only 1–15: SIGXCPU is 24, SIGIOT an alias of SIGABRT.
    assert.deepEqual(service(['SuccessExitStatus=SIGXCPU SIGIOT SIGRTMIN+1 SYS']).successExitStatus, { codes: [], signals: [6, 24, 31, 35] });
    assert.deepEqual(diags('[Service]\nExecStart=/bin/true\nSuccessExitStatus=1 bogus 300\n'), [
      "3 error Invalid SuccessExitStatus=: 'bogus' is neither an exit status nor a signal",
      "3 error Invalid SuccessExitStatus=: '300' is neither an exit status nor a signal",
    ]);
  });
});

describe('[Service] timeouts and watchdog', () => {
  it('reads the timeouts; 0 means no timeout; TimeoutSec= sets both', () => {
    let s = service(['TimeoutStartSec=30', 'TimeoutStopSec=0', 'TimeoutAbortSec=5s', 'RuntimeMaxSec=1h', 'WatchdogSec=20s']);
    assert.deepEqual([s.timeoutStartMs, s.timeoutStopMs, s.timeoutAbortMs, s.runtimeMaxMs, s.watchdogMs], [30_000, Infinity, 5000, 3_600_000, 20_000]);
    s = service(['TimeoutSec=2min']);
    assert.deepEqual([s.timeoutStartMs, s.timeoutStopMs, s.timeoutAbortMs], [120_000, 120_000, 120_000]);
    s = service(['TimeoutSec=infinity', 'TimeoutStartFailureMode=abort', 'TimeoutStopFailureMode=kill']);
    assert.deepEqual([s.timeoutStartMs, s.timeoutStopMs, s.timeoutStartFailureMode, s.timeoutStopFailureMode], [Infinity, Infinity, 'abort', 'kill']);
  });

  it('reports bad time spans at their line', () => {
    assert.deepEqual(diags('[Service]\nExecStart=/bin/true\nRestartSec=soon\nWatchdogSec=-1\n'), [
      "3 error Invalid RestartSec=: 'soon' is not a time span",
      '4 error Invalid WatchdogSec=: time spans cannot be negative',
    ]);
  });

  it('warns that RuntimeMaxSec= does nothing for a oneshot', () => {
    assert.deepEqual(diags('[Service]\nType=oneshot\nExecStart=/bin/true\nRuntimeMaxSec=5\n'), ['4 warning RuntimeMaxSec= has no effect in combination with Type=oneshot. Ignoring.']);
  });
});

describe('[Service] killing', () => {
  it('reads kill mode, signals and switches', () => {
    const s = service(['KillMode=mixed', 'KillSignal=SIGINT', 'FinalKillSignal=SIGQUIT', 'WatchdogSignal=6', 'ReloadSignal=SIGUSR2', 'SendSIGKILL=no', 'SendSIGHUP=yes']);
    assert.deepEqual([s.killMode, s.killSignal, s.restartKillSignal, s.finalKillSignal, s.watchdogSignal, s.reloadSignal, s.sendSigkill, s.sendSighup], ['mixed', 2, 2, 3, 6, 12, false, true]);
    assert.equal(service(['KillSignal=SIGINT', 'RestartKillSignal=SIGTERM']).restartKillSignal, 15);
    assert.equal(service(['KillMode=process']).killMode, 'process');
  });

  it('warns about KillMode=none and refuses bad signals', () => {
    assert.deepEqual(diags('[Service]\nExecStart=/bin/true\nKillMode=none\nKillSignal=SIGNOPE\nSendSIGKILL=perhaps\n'), [
      '3 warning KillMode=none is unsafe: processes left behind by the service are not stopped. Consider KillMode=mixed or control-group.',
      "4 error Invalid KillSignal=: 'SIGNOPE' is not a signal",
      "5 error Invalid SendSIGKILL=: 'perhaps' is not a boolean",
    ]);
  });
});

describe('[Service] environment', () => {
  it('reads quoted assignments with specifiers and no $ expansion; later wins; empty resets', () => {
    const s = service(['Environment=OLD=1', 'Environment=', `Environment="A=a b" B=%n 'C=$HOME' D=\\x41`, 'Environment=A=again E=']);
    assert.deepEqual(s.environment, { B: 'app.service', C: '$HOME', D: 'A', A: 'again', E: '' });
  });

  it('refuses assignments without a valid name', () => {
    assert.deepEqual(diags('[Service]\nExecStart=/bin/true\nEnvironment=1X=2 =y NOVALUE GOOD=1\n'), [
      "3 error Invalid Environment=: '1X=2' is not a NAME=VALUE assignment with a valid name",
      "3 error Invalid Environment=: '=y' is not a NAME=VALUE assignment with a valid name",
      "3 error Invalid Environment=: 'NOVALUE' is not a NAME=VALUE assignment with a valid name",
    ]);
  });

  it('reads EnvironmentFile=, UnsetEnvironment= and PassEnvironment=', () => {
    const s = service(['EnvironmentFile=/etc/%p.env', 'EnvironmentFile=-/etc/default/%p', 'UnsetEnvironment=TERM LANG=C', 'PassEnvironment=PATH HOME', 'PassEnvironment=PATH']);
    assert.deepEqual(s.environmentFiles, [
      { path: '/etc/app.env', optional: false },
      { path: '/etc/default/app', optional: true },
    ]);
    assert.deepEqual(s.unsetEnvironment, ['TERM', 'LANG=C']);
    assert.deepEqual(s.passEnvironment, ['PATH', 'HOME']);
    assert.deepEqual(diags('[Service]\nExecStart=/bin/true\nEnvironmentFile=relative.env\nPassEnvironment=A-B\n'), [
      "3 error Invalid EnvironmentFile=: 'relative.env' is not an absolute path",
      "4 error Invalid PassEnvironment=: 'A-B' is not a valid variable name",
    ]);
  });
});

describe('[Service] process settings', () => {
  it('reads WorkingDirectory= with ~ and the - prefix', () => {
    assert.deepEqual(service(['WorkingDirectory=~']).workingDirectory, { type: 'home', missingOk: false });
    assert.deepEqual(service(['WorkingDirectory=-~']).workingDirectory, { type: 'home', missingOk: true });
    assert.deepEqual(service(['WorkingDirectory=-/srv/%p/']).workingDirectory, { type: 'path', path: '/srv/app', missingOk: true });
    assert.deepEqual(diags('[Service]\nExecStart=/bin/true\nWorkingDirectory=srv\n'), ["3 error Invalid WorkingDirectory=: 'srv' is not an absolute path"]);
  });

  it('reads User=, Group=, SupplementaryGroups= and UMask=', () => {
    const s = service(['User=www-data', 'Group=1000', 'SupplementaryGroups=adm %g', 'UMask=0027']);
    assert.deepEqual([s.user, s.group, s.supplementaryGroups, s.umask], ['www-data', '1000', ['adm', 'root'], 0o027]);
    assert.deepEqual(diags('[Service]\nExecStart=/bin/true\nUser=a:b\nGroup=-1\nUMask=999\n'), [
      "3 error Invalid User=: 'a:b' is not a valid user or group name or numeric id",
      "4 error Invalid Group=: '-1' is not a valid user or group name or numeric id",
      "5 error Invalid UMask=: '999' is not an octal mode",
    ]);
  });

  it('reads PIDFile=, relative to the runtime directory, moving /var/run to /run', () => {
    assert.equal(service(['PIDFile=app.pid']).pidFile, '/run/app.pid');
    assert.equal(service(['PIDFile=/var/run/%p.pid']).pidFile, '/run/app.pid');
    assert.deepEqual(diags('[Service]\nExecStart=/bin/true\nPIDFile=/var/run/x.pid\nPIDFile=/proc/1/x\n'), [
      '3 notice PIDFile= references a path below legacy directory /var/run/, updating /var/run/x.pid → /run/x.pid; please update the unit file accordingly.',
      "4 error Invalid PIDFile=: '/proc/1/x' is below an API file system",
    ]);
  });

  it('reads standard input, output and error', () => {
    let s = service(['StandardInput=file:/dev/zero', 'StandardOutput=append:/var/log/%p.log', 'StandardError=truncate:/tmp/err']);
    assert.deepEqual([s.standardInput, s.standardOutput, s.standardError], [
      { type: 'file', path: '/dev/zero' },
      { type: 'append', path: '/var/log/app.log' },
      { type: 'truncate', path: '/tmp/err' },
    ]);
    s = service(['StandardOutput=null', 'StandardError=journal+console']);
    assert.deepEqual([s.standardOutput, s.standardError], [{ type: 'null' }, { type: 'log' }]);
    s = service(['StandardOutput=inherit', 'StandardError=file:/x']);
    assert.deepEqual([s.standardOutput, s.standardError], [{ type: 'log' }, { type: 'file', path: '/x' }]);
    assert.deepEqual(diags('[Service]\nExecStart=/bin/true\nStandardOutput=syslog\nStandardError=tty\nStandardInput=tty\nStandardOutput=file:rel\nStandardError=smoke\n'), [
      '3 notice StandardOutput=syslog is obsolete; it is the same as journal, holdfast\'s log.',
      "4 warning StandardError=tty is not supported by holdfast; using its log instead.",
      '5 error StandardInput=tty is not supported by holdfast; only null and file:PATH are.',
      "6 error Invalid StandardOutput=: 'rel' is not an absolute path",
      "7 error Invalid StandardError=: 'smoke' is not an output setting",
    ]);
  });

  it('reads every Limit*= with its own unit', () => {
    const values: Record<string, string> = {
      CPU: '2min', FSIZE: '1G', DATA: '512M', STACK: '8M:16M', CORE: '0', RSS: 'infinity', NOFILE: '1024:524288', AS: 'infinity',
      NPROC: '4096', MEMLOCK: '64K', LOCKS: '100', SIGPENDING: '1000', MSGQUEUE: '800K', NICE: '-10', RTPRIO: '50', RTTIME: '500ms:1s',
    };
    const s = service(RLIMIT_NAMES.map((n) => `Limit${n}=${values[n]}`));
    assert.deepEqual(s.limits, {
      CPU: { soft: 120, hard: 120 },
      FSIZE: { soft: 1024 ** 3, hard: 1024 ** 3 },
      DATA: { soft: 512 * 1024 ** 2, hard: 512 * 1024 ** 2 },
      STACK: { soft: 8 * 1024 ** 2, hard: 16 * 1024 ** 2 },
      CORE: { soft: 0, hard: 0 },
      RSS: { soft: Infinity, hard: Infinity },
      NOFILE: { soft: 1024, hard: 524288 },
      AS: { soft: Infinity, hard: Infinity },
      NPROC: { soft: 4096, hard: 4096 },
      MEMLOCK: { soft: 65536, hard: 65536 },
      LOCKS: { soft: 100, hard: 100 },
      SIGPENDING: { soft: 1000, hard: 1000 },
      MSGQUEUE: { soft: 819200, hard: 819200 },
      NICE: { soft: 30, hard: 30 },
      RTPRIO: { soft: 50, hard: 50 },
      RTTIME: { soft: 500_000, hard: 1_000_000 },
    });
    assert.deepEqual(diags('[Service]\nExecStart=/bin/true\nLimitNOFILE=lots\nLimitCORE=2:1\n'), [
      "3 error Invalid LimitNOFILE=: 'lots' is not an unsigned integer",
      '4 error Invalid LimitCORE=: soft limit 2 is above hard limit 1',
    ]);
  });

  it('reads MemoryMax=, CPUQuota= and TasksMax=', () => {
    let s = service(['MemoryMax=1G', 'CPUQuota=150%', 'TasksMax=100']);
    assert.deepEqual([s.memoryMax, s.cpuQuotaPercent, s.tasksMax], [1024 ** 3, 150, 100]);
    s = service(['MemoryMax=50%', 'CPUQuota=12.5%', 'TasksMax=10%']);
    assert.deepEqual([s.memoryMax, s.cpuQuotaPercent, s.tasksMax], [{ percent: 50 }, 12.5, { percent: 10 }]);
    s = service(['MemoryMax=1G', 'MemoryMax=infinity', 'CPUQuota=20%', 'CPUQuota=', 'TasksMax=infinity']);
    assert.deepEqual([s.memoryMax, s.cpuQuotaPercent, s.tasksMax], [Infinity, undefined, Infinity]);
    assert.deepEqual(diags('[Service]\nExecStart=/bin/true\nMemoryMax=0\nCPUQuota=0%\nTasksMax=many\n'), [
      '3 error Invalid MemoryMax=: the limit must be above 0',
      '4 error Invalid CPUQuota=: the quota must be above 0%',
      "5 error Invalid TasksMax=: 'many' is not an unsigned integer",
    ]);
  });
});

describe('[Unit]', () => {
  it('reads description, documentation and dependencies with specifiers', () => {
    const c = load(
      [
        '[Unit]',
        'Description=App %i on %H',
        'Documentation=man:app(8) https://example.com/%p',
        'Documentation=gopher://old',
        'Requires=db.service',
        'Wants=cache@%i.service log.socket',
        'After=db.service network.target',
        'After=db.service',
        'Before=shutdown.target',
        'BindsTo=dev-sda.device',
        'PartOf=app.target',
        'Conflicts=other.service',
        'Requisite=mnt.mount',
        'OnFailure=alert@%n.service',
        'Upholds=side.service',
        'StartLimitIntervalSec=30s',
        'StartLimitBurst=3',
        'DefaultDependencies=no',
        '[Service]',
        'ExecStart=/bin/true',
      ].join('\n'),
      'app@blue.service',
    );
    const u = c.unit;
    assert.equal(u.description, 'App blue on host.example.com');
    assert.deepEqual(u.documentation, ['man:app(8)', 'https://example.com/app']);
    assert.deepEqual(u.requires, ['db.service']);
    assert.deepEqual(u.wants, ['cache@blue.service', 'log.socket']);
    assert.deepEqual(u.after, ['db.service', 'network.target']);
    assert.deepEqual(u.before, ['shutdown.target']);
    assert.deepEqual(u.bindsTo, ['dev-sda.device']);
    assert.deepEqual(u.partOf, ['app.target']);
    assert.deepEqual(u.conflicts, ['other.service']);
    assert.deepEqual(u.requisite, ['mnt.mount']);
    assert.deepEqual(u.onFailure, ['alert@app@blue.service.service']);
    assert.deepEqual(u.upholds, ['side.service']);
    assert.deepEqual([u.startLimitIntervalMs, u.startLimitBurst, u.defaultDependencies], [30_000, 3, false]);
    assert.equal(c.template, 'app@.service');
    assert.equal(c.instance, 'blue');
  });

  it('warns about bad documentation URLs and refuses bad unit names', () => {
    assert.deepEqual(diags('[Unit]\nDocumentation=gopher://x\nAfter=foo bar.service @x.service a@.service\n[Service]\nExecStart=/bin/true\n'), [
      '2 warning Invalid URL in Documentation=, ignoring: gopher://x',
      "3 error Invalid After=: 'foo' is not a valid unit name",
      "3 error Invalid After=: '@x.service' is not a valid unit name",
      "3 error Invalid After=: 'a@.service' is not a valid unit name",
    ]);
  });

  it('reads path conditions and assertions with | and !, and an empty value resets them', () => {
    const c = load('[Unit]\nConditionPathExists=/gone\nConditionPathExists=\nConditionPathExists=|!/etc/%p.disabled\nConditionFileNotEmpty=/etc/app.conf\nConditionDirectoryNotEmpty=|/srv\nAssertPathIsDirectory=/var/lib\n[Service]\nExecStart=/bin/true\n');
    assert.deepEqual(c.unit.conditions, [
      { kind: 'PathExists', path: '/etc/app.disabled', negate: true, trigger: true },
      { kind: 'FileNotEmpty', path: '/etc/app.conf', negate: false, trigger: false },
      { kind: 'DirectoryNotEmpty', path: '/srv', negate: false, trigger: true },
    ]);
    assert.deepEqual(c.unit.asserts, [{ kind: 'PathIsDirectory', path: '/var/lib', negate: false, trigger: false }]);
    assert.deepEqual(diags('[Unit]\nConditionPathExists=relative\nConditionUser=root\n[Service]\nExecStart=/bin/true\n'), [
      "2 error Invalid ConditionPathExists=: 'relative' is not an absolute path",
      '3 warning ConditionUser= is not supported by holdfast, ignoring.',
    ]);
  });
});

describe('[Install]', () => {
  it('reads install targets and aliases', () => {
    const c = load('[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target default.target\nRequiredBy=%p.target\nAlias=application.service\nAlso=helper.service\nDefaultInstance=one\n');
    assert.deepEqual(c.install, { wantedBy: ['multi-user.target', 'default.target'], requiredBy: ['app.target'], upheldBy: [], alias: ['application.service'], also: ['helper.service'], defaultInstance: 'one' });
    assert.deepEqual(diags('[Service]\nExecStart=/bin/true\n[Install]\nAlias=app.socket\nWantedBy=\n'), ["4 error Invalid Alias=: alias 'app.socket' must have the same type as the unit (.service)"]);
  });
});

describe('unknown and unsupported keys and sections', () => {
  it('warns with file and line, ignores X- keys and sections', () => {
    const r = parse('[Unit]\nFoo=1\nX-Mine=2\n[Service]\nExecStart=/bin/true\nProtectSystem=strict\nexecstart=/bin/x\n[X-Ext]\nA=1\n[Timer]\nOnBootSec=1\n');
    assert.ok(r.config, 'warnings do not stop a unit from loading');
    assert.deepEqual(r.diagnostics.map(formatDiagnostic), [
      `${FILE}:2: Unknown key 'Foo' in section [Unit], ignoring.`,
      `${FILE}:6: ProtectSystem= is not supported by holdfast, ignoring.`,
      `${FILE}:7: Unknown key 'execstart' in section [Service], ignoring.`,
      `${FILE}:10: Unknown section 'Timer'. Ignoring.`,
    ]);
    assert.deepEqual(r.diagnostics.map((d) => [d.severity, d.key]), [
      ['warning', 'Foo'],
      ['warning', 'ProtectSystem'],
      ['warning', 'execstart'],
      ['warning', undefined],
    ]);
  });

  it('refuses names that are not service units', () => {
    assert.deepEqual(parse('[Service]\nExecStart=/bin/true\n', 'app.socket').diagnostics.map(formatDiagnostic), [`${FILE}:1: .socket units are not supported by holdfast; only .service units are`]);
    assert.deepEqual(parse('[Service]\nExecStart=/bin/true\n', 'app@.service').diagnostics.map((d) => d.message), ['a template cannot be loaded without an instance name']);
  });
});

describe('drop-ins', () => {
  it('apply in order on top of the fragment, with diagnostics in the right file and line', () => {
    const r = parseServiceUnit(
      [
        { file: '/u/app.service', content: '[Unit]\nDescription=base\n[Service]\nExecStart=/bin/app\nRestartSec=1\nEnvironment=A=1\n' },
        { file: '/u/app.service.d/10-x.conf', content: '[Service]\nRestartSec=2\nEnvironment=B=2\n\nTimeoutSec=nope\n' },
        { file: '/u/app.service.d/20-y.conf', content: '# reset the command\n[Service]\nExecStart=\nExecStart=/bin/app2\n[Unit]\nDescription=override\n' },
      ],
      { unitName: 'app.service', host: HOST },
    );
    assert.equal(r.config, undefined);
    assert.deepEqual(r.diagnostics.map(formatDiagnostic), ["/u/app.service.d/10-x.conf:5: Invalid TimeoutSec=: 'nope' is not a time span"]);
    const ok = parseServiceUnit(
      [
        { file: '/u/app.service', content: '[Unit]\nDescription=base\n[Service]\nExecStart=/bin/app\nRestartSec=1\nEnvironment=A=1\n' },
        { file: '/u/app.service.d/10-x.conf', content: '[Service]\nRestartSec=2\nEnvironment=B=2\n' },
        { file: '/u/app.service.d/20-y.conf', content: '[Service]\nExecStart=\nExecStart=/bin/app2\n[Unit]\nDescription=override\n' },
      ],
      { unitName: 'app.service', host: HOST },
    );
    const c = ok.config!;
    assert.equal(c.unit.description, 'override');
    assert.equal(c.service.restartMs, 2000);
    assert.deepEqual(c.service.environment, { A: '1', B: '2' });
    assert.deepEqual(c.service.execStart.map((e) => [e.path, e.source.file, e.source.line]), [['/bin/app2', '/u/app.service.d/20-y.conf', 3]]);
    assert.deepEqual(c.dropInPaths, ['/u/app.service.d/10-x.conf', '/u/app.service.d/20-y.conf']);
  });
});
