// Talks to the server with a client that shares no code with ours: Python's socket and json
// modules, sending hand-written NUL-framed JSON and recording the raw bytes that come back. A bug
// that our client and server agree on cannot hide here.

import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { TEST_IDL, makeTestServer, tempDir, waitFor } from './varlink-helpers.js';

const PYTHON_CLIENT = String.raw`
import json, socket, sys

path = sys.argv[1]
results = {}

def connect():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    return s

def receive(s, n):
    """Reads until n NUL-terminated replies arrived; returns them as text."""
    buf = b''
    out = []
    while len(out) < n:
        chunk = s.recv(65536)
        if not chunk:
            out.append('<EOF>')
            break
        buf += chunk
        while b'\0' in buf:
            msg, buf = buf.split(b'\0', 1)
            json.loads(msg)  # every reply must be JSON another parser accepts
            out.append(msg.decode('utf-8'))
    return out

def until_eof(s):
    data = b''
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return data.decode('utf-8')
        data += chunk

def exchange(name, payload, n):
    s = connect()
    s.sendall(payload)
    results[name] = receive(s, n)
    s.close()

exchange('getinfo', b'{"method":"org.varlink.service.GetInfo"}\0', 1)
exchange('getinfo_params_null', b'{"method":"org.varlink.service.GetInfo","parameters":null}\0', 1)
exchange('description', b'{"method":"org.varlink.service.GetInterfaceDescription","parameters":{"interface":"org.example.test"}}\0', 1)
exchange('pipelined',
         b'{"method":"org.example.test.Add","parameters":{"a":1,"b":2}}\0'
         b'{"method":"org.example.test.Nope"}\0'
         b'{"method":"org.example.test.Echo","parameters":{"text":"third"}}\0', 3)
exchange('errors',
         b'{"method":"org.example.nope.Foo"}\0'
         b'{"method":"org.example.test.Unimplemented"}\0'
         b'{"method":"org.example.test.Add","parameters":{"a":1,"b":"2x"}}\0'
         b'{"method":"org.example.test.Add","parameters":{"a":1,"b":2,"c":3}}\0'
         b'{"method":"org.example.test.Watch"}\0'
         b'{"method":"org.example.test.Fail","parameters":{"kind":"varlink"}}\0'
         b'{"method":"org.example.test.Echo","parameters":{"text":"x"},"upgrade":true}\0', 7)
exchange('more', b'{"method":"org.example.test.Count","parameters":{"n":3},"more":true}\0{"method":"org.example.test.Add","parameters":{"a":0,"b":0}}\0', 4)
exchange('oneway_then_call',
         b'{"method":"org.example.test.Record","parameters":{"value":"py"},"oneway":true}\0'
         b'{"method":"org.example.test.Nope","oneway":true}\0'
         b'{"method":"org.example.test.Add","parameters":{"a":5,"b":5},"oneway":false}\0', 1)
exchange('int_as_string', b'{"method":"org.example.test.Lookup","parameters":{"pid":{"pid":"77","pidfdId":null}}}\0', 1)
exchange('vendor_extension', b'{"method":"org.example.test.Add","parameters":{"a":1,"b":1},"com.example.trace":{"id":"t1"}}\0', 1)

# One byte per send, with a multi-byte character split across sends.
s = connect()
for b in json.dumps({"method": "org.example.test.Echo", "parameters": {"text": "h\u00e9\u20ac\U0001F600"}}, ensure_ascii=False).encode('utf-8') + b'\0':
    s.sendall(bytes([b]))
results['byte_by_byte'] = receive(s, 1)
s.close()

# Half-close after sending: the replies still come, then the server closes.
s = connect()
s.sendall(b'{"method":"org.example.test.Add","parameters":{"a":20,"b":22}}\0{"method":"org.example.test.Echo","parameters":{"text":"bye"}}\0')
s.shutdown(socket.SHUT_WR)
results['half_close'] = until_eof(s)
s.close()

# Protocol violations: no reply, the connection is closed.
for name, payload in [
    ('garbage', b'\xff\xfe\xfd\0'),
    ('not_json', b'{method: 1}\0'),
    ('not_object', b'[1,2,3]\0'),
    ('no_method', b'{"parameters":{}}\0'),
    ('method_not_string', b'{"method":7}\0'),
    ('more_not_bool', b'{"method":"org.example.test.Count","parameters":{"n":1},"more":"yes"}\0'),
    ('oneway_and_more', b'{"method":"org.example.test.Count","parameters":{"n":1},"more":true,"oneway":true}\0'),
    ('parameters_array', b'{"method":"org.example.test.Add","parameters":[1,2]}\0'),
    ('unknown_key', b'{"method":"org.example.test.Add","parameters":{"a":1,"b":1},"id":1}\0'),
    ('empty_message', b'\0'),
    ('good_then_garbage', b'{"method":"org.example.test.Add","parameters":{"a":1,"b":1}}\0nonsense\0{"method":"org.example.test.Add","parameters":{"a":2,"b":2}}\0'),
]:
    s = connect()
    s.sendall(payload)
    results[name] = until_eof(s)
    s.close()

print(json.dumps(results))
`;

function runPython(path: string): Promise<Record<string, string[] | string>> {
  return new Promise((resolve, reject) => {
    execFile('python3', ['-c', PYTHON_CLIENT, path], { timeout: 30000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`python client failed: ${err.message}\n${stderr}`));
      else resolve(JSON.parse(stdout) as Record<string, string[] | string>);
    });
  });
}

describe('independent Python client', () => {
  it('gets byte-exact replies', async (t) => {
    const dir = tempDir();
    t.after(dir.cleanup);
    const { server, observed, logs } = makeTestServer();
    const path = join(dir.dir, 'org.example.test');
    await server.listen({ path });
    let r: Record<string, string[] | string>;
    try {
      r = await runPython(path);
      // Every connection the script opened is gone on our side too.
      await waitFor(() => server.connectionCount === 0, 'connections to close');
    } finally {
      await server.close();
    }
    const getInfo = '{"parameters":{"vendor":"Example","product":"test","version":"1.0","url":"https://example.org","interfaces":["org.varlink.service","org.example.test"]}}';
    assert.deepEqual(r.getinfo, [getInfo]);
    assert.deepEqual(r.getinfo_params_null, [getInfo]);
    assert.equal((r.description as string[]).length, 1);
    assert.deepEqual(JSON.parse((r.description as string[])[0]!), { parameters: { description: TEST_IDL } });
    assert.deepEqual(r.pipelined, [
      '{"parameters":{"sum":3}}',
      '{"error":"org.varlink.service.MethodNotFound","parameters":{"method":"org.example.test.Nope"}}',
      '{"parameters":{"text":"third"}}',
    ]);
    assert.deepEqual(r.errors, [
      '{"error":"org.varlink.service.InterfaceNotFound","parameters":{"interface":"org.example.nope"}}',
      '{"error":"org.varlink.service.MethodNotImplemented","parameters":{"method":"org.example.test.Unimplemented"}}',
      '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"b"}}',
      '{"error":"org.varlink.service.InvalidParameter","parameters":{"parameter":"c"}}',
      '{"error":"org.varlink.service.ExpectedMore","parameters":{}}',
      '{"error":"org.example.test.Failed","parameters":{"reason":"asked"}}',
      '{"error":"org.varlink.service.MethodNotImplemented","parameters":{"method":"org.example.test.Echo"}}',
    ]);
    assert.deepEqual(r.more, [
      '{"parameters":{"i":0},"continues":true}',
      '{"parameters":{"i":1},"continues":true}',
      '{"parameters":{"i":2}}',
      '{"parameters":{"sum":0}}',
    ]);
    assert.deepEqual(r.oneway_then_call, ['{"parameters":{"sum":10}}']);
    assert.ok(observed.records.includes('py'));
    assert.deepEqual(r.int_as_string, ['{"parameters":{"pid":{"pid":77,"pidfdId":null},"names":null,"depth":null}}']);
    assert.deepEqual(r.vendor_extension, ['{"parameters":{"sum":2}}']);
    assert.deepEqual(r.byte_by_byte, ['{"parameters":{"text":"h\u00e9\u20ac\u{1f600}"}}']);
    assert.equal(r.half_close, '{"parameters":{"sum":42}}\0{"parameters":{"text":"bye"}}\0');
    for (const name of ['garbage', 'not_json', 'not_object', 'no_method', 'method_not_string', 'more_not_bool', 'oneway_and_more', 'parameters_array', 'unknown_key', 'empty_message']) {
      assert.equal(r[name], '', `${name} got a reply`);
    }
    // Calls before the bad message are answered; nothing after it is.
    assert.equal(r.good_then_garbage, '{"parameters":{"sum":2}}\0');
    // JSON.parse's wording varies between V8 versions; only our part of those lines is compared.
    const violations = logs
      .filter((l) => l.startsWith('warning: '))
      .map((l) => l.replace(/connection \d+/, 'connection N').replace(/(not valid JSON: ).*/, '$1...'));
    assert.deepEqual(violations, [
      'warning: connection N: protocol violation, closing: message is not valid UTF-8',
      'warning: connection N: protocol violation, closing: message is not valid JSON: ...',
      'warning: connection N: protocol violation, closing: call is a JSON array, not an object',
      'warning: connection N: protocol violation, closing: call has no "method"',
      'warning: connection N: protocol violation, closing: "method" is a number, not a string',
      'warning: connection N: protocol violation, closing: "more" is a string, not a boolean',
      'warning: connection N: protocol violation, closing: call sets more than one of "oneway", "more", "upgrade"',
      'warning: connection N: protocol violation, closing: "parameters" is a array, not an object',
      'warning: connection N: protocol violation, closing: unknown key "id" in call',
      'warning: connection N: protocol violation, closing: message is not valid JSON: ...',
      'warning: connection N: protocol violation, closing: message is not valid JSON: ...',
    ]);
  });
});
