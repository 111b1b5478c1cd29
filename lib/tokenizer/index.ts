export { Tokenizer, minielmTokenizerConfig, type EncodedPair, type DecodeOptions, type SpecialIds } from './tokenizer.ts';
export { trainByteLevelBpe, buildByteLevelBpe, validateVocabSize, BINDING_TRAINER_CAP, type TrainBpeOptions, type TrainBpeResult } from './train.ts';
export { EOS_TOKEN, SEP_TOKEN, EOS_ID, SEP_ID, SPECIAL_TOKENS, MIN_VOCAB_SIZE } from './specials.ts';
export { byteToSymbol } from './byte-level.ts';
export type { TokenizerJson, TokenizerConfigJson } from './tokenizer-json.ts';

import { Tokenizer, minielmTokenizerConfig } from './tokenizer.ts';
import { trainByteLevelBpe, type TrainBpeOptions } from './train.ts';

/** Trains a byte-level BPE on `texts` and returns it as a ready MiniELM tokenizer. */
export async function trainTokenizer(texts: Iterable<string>, options: TrainBpeOptions): Promise<Tokenizer> {
  const { tokenizerJson } = await trainByteLevelBpe(texts, options);
  return Tokenizer.fromJson(tokenizerJson, minielmTokenizerConfig(), 'trained tokenizer');
}
