// The probe table: pass@1 / pass@n of fixed fake rewriters, stem matching, and the table's own promises
// (copying never passes; no probe is a Home Depot query; every requirement can be met by catalog words).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { HOMEDEPOT_PROBES, containsRequired, evaluateProbes, type Probe } from '../lib/eval/probes.ts';
import { copyQuery, type RewritesFor } from '../lib/eval/rewriters.ts';
import { analyze } from '../lib/retrieval/analyzer.ts';
import { readHomeDepot, homeDepotAvailable } from '../lib/retrieval/homedepot.ts';
import { MinielmError } from '../lib/errors.ts';
import { testIf } from './helpers/skip.ts';

/** A rewrite that meets every requirement: the first alternative of each, in order. */
const answer = (p: Probe): string => p.mustContain.map((r) => (typeof r === 'string' ? r : r[0])).join(' ');
const byQuery = new Map(HOMEDEPOT_PROBES.map((p) => [p.query, p]));
const oracle: RewritesFor = async (qs) => qs.map((q) => [answer(byQuery.get(q)!)]);
const garbage: RewritesFor = async (qs) => qs.map(() => ['zzz qqq', '', 'xyzzy']);
/** The right answer at 1-based rank `at`, garbage before it. */
const rightAt = (at: number): RewritesFor => async (qs) => qs.map((q) => [...Array.from({ length: at - 1 }, (_, i) => `junk ${i}`), answer(byQuery.get(q)!)]);

test('the table: at least 40 distinct probes of all three kinds, none passable by copying', () => {
  assert.ok(HOMEDEPOT_PROBES.length >= 40, `${HOMEDEPOT_PROBES.length} probes`);
  for (const kind of ['misspelled', 'abbreviated', 'vague']) assert.ok(HOMEDEPOT_PROBES.some((p) => p.kind === kind), kind);
  assert.is(new Set(HOMEDEPOT_PROBES.map((p) => p.query)).size, HOMEDEPOT_PROBES.length, 'queries are distinct');
  for (const p of HOMEDEPOT_PROBES) assert.not.ok(containsRequired(p.query, p.mustContain), `copying passes "${p.query}"`);
});

test('matching is on word stems, alternatives and compounds', () => {
  assert.ok(containsRequired('Outdoor Solar LIGHTS', ['solar', 'light']));
  assert.ok(containsRequired('ceiling fans with lights', ['ceiling', 'fan', ['light', 'lighting']]));
  assert.ok(containsRequired('gas lawnmower', ['gas', ['mower', 'lawn mower']]));
  assert.ok(containsRequired('self propelled lawnmower', [['lawn mower']]), 'a phrase written as one word');
  assert.ok(containsRequired('brass dead bolt', ['deadbolt']), 'a word written as two');
  assert.not.ok(containsRequired('solar panel', ['solar', 'light']));
  assert.not.ok(containsRequired('lawn mowr', [['mower', 'lawn mower']]));
  assert.not.ok(containsRequired('', ['x']));
});

test('pass@1 and pass@10 of fixed rewriters', async () => {
  const best = await evaluateProbes(oracle);
  assert.is(best.passAt1, 1);
  assert.is(best.passAtN, 1);
  assert.is(best.n, 10);
  assert.is(best.probes, HOMEDEPOT_PROBES.length);
  const bad = await evaluateProbes(garbage);
  assert.is(bad.passAt1, 0);
  assert.is(bad.passAtN, 0);
  assert.ok(bad.results.every((r) => r.firstPass === null));
  const copy = await evaluateProbes(copyQuery);
  assert.is(copy.passAtN, 0);
  const fifth = await evaluateProbes(rightAt(5));
  assert.is(fifth.passAt1, 0);
  assert.is(fifth.passAtN, 1);
  assert.ok(fifth.results.every((r) => r.firstPass === 5 && r.rewrites.length === 5));
  const eleventh = await evaluateProbes(rightAt(11));
  assert.is(eleventh.passAtN, 0, 'only the first 10 count');
  assert.is((await evaluateProbes(rightAt(11), HOMEDEPOT_PROBES, { n: 20 })).passAtN, 1);
  assert.equal(Object.keys(best.byKind).sort(), ['abbreviated', 'misspelled', 'vague']);
});

test('pass rates on a hand-made table of three probes', async () => {
  const probes: Probe[] = [
    { kind: 'misspelled', query: 'gas mowr', mustContain: ['gas', 'mower'] },
    { kind: 'abbreviated', query: 'ss sink', mustContain: ['stainless', 'sink'] },
    { kind: 'vague', query: 'warm garage', mustContain: ['heater'] },
  ];
  const answers: Record<string, string[]> = {
    'gas mowr': ['gas mowers'], // pass@1
    'ss sink': ['ss sinks', 'sink', 'stainless steel sinks'], // passes at rank 3
    'warm garage': ['garage door'], // never
  };
  const r = await evaluateProbes(async (qs) => qs.map((q) => answers[q]), probes, { n: 10 });
  assert.ok(Math.abs(r.passAt1 - 1 / 3) < 1e-12);
  assert.ok(Math.abs(r.passAtN - 2 / 3) < 1e-12);
  assert.equal(r.results.map((x) => x.firstPass), [1, 3, null]);
  assert.equal(r.byKind.vague, { probes: 1, passAt1: 0, passAtN: 0 });
});

test('bad input names what is wrong', async () => {
  const invalid = async (fn: () => Promise<unknown>, pattern: RegExp): Promise<void> => {
    try {
      await fn();
    } catch (e) {
      assert.ok(e instanceof MinielmError && e.code === 'MINIELM_INVALID_ARGUMENT');
      assert.match((e as Error).message, pattern);
      return;
    }
    assert.unreachable('expected an error');
  };
  await invalid(() => evaluateProbes(oracle, HOMEDEPOT_PROBES, { n: 0 }), /option n/);
  await invalid(() => evaluateProbes(oracle, []), /at least one probe/);
  await invalid(() => evaluateProbes(async () => [['x']]), /one list of rewrite strings per query/);
  await invalid(() => evaluateProbes(oracle, [{ kind: 'vague', query: 'x', mustContain: [] }]), /mustContain/);
});

testIf(test, homeDepotAvailable(), 'no probe is a Home Depot query; every requirement can be met with catalog title words', 'the Home Depot train.csv is not in ../shared/data/homedepot', async () => {
  const hd = await readHomeDepot();
  const norm = (q: string): string => analyze(q).join(' ');
  const queries = new Set(hd.queries.map((q) => norm(q.query)));
  const vocabulary = new Set<string>();
  for (const p of hd.products) for (const t of analyze(p.title, { stem: 'minimal' })) vocabulary.add(t);
  for (const p of HOMEDEPOT_PROBES) {
    assert.not.ok(queries.has(norm(p.query)), `"${p.query}" is a Home Depot query`);
    for (const req of p.mustContain) {
      const alternatives = typeof req === 'string' ? [req] : req;
      assert.ok(alternatives.some((alt) => analyze(alt, { stem: 'minimal' }).every((t) => vocabulary.has(t))), `"${p.query}": no alternative of ${JSON.stringify(req)} is in the catalog's titles`);
    }
  }
});

test.run();
