// The LTR&R bandit: Thompson posteriors move with feedback, a new arm starts from the prior pooled at its rank
// across queries (leave-one-out), the same seed gives the same choices (also across save / load), the state
// round-trips through an atomic JSON file and a damaged one is refused naming the file, the arm cap holds;
// Rewriter.expand({ select: 'bandit' | 'top' }) sends k of n rewrites with provenance and feedback() updates
// and persists; a short simulation where the bandit's regret must beat uniform-random and top-beam picks.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MinielmError } from '../lib/errors.ts';
import { Bandit, BANDIT_VERSION } from '../lib/serve/bandit.ts';
import { InvalidOptionError, Rewriter } from '../lib/serve/rewriter.ts';
import type { Retriever } from '../lib/retrieval/index.ts';
import { simulateBandit, banditRegretSvg, banditRegretMarkdown } from '../lib/eval/bandit-simulation.ts';
import { Bandit as RootBandit, Rewriter as RootRewriter } from '../lib/index.ts';
import { trainedRewriter, type TrainedRewriter } from './helpers/rewriter-model.ts';

let root = '';
let trained: TrainedRewriter | undefined;
const open: Rewriter[] = [];

test.before(async () => {
  root = await mkdtemp(join(tmpdir(), 'minielm-bandit-'));
});
test.after(async () => {
  for (const r of open) await r.close();
  await rm(root, { recursive: true, force: true });
});

async function model(): Promise<TrainedRewriter> {
  trained ??= await trainedRewriter(join(root, 'model'));
  return trained;
}

async function load(options: Parameters<typeof Rewriter.load>[1] = {}): Promise<Rewriter> {
  const r = await Rewriter.load((await model()).dir, options);
  open.push(r);
  return r;
}

async function rejects(promise: Promise<unknown> | (() => unknown), code: string, pattern?: RegExp): Promise<MinielmError> {
  try {
    await (typeof promise === 'function' ? promise() : promise);
  } catch (err) {
    assert.instance(err, MinielmError, `expected a MinielmError, got ${String(err)}`);
    const e = err as MinielmError;
    assert.is(e.code, code, e.message);
    if (pattern) assert.match(e.message, pattern);
    return e;
  }
  return assert.unreachable(`expected a rejection with ${code}`) as never;
}

const close = (a: number, b: number, tol = 1e-12): boolean => Math.abs(a - b) <= tol;

test('the package root exports the bandit beside the rewriter', () => {
  assert.is(RootBandit, Bandit);
  assert.is(RootRewriter, Rewriter);
});

test('Thompson posterior: Beta(prior + successes, prior + failures), and sampling follows it', () => {
  const b = new Bandit({ seed: 3 });
  const fresh = b.posterior('Red Sofa', 'couch red');
  assert.equal([fresh.alpha, fresh.beta, fresh.mean], [1, 1, 0.5], 'no feedback at all: Beta(1, 1) (w = 2, m = 1/2)');
  const sel = b.select('red  sofa', ['couch red', 'red settee', 'sofa'], 2);
  assert.is(sel.chosen.length, 2);
  assert.is(sel.samples.length, 3);
  assert.ok(sel.samples.every((x) => x > 0 && x < 1), `draws in (0, 1): ${sel.samples}`);
  const first = ['couch red', 'red settee', 'sofa'][sel.chosen[0]];
  const p = b.update('RED SOFA', ` ${first} `, true);
  assert.is(p.successes, 1);
  assert.is(p.failures, 0);
  // Leave-one-out: its own click is not in its prior, so the prior is still Beta(1, 1).
  assert.ok(close(p.priorAlpha, 1) && close(p.priorBeta, 1), `prior ${p.priorAlpha}, ${p.priorBeta}`);
  assert.ok(close(p.alpha, 2) && close(p.beta, 1) && close(p.mean, 2 / 3), `posterior Beta(${p.alpha}, ${p.beta})`);
  const q = b.update('red sofa', first, false);
  assert.ok(close(q.alpha, 2) && close(q.beta, 2), `after a failure: Beta(${q.alpha}, ${q.beta})`);

  // A rewrite that always brings clicks beats one that never does, almost always, once the evidence is in.
  const t = new Bandit({ seed: 9 });
  t.select('lamp', ['good', 'bad'], 2);
  for (let i = 0; i < 40; i++) {
    t.update('lamp', 'good', true);
    t.update('lamp', 'bad', false);
  }
  let good = 0;
  for (let i = 0; i < 200; i++) if (t.select('lamp', ['bad', 'good'], 1).chosen[0] === 1) good++;
  assert.ok(good >= 195, `the clicked rewrite chosen ${good} / 200 times`);
  assert.ok(t.posterior('lamp', 'good').mean > 0.9 && t.posterior('lamp', 'bad').mean < 0.1);
});

test('backoff prior: a rewrite never seen for a query starts from what its rank achieved across queries', () => {
  const b = new Bandit({ seed: 1, priorWeight: 2 });
  for (let i = 0; i < 20; i++) {
    b.select(`query ${i}`, [`best ${i}`, `second ${i}`], 2);
    b.update(`query ${i}`, `best ${i}`, true);
    b.update(`query ${i}`, `second ${i}`, false);
  }
  // Global m0 = (1 + 20) / (2 + 40) = 1/2; rank 1 pool 20 / 0 -> m = (20 + 2 * 0.5) / (20 + 2) = 21/22.
  const r1 = b.posterior('a new query', 'anything', 1);
  const r2 = b.posterior('a new query', 'anything', 2);
  assert.ok(close(r1.mean, 21 / 22), `rank 1 prior mean ${r1.mean}`);
  assert.ok(close(r2.mean, 1 / 22), `rank 2 prior mean ${r2.mean}`);
  assert.ok(close(r1.priorAlpha + r1.priorBeta, 2), 'worth priorWeight = 2 observations');
  // Leave-one-out for an arm with feedback of its own: its click is removed from both pools.
  const own = b.posterior('query 0', 'best 0');
  const m0 = (1 + 19) / (2 + 39), m = (19 + 2 * m0) / (19 + 2);
  assert.ok(close(own.priorAlpha, 2 * m) && close(own.alpha, 2 * m + 1), `arm prior ${own.priorAlpha}, expected ${2 * m}`);
  // And the choice for a new query follows the pooled prior: rank 1 nearly always.
  let first = 0;
  for (let i = 0; i < 100; i++) if (b.select(`fresh ${i}`, ['x', 'y'], 1).chosen[0] === 0) first++;
  assert.ok(first >= 85, `rank 1 chosen ${first} / 100 times for unseen queries`);
  const stats = b.stats();
  assert.equal(stats.ranks.map((r) => [r.successes, r.failures]), [[20, 0], [0, 20]]);
  // Without a pooled prior's pull (a tiny weight), a new arm is close to a coin: the pool is what moved it.
  const weak = new Bandit({ priorWeight: 1e-3 });
  assert.ok(close(weak.posterior('q', 'r').mean, 0.5));
});

test('the same seed gives the same choices, also after a save and load; another seed differs', async () => {
  const candidates = ['a', 'b', 'c', 'd', 'e', 'f'];
  const play = (b: Bandit, rounds: number, from = 0): string[] => {
    const log: string[] = [];
    for (let t = from; t < from + rounds; t++) {
      const q = `q${t % 4}`;
      const { chosen, samples } = b.select(q, candidates, 2);
      log.push(`${chosen.join(',')}:${samples.map((x) => x.toFixed(6)).join(',')}`);
      chosen.forEach((i) => b.update(q, candidates[i], (t * 7 + i) % 3 === 0));
    }
    return log;
  };
  const x = play(new Bandit({ seed: 42 }), 60), y = play(new Bandit({ seed: 42 }), 60), z = play(new Bandit({ seed: 43 }), 60);
  assert.equal(x, y);
  assert.not.equal(x, z);
  const a = new Bandit({ seed: 5 });
  play(a, 30);
  const file = join(root, 'resume', 'bandit.json');
  await a.save(file);
  const b = await Bandit.load(file);
  assert.equal(play(b, 30, 30), play(a, 30, 30), 'a loaded bandit continues the saved random stream');
});

test('state round-trips through an atomic JSON file with a version field', async () => {
  const dir = join(root, 'state');
  const file = join(dir, 'nested', 'bandit.json');
  const b = await Bandit.open(file, { seed: 2, maxArms: 1000 });
  assert.is(b.size, 0, 'open() of a missing file starts a new bandit');
  await rejects(Bandit.load(join(dir, 'missing.json')), 'MINIELM_NOT_FOUND', /missing\.json.*Bandit\.open/);
  for (let i = 0; i < 30; i++) {
    const { chosen } = b.select(`q${i % 5}`, ['x', 'y', 'z', `w${i}`], 2);
    b.update(`q${i % 5}`, ['x', 'y', 'z', `w${i}`][chosen[0]], i % 2 === 0);
  }
  await b.save();
  const json = JSON.parse(await readFile(file, 'utf8'));
  assert.is(json.format, 'minielm-bandit');
  assert.is(json.version, BANDIT_VERSION);
  const back = await Bandit.load(file);
  assert.equal(back.toJSON(), b.toJSON());
  assert.equal(back.stats(), b.stats());
  assert.is(back.stateFile, undefined, 'load(file) alone does not make the file its stateFile');
  assert.is((await Bandit.open(file)).stateFile, file);

  // Saves while feedback keeps coming: every read sees a whole file, and the last save holds the last update.
  let reads = 0;
  let reading = true;
  const reader = (async () => {
    while (reading) {
      JSON.parse(await readFile(file, 'utf8'));
      reads++;
    }
  })();
  const saves: Promise<void>[] = [];
  b.select('q0', ['x'], 1);
  try {
    for (let i = 0; i < 25; i++) {
      b.update('q0', 'x', i % 3 === 0);
      saves.push(b.save());
    }
    await Promise.all(saves);
  } finally {
    reading = false;
    await reader;
  }
  assert.ok(reads > 0);
  assert.equal(JSON.parse(await readFile(file, 'utf8')), JSON.parse(JSON.stringify(b.toJSON())), 'the file holds the state after the last update');
  const left = await readdir(join(dir, 'nested'));
  assert.equal(left, ['bandit.json'], `no temporary file left behind: ${left}`);
  await b.flush();
});

test('a damaged or foreign state file is refused with MINIELM_BAD_FILE naming the file', async () => {
  const good = new Bandit({ seed: 1 });
  good.select('q', ['a', 'b'], 1);
  const text = JSON.stringify(good.toJSON());
  const cases: [string, string, RegExp][] = [
    ['garbage', 'not json {', /not valid JSON/],
    ['truncated', text.slice(0, Math.floor(text.length / 2)), /not valid JSON/],
    ['array', '[]', /not a JSON object/],
    ['format', JSON.stringify({ ...good.toJSON(), format: 'other' }), /format/],
    ['noversion', JSON.stringify({ ...good.toJSON(), version: undefined }), /no version field/],
    ['newer', JSON.stringify({ ...good.toJSON(), version: BANDIT_VERSION + 1 }), /version 2 .*newer minielm/],
    ['arm', JSON.stringify({ ...good.toJSON(), arms: [['q', 'a', -1, 0, 1, 0, 0]] }), /arms\[0\]/],
    ['settings', JSON.stringify({ ...good.toJSON(), settings: { maxArms: 0, priorWeight: 2, basePrior: [1, 1] } }), /maxArms/],
  ];
  for (const [name, content, pattern] of cases) {
    const file = join(root, `bad-${name}.json`);
    await writeFile(file, content);
    const e = await rejects(Bandit.load(file), 'MINIELM_BAD_FILE', pattern);
    assert.ok(e.message.includes(file), `${name}: the message names the file: ${e.message}`);
    await rejects(Bandit.open(file), 'MINIELM_BAD_FILE', pattern);
  }
  const file = join(root, 'bad-garbage.json');
  await rejects(load({ bandit: { stateFile: file } }), 'MINIELM_BAD_FILE', /bad-garbage\.json/);
  assert.is(await readFile(file, 'utf8'), 'not json {', 'a refused file is left as it was');
});

test('memory is bounded: at most maxArms arms, least recently used forgotten first', () => {
  const b = new Bandit({ maxArms: 5 });
  b.select('keep', ['k'], 1);
  for (let i = 0; i < 10; i++) {
    b.select(`q${i}`, ['r'], 1);
    b.update('keep', 'k', true); // touched every round: never the least recently used
  }
  assert.is(b.size, 5);
  assert.is(b.stats().evicted, 6);
  assert.ok(b.has('keep', 'k') && b.has('q9', 'r') && !b.has('q0', 'r'));
  const e = (() => {
    try {
      b.update('q0', 'r', true);
    } catch (err) {
      return err as MinielmError;
    }
    return undefined;
  })();
  assert.ok(e && e.code === 'MINIELM_INVALID_ARGUMENT' && /no arm .*5 most recently used arms are kept, maxArms/.test(e.message), e?.message);
  assert.is(b.stats().ranks[0].successes, 10, 'a forgotten arm\'s feedback stays in the pooled prior');
});

test('bad arguments are refused with clear errors', async () => {
  const b = new Bandit();
  await rejects(() => new Bandit({ priorWeight: 0 }), 'MINIELM_INVALID_ARGUMENT', /priorWeight/);
  await rejects(() => new Bandit({ seeds: 1 } as never), 'MINIELM_INVALID_ARGUMENT', /unknown option "seeds"/);
  await rejects(() => b.select('', ['a'], 1), 'MINIELM_INVALID_ARGUMENT', /query is empty/);
  await rejects(() => b.select('q', 'a' as never, 1), 'MINIELM_INVALID_ARGUMENT', /candidates must be an array/);
  await rejects(() => b.select('q', ['a'], 0), 'MINIELM_INVALID_ARGUMENT', /count/);
  await rejects(() => b.update('q', 'never offered', true), 'MINIELM_INVALID_ARGUMENT', /no arm for query "q" and rewrite "never offered"/);
  b.select('q', ['a'], 1);
  await rejects(() => b.update('q', 'a', 1 as never), 'MINIELM_INVALID_ARGUMENT', /clicked must be true or false/);
  await rejects(b.save(), 'MINIELM_INVALID_ARGUMENT', /no stateFile/);
  const dup = b.select('dup', ['A', 'a ', 'b'], 3);
  assert.ok(Number.isNaN(dup.samples[1]) && dup.chosen.length === 2 && !dup.chosen.includes(1), 'a repeat is sampled once');
});

test("expand with select 'bandit' sends k of the n rewrites and says which brought each product; feedback persists", async () => {
  const { queries } = await model();
  const stateFile = join(root, 'serve', 'bandit.json');
  const r = await load({ cacheSize: 0, bandit: { stateFile, seed: 11 } });
  const searched: string[][] = [];
  const fake: Retriever = {
    index: async () => undefined,
    search: async (texts) => {
      searched.push([...texts]);
      return texts.map((_, i) => (i === 0 ? ['q1', 'q2'] : [`r${i}`, 'q1']));
    },
  };
  const query = queries.find((q) => q.split(' ').length >= 2) ?? queries[0];
  const all = await r.expand(query, fake, { n: 6 });
  assert.ok(all.rewrites.length >= 3, `${all.rewrites.length} rewrites to choose from`);
  assert.is(all.selection, undefined, "select 'all' (the default) sends every rewrite");

  const out = await r.expand(query, fake, { n: 6, select: 'bandit', send: 2 });
  assert.ok(out.selection && out.selection.strategy === 'bandit');
  assert.equal(out.selection!.candidates.map((c) => c.text), all.rewrites.map((c) => c.text), 'the candidates are the n decoded rewrites');
  assert.is(out.selection!.samples!.length, out.selection!.candidates.length);
  assert.is(out.rewrites.length, 2, 'k = 2 of n sent');
  const candidateOrder = out.selection!.candidates.map((c) => c.text);
  const idx = out.rewrites.map((w) => candidateOrder.indexOf(w.text));
  assert.ok(idx.every((i) => i >= 0) && idx[0] < idx[1], `the sent rewrites are candidates, in rank order: ${idx}`);
  const top2 = [...out.selection!.samples!.keys()].sort((a, b) => out.selection!.samples![b] - out.selection!.samples![a]).slice(0, 2).sort();
  assert.equal(idx, top2, 'the two largest Thompson draws were sent');
  assert.equal(searched[searched.length - 1], [query, ...out.rewrites.map((w) => w.text)], 'only the query and the sent rewrites reach the engine');
  for (const p of out.products) for (const s of p.from) assert.ok(s.query ? s.text === query : out.rewrites.some((w) => w.text === s.text), `${p.id} from ${s.text}`);
  const brought = out.products.find((p) => p.id === 'r1')!;
  assert.equal(brought.from, [{ text: out.rewrites[0].text, query: false, rank: 1 }], 'r1 came from the first sent rewrite alone');

  const top = await r.expand(query, fake, { n: 6, select: 'top', send: 2 });
  assert.equal(top.rewrites.map((w) => w.text), candidateOrder.slice(0, 2));
  assert.is(top.selection!.samples, undefined);

  const post = await r.feedback({ query, rewrite: out.rewrites[0].text, clicked: true });
  assert.is(post.successes, 1);
  await r.feedback({ query: `  ${query.toUpperCase()} `, rewrite: out.rewrites[1].text, clicked: false });
  const saved = await Bandit.load(stateFile);
  assert.is(saved.stats().updates, 2, 'feedback resolved after the state was on disk');
  assert.is(saved.posterior(query, out.rewrites[0].text).successes, 1);
  await r.close();
  const again = await load({ bandit: { stateFile } });
  assert.is(again.bandit!.stats().updates, 2, 'a new rewriter on the same stateFile resumes the posterior');

  // Errors a caller can make, each naming the field.
  const opt = async (p: Promise<unknown>, option: string, pattern: RegExp): Promise<void> => {
    const e = await rejects(p, 'MINIELM_INVALID_ARGUMENT', pattern);
    assert.instance(e, InvalidOptionError);
    assert.is((e as InvalidOptionError).option, option);
  };
  await opt(again.feedback({ query, rewrite: 'a rewrite never sent', clicked: true }), 'rewrite', /no arm for query .* rewrite "a rewrite never sent".*expand\(\{ select: 'bandit' \}\)/);
  await opt(again.feedback({ query: 'never asked', rewrite: out.rewrites[0].text, clicked: true }), 'rewrite', /no arm for query "never asked"/);
  await opt(again.feedback({ query, rewrite: out.rewrites[0].text, clicked: 'yes' as never }), 'clicked', /clicked must be true or false/);
  await opt(again.feedback({ query, clicked: true } as never), 'rewrite', /rewrite must be a non-empty string/);
  await opt(again.feedback({ query, rewrite: 'x', clicked: true, product: 'p' } as never), 'product', /unknown option "product"/);
  const plain = await load({ cacheSize: 0 });
  await rejects(plain.feedback({ query, rewrite: 'x', clicked: true }), 'MINIELM_INVALID_ARGUMENT', /feedback needs a bandit/);
  await opt(plain.expand(query, fake, { select: 'bandit' }), 'select', /needs a bandit/);
  await opt(plain.expand(query, fake, { send: 2 }), 'send', /send applies to select 'top', 'bandit', 'fresh' or 'relevance'/);
  await opt(plain.expand(query, fake, { select: 'best' as 'top' }), 'select', /select must be 'all', 'top', 'bandit', 'fresh' or 'relevance'/);
  await opt(plain.expand(query, fake, { select: 'top', send: 0 }), 'send', /send must be an integer/);
  await rejects(load({ bandit: 'file.json' as never }), 'MINIELM_INVALID_ARGUMENT', /bandit must be a Bandit or its options/);
});

test('expand with the same bandit seed makes the same choices', async () => {
  const { queries } = await model();
  const fake: Retriever = { index: async () => undefined, search: async (texts) => texts.map(() => ['p']) };
  const run = async (seed: number): Promise<string[]> => {
    const r = await load({ bandit: new Bandit({ seed }) });
    const log: string[] = [];
    for (let t = 0; t < 12; t++) {
      const q = queries[t % 3];
      const e = await r.expand(q, fake, { n: 5, select: 'bandit', send: 2 });
      log.push(e.rewrites.map((w) => w.text).join('|'));
      for (const w of e.rewrites) await r.feedback({ query: q, rewrite: w.text, clicked: w.text.length % 2 === 0 });
    }
    return log;
  };
  assert.equal(await run(4), await run(4));
});

test('a short simulation: the bandit loses clearly fewer clicks than uniform-random and top-beam picks', async () => {
  const runs = [];
  for (const seed of [1, 2]) {
    const r = await simulateBandit({ seed, rounds: 2000, queries: 30, profiles: 40 });
    const [b, u, t] = ['bandit', 'uniform', 'top'].map((p) => r.policies.find((x) => x.policy === p)!.regret);
    assert.ok(b < 0.5 * u, `seed ${seed}: bandit regret ${b.toFixed(1)} vs uniform ${u.toFixed(1)}`);
    assert.ok(b < t, `seed ${seed}: bandit regret ${b.toFixed(1)} vs top beams ${t.toFixed(1)}`);
    assert.ok(u > 0 && r.oraclePerRound > 0);
    const curve = r.policies[0].curve;
    assert.ok(curve.every((v, i) => i === 0 || v >= curve[i - 1] - 1e-9), 'cumulative regret never decreases (the oracle is the best k)');
    runs.push(r);
  }
  const svg = banditRegretSvg(runs);
  assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.is((svg.match(/<path /g) ?? []).length, 3 * 3, 'per policy: one thin line per seed and the mean');
  const md = banditRegretMarkdown(runs, 'minielm bandit simulate --rounds 2000');
  assert.match(md, /\| mean \|.*\| met \|/);
});

test('the simulation can run the bandit through a trained Rewriter (expand + feedback)', async () => {
  const { fixture } = await model();
  const r = await load({ cacheSize: 64, bandit: { seed: 1 } });
  const sim = await simulateBandit({ rewriter: r, catalog: fixture.catalog, rounds: 300, queries: 8, profiles: 10, candidates: 5, send: 2 });
  assert.is(sim.options.candidateSource, 'rewriter');
  assert.is(sim.bandit.updates, r.bandit!.stats().updates);
  assert.ok(sim.bandit.updates > 0 && sim.bandit.updates <= 300 * 2, `${sim.bandit.updates} feedback events`);
  for (const p of sim.policies) assert.ok(Number.isFinite(p.regret) && p.regret >= -1e-9, `${p.policy} regret ${p.regret}`);
});

test.run();
