// minielm's public API. The native addon is loaded by lib/native.ts only; everything here is typed.
export { Model, PRESETS, validateConfig, readHfConfig, hfConfig, cudaInfo, resolveDevice } from './model/model.ts';
export type { ModelConfig, Batch, OptimizerOptions, StepResult, ForwardResult, TrainOptions, Device } from './model/model.ts';
export type { CudaInfo } from './native.ts';
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
export { copyQuery, dropOneWord, feedbackRewriter, freshRewriter, modelRewriter, type RewritesFor, type ModelRewriterOptions } from './eval/rewriters.ts';
export { splitDev, devSide, judgedQueriesBySide, loadEvaluationTable, type DevSplit, type DevSplitOptions, type EvaluationTable } from './eval/splits.ts';
// Evaluation of a trained model: Table 2 (offline) and Table 4 (coverage with n rewrites).
export { evaluateOffline, referencesByQuery, type OfflineMetrics } from './eval/offline.ts';
export { coverageAtN, type CoverageResult } from './eval/coverage.ts';
export { scoreRewrites, type RewardEnvironment, type ScoredRewrite } from './rewrite/environment.ts';
// Decoding: batched generation and the rewrite format, hygiene and vocabulary constraint every stage shares.
// Alignment steps on the engine: token-level distillation, DPO, GRPO (one optimizer step each, off the main thread).
export { distillStep, dpoStep, sequenceLogProbs, preferenceLogProbs, buildPreferenceBatch, grpoStep, grpoTokenLogProbs, buildGrpoBatch } from './model/align.ts';
export type { DistillOptions, DistillLoss, DistillStepResult, DpoOptions, DpoLossType, DpoStepResult, PreferencePair, ReferenceLogProbs, GrpoGroup, GrpoOptions, GrpoLossType, GrpoStepResult } from './model/align.ts';
export { generate, WordConstraint, MAX_BEAMS, MAX_RETURN_SEQUENCES, type GenerateOptions, type Generation, type DecodingStrategy } from './model/generate.ts';
export { promptIds, rewriteText } from './rewrite/format.ts';
export { DEFAULT_HYGIENE, NO_HYGIENE, hygieneOptions, catalogWords, catalogWordConstraint, type RewriteHygiene } from './rewrite/hygiene.ts';
export { FeedbackExpander, feedbackWords, DEFAULT_FEEDBACK_CANDIDATES, DEFAULT_FEEDBACK_DEPTH, DEFAULT_FEEDBACK_WEIGHT, type FeedbackOptions } from './rewrite/feedback.ts';
export { selectFresh, selectRelevant, selectByScorer, DEFAULT_FRESH_CANDIDATES, DEFAULT_FRESH_WEIGHT, DEFAULT_RELEVANCE_CANDIDATES, DEFAULT_RELEVANCE_RANK_WEIGHT } from './rewrite/select.ts';
// The learned relevance scorer (M1): a small GPT-2 with a score head, then boosted trees over lexical match features.
export { LearnedRelevanceScorer, LexicalStage, trainRelevanceScorer, fitLexicalStage, type LabelledPair, type RelevanceTrainOptions, type LexicalFitReport } from './rewards/learned.ts';
// The trainers: catalog pretraining, SFT on Q2Q pairs, reverse-KL distillation, online DPO.
export { trainPretrain, pretrainTexts, packTexts, type PretrainOptions, type PretrainResult, type PackedCorpus, type ProductText } from './train/pretrain.ts';
export { trainSft, evalLoss, type SftOptions, type SftResult, type RewritePair } from './train/sft.ts';
export { trainDistill, type DistillTrainOptions } from './train/distill.ts';
export { trainOnline, type OnlineOptions, type OnlineResult } from './train/online.ts';
export type { TrainRunOptions, TrainRunResult } from './train/loop.ts';
// Serving: the embeddable rewriter (micro-batching, cache) and its HTTP endpoints.
export { Rewriter, InvalidOptionError } from './serve/rewriter.ts';
export type { RewriterOptions, RewriteOptions, Rewrite, ExpandOptions, Expansion, ExpandedProduct, ProductSource, RewriterStats, RewriterSettings, BatchInfo, RewriteFeedback, RewriteSelection } from './serve/rewriter.ts';
// LTR&R: the Thompson-sampling bandit expand({ select: 'bandit' }) uses, and its regret simulation.
export { Bandit, BANDIT_FORMAT, BANDIT_VERSION, normaliseArmText, type BanditOptions, type ArmPosterior, type BanditSelection, type BanditStats } from './serve/bandit.ts';
export { simulateBandit, banditRegretSvg, banditRegretMarkdown, REGRET_DEFINITION, type BanditSimulationOptions, type BanditSimulationResult, type BanditPolicy, type PolicyResult } from './eval/bandit-simulation.ts';
export { createRewriteHandler, startRewriteServer, type RewriteHandler, type RewriteHandlerOptions, type RewriteServer, type RewriteServerOptions } from './serve/http.ts';

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

/**
 * The instruction-set level each kernel family runs at on this CPU. The addon is built for plain x86-64 and
 * picks its AVX2 / AVX-512 kernels at run time; MINIELM_ISA=generic|avx2 caps them (for tests).
 */
export function isaInfo(): ReturnType<typeof native.isaInfo> {
  return native.isaInfo();
}
export function setGemmBackend(backend: 'builtin' | 'blas'): boolean {
  return native.setGemmBackend(backend);
}
