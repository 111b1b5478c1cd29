// minielm's public API. The native addon is loaded by lib/native.ts only; everything here is typed.
export { Model, PRESETS, validateConfig, readHfConfig, hfConfig } from './model/model.ts';
export type { ModelConfig, Batch, OptimizerOptions, StepResult, ForwardResult, TrainOptions } from './model/model.ts';
export { readSafetensors, writeSafetensors, parseSafetensors, encodeSafetensors } from './model/safetensors.ts';
export { MinielmError, type MinielmErrorCode } from './errors.ts';
export { encodePairs, makeBatch, epochBatches } from './train/batches.ts';
export * from './data/index.ts';
export * from './tokenizer/index.ts';
export type { Product as RetrievalProduct, ProductField, Retriever } from './retrieval/index.ts';
export { Bm25Retriever, MeilisearchRetriever, analyze, minimalStem, ndcgAt, readHomeDepot, homeDepotAvailable, HOMEDEPOT_TRAIN_CSV } from './retrieval/index.ts';
export type { Bm25Options, ScoredHit, MeilisearchRetrieverOptions, AnalyzerOptions, StemMode, HomeDepotSet, JudgedQuery } from './retrieval/index.ts';
export * from './rewards/index.ts';
export * from './users/index.ts';

import { native } from './native.ts';

/** Threads the native kernels use (default: all cores). */
export function setThreads(n: number): void {
  native.setNumThreads(n);
}
export function threads(): number {
  return native.numThreads();
}
/** Which GEMM backend runs: the built-in AVX-512/AVX2 kernel or a system BLAS found at run time. */
export function gemmInfo(): ReturnType<typeof native.gemmInfo> {
  return native.gemmInfo();
}
export function setGemmBackend(backend: 'builtin' | 'blas'): boolean {
  return native.setGemmBackend(backend);
}
