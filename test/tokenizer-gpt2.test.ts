// A pretrained GPT-2 tokenizer folder (HF format) loads through the same Tokenizer class. The folder is a tiny
// hand-written GPT-2-style tokenizer.json: 256 byte symbols, five merges in "a b" string form, <|endoftext|> last.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tokenizer, byteToSymbol } from '../lib/tokenizer/index.ts';

let dir = '';

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'minielm-gpt2-test-'));
  const vocab: Record<string, number> = {};
  byteToSymbol.forEach((symbol, b) => (vocab[symbol] = b));
  const merges = ['h e', 'l l', 'he ll', 'Ġ w', 'o r'];
  for (const m of merges) vocab[m.replace(' ', '')] = Object.keys(vocab).length;
  const eos = Object.keys(vocab).length; // 261, GPT-2 puts <|endoftext|> after the merges (50256)
  vocab['<|endoftext|>'] = eos;
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  const tokenizerJson = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [{ id: eos, content: '<|endoftext|>', single_word: false, lstrip: false, rstrip: false, normalized: true, special: true }],
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: byteLevel,
    decoder: byteLevel,
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '', fuse_unk: false, vocab, merges },
  };
  await mkdir(join(dir, 'gpt2'));
  await writeFile(join(dir, 'gpt2', 'tokenizer.json'), JSON.stringify(tokenizerJson));
  await writeFile(
    join(dir, 'gpt2', 'tokenizer_config.json'),
    JSON.stringify({ tokenizer_class: 'GPT2Tokenizer', bos_token: '<|endoftext|>', eos_token: '<|endoftext|>', unk_token: '<|endoftext|>', model_max_length: 1024, add_prefix_space: false }),
  );
});
test.after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('GPT-2 folder: ids follow the merges by rank; eos stands in for the missing separator', async () => {
  const tok = await Tokenizer.load(join(dir, 'gpt2'));
  assert.is(tok.vocabSize, 262);
  assert.is(tok.eosId, 261);
  assert.is(tok.padId, 261);
  assert.is(tok.sepId, 261);
  assert.is(tok.separatorIsEos, true);
  // "hello" -> h e l l o -> he l l o -> he ll o -> hell o ; " world" -> Ġ w o r l d -> Ġw o r l d -> Ġw or l d
  assert.equal(tok.encode('hello world'), [258, 111, 259, 260, 108, 100]);
  assert.is(tok.decode([258, 111, 259, 260, 108, 100]), 'hello world');
  for (const text of ['', 'héllo 😀 wörld', '  two  spaces ', 'hello<|endoftext|>']) assert.is(tok.decode(tok.encode(text)), text);
  const pair = tok.encodePair('hello', 'world');
  assert.equal(pair.ids, [258, 111, 261, 119, 260, 108, 100, 261]);
  assert.equal(pair.lossMask, [0, 0, 0, 1, 1, 1, 1, 1]);
});

test('a GPT-2 folder saved and reloaded keeps its encodings', async () => {
  const tok = await Tokenizer.load(join(dir, 'gpt2'));
  await tok.save(join(dir, 'copy'));
  const copy = await Tokenizer.load(join(dir, 'copy'));
  assert.equal(copy.specialIds, tok.specialIds);
  for (const text of ['hello world', 'or hell', '😀']) assert.equal(copy.encode(text), tok.encode(text));
});

test.run();
