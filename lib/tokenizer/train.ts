// Trains a byte-level BPE with the official `tokenizers` binding, then cuts its merge list to the requested
// vocabulary size. The binding's `Tokenizer.train(files)` takes no trainer options (it always runs the
// default BpeTrainer: 30,000 tokens, no special tokens, no initial alphabet). BPE learns merges greedily,
// one at a time, and never revisits them, so the first N merges are exactly what a trainer stopped at
// N merges would have produced. We therefore train once with the default cap and keep a prefix of the
// merges; the special tokens and the full 256-symbol byte alphabet are added by us at fixed ids so that
// every byte sequence stays encodable (the default trainer only keeps the bytes it saw).
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MinielmError, missingOptionalDependency } from '../errors.ts';
import { byteToSymbol } from './byte-level.ts';
import { BYTE_ID_OFFSET, MIN_VOCAB_SIZE, SPECIAL_TOKENS } from './specials.ts';
import { addedToken, type TokenizerJson } from './tokenizer-json.ts';

/** The binding's default BpeTrainer stops at this many tokens (its own alphabet included). */
export const BINDING_TRAINER_CAP = 30_000;

export interface TrainBpeOptions {
  /** Total vocabulary size: special tokens + 256 byte symbols + merges. */
  vocabSize: number;
  /** Called with one-line progress messages (the CLI prints them to stderr). */
  onProgress?: (message: string) => void;
}

export interface TrainBpeResult {
  tokenizerJson: TokenizerJson;
  /** Vocabulary size actually reached (smaller than asked when the texts run out of pairs to merge). */
  vocabSize: number;
  merges: number;
  /** Merges the trainer learned before we cut the list. */
  mergesLearned: number;
}

const trainerSource = `
const tk = require(process.env.MINIELM_TOKENIZERS_BINDING);
const tokenizer = new tk.Tokenizer(tk.BPE.empty());
tokenizer.setPreTokenizer(tk.byteLevelPreTokenizer(false, true));
tokenizer.train([process.env.MINIELM_BPE_TEXT]);
tokenizer.save(process.env.MINIELM_BPE_JSON, false);
`;

function runTrainerProcess(bindingPath: string, textFile: string, jsonFile: string): Promise<void> {
  // The binding's train() is synchronous and its progress bars write blank lines straight to fd 1, so it
  // runs in a child process: the caller's event loop stays free and its stdout stays clean.
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', trainerSource], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, MINIELM_TOKENIZERS_BINDING: bindingPath, MINIELM_BPE_TEXT: textFile, MINIELM_BPE_JSON: jsonFile },
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`BPE trainer process failed (${signal ?? `exit ${code}`}): ${stderr.trim().slice(-2000)}`));
    });
  });
}

function mergePair(merge: string | [string, string]): [string, string] {
  if (Array.isArray(merge)) return merge;
  const space = merge.indexOf(' ');
  return [merge.slice(0, space), merge.slice(space + 1)];
}

/** Builds our tokenizer.json from a learned merge list, keeping merges until `vocabSize` tokens exist. */
export function buildByteLevelBpe(learnedMerges: readonly (string | [string, string])[], vocabSize: number): TrainBpeResult {
  const vocab: Record<string, number> = {};
  let size = 0;
  for (const token of SPECIAL_TOKENS) vocab[token] = size++;
  for (const symbol of byteToSymbol) vocab[symbol] = size++;
  const merges: string[] = [];
  for (const m of learnedMerges) {
    const [a, b] = mergePair(m);
    if (!(a in vocab) || !(b in vocab)) {
      throw new MinielmError('MINIELM_BAD_FILE', `BPE merge "${a} ${b}" uses a token that no earlier merge created; the trainer output is not a byte-level BPE.`);
    }
    const merged = a + b;
    if (!(merged in vocab)) {
      if (size >= vocabSize) break;
      vocab[merged] = size++;
    }
    merges.push(`${a} ${b}`);
  }
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  const tokenizerJson: TokenizerJson = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: SPECIAL_TOKENS.map((t, i) => addedToken(i, t)),
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: null,
    decoder: byteLevel,
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges,
    },
  };
  return { tokenizerJson, vocabSize: size, merges: merges.length, mergesLearned: learnedMerges.length };
}

/** Throws MINIELM_INVALID_ARGUMENT unless `vocabSize` is a size this trainer can produce. */
export function validateVocabSize(vocabSize: number): void {
  const maxVocab = BYTE_ID_OFFSET + BINDING_TRAINER_CAP;
  if (!Number.isInteger(vocabSize) || vocabSize < MIN_VOCAB_SIZE || vocabSize > maxVocab) {
    throw new MinielmError(
      'MINIELM_INVALID_ARGUMENT',
      `vocabulary size ${vocabSize} is out of range: use an integer from ${MIN_VOCAB_SIZE} (special tokens + 256 bytes) to ${maxVocab} (the tokenizers binding's trainer stops at ${BINDING_TRAINER_CAP} tokens).`,
    );
  }
}

/** Trains on `texts` (one query, rewrite or title per entry). Rejects with MINIELM_INVALID_ARGUMENT on a bad size. */
export async function trainByteLevelBpe(texts: Iterable<string>, options: TrainBpeOptions): Promise<TrainBpeResult> {
  const { vocabSize } = options;
  validateVocabSize(vocabSize);
  // The binding is an optional peer dependency (64 MB of prebuilt binaries that serving never needs).
  let bindingPath: string;
  try {
    bindingPath = createRequire(import.meta.url).resolve('tokenizers');
  } catch (err) {
    throw missingOptionalDependency(err, 'tokenizers', 'Training a BPE tokenizer (trainByteLevelBpe, `minielm tokenizer train`)');
  }
  const progress = options.onProgress ?? (() => {});
  const dir = await mkdtemp(join(tmpdir(), 'minielm-bpe-'));
  try {
    const lines: string[] = [];
    for (const text of texts) {
      // The trainer reads one sequence per line; a newline inside a text just splits it.
      if (text.length > 0) lines.push(text);
    }
    if (lines.length === 0) throw new MinielmError('MINIELM_INVALID_ARGUMENT', 'no training text: the input files gave no non-empty query, rewrite or line.');
    const textFile = join(dir, 'corpus.txt');
    const jsonFile = join(dir, 'trained.json');
    await writeFile(textFile, lines.join('\n'));
    progress(`training byte-level BPE on ${lines.length} texts (${(lines.reduce((n, l) => n + l.length, 0) / 1e6).toFixed(2)} M chars)`);
    const started = Date.now();
    await runTrainerProcess(bindingPath, textFile, jsonFile);
    const trained = JSON.parse(await readFile(jsonFile, 'utf8')) as TokenizerJson;
    const learned = (trained.model as { merges?: (string | [string, string])[] }).merges ?? [];
    const trainedSize = Object.keys((trained.model as { vocab?: Record<string, number> }).vocab ?? {}).length;
    progress(`trainer learned ${learned.length} merges (vocabulary ${trainedSize}) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    const result = buildByteLevelBpe(learned, vocabSize);
    if (result.vocabSize < vocabSize) {
      const why = trainedSize >= BINDING_TRAINER_CAP ? `the binding's trainer stops at ${BINDING_TRAINER_CAP} tokens` : 'the texts have no more pairs to merge';
      progress(`warning: asked for ${vocabSize} tokens, got ${result.vocabSize}: ${why}`);
    }
    progress(`kept ${result.merges} merges: vocabulary ${result.vocabSize}`);
    return result;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
