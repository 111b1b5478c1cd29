// Special tokens of the MiniELM model format. Training text is `query <|sep|> rewrite <|endoftext|>`.
// They sit at fixed low ids so a trained vocabulary of any size keeps them in the same place:
//   0  <|endoftext|>  end of sequence, also used as padding and as beginning of text (GPT-2 style)
//   1  <|sep|>        separator between the query and its rewrite
// Ids 2..257 are the 256 byte-level symbols (id = 2 + byte value); merged tokens follow in merge order.

export const EOS_TOKEN = '<|endoftext|>';
export const SEP_TOKEN = '<|sep|>';
export const EOS_ID = 0;
export const SEP_ID = 1;
export const SPECIAL_TOKENS: readonly string[] = [EOS_TOKEN, SEP_TOKEN];
/** First id after the special tokens: where the byte alphabet starts. */
export const BYTE_ID_OFFSET = SPECIAL_TOKENS.length;
/** Smallest vocabulary a byte-level BPE can have: the special tokens plus 256 byte symbols, no merges. */
export const MIN_VOCAB_SIZE = BYTE_ID_OFFSET + 256;
