// The Hugging Face `tokenizer.json` / `tokenizer_config.json` shapes we write and read (the fields we use).

export interface AddedTokenJson {
  id: number;
  content: string;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

export interface BpeModelJson {
  type: 'BPE';
  vocab: Record<string, number>;
  /** "a b" strings (GPT-2 files) or [a, b] pairs (tokenizers >= 0.20). */
  merges: (string | [string, string])[];
  [field: string]: unknown;
}

export interface TokenizerJson {
  version?: string;
  added_tokens?: AddedTokenJson[];
  normalizer?: unknown;
  pre_tokenizer?: unknown;
  post_processor?: unknown;
  decoder?: unknown;
  model: BpeModelJson | { type: string; vocab?: unknown; [field: string]: unknown };
  [field: string]: unknown;
}

/** A special token in tokenizer_config.json / special_tokens_map.json: a bare string or an AddedToken object. */
export type SpecialTokenValue = string | { content: string; [field: string]: unknown } | null | undefined;

export interface TokenizerConfigJson {
  tokenizer_class?: string;
  bos_token?: SpecialTokenValue;
  eos_token?: SpecialTokenValue;
  unk_token?: SpecialTokenValue;
  pad_token?: SpecialTokenValue;
  sep_token?: SpecialTokenValue;
  add_prefix_space?: boolean;
  clean_up_tokenization_spaces?: boolean;
  [field: string]: unknown;
}

export function specialTokenContent(value: SpecialTokenValue): string | undefined {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object' && typeof value.content === 'string') return value.content;
  return undefined;
}

export function addedToken(id: number, content: string): AddedTokenJson {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
}
