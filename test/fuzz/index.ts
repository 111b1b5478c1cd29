// Every API property, in the order the runner and the CI suite run them. `ci` is the input count the CI suite
// (test/api-fuzz.test.ts) gives each one so that the whole file stays near a minute on two cores; the full
// run (test/fuzz/run-js.ts, `npm run fuzz`) gives each at least 10^4.
import type { FuzzProperty } from './harness.ts';
import { fuzzForward, fuzzModelCreate, fuzzModelLoad, fuzzScore, fuzzTensors, fuzzTrainStep } from './model.ts';
import { fuzzDistill, fuzzDpo, fuzzGenerate, fuzzSequenceLogProbs, fuzzWordConstraint } from './decode-align.ts';
import { fuzzEsciOptions, fuzzEsciParquet, fuzzSafetensors, fuzzTable, fuzzTokenizerCodec, fuzzTokenizerLoad } from './files.ts';
import { fuzzExpand, fuzzHttp, fuzzHttpOptions, fuzzRewrite, fuzzRewriterLoad } from './serve.ts';

export interface FuzzEntry {
  entry: string;
  run: FuzzProperty;
  ci: number;
}

export const PROPERTIES: readonly FuzzEntry[] = [
  { entry: 'parseSafetensors', run: fuzzSafetensors, ci: 1500 },
  { entry: 'Model.create', run: fuzzModelCreate, ci: 1000 },
  { entry: 'Model.load', run: fuzzModelLoad, ci: 600 },
  { entry: 'model.forward', run: fuzzForward, ci: 1000 },
  { entry: 'model.trainStep', run: fuzzTrainStep, ci: 1000 },
  { entry: 'model.score/trainScoreStep', run: fuzzScore, ci: 1000 },
  { entry: 'model.tensors/save', run: fuzzTensors, ci: 400 },
  { entry: 'generate', run: fuzzGenerate, ci: 800 },
  { entry: 'WordConstraint', run: fuzzWordConstraint, ci: 1000 },
  { entry: 'distillStep', run: fuzzDistill, ci: 800 },
  { entry: 'dpoStep', run: fuzzDpo, ci: 800 },
  { entry: 'sequenceLogProbs', run: fuzzSequenceLogProbs, ci: 800 },
  { entry: 'Tokenizer.load', run: fuzzTokenizerLoad, ci: 500 },
  { entry: 'tokenizer.encode/decode', run: fuzzTokenizerCodec, ci: 1500 },
  { entry: 'loadRelevanceTable', run: fuzzTable, ci: 500 },
  { entry: 'loadEsci.options', run: fuzzEsciOptions, ci: 500 },
  { entry: 'loadEsci.parquet', run: fuzzEsciParquet, ci: 300 },
  { entry: 'Rewriter.load', run: fuzzRewriterLoad, ci: 300 },
  { entry: 'rewriter.rewrite/batch', run: fuzzRewrite, ci: 200 },
  { entry: 'rewriter.expand', run: fuzzExpand, ci: 400 },
  { entry: 'http.options', run: fuzzHttpOptions, ci: 400 },
  { entry: 'http', run: fuzzHttp, ci: 800 },
];
