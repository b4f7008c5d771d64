import { GenerationFailure, type GeneratorProvider, type Metrics } from '@imagegen/shared';

/** Times every upstream call and counts its outcome: `ok` or the failure's error code. */
export function instrumentProvider(provider: GeneratorProvider, metrics: Metrics): GeneratorProvider {
  return {
    name: provider.name,
    async generate(request, ctx) {
      const end = metrics.upstreamDuration.startTimer({ provider: provider.name });
      let outcome = 'ok';
      try {
        return await provider.generate(request, ctx);
      } catch (err) {
        outcome = err instanceof GenerationFailure ? err.code : 'internal_error';
        throw err;
      } finally {
        end({ outcome });
        metrics.upstreamRequests.inc({ provider: provider.name, outcome });
      }
    },
  };
}
