// `minielm tokenizer train`: byte-level BPE on queries, rewrites and product titles.
import { createReadStream, existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { MinielmError } from '../errors.ts';
import { Tokenizer, minielmTokenizerConfig, trainByteLevelBpe, validateVocabSize, MIN_VOCAB_SIZE, EOS_TOKEN, SEP_TOKEN } from '../tokenizer/index.ts';

export const help = `Usage: minielm tokenizer train <input...> --vocab-size N --out DIR

Trains a byte-level BPE (GPT-2 style) and writes a Hugging Face tokenizer folder
(tokenizer.json, tokenizer_config.json, special_tokens_map.json) that
@huggingface/tokenizers and transformers.js load.

Inputs (one or more files):
  *.jsonl          one JSON object per line; its "query" and "rewrite" strings are
                   used (Q2Q pairs), or "text" / "title" when present
  any other file   plain text, one training text per line (queries, product titles)

Options:
  --vocab-size N   total vocabulary: 2 special tokens + 256 bytes + merges
                   (${MIN_VOCAB_SIZE} .. 30002; default 8192)
  --out DIR        output folder (created if missing)
  -h, --help       this help

Special tokens: id 0 ${EOS_TOKEN} (end of sequence, padding), id 1 ${SEP_TOKEN}
(between query and rewrite). Training text format: query ${SEP_TOKEN} rewrite ${EOS_TOKEN}.
Progress goes to stderr.`;

const JSON_TEXT_FIELDS = ['query', 'rewrite', 'text', 'title'] as const;

/** Reads training texts from JSONL Q2Q files or plain-text files; errors name the file and line. */
export async function readTrainingTexts(file: string, onText: (text: string) => void): Promise<number> {
  if (!existsSync(file)) throw new MinielmError('MINIELM_NOT_FOUND', `input file ${file} does not exist.`);
  const jsonl = /\.jsonl$/i.test(file);
  const lines = createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
  let lineNo = 0;
  let count = 0;
  for await (const line of lines) {
    lineNo++;
    if (line.trim() === '') continue;
    if (!jsonl) {
      onText(line);
      count++;
      continue;
    }
    let row: unknown;
    try {
      row = JSON.parse(line);
    } catch {
      throw new MinielmError('MINIELM_BAD_FILE', `${file} line ${lineNo} is not valid JSON; each line of a .jsonl input must be one object such as {"query": ..., "rewrite": ...}.`);
    }
    const texts = JSON_TEXT_FIELDS.map((k) => (row as Record<string, unknown>)?.[k]).filter((v): v is string => typeof v === 'string' && v.length > 0);
    if (texts.length === 0) {
      throw new MinielmError('MINIELM_BAD_FILE', `${file} line ${lineNo} has none of the string fields ${JSON_TEXT_FIELDS.join(', ')}.`);
    }
    for (const t of texts) onText(t);
    count += texts.length;
  }
  return count;
}

export async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== 'train') {
    console.error(sub ? `minielm tokenizer: unknown subcommand "${sub}".\n\n${help}` : help);
    return 2;
  }
  let parsed;
  try {
    parsed = parseArgs({
      args: rest,
      allowPositionals: true,
      options: { 'vocab-size': { type: 'string', default: '8192' }, out: { type: 'string' } },
    });
  } catch (err) {
    throw new MinielmError('MINIELM_INVALID_ARGUMENT', `${(err as Error).message}. Run "minielm tokenizer train --help".`);
  }
  const { values, positionals } = parsed;
  if (positionals.length === 0) throw new MinielmError('MINIELM_INVALID_ARGUMENT', 'no input files: pass one or more .jsonl Q2Q files or text files (one text per line).');
  if (!values.out) throw new MinielmError('MINIELM_INVALID_ARGUMENT', '--out DIR is required: the folder that will receive tokenizer.json.');
  const vocabSize = Number(values['vocab-size']);
  if (!Number.isInteger(vocabSize)) throw new MinielmError('MINIELM_INVALID_ARGUMENT', `--vocab-size must be an integer, got "${values['vocab-size']}".`);
  validateVocabSize(vocabSize);

  const texts: string[] = [];
  for (const file of positionals) {
    const n = await readTrainingTexts(file, (t) => texts.push(t));
    console.error(`read ${n} texts from ${file}`);
  }
  const result = await trainByteLevelBpe(texts, { vocabSize, onProgress: (m) => console.error(m) });
  const tokenizer = Tokenizer.fromJson(result.tokenizerJson, minielmTokenizerConfig(), 'trained tokenizer');
  await tokenizer.save(values.out);
  console.log(`wrote ${values.out}/tokenizer.json: vocabulary ${tokenizer.vocabSize} (${result.merges} merges), eos/pad id ${tokenizer.eosId}, sep id ${tokenizer.sepId}`);
  return 0;
}
