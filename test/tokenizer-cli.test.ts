import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tokenizer } from '../lib/tokenizer/index.ts';

let dir = '';
const cli = (args: string[]) => spawnSync(process.execPath, ['bin/minielm.js', 'tokenizer', ...args], { encoding: 'utf8' });

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'minielm-tok-cli-'));
  const pairs = [];
  const texts = [];
  for (let i = 0; i < 300; i++) {
    pairs.push(JSON.stringify({ query: `cordless drill ${i}`, rewrite: `drill cordless ${i % 17} volt` }));
    texts.push(`Makita ${i} in. Cordless Drill Kit with Battery`);
  }
  await writeFile(join(dir, 'pairs.jsonl'), `${pairs.join('\n')}\n`);
  await writeFile(join(dir, 'titles.txt'), `${texts.join('\n')}\n`);
  await writeFile(join(dir, 'bad.jsonl'), '{"query": "a", "rewrite": "b"}\nnot json\n');
});
test.after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('train writes a loadable folder, progress on stderr, summary on stdout', async () => {
  const out = join(dir, 'tok');
  const run = cli(['train', join(dir, 'pairs.jsonl'), join(dir, 'titles.txt'), '--vocab-size', '320', '--out', out]);
  assert.is(run.status, 0, run.stderr);
  assert.match(run.stderr, /read 600 texts from .*pairs\.jsonl/);
  assert.match(run.stderr, /kept \d+ merges: vocabulary 320/);
  assert.match(run.stdout, /vocabulary 320 .*eos\/pad id 0, sep id 1/);
  const tok = await Tokenizer.load(out);
  assert.is(tok.vocabSize, 320);
  assert.is(tok.decode(tok.encode('cordless drill 😀')), 'cordless drill 😀');
});

test('errors name the file, the line or the flag', () => {
  const bad = cli(['train', join(dir, 'bad.jsonl'), '--out', join(dir, 'x')]);
  assert.is(bad.status, 1);
  assert.match(bad.stderr, /MINIELM_BAD_FILE.*bad\.jsonl line 2 is not valid JSON/);
  const size = cli(['train', join(dir, 'titles.txt'), '--vocab-size', '12', '--out', join(dir, 'x')]);
  assert.is(size.status, 1);
  assert.match(size.stderr, /vocabulary size 12 is out of range/);
  const noOut = cli(['train', join(dir, 'titles.txt')]);
  assert.match(noOut.stderr, /--out DIR is required/);
  const help = cli(['train', '--help']);
  assert.is(help.status, 0);
  assert.match(help.stdout, /--vocab-size N/);
});

test.run();
