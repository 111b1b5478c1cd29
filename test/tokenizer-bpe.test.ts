import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { Tokenizer, trainByteLevelBpe, trainTokenizer, minielmTokenizerConfig, byteToSymbol, EOS_ID, SEP_ID, type TokenizerJson } from '../lib/tokenizer/index.ts';

// A deterministic corpus of product-search-like texts (ASCII only: emoji and CJK below are never seen in training).
function corpus(): string[] {
  const nouns = ['drill', 'bracket', 'faucet', 'ceiling fan', 'deck stain', 'shower head', 'hammer', 'paint'];
  const mods = ['cordless', '18v', 'stainless steel', 'white', '3/4 in.', 'outdoor', 'brushed nickel', '12-gauge'];
  const out: string[] = [];
  const brands = ['Makita', 'DeWalt', 'Behr', 'Delta', 'Simpson Strong-Tie', 'Whirlpool', 'Hampton Bay', 'Ryobi'];
  for (let i = 0; i < 1500; i++) {
    out.push(`${brands[(i * 5) % brands.length]} ${mods[i % mods.length]} ${nouns[(i * 7) % nouns.length]} ${mods[(i * 3) % mods.length]} model ${(i * 7919) % 10007}`);
  }
  return out;
}

const odd = [
  '', ' ', '   ', '\t\n', '\r\n', 'a\u0000b', 'héllo wörld', 'e\u0301', '😀', '👩‍👩‍👧 family', '中文字符', 'שלום עולם',
  'Ａ full-width', '<|endoftext|>', 'x<|sep|>y', '  leading and trailing  ', 'multiple   spaces', "don't 1/2\" x 3'",
  'a'.repeat(500), '\u{10FFFF}', 'tab\tinside',
];

let dir = '';
let small: Tokenizer;

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'minielm-tok-test-'));
  small = await trainTokenizer(corpus(), { vocabSize: 300 });
});
test.after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('vocabulary size is honoured exactly and smaller vocabularies are merge-list prefixes', async () => {
  const a = await trainByteLevelBpe(corpus(), { vocabSize: 300 });
  const b = await trainByteLevelBpe(corpus(), { vocabSize: 420 });
  assert.is(a.vocabSize, 300);
  assert.is(b.vocabSize, 420);
  assert.is(small.vocabSize, 300);
  assert.ok(a.mergesLearned > 420, `the trainer learned ${a.mergesLearned} merges, more than we kept`);
  const ma = (a.tokenizerJson.model as { merges: string[] }).merges;
  const mb = (b.tokenizerJson.model as { merges: string[] }).merges;
  assert.equal(mb.slice(0, ma.length), ma);
  // Same input, same merges (training is deterministic).
  const again = await trainByteLevelBpe(corpus(), { vocabSize: 300 });
  assert.equal((again.tokenizerJson.model as { merges: string[] }).merges, ma);
});

test('special tokens at fixed low ids, then all 256 bytes', () => {
  assert.equal(small.specialIds, { eos: EOS_ID, pad: EOS_ID, bos: EOS_ID, sep: SEP_ID });
  assert.is(EOS_ID, 0);
  assert.is(SEP_ID, 1);
  assert.is(small.separatorIsEos, false);
  const vocab = (small.tokenizerJson.model as { vocab: Record<string, number> }).vocab;
  for (let b = 0; b < 256; b++) assert.is(vocab[byteToSymbol[b]], 2 + b, `byte ${b}`);
  assert.equal(small.encode('<|endoftext|>'), [0]);
  assert.equal(small.encode('<|sep|>'), [1]);
});

test('encode -> decode is lossless on odd inputs, including bytes never seen in training', () => {
  for (const text of odd) {
    const ids = small.encode(text);
    assert.ok(ids.every((id) => Number.isInteger(id) && id >= 0 && id < small.vocabSize), JSON.stringify(text));
    assert.is(small.decode(ids), text, JSON.stringify(text));
  }
  assert.equal(small.encode(''), []);
  assert.is(small.decode([]), '');
  assert.equal(small.encodeBatch(['drill', '😀']), [small.encode('drill'), small.encode('😀')]);
  // Merges are used: a frequent training phrase needs fewer tokens than bytes.
  assert.ok(small.encode('cordless drill').length < 'cordless drill'.length);
});

test('encodePair: query <sep> rewrite <eos>, loss on the rewrite and the eos only', () => {
  const q = small.encode('cordless drill');
  const r = small.encode('18v drill cordless');
  const pair = small.encodePair('cordless drill', '18v drill cordless');
  assert.equal(pair.ids, [...q, SEP_ID, ...r, EOS_ID]);
  assert.equal(pair.lossMask, [...q.map(() => 0), 0, ...r.map(() => 1), 1]);
  assert.equal(pair.ids, small.encode('cordless drill<|sep|>18v drill cordless<|endoftext|>'));
  assert.is(small.decode(pair.ids), 'cordless drill<|sep|>18v drill cordless<|endoftext|>');
  assert.is(small.decode(pair.ids, { skipSpecialTokens: true }), 'cordless drill18v drill cordless');
  assert.throws(() => small.decode([small.vocabSize]), /outside the vocabulary/);
});

test('save -> load gives identical encodings; the native binding and transformers.js agree', async () => {
  const out = join(dir, 'saved');
  await small.save(out);
  for (const f of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']) assert.ok(existsSync(join(out, f)), f);
  const config = JSON.parse(await readFile(join(out, 'tokenizer_config.json'), 'utf8'));
  assert.equal(config, JSON.parse(JSON.stringify(minielmTokenizerConfig())));
  assert.equal(JSON.parse(await readFile(join(out, 'special_tokens_map.json'), 'utf8')), {
    bos_token: '<|endoftext|>', eos_token: '<|endoftext|>', unk_token: '<|endoftext|>', pad_token: '<|endoftext|>', sep_token: '<|sep|>',
  });
  const loaded = await Tokenizer.load(out);
  assert.is(loaded.vocabSize, small.vocabSize);
  assert.equal(loaded.specialIds, small.specialIds);
  const texts = [...odd, ...corpus().slice(0, 50)];
  for (const t of texts) assert.equal(loaded.encode(t), small.encode(t), JSON.stringify(t));

  // The official Rust tokenizer reads the same file and produces the same ids.
  const native = createRequire(import.meta.url)('tokenizers') as typeof import('tokenizers');
  const rust = native.Tokenizer.fromFile(join(out, 'tokenizer.json'));
  for (const t of texts.filter((x) => x.length > 0)) {
    const enc = await rust.encode(t, null, { addSpecialTokens: false });
    assert.equal(enc.getIds(), small.encode(t), `native: ${JSON.stringify(t)}`);
  }

  // transformers.js loads the folder and agrees too.
  const { env, AutoTokenizer } = await import('@huggingface/transformers');
  env.allowRemoteModels = false;
  env.localModelPath = `${dir}/`;
  const tjs = await AutoTokenizer.from_pretrained('saved');
  assert.is(tjs.sep_token_id, SEP_ID);
  assert.is(tjs.eos_token_id, EOS_ID);
  assert.is(tjs.pad_token_id, EOS_ID);
  for (const t of texts.filter((x) => x.length > 0)) assert.equal(tjs.encode(t, { add_special_tokens: false }), small.encode(t), `transformers.js: ${JSON.stringify(t)}`);
});

test('bad sizes, bad folders and bad files are explained', async () => {
  for (const size of [10, 257, 1.5, 40_000]) {
    try {
      await trainByteLevelBpe(['abc'], { vocabSize: size });
      assert.unreachable(`size ${size} accepted`);
    } catch (err) {
      assert.is((err as { code?: string }).code, 'MINIELM_INVALID_ARGUMENT', String(size));
      assert.match((err as Error).message, /vocabulary size/);
    }
  }
  try {
    await trainByteLevelBpe(['', ''], { vocabSize: 300 });
    assert.unreachable('empty corpus accepted');
  } catch (err) {
    assert.match((err as Error).message, /no training text/);
  }
  try {
    await Tokenizer.load(join(dir, 'missing'));
    assert.unreachable();
  } catch (err) {
    assert.is((err as { code?: string }).code, 'MINIELM_NOT_FOUND');
    assert.match((err as Error).message, /tokenizer\.json does not exist/);
  }
  assert.throws(() => Tokenizer.fromJson({ model: { type: 'BPE', vocab: { a: 0 }, merges: [] } } as TokenizerJson), /no end-of-sequence token/);
});

test.run();
