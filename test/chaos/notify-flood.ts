/**
 * A notify flood, as any local user could send it: datagrams to the daemon's notify socket from a
 * process that belongs to no unit. Run as its own process by the fault suite:
 * `node notify-flood.js SOCKET COUNT SECONDS`. Prints how many went out.
 */
import { notify } from '../../src/service/index.js';

const [socket, countText, secondsText] = process.argv.slice(2);
if (socket === undefined) {
  process.stderr.write('usage: notify-flood SOCKET COUNT SECONDS\n');
  process.exit(2);
}
const count = Number(countText ?? 10000);
const deadline = Date.now() + Number(secondsText ?? 3) * 1000;
let sent = 0;
let refused = 0;
for (let i = 0; i < count && Date.now() < deadline; i++) {
  try {
    // A short wait: a full queue means the daemon is behind, and the flood goes on regardless.
    if (notify(`STATUS=flood ${i}`, { socket, timeoutMs: 20 }).sent) sent++;
  } catch {
    refused++;
  }
}
process.stdout.write(`${sent} ${refused}\n`);
