// Embedded simulated user throughput: (profile, query, 10-product list) judgements per second.
//   judge.embedded.per_s          relevance supplied by the caller (the trainer computes M1 for the reward anyway)
//   judge.embedded_lexical.per_s  relevance filled in by the lexical-overlap fallback scorer
import type { BenchContext } from './run.ts';
import { EmbeddedJudge } from '../lib/users/embedded-judge.ts';
import { DEFAULT_VOCABULARY, generateProfiles } from '../lib/users/profiles.ts';
import { seededRandom } from '../lib/users/random.ts';
import type { JudgeRequest } from '../lib/users/judge.ts';
import type { ProductLike } from '../lib/rewards/types.ts';

export const prefixes = ['judge.'];

const NOUNS = ['shoes', 'jacket', 'lamp', 'sofa', 'drill', 'hose', 'mug', 'backpack', 'dress', 'headphones'];

function workload(count: number, seed: number, withRelevance: boolean): JudgeRequest[] {
  const rand = seededRandom(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
  const catalog: ProductLike[] = Array.from({ length: 5000 }, (_, i) => ({
    id: `p${i}`,
    title: `${pick(DEFAULT_VOCABULARY.styles)} ${pick(DEFAULT_VOCABULARY.colors)} ${pick(DEFAULT_VOCABULARY.materials)} ${pick(NOUNS)} model ${i}`,
    brand: pick(DEFAULT_VOCABULARY.brands),
    color: pick(DEFAULT_VOCABULARY.colors),
    price: Math.round(5 + rand() * 300),
  }));
  const profiles = generateProfiles(500, seed);
  return Array.from({ length: count }, () => {
    const products = Array.from({ length: 10 }, () => pick(catalog));
    return {
      profile: pick(profiles),
      query: `${pick(DEFAULT_VOCABULARY.colors)} ${pick(NOUNS)}`,
      products,
      relevance: withRelevance ? products.map(() => rand()) : undefined,
    };
  });
}

async function perSecond(judge: EmbeddedJudge, requests: JudgeRequest[], minMs: number): Promise<number> {
  const batch = 256;
  await judge.judgeBatch(requests.slice(0, batch)); // warm-up (JIT, caches)
  let done = 0;
  let k = 0;
  const start = performance.now();
  let elapsed = 0;
  while (elapsed < minMs) {
    if (k + batch > requests.length) k = 0;
    await judge.judgeBatch(requests.slice(k, k + batch));
    k += batch;
    done += batch;
    elapsed = performance.now() - start;
  }
  return (done / elapsed) * 1000;
}

export async function run(ctx: BenchContext): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  if (ctx.wants('judge.embedded.per_s')) {
    const rate = await perSecond(new EmbeddedJudge({ seed: 1 }), workload(20_000, 1, true), 2000);
    out['judge.embedded.per_s'] = rate;
    ctx.note(`embedded judge, relevance given: ${rate.toFixed(0)} judgements/s of 10-product lists (target >= 5000)`);
  }
  if (ctx.wants('judge.embedded_lexical.per_s')) {
    const rate = await perSecond(new EmbeddedJudge({ seed: 1 }), workload(20_000, 2, false), 2000);
    out['judge.embedded_lexical.per_s'] = rate;
    ctx.note(`embedded judge, lexical relevance fallback: ${rate.toFixed(0)} judgements/s`);
  }
  return out;
}
