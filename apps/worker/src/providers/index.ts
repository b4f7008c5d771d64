import type { GeneratorProvider } from '@imagegen/shared';
import type { WorkerConfig } from '../config';
import type { Semaphore } from '../images/semaphore';
import { AiStudiosProvider } from './aistudios';
import { BuiltinProvider } from './builtin';
import { OpenAiProvider } from './openai';

export function createProvider(config: WorkerConfig, cpu: Semaphore): GeneratorProvider {
  const timeoutMs = config.GENERATOR_TIMEOUT_MS;
  switch (config.GENERATOR) {
    case 'builtin':
      return new BuiltinProvider(cpu);
    case 'aistudios':
      return new AiStudiosProvider({ url: requireUrl(config), apiKey: config.GENERATOR_API_KEY, timeoutMs });
    case 'openai':
      return new OpenAiProvider({ url: requireUrl(config), apiKey: config.GENERATOR_API_KEY, model: config.GENERATOR_MODEL, timeoutMs });
  }
}

function requireUrl(config: WorkerConfig): string {
  if (!config.GENERATOR_URL) throw new Error(`GENERATOR_URL is required for GENERATOR=${config.GENERATOR}`);
  return config.GENERATOR_URL;
}
