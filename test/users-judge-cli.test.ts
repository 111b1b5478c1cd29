import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, help } from '../lib/cli/judge.ts';
import { generateProfiles, saveProfiles } from '../lib/users/profiles.ts';
import { MinielmError } from '../lib/errors.ts';

const dir = mkdtempSync(join(tmpdir(), 'minielm-judge-cli-'));
const products = [
  { id: 'a', title: 'Red running shoes', brand: 'Acme', price: 60 },
  { id: 'b', title: 'Garden hose 50 ft', price: 25 },
  { id: 'c', title: 'Trail running shoes red', price: 80 },
];

async function capture(argv: string[]): Promise<{ code: number; out: string }> {
  const lines: string[] = [];
  const original = console.log;
  console.log = (...args: unknown[]) => void lines.push(args.join(' '));
  try {
    const code = await run(argv);
    return { code, out: lines.join('\n') };
  } finally {
    console.log = original;
  }
}

test('help names the judges and the profile flags', () => {
  assert.match(help, /--judge embedded\|llm/);
  assert.match(help, /--profiles/);
});

test('embedded judge from a products file, JSON output', async () => {
  const file = join(dir, 'list.json');
  writeFileSync(file, JSON.stringify({ query: 'red running shoes', products }));
  const { code, out } = await capture(['--products', file, '--json', '--profile-seed', '3', '--profile-index', '2']);
  assert.is(code, 0);
  const json = JSON.parse(out);
  assert.is(json.judge, 'embedded');
  assert.is(json.profile.id, generateProfiles(3, 3)[2].id);
  assert.is(json.engagement.listLength, 3);
  assert.ok(json.engagement.clicks > json.engagement.addToCart && json.engagement.addToCart > json.engagement.purchases);
});

test('inline products, explicit relevance and a profile chosen by id from a pool file', async () => {
  const pool = join(dir, 'pool.json');
  saveProfiles(pool, generateProfiles(4, 8));
  const args = ['--query', 'shoes', '--products-json', JSON.stringify(products), '--profiles', pool, '--profile-id', 'u0003'];
  const low = await capture([...args, '--relevance', '0,0,0', '--json']);
  const high = await capture([...args, '--relevance', '1,1,1', '--json']);
  assert.ok(JSON.parse(high.out).engagement.clicks > JSON.parse(low.out).engagement.clicks);
  const text = await capture([...args, '--explain']);
  assert.match(text.out, /profile {2}u0003/);
  assert.match(text.out, /clicks/);
  assert.match(text.out, /add-to-cart/);
  assert.match(text.out, /purchases/);
  assert.match(text.out, /rank {2}id/);
});

test('user errors name the flag', async () => {
  const invalid = 'MINIELM_INVALID_ARGUMENT';
  const cases: [string[], string, RegExp][] = [
    [['--query', 'x'], invalid, /no products: pass --products/],
    [['--products-json', '[]'], invalid, /no query: pass --query/],
    [['--query', 'x', '--products-json', '{bad'], 'MINIELM_BAD_FILE', /--products-json is not valid JSON/],
    [['--query', 'x', '--products', join(dir, 'nope.json')], 'MINIELM_NOT_FOUND', /cannot read --products file ".*nope\.json"/],
    [['--query', 'x', '--products-json', JSON.stringify(products), '--relevance', '1,2,0'], invalid, /--relevance item 2/],
    [['--query', 'x', '--products-json', JSON.stringify(products), '--relevance', '1'], invalid, /one gain per product/],
    [['--query', 'x', '--products-json', JSON.stringify(products), '--judge', 'oracle'], invalid, /--judge must be/],
    [['--query', 'x', '--products-json', JSON.stringify(products), '--judge', 'llm', '--base-url', 'http://127.0.0.1:9/v1'], invalid, /--judge llm needs --model/],
    [['--query', 'x', '--products-json', JSON.stringify(products), '--profile-id', 'nobody'], invalid, /--profile-id "nobody" is not in/],
  ];
  for (const [argv, code, pattern] of cases) {
    // The assertion stays outside the try: an accepted command must fail here, not be caught as "the error".
    let error: unknown;
    let result: { code: number; out: string } | undefined;
    try {
      result = await capture(argv);
    } catch (err) {
      error = err;
    }
    assert.ok(error !== undefined, `accepted ${argv.join(' ')} (exit code ${result?.code}, output ${JSON.stringify(result?.out)})`);
    assert.instance(error, MinielmError, `${argv.join(' ')}: a MinielmError, got ${String(error)}`);
    assert.is((error as MinielmError).code, code, `${argv.join(' ')}: error code`);
    assert.match((error as MinielmError).message, pattern);
  }
});

test('LLM judge through the CLI against a local server', async () => {
  let requests = 0;
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      requests++;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ choices: [{ message: { role: 'assistant', content: '{"clicks": 2, "add_to_cart": 1, "purchases": 1}' } }] }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
    const cache = join(dir, 'cli-cache.jsonl');
    const argv = ['--query', 'shoes', '--products-json', JSON.stringify(products), '--judge', 'llm', '--base-url', url, '--model', 'mock', '--cache', cache, '--json'];
    const first = JSON.parse((await capture(argv)).out);
    assert.equal(first.engagement, { clicks: 2, addToCart: 1, purchases: 1, listLength: 3 });
    await capture(argv);
    assert.is(requests, 1, 'second run should come from the cache file');
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

test.after(() => rmSync(dir, { recursive: true, force: true }));
test.run();
