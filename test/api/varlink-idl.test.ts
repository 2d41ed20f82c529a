import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import {
  VarlinkIdlError,
  findMethod,
  formatInterface,
  parseInterface,
  validateParameters,
  validateValue,
  type JsonObject,
  type VarlinkInterface,
} from '../../src/api/varlink/index.js';
import { TEST_IDL } from './varlink-helpers.js';

// The service interface as varlink.org defines it (comments reworded).
const SERVICE = `# Every Varlink service offers this interface: it describes the service
# and the interfaces it implements.
interface org.varlink.service

# Service information and the list of implemented interfaces.
method GetInfo() -> (
  vendor: string,
  product: string,
  version: string,
  url: string,
  interfaces: []string
)

# The IDL text of one implemented interface.
method GetInterfaceDescription(interface: string) -> (description: string)

# The interface is not implemented.
error InterfaceNotFound (interface: string)

# The method does not exist.
error MethodNotFound (method: string)

# The method is declared but not implemented.
error MethodNotImplemented (method: string)

# A parameter is invalid.
error InvalidParameter (parameter: string)
`;

// A unit-manager interface laid out the way systemd prints its IDL: tab indentation, one comment
// per field, enum values on their own lines, annotation comments for 'more'.
const UNIT_LIKE = `# Manage units of a service manager (a test interface shaped like systemd's io.systemd.Unit).
interface io.example.Unit

type ProcessId (pid: int, pidfdId: ?int, bootId: ?string)

# The kind of unit
type UnitType(
\t# A supervised process
\tservice,
\tsocket,
\t# A group of units
\ttarget
)

type ExecCommand(
\t# Path of the binary
\tpath: string,
\targuments: []string,
\t# Leading '-': failure is ignored
\tignoreFailure: bool
)

type ServiceRuntime(
\t# The main process, if any
\tMainPID: ?ProcessId,
\tControlPID: ?ProcessId,
\tstatusText: ?string,
\tstatusErrno: ?int,
\t# Per-command exit information
\texecMain: ?(code: int, status: int, startTimestamp: ?int, exitTimestamp: ?int),
\tenvironment: [string]string,
\tcommands: ?[]ExecCommand,
\tlabels: [string]?string,
\tuserData: ?object,
\tweight: ?float
)

# List units, or one unit.
# A PID of 0 means the caller's own unit.
# [Supports 'more' flag]
method List(
\tname: ?string,
\t# Process to find the unit of
\tpid: ?ProcessId,
\ttypes: ?[]UnitType
) -> (
\tname: string,
\ttype: UnitType,
\truntime: ?ServiceRuntime
)

# Follow state changes until the caller disconnects.
# [Requires 'more' flag]
method Subscribe() -> (name: string, state: (inactive, activating, active, deactivating, failed))

method SetProperties(name: string, runtime: bool, properties: object) -> ()

# No unit by that name.
error NoSuchUnit (name: string)

error UnitMasked ()
`;

describe('parseInterface', () => {
  it('builds the exact model of a small interface', () => {
    const iface = parseInterface(`# Doc line one
#
#   indented
interface io.example.small

# A pair
type Pair (a: int, b: ?[]?string)

# [Requires 'more' flag]
method Go(x: [string](one, two), y: (z: object)) -> ()

error Bad (why: string) # not a doc comment
`);
    assert.deepEqual(iface, {
      name: 'io.example.small',
      doc: 'Doc line one\n\n  indented',
      members: [
        {
          kind: 'type',
          name: 'Pair',
          doc: 'A pair',
          type: {
            kind: 'struct',
            fields: [
              { name: 'a', type: { kind: 'int' } },
              { name: 'b', type: { kind: 'nullable', type: { kind: 'array', type: { kind: 'nullable', type: { kind: 'string' } } } } },
            ],
          },
        },
        {
          kind: 'method',
          name: 'Go',
          input: {
            kind: 'struct',
            fields: [
              { name: 'x', type: { kind: 'map', type: { kind: 'enum', values: [{ name: 'one' }, { name: 'two' }] } } },
              { name: 'y', type: { kind: 'struct', fields: [{ name: 'z', type: { kind: 'object' } }] } },
            ],
          },
          output: { kind: 'struct', fields: [] },
          more: 'requires',
        },
        { kind: 'error', name: 'Bad', parameters: { kind: 'struct', fields: [{ name: 'why', type: { kind: 'string' } }] } },
      ],
    });
  });

  it('parses the org.varlink.service interface', () => {
    const iface = parseInterface(SERVICE);
    assert.equal(iface.name, 'org.varlink.service');
    assert.equal(iface.doc, 'Every Varlink service offers this interface: it describes the service\nand the interfaces it implements.');
    assert.deepEqual(
      iface.members.map((m) => `${m.kind} ${m.name}`),
      ['method GetInfo', 'method GetInterfaceDescription', 'error InterfaceNotFound', 'error MethodNotFound', 'error MethodNotImplemented', 'error InvalidParameter'],
    );
    const getInfo = findMethod(iface, 'GetInfo')!;
    assert.equal(getInfo.doc, 'Service information and the list of implemented interfaces.');
    assert.deepEqual(getInfo.output.fields.at(-1), { name: 'interfaces', type: { kind: 'array', type: { kind: 'string' } } });
  });

  it('parses a systemd-style interface with field docs, annotations, and ProcessId', () => {
    const iface = parseInterface(UNIT_LIKE);
    const pidType = iface.members.find((m) => m.name === 'ProcessId');
    assert.deepEqual(pidType, {
      kind: 'type',
      name: 'ProcessId',
      type: {
        kind: 'struct',
        fields: [
          { name: 'pid', type: { kind: 'int' } },
          { name: 'pidfdId', type: { kind: 'nullable', type: { kind: 'int' } } },
          { name: 'bootId', type: { kind: 'nullable', type: { kind: 'string' } } },
        ],
      },
    });
    const unitType = iface.members.find((m) => m.name === 'UnitType');
    assert.deepEqual(unitType, {
      kind: 'type',
      name: 'UnitType',
      doc: 'The kind of unit',
      type: { kind: 'enum', values: [{ name: 'service', doc: 'A supervised process' }, { name: 'socket' }, { name: 'target', doc: 'A group of units' }] },
    });
    const list = findMethod(iface, 'List')!;
    assert.equal(list.more, 'supports');
    assert.equal(list.doc, 'List units, or one unit.\nA PID of 0 means the caller\'s own unit.');
    assert.deepEqual(list.input.fields[1], { name: 'pid', doc: 'Process to find the unit of', type: { kind: 'nullable', type: { kind: 'named', name: 'ProcessId' } } });
    assert.equal(findMethod(iface, 'Subscribe')!.more, 'requires');
    assert.equal(findMethod(iface, 'Subscribe')!.doc, 'Follow state changes until the caller disconnects.');
    assert.equal(findMethod(iface, 'SetProperties')!.more, undefined);
  });

  it('handles CRLF line ends and comments separated by a blank line', () => {
    const iface = parseInterface('# dropped: a blank line follows\r\n\r\n# kept\r\ninterface a.b\r\nmethod M() -> ()\r\n');
    assert.equal(iface.doc, 'kept');
    assert.equal(iface.members[0]!.doc, undefined);
  });

  const bad: [string, string][] = [
    // varlink.org's service page once wrote `string[]`; the grammar only has `[]string`.
    ['interface org.varlink.service\nmethod GetInfo() -> (interfaces: string[])\n', "2:40: expected ',' or ')', found '['"],
    ['interface foo..bar\nmethod A() -> ()', '1:11: invalid interface name "foo..bar"'],
    ['interface foo.bar-\nmethod A() -> ()', '1:11: invalid interface name "foo.bar-"'],
    ['interface foo\nmethod A() -> ()', '1:11: invalid interface name "foo"'],
    ['interface foo.bar\n', '2:1: an interface needs at least one member'],
    ['method A() -> ()', "1:1: expected 'interface', found 'method'"],
    ['interface foo.bar\nmethod a() -> ()', '2:8: invalid method name "a"'],
    ['interface foo.bar\nmethod A() -> ()\nerror A ()', '3:7: "A" is defined twice'],
    ['interface foo.bar\nmethod A(x: int, x: int) -> ()', '2:18: field "x" is defined twice'],
    ['interface foo.bar\ntype T (a, a)', '2:12: enum value "a" is defined twice'],
    ['interface foo.bar\nmethod A(x: Missing) -> ()', '2:13: type "Missing" is not defined in interface foo.bar'],
    ['interface foo.bar\nmethod A(x: Err) -> ()\nerror Err ()', '2:13: type "Err" is not defined in interface foo.bar'],
    ['interface foo.bar\nmethod A(x: ??int) -> ()', "2:14: '?' cannot be repeated"],
    ['interface foo.bar\nmethod A(x: int,) -> ()', "2:17: expected an entry after ',', found ')'"],
    ['interface foo.bar\nmethod A(a, b) -> ()', '2:10: expected a struct of fields, found an enum'],
    ['interface foo.bar\nmethod A(x int) -> ()', "2:12: expected ':', found 'int'"],
    ['interface foo.bar\ntype T ()', '2:8: type T is empty'],
    ['interface foo.bar\nmethod A() ()', "2:12: expected '->', found '('"],
    ['interface foo.bar\nmethod A(x: [int]string) -> ()', "2:14: expected '[]' or '[string]', found 'int'"],
    ['interface foo.bar\nmethod A(x: integer) -> ()', '2:13: unknown type "integer"'],
    ['interface foo.bar\nmethod A(_x: int) -> ()', '2:10: unexpected character "_"'],
    ['interface foo.bar\nmethod A() -> (', "2:16: expected field name, found end of input"],
  ];
  for (const [text, message] of bad) {
    it(`rejects ${JSON.stringify(text)}`, () => {
      assert.throws(() => parseInterface(text), (err: unknown) => {
        assert.ok(err instanceof VarlinkIdlError);
        assert.equal(err.message, message);
        return true;
      });
    });
  }
});

describe('formatInterface', () => {
  it('formats a small interface exactly', () => {
    const text = formatInterface(parseInterface('interface a.b\n# Adds\nmethod Add(a: int, b: int) -> (sum: int)\n# [Supports \'more\' flag]\nmethod S() -> ()\ntype E (x, y)\ntype T (\n# the n\nn: ?[]int)\nerror Oops (why: string)'));
    assert.equal(
      text,
      `interface a.b

# Adds
method Add(a: int, b: int) -> (sum: int)

# [Supports 'more' flag]
method S() -> ()

type E (x, y)

type T (
\t# the n
\tn: ?[]int
)

error Oops (why: string)
`,
    );
  });

  for (const [name, text] of [
    ['org.varlink.service', SERVICE],
    ['systemd-style unit interface', UNIT_LIKE],
    ['test interface', TEST_IDL],
  ] as const) {
    it(`round-trips ${name}: parse(format(x)) equals x, and formatting is stable`, () => {
      const parsed = parseInterface(text);
      const formatted = formatInterface(parsed);
      assert.deepEqual(parseInterface(formatted), parsed);
      assert.equal(formatInterface(parseInterface(formatted)), formatted);
    });
  }

  it('breaks long structs over lines', () => {
    const iface = parseInterface(`interface a.b\nmethod M(${Array.from({ length: 8 }, (_, i) => `field${i}: string`).join(', ')}) -> ()`);
    const text = formatInterface(iface);
    assert.ok(text.includes('method M(\n\tfield0: string,\n\tfield1: string,'), text);
    assert.deepEqual(parseInterface(text), iface);
  });
});

describe('validateParameters', () => {
  const iface: VarlinkInterface = parseInterface(UNIT_LIKE);
  const list = findMethod(iface, 'List')!;
  const setProps = findMethod(iface, 'SetProperties')!;
  const check = (params: unknown): unknown => validateParameters(iface, list, params as JsonObject);

  it('accepts valid parameters, absent and null optionals', () => {
    assert.equal(check({}), undefined);
    assert.equal(check({ name: null, pid: null, types: null }), undefined);
    assert.equal(check({ name: 'a.service', pid: { pid: 1, pidfdId: 42, bootId: 'ab' }, types: ['service', 'target'] }), undefined);
    assert.equal(validateParameters(iface, setProps, { name: 'x', runtime: true, properties: { any: [1, { deep: null }] } }), undefined);
  });

  it('turns decimal strings into numbers for int fields, as sd-varlink accepts them', () => {
    const params = { pid: { pid: '1234', pidfdId: '-5' } } as unknown as JsonObject;
    assert.equal(validateParameters(iface, list, params), undefined);
    assert.deepEqual(params, { pid: { pid: 1234, pidfdId: -5 } });
  });

  const cases: [unknown, { parameter: string; path: string; reason: string }][] = [
    [{ bogus: 1 }, { parameter: 'bogus', path: 'bogus', reason: 'bogus: no such field' }],
    [{ name: 5 }, { parameter: 'name', path: 'name', reason: 'name: expected string, got number 5' }],
    [{ pid: { pidfdId: 1 } }, { parameter: 'pid', path: 'pid.pid', reason: 'pid.pid: required, but missing' }],
    [{ pid: { pid: null } }, { parameter: 'pid', path: 'pid.pid', reason: 'pid.pid: required, but null' }],
    [{ pid: { pid: 1, extra: true } }, { parameter: 'pid', path: 'pid.extra', reason: 'pid.extra: no such field' }],
    [{ pid: { pid: 1.5 } }, { parameter: 'pid', path: 'pid.pid', reason: 'pid.pid: expected int, got number 1.5' }],
    [{ pid: { pid: '0x10' } }, { parameter: 'pid', path: 'pid.pid', reason: 'pid.pid: expected int, got string "0x10"' }],
    [{ pid: { pid: 9007199254740992 } }, { parameter: 'pid', path: 'pid.pid', reason: 'pid.pid: integer 9007199254740992 cannot be represented exactly (beyond ±2^53)' }],
    [{ pid: { pid: '18446744073709551615' } }, { parameter: 'pid', path: 'pid.pid', reason: 'pid.pid: integer 18446744073709551615 cannot be represented exactly (beyond ±2^53)' }],
    [{ pid: 7 }, { parameter: 'pid', path: 'pid', reason: 'pid: expected ProcessId object, got number 7' }],
    [{ pid: [] }, { parameter: 'pid', path: 'pid', reason: 'pid: expected ProcessId object, got an array' }],
    [{ types: 'service' }, { parameter: 'types', path: 'types', reason: 'types: expected array, got string "service"' }],
    [{ types: ['service', 'timer'] }, { parameter: 'types', path: 'types[1]', reason: 'types[1]: "timer" is not one of (service, socket, target)' }],
    [{ types: [null] }, { parameter: 'types', path: 'types[0]', reason: 'types[0]: required, but null' }],
    [{ types: [1] }, { parameter: 'types', path: 'types[0]', reason: 'types[0]: expected one of (service, socket, target), got number 1' }],
  ];
  for (const [params, failure] of cases) {
    it(`refuses ${JSON.stringify(params)}`, () => {
      assert.deepEqual(check(params), failure);
    });
  }

  it('refuses values nested deeper than 256 levels through a recursive type', () => {
    const tree = parseInterface('interface a.b\ntype Tree (children: []Tree)\nmethod M(t: Tree) -> ()\n');
    const nest = (depth: number): JsonObject => {
      let v: JsonObject = { children: [] };
      for (let i = 0; i < depth; i++) v = { children: [v] };
      return v;
    };
    assert.equal(validateParameters(tree, findMethod(tree, 'M')!, { t: nest(100) }), undefined);
    const failure = validateParameters(tree, findMethod(tree, 'M')!, { t: nest(100000) });
    assert.equal(failure?.parameter, 't');
    assert.match(failure!.reason, /^t(\.children\[0\]){128}\.children: nested more than 256 levels deep$/);
  });

  it('checks bool and object', () => {
    assert.deepEqual(validateParameters(iface, setProps, { name: 'x', runtime: 'yes', properties: {} }), { parameter: 'runtime', path: 'runtime', reason: 'runtime: expected bool, got string "yes"' });
    assert.deepEqual(validateParameters(iface, setProps, { name: 'x', runtime: false, properties: [] }), { parameter: 'properties', path: 'properties', reason: 'properties: expected object, got an array' });
    assert.deepEqual(validateParameters(iface, setProps, { name: 'x', runtime: false }), { parameter: 'properties', path: 'properties', reason: 'properties: required, but missing' });
  });

  it('checks maps, nullable map values, nested anonymous structs and floats through validateValue', () => {
    const runtime = { kind: 'named', name: 'ServiceRuntime' } as const;
    const ok = { environment: { HOME: '/root' }, labels: { a: null, b: 'x' }, execMain: { code: 1, status: 0 }, weight: 1, commands: [{ path: '/bin/true', arguments: [], ignoreFailure: false }] };
    assert.equal(validateValue(iface, runtime, ok), undefined);
    assert.deepEqual(validateValue(iface, runtime, { ...ok, environment: { HOME: 1 } }), { parameter: 'value', path: 'value.environment["HOME"]', reason: 'value.environment["HOME"]: expected string, got number 1' });
    assert.deepEqual(validateValue(iface, runtime, { ...ok, environment: ['x'] }), { parameter: 'value', path: 'value.environment', reason: 'value.environment: expected map object, got an array' });
    assert.deepEqual(validateValue(iface, runtime, { ...ok, execMain: { code: 1 } }), { parameter: 'value', path: 'value.execMain.status', reason: 'value.execMain.status: required, but missing' });
    assert.deepEqual(validateValue(iface, runtime, { ...ok, weight: '1.0' }), { parameter: 'value', path: 'value.weight', reason: 'value.weight: expected float, got string "1.0"' });
    assert.deepEqual(validateValue(iface, runtime, { ...ok, commands: [{ path: '/x', arguments: [1], ignoreFailure: false }] }), { parameter: 'value', path: 'value.commands[0].arguments[0]', reason: 'value.commands[0].arguments[0]: expected string, got number 1' });
  });
});
