/** A worker that does some work every second and, now and then, crashes: the manager restarts it. */
let tick = 0;
const crashAt = 3 + Math.floor(Math.random() * 4);
console.log(`worker ${process.pid} started; it will crash after ${crashAt} jobs`);
setInterval(() => {
  tick++;
  console.log(`job ${tick} done`);
  if (tick >= crashAt) {
    console.error(`worker ${process.pid}: simulated crash`);
    process.exit(1);
  }
}, 1000);
