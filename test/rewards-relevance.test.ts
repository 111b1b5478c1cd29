import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  CrossEncoderScorer,
  esciGain,
  homeDepotGain,
  JudgedLabelsScorer,
  LexicalOverlapScorer,
  lexicalOverlap,
  type RelevanceScorer,
} from '../lib/rewards/relevance.ts';
import type { Product } from '../lib/data/types.ts';
import { MinielmError } from '../lib/errors.ts';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { skipLoudly } from './helpers/skip.ts';

// A toy cross-encoder written byte by byte (ONNX protobuf + a WordPiece tokenizer.json), so the ONNX path is
// exercised offline on every run: logit = (tokens of the product segment, [SEP] included) − 3.
function writeToyCrossEncoder(dir: string): void {
  // Protobuf wire format: field tag = (number << 3 | wire type); field numbers follow onnx.proto
  // (ModelProto ir_version 1, graph 7, opset_import 8; GraphProto node 1, initializer 5, input 11, output 12; …).
  function varint(n: number | bigint): number[] {
    let v = BigInt(n);
    const out: number[] = [];
    do {
      let b = Number(v & 0x7fn);
      v >>= 7n;
      if (v) b |= 0x80;
      out.push(b);
    } while (v);
    return out;
  }
  const enc = new TextEncoder();
  type F = number[];
  const fv = (no: number, n: number | bigint): F => [...varint((no << 3) | 0), ...varint(n)];
  const fb = (no: number, bytes: Uint8Array | number[]): F => [...varint((no << 3) | 2), ...varint(bytes.length), ...bytes];
  const fs = (no: number, s: string): F => fb(no, enc.encode(s));
  const cat = (...parts: F[]): F => parts.flat();
  const dim = (d: number | string) => fb(1, typeof d === 'number' ? fv(1, d) : fs(2, d));
  const valueInfo = (name: string, elem: number, dims: (number | string)[]) => cat(fs(1, name), fb(2, fb(1, cat(fv(1, elem), fb(2, cat(...dims.map(dim)))))));
  const node = (op: string, inputs: string[], outputs: string[], attrs: F[] = []) => cat(...inputs.map((i) => fs(1, i)), ...outputs.map((o) => fs(2, o)), fs(3, op + '_' + outputs[0]), fs(4, op), ...attrs.map((a) => fb(5, a)));
  const intAttr = (name: string, v: number) => cat(fs(1, name), fv(3, v), fv(20, 2));
  const tensor = (name: string, type: number, dims: number[], raw: Uint8Array) => cat(...dims.map((d) => fv(1, d)), fv(2, type), fs(8, name), fb(9, raw));
  const axes = new Uint8Array(new BigInt64Array([1n]).buffer);
  const three = new Uint8Array(new Float32Array([3]).buffer);
  const graph = cat(
    fb(1, node('Mul', ['token_type_ids', 'attention_mask'], ['m'])),
    fb(1, node('Cast', ['m'], ['mf'], [intAttr('to', 1)])),
    fb(1, node('ReduceSum', ['mf', 'axes'], ['s'], [intAttr('keepdims', 1)])),
    fb(1, node('Sub', ['s', 'three'], ['logits'])),
    fs(2, 'toy'),
    fb(5, tensor('axes', 7, [1], axes)),
    fb(5, tensor('three', 1, [1], three)),
    fb(11, valueInfo('input_ids', 7, ['batch', 'seq'])),
    fb(11, valueInfo('attention_mask', 7, ['batch', 'seq'])),
    fb(11, valueInfo('token_type_ids', 7, ['batch', 'seq'])),
    fb(12, valueInfo('logits', 1, ['batch', 1])),
  );
  const model = cat(fv(1, 8), fs(2, 'minielm-test'), fb(7, graph), fb(8, cat(fs(1, ''), fv(2, 13))));
  mkdirSync(join(dir, 'onnx'), { recursive: true });
  writeFileSync(join(dir, 'onnx', 'model.onnx'), new Uint8Array(model));
  const special = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  const words = ['kitchen', 'sink', 'steel', 'hat'];
  const vocab: Record<string, number> = { '[PAD]': 0, '[UNK]': 1, '[CLS]': 2, '[SEP]': 3 };
  words.forEach((w, i) => (vocab[w] = 4 + i));
  const S = (id: string, type_id: number) => ({ SpecialToken: { id, type_id } });
  const Q = (id: string, type_id: number) => ({ Sequence: { id, type_id } });
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify({
    version: '1.0', truncation: null, padding: null,
    added_tokens: [special(0, '[PAD]'), special(1, '[UNK]'), special(2, '[CLS]'), special(3, '[SEP]')],
    normalizer: { type: 'Lowercase' }, pre_tokenizer: { type: 'Whitespace' },
    post_processor: { type: 'TemplateProcessing', single: [S('[CLS]', 0), Q('A', 0), S('[SEP]', 0)], pair: [S('[CLS]', 0), Q('A', 0), S('[SEP]', 0), Q('B', 1), S('[SEP]', 1)],
      special_tokens: { '[CLS]': { id: '[CLS]', ids: [2], tokens: ['[CLS]'] }, '[SEP]': { id: '[SEP]', ids: [3], tokens: ['[SEP]'] } } },
    decoder: null,
    model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab },
  }));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ tokenizer_class: 'BertTokenizer', model_max_length: 512, pad_token: '[PAD]', unk_token: '[UNK]', cls_token: '[CLS]', sep_token: '[SEP]', do_lower_case: true }));
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ model_type: 'bert', architectures: ['BertForSequenceClassification'], num_labels: 1, id2label: { '0': 'LABEL_0' }, label2id: { LABEL_0: 0 } }));
}

const product = (id: string, title: string, extra: Partial<Product> = {}): Product => ({ id, title, ...extra });

const labels = [
  { query: 'red shoes', productId: 'p1', gain: 1 },
  { query: 'red shoes', productId: 'p2', gain: 0.1 },
  { query: 'Garden Hose', productId: 'p3', gain: 0.5 },
];

test('judged labels: lookup by (normalised query, product id)', async () => {
  const s = new JudgedLabelsScorer(labels);
  assert.is(s.size, 3);
  const got = await s.scoreBatch([
    { query: '  Red   SHOES ', product: product('p1', 'x') },
    { query: 'red shoes', product: product('p2', 'x') },
    { query: 'garden hose', product: product('p3', 'x') },
  ]);
  assert.equal(got, [1, 0.1, 0.5]);
  assert.is(s.judged, 3);
  assert.is(s.unjudged, 0);
});

test('judged labels: repeated labels of one pair are averaged', async () => {
  const s = new JudgedLabelsScorer([...labels, { query: 'red shoes', productId: 'p1', gain: 0 }]);
  assert.equal(await s.scoreBatch([{ query: 'red shoes', product: product('p1', 'x') }]), [0.5]);
});

test('judged labels: unjudged pairs throw by default, naming the pair', async () => {
  const s = new JudgedLabelsScorer(labels);
  try {
    await s.scoreBatch([{ query: 'red shoes', product: product('p9', 'x') }]);
    assert.unreachable('should throw');
  } catch (err) {
    assert.instance(err, MinielmError);
    assert.is((err as MinielmError).code, 'MINIELM_NOT_FOUND');
    assert.match((err as Error).message, /"red shoes".*"p9".*fallback/);
  }
});

test('judged labels: a numeric fallback is used for unjudged pairs and counted', async () => {
  const s = new JudgedLabelsScorer(labels, { fallback: 0.25 });
  const got = await s.scoreBatch([
    { query: 'red shoes', product: product('p1', 'x') },
    { query: 'red shoes', product: product('p9', 'x') },
  ]);
  assert.equal(got, [1, 0.25]);
  assert.is(s.judged, 1);
  assert.is(s.unjudged, 1);
});

test('judged labels: a scorer fallback receives only the unjudged pairs, in one batch', async () => {
  const calls: string[][] = [];
  const delegate: RelevanceScorer = {
    async scoreBatch(pairs) {
      calls.push(pairs.map((p) => p.product.id));
      return pairs.map(() => 0.7);
    },
  };
  const s = new JudgedLabelsScorer(labels, { fallback: delegate });
  const got = await s.scoreBatch([
    { query: 'red shoes', product: product('p8', 'x') },
    { query: 'red shoes', product: product('p1', 'x') },
    { query: 'garden hose', product: product('p9', 'x') },
  ]);
  assert.equal(got, [0.7, 1, 0.7]);
  assert.equal(calls, [['p8', 'p9']]);
});

test('judged labels: bad gains and bad fallbacks are rejected', () => {
  assert.throws(() => new JudgedLabelsScorer([{ query: 'q', productId: 'p', gain: 2 }]), /gain 2.*\[0, 1\]/);
  assert.throws(() => new JudgedLabelsScorer([{ query: 'q', productId: 'p', gain: Number.NaN }]), /NaN/);
  assert.throws(() => new JudgedLabelsScorer([], { fallback: -0.5 }), /fallback/);
});

test('label conversions: ESCI and Home Depot', () => {
  assert.is(esciGain('E'), 1);
  assert.is(esciGain('exact'), 1);
  assert.is(esciGain('S'), 0.1);
  assert.is(esciGain('I'), 0);
  assert.throws(() => esciGain('X'), /E, S, C, I/);
  assert.is(homeDepotGain(3), 1);
  assert.is(homeDepotGain(1), 0);
  assert.ok(Math.abs(homeDepotGain(2.33) - 0.665) < 1e-12);
  assert.throws(() => homeDepotGain(4), /\[1, 3\]/);
});

test('lexical overlap: fraction of query tokens found in title, brand and colour', async () => {
  assert.is(lexicalOverlap('red running shoes', product('a', 'Running Shoe', { color: 'Red' })), 1);
  assert.is(lexicalOverlap('red running shoes', product('a', 'Running shorts')), 1 / 3);
  assert.is(lexicalOverlap('', product('a', 'x')), 0);
  const got = await new LexicalOverlapScorer().scoreBatch([{ query: 'garden hose', product: product('h', 'Garden Hose 50ft') }]);
  assert.equal(got, [1]);
});

test('cross-encoder: a missing folder is a clear error', async () => {
  try {
    await CrossEncoderScorer.load('/nonexistent/cross-encoder');
    assert.unreachable('should throw');
  } catch (err) {
    assert.is((err as MinielmError).code, 'MINIELM_NOT_FOUND');
    assert.match((err as Error).message, /\/nonexistent\/cross-encoder/);
  }
});

test('toy ONNX cross-encoder: pairs are encoded as (query, product), batched with padding, sigmoid applied', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'minielm-toy-ce-'));
  try {
    writeToyCrossEncoder(dir);
    const scorer = await CrossEncoderScorer.load(dir, { batchSize: 2 });
    const q = 'kitchen sink';
    const scores = await scorer.scoreBatch([
      { query: q, product: product('a', 'steel kitchen sink') }, // 3 words + [SEP] → logit 1
      { query: q, product: product('b', 'hat') }, // 1 + 1 → −1
      { query: q, product: product('c', 'a b c d e f') }, // 6 + 1 → 4 (alone in the second batch)
    ]);
    const sig = (x: number): number => 1 / (1 + Math.exp(-x));
    [1, -1, 4].forEach((logit, i) => assert.ok(Math.abs(scores[i] - sig(logit)) < 1e-6, `pair ${i}: ${scores[i]} vs ${sig(logit)}`));
    const raw = await (await CrossEncoderScorer.load(dir, { activation: 'softmax' })).scoreBatch([{ query: q, product: product('a', 'x') }]);
    assert.equal(raw, [1]); // softmax over a single logit is always 1: the activation option is honoured
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('cross-encoder: a folder without config.json is refused', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'minielm-empty-ce-'));
  try {
    await CrossEncoderScorer.load(dir);
    assert.unreachable('should throw');
  } catch (err) {
    assert.is((err as MinielmError).code, 'MINIELM_BAD_FILE');
    assert.match((err as Error).message, /config\.json/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const folder = process.env.MINIELM_CROSS_ENCODER;
if (!folder) {
  skipLoudly(test, 'cross-encoder scores relevant pairs above irrelevant ones (needs MINIELM_CROSS_ENCODER)', 'set MINIELM_CROSS_ENCODER to a local ONNX cross-encoder folder to run it');
} else {
  test('cross-encoder scores relevant pairs above irrelevant ones, offline', async () => {
    const scorer = await CrossEncoderScorer.load(folder, { batchSize: 2 });
    const q = 'stainless steel kitchen sink';
    const scores = await scorer.scoreBatch([
      { query: q, product: product('a', 'Undermount stainless steel kitchen sink, single bowl') },
      { query: q, product: product('b', 'Wool winter hat with pompom') },
      { query: q, product: product('c', 'Double bowl stainless kitchen sink 33 inch') },
    ]);
    assert.is(scores.length, 3);
    for (const s of scores) assert.ok(s >= 0 && s <= 1 && Number.isFinite(s), `score ${s} outside [0, 1]`);
    assert.ok(scores[0] > scores[1] && scores[2] > scores[1], `expected sinks above the hat: ${scores.join(', ')}`);
  });
}

test.run();
