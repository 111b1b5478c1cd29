export type { Product, ProductField, Retriever } from './types.ts';
export { Bm25Retriever, type Bm25Options, type ScoredHit } from './bm25.ts';
export { MeilisearchRetriever, type MeilisearchRetrieverOptions } from './meilisearch.ts';
export { analyze, minimalStem, type AnalyzerOptions, type StemMode } from './analyzer.ts';
export { ndcgAt, homeDepotGain } from './metrics.ts';
export { readHomeDepot, homeDepotAvailable, HOMEDEPOT_TRAIN_CSV, type HomeDepotSet, type JudgedQuery } from './homedepot.ts';
