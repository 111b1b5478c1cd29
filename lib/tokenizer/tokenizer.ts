// The tokenizer the rest of MiniELM uses. Encoding and decoding run on `@huggingface/tokenizers` (the same
// pure-JS code transformers.js uses), so a folder that works here also works there; the files are the
// standard Hugging Face trio, whether we trained them or they came with a pretrained GPT-2.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { MinielmError, describeValue } from '../errors.ts';
import { replaceDir, resolveDir } from '../util/atomic.ts';
import { EOS_TOKEN, SEP_TOKEN } from './specials.ts';
import {
  addedToken,
  specialTokenContent,
  type SpecialTokenValue,
  type TokenizerConfigJson,
  type TokenizerJson,
} from './tokenizer-json.ts';

export interface EncodedPair {
  /** query tokens, separator, rewrite tokens, end of sequence. */
  ids: number[];
  /** 1 where the token is a training target (rewrite tokens and the final end-of-sequence), 0 elsewhere. */
  lossMask: number[];
}

export interface DecodeOptions {
  /** Drop special tokens (separator, end of sequence) from the text. Default false. */
  skipSpecialTokens?: boolean;
}

export interface SpecialIds {
  eos: number;
  pad: number;
  bos: number;
  sep: number;
}

export class Tokenizer {
  readonly tokenizerJson: TokenizerJson;
  readonly config: TokenizerConfigJson;
  readonly vocabSize: number;
  readonly eosId: number;
  readonly padId: number;
  readonly bosId: number;
  readonly sepId: number;
  /** True when the vocabulary has no separator token (pretrained GPT-2) and the end-of-sequence token stands in for it. */
  readonly separatorIsEos: boolean;
  private readonly hf: HfTokenizer;
  /** Where the tokenizer came from, for error messages. */
  private readonly source: string;

  private constructor(tokenizerJson: TokenizerJson, config: TokenizerConfigJson, source: string) {
    this.tokenizerJson = tokenizerJson;
    this.config = config;
    this.source = source;
    const bad = (what: string): MinielmError =>
      new MinielmError('MINIELM_BAD_FILE', `${source}: ${what}; re-save the tokenizer or re-train it ("minielm tokenizer train").`);
    if (!isPlainObject(config)) throw bad(`the tokenizer config is ${describeValue(config)}, not a JSON object`);
    const vocab = (tokenizerJson.model as { vocab?: unknown }).vocab;
    if (!vocab || typeof vocab !== 'object' || Array.isArray(vocab)) {
      throw new MinielmError('MINIELM_BAD_FILE', `${source}: model.vocab is missing or not a token -> id map; only BPE tokenizer.json files are supported.`);
    }
    // Ids index arrays of vocabSize entries later (the model's embedding, the word constraint): bound them here.
    const validId = (id: unknown): id is number => typeof id === 'number' && Number.isInteger(id) && id >= 0 && id < MAX_TOKEN_ID;
    const ids = new Map<string, number>();
    for (const [token, id] of Object.entries(vocab)) {
      if (!validId(id)) throw bad(`model.vocab gives token ${describeValue(token)} the id ${describeValue(id)}, not an integer in [0, ${MAX_TOKEN_ID})`);
      ids.set(token, id);
    }
    const added: unknown = tokenizerJson.added_tokens ?? [];
    if (!Array.isArray(added)) throw bad(`added_tokens is ${describeValue(added)}, not an array`);
    added.forEach((t: unknown, i) => {
      const token = t as { id?: unknown; content?: unknown } | null;
      if (!token || typeof token !== 'object' || typeof token.content !== 'string' || !validId(token.id))
        throw bad(`added_tokens[${i}] is not an object with a string "content" and an integer "id" in [0, ${MAX_TOKEN_ID})`);
      ids.set(token.content, token.id);
    });
    let maxId = -1;
    for (const id of ids.values()) if (id > maxId) maxId = id;
    this.vocabSize = maxId + 1;
    const idOf = (value: SpecialTokenValue): number | undefined => {
      const content = specialTokenContent(value);
      return content === undefined ? undefined : ids.get(content);
    };
    const eos = idOf(config.eos_token) ?? ids.get(EOS_TOKEN);
    if (eos === undefined) {
      throw new MinielmError('MINIELM_BAD_FILE', `${source}: no end-of-sequence token: set "eos_token" in tokenizer_config.json or add "${EOS_TOKEN}" to the vocabulary.`);
    }
    this.eosId = eos;
    this.padId = idOf(config.pad_token) ?? eos;
    this.bosId = idOf(config.bos_token) ?? eos;
    const sep = idOf(config.sep_token) ?? ids.get(SEP_TOKEN);
    this.sepId = sep ?? eos;
    this.separatorIsEos = sep === undefined;
    try {
      this.hf = new HfTokenizer(tokenizerJson, { ...config, clean_up_tokenization_spaces: false });
    } catch (err) {
      throw new MinielmError('MINIELM_BAD_FILE', `${source}: @huggingface/tokenizers cannot load it: ${errorText(err)}`, { cause: err });
    }
  }

  /** A failure inside @huggingface/tokenizers on a tokenizer that loaded: its files are at fault, not the text. */
  private libraryError(what: string, err: unknown): MinielmError {
    return new MinielmError('MINIELM_BAD_FILE', `${this.source}: @huggingface/tokenizers failed to ${what} (${errorText(err)}): the tokenizer files are inconsistent; re-save or re-train the tokenizer.`, { cause: err });
  }

  /** Builds a tokenizer from parsed tokenizer.json (+ tokenizer_config.json) objects. */
  static fromJson(tokenizerJson: TokenizerJson, config: TokenizerConfigJson = {}, source = 'tokenizer.json'): Tokenizer {
    if (!isPlainObject(tokenizerJson) || !tokenizerJson.model || typeof tokenizerJson.model !== 'object') {
      throw new MinielmError('MINIELM_BAD_FILE', `${source}: not a Hugging Face tokenizer.json (no "model" field).`);
    }
    return new Tokenizer(tokenizerJson, config, source);
  }

  /** Loads a Hugging Face tokenizer folder (tokenizer.json required; tokenizer_config.json, special_tokens_map.json optional). */
  static async load(dir: string): Promise<Tokenizer> {
    if (typeof dir !== 'string' || dir.length === 0)
      throw new MinielmError('MINIELM_INVALID_ARGUMENT', `Tokenizer.load needs the path of a folder holding tokenizer.json, got ${describeValue(dir)}`);
    dir = await resolveDir(dir);
    const file = join(dir, 'tokenizer.json');
    if (!existsSync(file)) {
      throw new MinielmError('MINIELM_NOT_FOUND', `${file} does not exist: pass a folder holding a Hugging Face tokenizer.json (train one with "minielm tokenizer train").`);
    }
    const tokenizerJson = await readJson<TokenizerJson>(file);
    let config: TokenizerConfigJson = {};
    const mapFile = join(dir, 'special_tokens_map.json');
    if (existsSync(mapFile)) config = { ...(await readJsonObject<TokenizerConfigJson>(mapFile)) };
    const configFile = join(dir, 'tokenizer_config.json');
    if (existsSync(configFile)) config = { ...config, ...(await readJsonObject<TokenizerConfigJson>(configFile)) };
    return Tokenizer.fromJson(tokenizerJson, config, file);
  }

  get specialIds(): SpecialIds {
    return { eos: this.eosId, pad: this.padId, bos: this.bosId, sep: this.sepId };
  }

  /** Token ids of `text`, no special tokens added (special-token strings inside the text are still matched). */
  encode(text: string): number[] {
    if (typeof text !== 'string') throw new MinielmError('MINIELM_INVALID_ARGUMENT', `encode() takes a string, got ${describeValue(text)}.`);
    try {
      return this.hf.encode(text, { add_special_tokens: false }).ids;
    } catch (err) {
      throw this.libraryError('encode the text', err);
    }
  }

  encodeBatch(texts: readonly string[]): number[][] {
    if (!Array.isArray(texts)) throw new MinielmError('MINIELM_INVALID_ARGUMENT', `encodeBatch() takes an array of strings, got ${describeValue(texts)}.`);
    return texts.map((t) => this.encode(t));
  }

  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    if (!Array.isArray(ids) && !(ArrayBuffer.isView(ids) && !(ids instanceof DataView)))
      throw new MinielmError('MINIELM_INVALID_ARGUMENT', `decode() takes an array of token ids, got ${describeValue(ids)}.`);
    const skip = (options as DecodeOptions | null | undefined)?.skipSpecialTokens;
    if (skip !== undefined && typeof skip !== 'boolean')
      throw new MinielmError('MINIELM_INVALID_ARGUMENT', `decode(): skipSpecialTokens must be true or false, got ${describeValue(skip)}.`);
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new MinielmError('MINIELM_INVALID_ARGUMENT', `decode(): token id ${describeValue(id)} is outside the vocabulary [0, ${this.vocabSize}).`);
      }
    }
    if (ids.length === 0) return '';
    try {
      return this.hf.decode(Array.from(ids), { skip_special_tokens: skip ?? false, clean_up_tokenization_spaces: false });
    } catch (err) {
      throw this.libraryError('decode the ids', err);
    }
  }

  /** `query <sep> rewrite <eos>` with the loss mask on the rewrite and the final end of sequence. */
  encodePair(query: string, rewrite: string): EncodedPair {
    const q = this.encode(query);
    const r = this.encode(rewrite);
    const ids = [...q, this.sepId, ...r, this.eosId];
    const lossMask = new Array<number>(ids.length).fill(0);
    lossMask.fill(1, q.length + 1);
    return { ids, lossMask };
  }

  /**
   * Writes tokenizer.json, tokenizer_config.json and special_tokens_map.json into `dir`, as one set (a kill
   * leaves the previous three or the new three; other files in `dir` are kept). Inside Model.save's
   * extraFiles they join the model's set.
   */
  async save(dir: string): Promise<void> {
    await replaceDir(dir, async (stage) => {
      await mkdir(stage, { recursive: true });
      await writeFile(join(stage, 'tokenizer.json'), `${JSON.stringify(this.tokenizerJson)}\n`);
      await writeFile(join(stage, 'tokenizer_config.json'), `${JSON.stringify(this.config, null, 2)}\n`);
      const map: Record<string, string> = {};
      for (const key of ['bos_token', 'eos_token', 'unk_token', 'pad_token', 'sep_token'] as const) {
        const content = specialTokenContent(this.config[key]);
        if (content !== undefined) map[key] = content;
      }
      await writeFile(join(stage, 'special_tokens_map.json'), `${JSON.stringify(map, null, 2)}\n`);
    });
  }
}

/** tokenizer_config.json for a tokenizer we trained (GPT-2 conventions plus the separator). */
export function minielmTokenizerConfig(): TokenizerConfigJson {
  return {
    tokenizer_class: 'GPT2Tokenizer',
    bos_token: EOS_TOKEN,
    eos_token: EOS_TOKEN,
    unk_token: EOS_TOKEN,
    pad_token: EOS_TOKEN,
    sep_token: SEP_TOKEN,
    add_prefix_space: false,
    add_bos_token: false,
    // Clean-up would rewrite " ." to "." on decode and break the lossless round trip.
    clean_up_tokenization_spaces: false,
    added_tokens_decoder: {
      '0': addedToken(0, EOS_TOKEN),
      '1': addedToken(1, SEP_TOKEN),
    },
    minielm_format: 'query <|sep|> rewrite <|endoftext|>',
  };
}

/** Token ids at most: the engine's largest vocabulary (native/model: vocab_size <= 2^22). */
const MAX_TOKEN_ID = 1 << 22;

function isPlainObject(x: unknown): x is Record<string, unknown> {
  return x !== null && typeof x === 'object' && !Array.isArray(x);
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : describeValue(err);
}

async function readJsonObject<T>(file: string): Promise<T> {
  const value = await readJson<unknown>(file);
  if (!isPlainObject(value)) throw new MinielmError('MINIELM_BAD_FILE', `${file} holds ${describeValue(value)}, not a JSON object; re-save it or re-train the tokenizer.`);
  return value as T;
}

async function readJson<T>(file: string): Promise<T> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new MinielmError('MINIELM_BAD_FILE', `cannot read ${file}: ${errorText(err)}`, { cause: err });
  }
  try {
    return JSON.parse(text) as T;
  } catch (err) {
    throw new MinielmError('MINIELM_BAD_FILE', `${file} is not valid JSON (${(err as Error).message}); re-save it or re-train the tokenizer.`, { cause: err });
  }
}
