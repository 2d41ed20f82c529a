/** Runs every benchmark, or those whose name contains one of the arguments. */
const all: Record<string, () => Promise<{ run(): Promise<void> }>> = {
  pidfd: () => import('./pidfd.js'),
  manager: () => import('./manager.js'),
  logs: () => import('./logs.js'),
};

const filters = process.argv.slice(2);
for (const [name, load] of Object.entries(all)) {
  if (filters.length > 0 && !filters.some((f) => name.includes(f))) continue;
  await (await load()).run();
}
