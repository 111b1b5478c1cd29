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
// Evaluation that no model takes part in: copy-the-query, judged recall on human labels, the probe table, the dev split.
export { evaluateCopyQuery, type CopyQueryMetrics } from './eval/offline.ts';
export { judgedRecall, judgedRecallOfModel, judgedLabels, gainThreshold, relevantProducts, normaliseQuery, DEFAULT_MIN_GAIN, HOMEDEPOT_RELEVANT_RATING } from './eval/judged.ts';
export type { JudgedLabels, JudgedRecallOptions, JudgedRecallResult, JudgedQueryResult } from './eval/judged.ts';
export { evaluateProbes, containsRequired, HOMEDEPOT_PROBES, type Probe, type ProbeKind, type ProbeResult, type ProbeSummary } from './eval/probes.ts';
export { copyQuery, dropOneWord, modelRewriter, type RewritesFor, type ModelRewriterOptions } from './eval/rewriters.ts';
export { splitDev, devSide, judgedQueriesBySide, loadEvaluationTable, type DevSplit, type DevSplitOptions, type EvaluationTable } from './eval/splits.ts';

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
