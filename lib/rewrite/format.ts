// The rewrite format every model in minielm shares: "query <sep>" is the prompt, the rewrite follows and
// ends with <eos>. Trainers, evaluation and serving all encode and decode through these two functions.
import type { Tokenizer } from '../tokenizer/tokenizer.ts';

/** Prompt ids for `query`: its tokens (truncated to fit maxLen with the separator) then <sep>. */
export function promptIds(tokenizer: Tokenizer, query: string, maxLen: number): number[] {
  const ids = tokenizer.encode(query).slice(0, Math.max(1, maxLen - 1));
  return [...ids, tokenizer.sepId];
}

/** The text of generated rewrite tokens (the <eos> and any special token dropped, whitespace trimmed). */
export function rewriteText(tokenizer: Tokenizer, tokens: readonly number[]): string {
  return tokenizer.decode(tokens.filter((t) => t !== tokenizer.eosId), { skipSpecialTokens: true }).trim();
}
