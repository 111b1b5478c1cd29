// Public surface of the data layer: loaders, the synthetic catalog and the Q2Q builder.
export type { EsciLabel, Judgement, LoadReport, MalformedRow, Product, Q2QPair, RelevanceDataset } from './types.ts';
export { ESCI_GAIN, ESCI_LABELS, HOMEDEPOT_LABELS, CROWDFLOWER_LABELS, LABEL_PRESETS, applyLabelMap, gainToLabel, parseEsciLabel, validateLabelMap } from './labels.ts';
export type { LabelMap } from './labels.ts';
export { ESCI_EXAMPLE_COLUMNS, ESCI_PRODUCT_COLUMNS, iterateEsciExamples, iterateEsciProducts, loadEsci } from './esci.ts';
export type { EsciDataset, EsciOptions, EsciProgress } from './esci.ts';
export { TABLE_PRESETS, judgedQueries, loadRelevanceTable } from './table.ts';
export type { ColumnMap, JudgedQuery, TableDataset, TableOptions } from './table.ts';
export { SYNTHETIC_DEFAULTS, SYNTHETIC_NOTICE, generateSyntheticCatalog, labelFor, syntheticIntentFilter, writeSyntheticCatalog } from './synthetic.ts';
export type { SyntheticAttribute, SyntheticCatalog, SyntheticIntent, SyntheticOptions, SyntheticProduct, SyntheticQuery } from './synthetic.ts';
export { buildQ2Q, keepAllFilter, writeQ2Q } from './q2q.ts';
export type { CandidatePair, EquivalenceFilter, Q2QOptions, Q2QResult, Q2QStats } from './q2q.ts';
export { createRng, hashString } from './random.ts';
export { DEFAULT_DENOISE_RATIO, DEFAULT_NOISE_WEIGHTS, NOISE_KINDS, addQueryNoise, applyNoise, denoisingCount, denoisingPairs, mixPairs, titlePhrase } from './noise.ts';
export type { DenoisingOptions, DenoisingPair, NoiseKind, NoiseOptions, NoisyText } from './noise.ts';
