export { loadWorkerConfig, workerEnvShape, type WorkerConfig } from './config';
export { startWorkerRuntime, type WorkerOverrides, type WorkerRuntime } from './runtime';
export { makeThumbnails, probeImage, rasterizeSvg } from './images/image-processing';
export { noopImageStage, sharpImageStage, type ImageStage } from './images/image-stage';
