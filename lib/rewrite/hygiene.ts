// Decoding hygiene for rewriting: what every rewrite decode uses unless told otherwise (the trainers'
// sampling, evaluation and serving). The native decoder does the work (lib/model/generate.ts); this module
// picks the defaults and compiles the catalog's words against a tokenizer.
import { WordConstraint, type GenerateOptions } from '../model/generate.ts';
import { byteToSymbol } from '../tokenizer/byte-level.ts';
import type { Tokenizer } from '../tokenizer/tokenizer.ts';

export interface RewriteHygiene {
  /** Ban a repeated n-gram among the rewrite's tokens ("ceiling ceiling ceiling"). */
  noRepeatNgramSize: number;
  /** Penalise tokens the rewrite already used. */
  repetitionPenalty: number;
  /** At least this many tokens before the end of the rewrite (no empty rewrites). */
  minNewTokens: number;
}

/** The defaults (chosen on the dev split; see docs/evaluation.md). */
export const DEFAULT_HYGIENE: RewriteHygiene = { noRepeatNgramSize: 2, repetitionPenalty: 1.2, minNewTokens: 1 };

/** No hygiene at all (the decoder's plain behaviour), for comparisons. */
export const NO_HYGIENE: RewriteHygiene = { noRepeatNgramSize: 0, repetitionPenalty: 1, minNewTokens: 0 };

/** GenerateOptions fields for `hygiene` and an optional vocabulary constraint. */
export function hygieneOptions(hygiene: RewriteHygiene = DEFAULT_HYGIENE, wordConstraint?: WordConstraint): Partial<GenerateOptions> {
  return { ...hygiene, ...(wordConstraint ? { wordConstraint } : {}) };
}

/**
 * The raw bytes every token of a byte-level BPE tokenizer stands for (GPT-2's symbol table inverted), and
 * which ids are special (added tokens such as <eos> and <sep>).
 */
export function tokenByteStrings(tokenizer: Tokenizer): { bytes: Uint8Array[]; special: number[] } {
  const symbolToByte = new Map<string, number>(byteToSymbol.map((s, b) => [s, b]));
  const bytes: Uint8Array[] = Array.from({ length: tokenizer.vocabSize }, () => new Uint8Array(0));
  const vocab = (tokenizer.tokenizerJson.model as { vocab: Record<string, number> }).vocab;
  for (const [symbols, id] of Object.entries(vocab)) {
    const out: number[] = [];
    for (const ch of symbols) {
      const b = symbolToByte.get(ch);
      if (b === undefined) {
        out.length = 0;
        break;  // not a byte-level symbol string: leave the token empty, it can never be generated
      }
      out.push(b);
    }
    if (id >= 0 && id < bytes.length) bytes[id] = Uint8Array.from(out);
  }
  const special = (tokenizer.tokenizerJson.added_tokens ?? []).map((t) => t.id).filter((id) => id >= 0 && id < bytes.length);
  return { bytes, special };
}

/** The words of `texts` (whitespace-separated, as typed and lower-cased): the vocabulary rewrites may use. */
export function catalogWords(texts: Iterable<string>): Set<string> {
  const words = new Set<string>();
  for (const text of texts) {
    for (const w of text.split(/\s+/)) {
      if (!w) continue;
      words.add(w);
      words.add(w.toLowerCase());
    }
  }
  return words;
}

/**
 * A constraint that lets a rewrite use only words of the catalog and the query log (`texts`: product
 * titles and training queries), compiled for `tokenizer`.
 */
export async function catalogWordConstraint(tokenizer: Tokenizer, texts: Iterable<string>): Promise<WordConstraint> {
  const { bytes, special } = tokenByteStrings(tokenizer);
  return WordConstraint.create(bytes, special, catalogWords(texts));
}
