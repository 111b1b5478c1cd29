import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AGE_BANDS,
  describeProfile,
  generateProfiles,
  generateProfilesWithLlm,
  INCOMES,
  loadProfiles,
  saveProfiles,
  validateProfile,
  type UserProfile,
} from '../lib/users/profiles.ts';
import type { ChatClient, ChatMessage } from '../lib/users/chat-client.ts';
import { MinielmError } from '../lib/errors.ts';

const dir = mkdtempSync(join(tmpdir(), 'minielm-profiles-'));

test('seeded pool: same seed same profiles, different seed different profiles', () => {
  const a = generateProfiles(50, 7);
  const b = generateProfiles(50, 7);
  const c = generateProfiles(50, 8);
  assert.equal(a, b);
  assert.not.equal(a, c);
  assert.is(new Set(a.map((p) => p.id)).size, 50);
});

test('seeded pool: every profile validates and the pool is varied', () => {
  const pool = generateProfiles(200, 1);
  for (const p of pool) assert.equal(validateProfile(p), p);
  assert.is(new Set(pool.map((p) => p.income)).size, INCOMES.length);
  assert.is(new Set(pool.map((p) => p.ageBand)).size, AGE_BANDS.length);
  // Lower income leans price-sensitive on average.
  const mean = (xs: number[]): number => xs.reduce((s, x) => s + x, 0) / xs.length;
  const low = mean(pool.filter((p) => p.income === 'low').map((p) => p.priceSensitivity));
  const luxury = mean(pool.filter((p) => p.income === 'luxury').map((p) => p.priceSensitivity));
  assert.ok(low > luxury, `low-income sensitivity ${low} should exceed luxury ${luxury}`);
});

test('seeded pool draws preferences from a given vocabulary', () => {
  const pool = generateProfiles(20, 3, { vocabulary: { brands: ['OnlyBrand'], colors: ['teal'] } });
  for (const p of pool) {
    assert.equal(p.likedBrands, ['OnlyBrand']);
    assert.equal(p.colors, ['teal']);
  }
  assert.throws(() => generateProfiles(2, 1, { vocabulary: { brands: [] } }), /"brands"/);
  assert.throws(() => generateProfiles(-1, 1), /count/);
});

test('validation names the offending field', () => {
  const good = generateProfiles(1, 2)[0];
  const cases: [Partial<Record<keyof UserProfile, unknown>>, RegExp][] = [
    [{ gender: 'robot' }, /profile\.gender.*robot/],
    [{ ageBand: 30 }, /profile\.ageBand/],
    [{ income: 'rich' }, /profile\.income/],
    [{ priceSensitivity: 1.5 }, /profile\.priceSensitivity.*\[0, 1\]/],
    [{ brandAffinity: 'high' }, /profile\.brandAffinity/],
    [{ likedBrands: 'Acme' }, /profile\.likedBrands/],
    [{ colors: ['red', ''] }, /profile\.colors\[1\]/],
    [{ id: '' }, /profile\.id/],
  ];
  for (const [patch, pattern] of cases) {
    try {
      validateProfile({ ...good, ...patch });
      assert.unreachable(`accepted ${JSON.stringify(patch)}`);
    } catch (err) {
      assert.instance(err, MinielmError);
      assert.match((err as Error).message, pattern);
    }
  }
  // Case is forgiven and normalised.
  assert.is(validateProfile({ ...good, income: 'High' }).income, 'high');
});

test('save and load round-trip; a bad file names the file and the field', () => {
  const pool = generateProfiles(5, 4);
  const file = join(dir, 'pool.json');
  saveProfiles(file, pool);
  assert.equal(loadProfiles(file), pool);
  assert.is(JSON.parse(readFileSync(file, 'utf8')).version, 1);

  const bad = join(dir, 'bad.json');
  writeFileSync(bad, JSON.stringify({ profiles: [pool[0], { ...pool[1], income: 'x' }] }));
  assert.throws(() => loadProfiles(bad), (err: Error) => /bad\.json\[1\]\.income/.test(err.message) && (err as MinielmError).code === 'MINIELM_BAD_FILE');

  const dup = join(dir, 'dup.json');
  writeFileSync(dup, JSON.stringify([pool[0], pool[0]]));
  assert.throws(() => loadProfiles(dup), /used twice/);

  const junk = join(dir, 'junk.json');
  writeFileSync(junk, '{ not json');
  assert.throws(() => loadProfiles(junk), /junk\.json.*not valid JSON/);
  assert.throws(() => loadProfiles(join(dir, 'missing.json')), /missing\.json/);
});

test('describeProfile mentions the preferences a judge should use', () => {
  const p = generateProfiles(1, 9)[0];
  const text = describeProfile(p);
  assert.ok(text.includes(p.likedBrands[0]) && text.includes(p.region) && text.includes(p.income));
});

class ScriptedChat implements ChatClient {
  readonly baseURL = 'scripted://';
  readonly model = 'scripted';
  calls = 0;
  constructor(private readonly replies: string[]) {}
  async complete(_messages: ChatMessage[]): Promise<string> {
    return this.replies[Math.min(this.calls++, this.replies.length - 1)];
  }
}

test('LLM profiles: valid JSON (even fenced, ids missing) is accepted and validated', async () => {
  const one = { gender: 'female', ageBand: '26-35', region: 'Europe', income: 'middle', priceSensitivity: 0.4, brandAffinity: 0.7, likedBrands: ['Acme'], styles: ['classic'], colors: ['navy'], materials: [] };
  const chat = new ScriptedChat([`Here you go:\n\`\`\`json\n${JSON.stringify([one, { ...one, gender: 'male' }])}\n\`\`\``]);
  const got = await generateProfilesWithLlm(chat, 2);
  assert.is(got.length, 2);
  assert.equal(got.map((p) => p.id), ['llm0', 'llm1']);
  assert.is(got[1].gender, 'male');
});

test('LLM profiles: junk is retried, then fails loudly instead of padding with seeded profiles', async () => {
  const chat = new ScriptedChat(['I am sorry, I cannot do that.', '[{"gender": "robot"}]']);
  try {
    await generateProfilesWithLlm(chat, 3, { attempts: 2 });
    assert.unreachable('should fail');
  } catch (err) {
    assert.is((err as MinielmError).code, 'MINIELM_JUDGE');
    assert.match((err as Error).message, /2 attempt\(s\).*LLM profile 0\.region.*seeded pool/);
  }
  assert.is(chat.calls, 2);
});

test('LLM profiles: a junk first reply followed by a good one recovers', async () => {
  const good = [{ id: 'x', gender: 'male', ageBand: '65+', region: 'Oceania', income: 'low', priceSensitivity: 0.9, brandAffinity: 0.1, likedBrands: [], styles: ['casual'], colors: ['grey'], materials: ['wool'] }];
  const chat = new ScriptedChat(['{"oops": true}', JSON.stringify(good)]);
  const got = await generateProfilesWithLlm(chat, 1);
  assert.is(got[0].region, 'Oceania');
});

test.after(() => rmSync(dir, { recursive: true, force: true }));
test.run();
