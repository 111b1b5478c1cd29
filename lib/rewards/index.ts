export type { ProductLike, Engagement } from './types.ts';
export * from './metrics.ts';
export * from './relevance.ts';
export { SyntheticTruthScorer } from './synthetic-truth.ts';
