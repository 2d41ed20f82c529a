/** The job engine: transactions over the dependency graph, and the queue that runs them. */
export * from './graph.js';
export * from './ordering.js';
export * from './transaction.js';
export * from './runner.js';
