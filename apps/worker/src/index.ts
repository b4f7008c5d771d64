export { loadWorkerConfig, type WorkerConfig } from './config';
export { startWorkerRuntime, type WorkerRuntime } from './runtime';
