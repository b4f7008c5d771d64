import type { GeneratorProvider } from '@imagegen/shared';
import type { WorkerConfig } from '../config';
import type { Semaphore } from '../images/semaphore';
import { AiStudiosProvider } from './aistudios';
import { BuiltinProvider } from './builtin';
import { OpenAiProvider } from './openai';

export function createProvider(config: WorkerConfig, cpu: Semaphore): GeneratorProvider {
  const timeoutMs = config.GENERATOR_TIMEOUT_MS;
  // an answer may carry the image itself (base64: 4/3 of its size)
  const maxResponseBytes = Math.ceil(config.DOWNLOAD_MAX_BYTES * 1.4) + 64 * 1024;
  switch (config.GENERATOR) {
    case 'builtin':
      return new BuiltinProvider(cpu);
    case 'aistudios':
      return new AiStudiosProvider({ url: requireUrl(config), apiKey: config.GENERATOR_API_KEY, timeoutMs, maxResponseBytes });
    case 'openai':
      return new OpenAiProvider({ url: requireUrl(config), apiKey: config.GENERATOR_API_KEY, model: config.GENERATOR_MODEL, timeoutMs, maxResponseBytes, maxImageBytes: config.DOWNLOAD_MAX_BYTES });
  }
}

function requireUrl(config: WorkerConfig): string {
  if (!config.GENERATOR_URL) throw new Error(`GENERATOR_URL is required for GENERATOR=${config.GENERATOR}`);
  return config.GENERATOR_URL;
}
