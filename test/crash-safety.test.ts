// Crash-safe state: a child process saves state over and over and is SIGKILLed at random points; after
// each kill the last good state must load (and, for trainers, resume) and equal one of the saved versions
// byte for byte — never a half-written file or a folder mixing two saves — and never be older than the
// last save that returned. Three children: a checkpoint (model + training state + trainer state +
// tokenizer), the online trainer itself, and every other state file at once (relevance scorer, tokenizer,
// user profiles, a JSONL log, a report-like file). The folder-swap protocol's intermediate states are also
// built by hand, so every window is checked even where a random kill rarely lands.
// More trials: npm run check:crash -- --trials 500 (checkpoint kills; the others scale along).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile, lstat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Model } from '../lib/model/model.ts';
import { Tokenizer, trainTokenizer } from '../lib/tokenizer/index.ts';
import { saveCheckpoint, loadTrainerState } from '../lib/train/run-state.ts';
import { trainSft } from '../lib/train/sft.ts';
import { trainOnline } from '../lib/train/online.ts';
import { buildQ2Q, syntheticIntentFilter } from '../lib/data/index.ts';
import { LearnedRelevanceScorer } from '../lib/rewards/learned.ts';
import { loadProfiles } from '../lib/users/profiles.ts';
import { appendLines, parseJsonLines, recoverDir, replaceDir, resolveDir, swapSiblings } from '../lib/util/atomic.ts';
import {
  CHECKPOINT_CONFIG, CHECKPOINT_OPTIMIZER, CHECKPOINT_SEED, checkpointBatch, tokenizerVersion, atomicPayload, profilesVersion, SCORER_CONFIG,
} from './helpers/crash-child.ts';
import { onlineCatalog, onlineOptions, onlineWorld, paramDigest } from './helpers/crash-online.ts';

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, '..');
const CHILD = join(here, 'helpers', 'crash-child.ts');

function flag(name: string): number | undefined {
  const i = process.argv.lastIndexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : undefined;
}
const CHECKPOINT_TRIALS = flag('trials') ?? 60;
const scale = CHECKPOINT_TRIALS / 60;
const ONLINE_TRIALS = Math.max(4, Math.round(12 * scale));
const MISC_TRIALS = Math.max(4, Math.round(16 * scale));
const SEED = flag('seed') ?? 1;
// Long enough that the kills land before the run ends (a trial advances it a few iterations; on a fast machine
// 96 iterations finished after 6 of 12 kills). A run that finishes anyway ends the trials (killTrials).
process.env.MINIELM_CRASH_ONLINE_ITERATIONS = String(16 * ONLINE_TRIALS);

// Seeded kill delays: the same seed tries the same delays (where the kill lands still varies with timing).
let rngState = SEED >>> 0 || 1;
function random(): number {
  rngState = (rngState + 0x6d2b79f5) >>> 0;
  let t = rngState;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

let root = '';

async function exists(p: string): Promise<boolean> {
  try {
    await lstat(p);
    return true;
  } catch {
    return false;
  }
}

/** name -> bytes of every file directly in `dir`. */
async function folderBytes(dir: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const e of (await readdir(dir)).sort()) out.set(e, await readFile(join(dir, e)));
  return out;
}

function sameBytes(a: Map<string, Buffer>, b: Map<string, Buffer>, names?: string[]): string | null {
  const keys = names ?? [...new Set([...a.keys(), ...b.keys()])];
  for (const k of keys) {
    const x = a.get(k), y = b.get(k);
    if (!x || !y) return `${k} is ${x ? 'extra' : 'missing'}`;
    if (!x.equals(y)) return `${k} differs`;
  }
  return null;
}

/** Where a kill left the folder-swap protocol: which of <dir>, staging, committed, retired exist. */
async function swapState(dir: string): Promise<string> {
  const s = swapSiblings(dir);
  const parts = [(await exists(dir)) ? 'dir' : '', (await exists(s.tmp)) ? 'staging' : '', (await exists(s.committed)) ? 'committed' : '', (await exists(s.old)) ? 'old' : ''].filter(Boolean);
  return parts.join('+') || 'nothing';
}

// Every child this suite starts, so none outlives it: a child left waiting for "go" keeps this process alive,
// and under scripts/test.js (which waits for the file's process to end) that was a hang of the whole suite.
const children = new Set<Child>();
function killAll(): void {
  for (const c of children) if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGKILL');
}
process.on('exit', killAll);

class Child {
  readonly proc: ChildProcess;
  readonly lines: string[] = [];
  stderr = '';
  readonly ready: Promise<void>;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  #killed = false;

  constructor(mode: string, trial: number) {
    this.proc = spawn(process.execPath, ['--import', 'tsx', CHILD, mode, root, String(trial)], { cwd: repo, stdio: ['pipe', 'pipe', 'pipe'] });
    children.add(this);
    let buf = '';
    let onReady: () => void = () => undefined;
    let onFail: (e: Error) => void = () => undefined;
    this.ready = new Promise((res, rej) => ((onReady = res), (onFail = rej)));
    this.proc.stdout!.setEncoding('utf8');
    this.proc.stdout!.on('data', (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        this.lines.push(line);
        if (line === 'ready') onReady();
      }
    });
    this.proc.stderr!.setEncoding('utf8');
    this.proc.stderr!.on('data', (c: string) => (this.stderr += c));
    this.exited = new Promise((res) =>
      this.proc.on('exit', (code, signal) => {
        if (!this.#killed && code !== 0) onFail(new Error(`crash child (${mode}) exited with ${code ?? signal} before it was killed:\n${this.stderr}`));
        res({ code, signal });
      }),
    );
    this.ready.catch(() => undefined);
  }

  go(): void {
    this.proc.stdin!.write('go\n');
  }

  /**
   * SIGKILLs the child; 'finished' when it had already ended by itself with status 0 and `mayFinish` (a run
   * that completed before its kill: the online trainer resumed close to its end), else an error.
   */
  async kill(mayFinish = false): Promise<'killed' | 'finished'> {
    this.#killed = true;
    this.proc.kill('SIGKILL');
    const { code, signal } = await this.exited;
    if (signal === 'SIGKILL') return 'killed';
    if (mayFinish && code === 0) return 'finished';
    throw new Error(`crash child ended by itself (exit ${code ?? signal}) before the kill:\n${this.stderr}`);
  }

  /** The highest version of `kind` the child printed with `what` (start / done / resumed), or undefined. */
  last(what: string, kind: string): number | undefined {
    let v: number | undefined;
    for (const l of this.lines) {
      const [w, k, n] = l.split(' ');
      if (w === what && k === kind) v = Number(n);
    }
    return v;
  }
}

async function readyWithin(c: Child, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((res) => (timer = setTimeout(() => res(false), ms)));
  const ok = await Promise.race([c.ready.then(() => true), timeout]);
  clearTimeout(timer);
  return ok;
}

/**
 * Runs `n` trials: the next child starts up while the current one works, is killed after a random delay,
 * then checked. `check` says whether the state moved on; when it did not (a loaded machine), the delays
 * grow, up to four times `maxDelayMs`.
 */
async function killTrials(mode: string, n: number, maxDelayMs: number, check: (trial: number, child: Child, outcome: 'killed' | 'finished') => Promise<boolean>, mayFinish = false): Promise<{ child: Child; kills: number }> {
  let next = new Child(mode, 0);
  let window = maxDelayMs;
  let kills = 0;
  try {
    for (let t = 0; t < n; t++) {
      let cur = next;
      // A child that does not get ready (it has not touched any state yet) is replaced rather than waited for
      // forever: seen once in CI, a child stuck before "ready" while building its world. Counted and reported.
      for (let attempt = 0; !(await readyWithin(cur, 90_000)); attempt++) {
        if (attempt >= 2) throw new Error(`crash child (${mode}) trial ${t} never got ready, three times:\n${cur.stderr}`);
        console.warn(`crash-safety: ${mode} trial ${t}: the child did not get ready in 90 s; replacing it`);
        cur.proc.kill('SIGKILL');
        cur = new Child(mode, t);
      }
      next = new Child(mode, t + 1);
      cur.go();
      await new Promise((r) => setTimeout(r, random() * window));
      const outcome = await cur.kill(mayFinish);
      const moved = await check(t, cur, outcome);
      if (outcome === 'finished') {
        // The run is complete: later children would only find a finished run. Stop here (the caller counts kills).
        console.log(`crash-safety: ${mode}: the run finished by itself in trial ${t}, after ${kills} kills`);
        break;
      }
      kills++;
      window = moved ? Math.max(maxDelayMs, window / 1.5) : Math.min(4 * maxDelayMs, window * 1.5);
    }
    for (let attempt = 0; !(await readyWithin(next, 90_000)); attempt++) {
      if (attempt >= 2) throw new Error(`crash child (${mode}) never got ready, three times:\n${next.stderr}`);
      console.warn(`crash-safety: ${mode}: the last child did not get ready in 90 s; replacing it`);
      next.proc.kill('SIGKILL');
      next = new Child(mode, n);
    }
    return { child: next, kills };
  } catch (err) {
    killAll();
    throw err;
  }
}

/** Tallies what each kill left, and the failures (corrupt, mixed or lost state) with their reasons. */
class Tally {
  trials = 0;
  readonly failures: string[] = [];
  readonly outcomes = new Map<string, number>();
  constructor(readonly name: string) {}
  see(outcome: string): void {
    this.outcomes.set(outcome, (this.outcomes.get(outcome) ?? 0) + 1);
  }
  fail(trial: number, why: string): void {
    this.failures.push(`trial ${trial}: ${why}`);
  }
  report(extra = ''): string {
    const o = [...this.outcomes].map(([k, v]) => `${k} ${v}`).join(', ');
    const line = `crash-safety ${this.name}: ${this.trials} kills, ${this.failures.length} corrupt/mixed/lost; left: ${o}${extra ? `; ${extra}` : ''}`;
    return line;
  }
  assertClean(): void {
    assert.is(this.failures.length, 0, `${this.name}: ${this.failures.slice(0, 5).join('; ')}`);
  }
}

test.before(async () => {
  root = await mkdtemp(join(tmpdir(), 'minielm-crash-'));
  const catalog = onlineCatalog();
  const q2q = await buildQ2Q(catalog.judgements, { k: 2, seed: 4, filter: syntheticIntentFilter(catalog) });
  const tokenizer = await trainTokenizer([...q2q.train.map((p) => p.query), ...[...catalog.products.values()].map((p) => p.title)], { vocabSize: 400 });
  await tokenizer.save(join(root, 'fixture', 'tokenizer'));
  // The online trainer starts from a briefly fine-tuned student (a random one would tie every pair).
  await trainSft({ out: join(root, 'fixture', 'sft'), train: q2q.train, test: q2q.test.slice(0, 32), tokenizer, config: { vocab_size: tokenizer.vocabSize, n_ctx: 40, n_layer: 1, n_head: 2, n_embd: 32 }, steps: 30, batchSize: 16, optimizer: { lr: 1e-2 }, evalEvery: 30, seed: 1, progress: false });
});

test.after(async () => {
  killAll();
  await rm(root, { recursive: true, force: true });
});

test('folder swap: every intermediate state resolves to a complete set, and recovery completes or rolls back', async () => {
  const base = join(root, 'protocol');
  await mkdir(base, { recursive: true });
  const setOf = async (dir: string, v: string): Promise<void> => {
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'config.json'), v);
    await writeFile(join(dir, 'model.safetensors'), v.repeat(100));
  };
  const version = async (dir: string): Promise<string | null> => ((await exists(join(dir, 'config.json'))) ? readFile(join(dir, 'config.json'), 'utf8') : null);
  // [state the kill left, what a reader must see, what <dir> holds after the writer's recovery]
  const cases: [string, (d: string) => Promise<void>, string | null][] = [
    ['killed while staging', async (d) => (await setOf(d, 'A'), await mkdir(swapSiblings(d).tmp), await writeFile(join(swapSiblings(d).tmp, 'config.json'), 'B-torn')), 'A'],
    ['killed after the commit, before the swap', async (d) => (await setOf(d, 'A'), await setOf(swapSiblings(d).committed, 'B')), 'B'],
    ['killed between the two renames', async (d) => (await setOf(swapSiblings(d).old, 'A'), await setOf(swapSiblings(d).committed, 'B')), 'B'],
    ['killed before the old set was deleted', async (d) => (await setOf(d, 'B'), await setOf(swapSiblings(d).old, 'A')), 'B'],
    ['only the retired set is left', async (d) => setOf(swapSiblings(d).old, 'A'), 'A'],
    ['first save, killed after the commit', async (d) => setOf(swapSiblings(d).committed, 'B'), 'B'],
    ['first save, killed while staging', async (d) => (await mkdir(swapSiblings(d).tmp), await writeFile(join(swapSiblings(d).tmp, 'config.json'), 'B-torn')), null],
  ];
  let i = 0;
  for (const [name, make, want] of cases) {
    const d = join(base, `case${i++}`);
    await make(d);
    assert.is(await version(await resolveDir(d)), want, `${name}: reader`);
    await recoverDir(d);
    assert.is(await version(d), want, `${name}: after recovery`);
    const s = swapSiblings(d);
    for (const p of [s.tmp, s.committed, s.old]) assert.not.ok(await exists(p), `${name}: ${p} left behind`);
    if (want) assert.is((await readFile(join(d, 'model.safetensors'), 'utf8')).length, 100, `${name}: the set is whole`);
  }
});

test('replaceDir keeps files it does not write, drops the listed ones, nests, and saves into the working folder in place', async () => {
  const d = join(root, 'keep');
  await mkdir(d, { recursive: true });
  await writeFile(join(d, 'tokenizer.json'), 'tok');
  await writeFile(join(d, 'training_state.safetensors'), 'stale');
  await mkdir(join(d, 'onnx'));
  await writeFile(join(d, 'onnx', 'model.onnx'), 'onnx');
  await replaceDir(d, async (stage) => {
    await writeFile(join(stage, 'config.json'), 'new');
    // A save into the staging folder joins the enclosing set instead of swapping folders of its own.
    await replaceDir(stage, async (inner) => {
      assert.is(inner, stage);
      await writeFile(join(inner, 'tokenizer_config.json'), 'inner');
    });
  }, { drop: ['training_state.safetensors'] });
  assert.equal((await readdir(d)).sort(), ['config.json', 'onnx', 'tokenizer.json', 'tokenizer_config.json']);
  assert.is(await readFile(join(d, 'tokenizer.json'), 'utf8'), 'tok');
  assert.is(await readFile(join(d, 'onnx', 'model.onnx'), 'utf8'), 'onnx');
  // The process's working folder cannot be renamed away: files are replaced one by one, each whole.
  const cwd = process.cwd();
  try {
    process.chdir(d);
    await replaceDir('.', async (stage) => writeFile(join(stage, 'config.json'), 'in place'));
    assert.is(await readFile(join(d, 'config.json'), 'utf8'), 'in place');
    assert.ok(await exists(join(d, 'tokenizer.json')));
    assert.not.ok((await readdir(d)).some((e) => e.startsWith('.minielm')), 'no staging folder left');
  } finally {
    process.chdir(cwd);
  }
  const refused = await replaceDir('', async () => undefined).then(() => null, (err: Error & { code?: string }) => err.code);
  assert.is(refused, 'MINIELM_INVALID_ARGUMENT', 'an empty path is refused, never taken as the working folder');
});

test('Model.save keeps a tokenizer already in the folder and drops a stale optimizer state', async () => {
  const d = join(root, 'hf');
  const m = await Model.create(CHECKPOINT_CONFIG, { seed: 1 });
  await m.save(d, { trainingState: true });
  const tok = await Tokenizer.load(join(root, 'fixture', 'tokenizer'));
  await tok.save(d);
  await m.save(d);
  assert.equal((await readdir(d)).sort(), ['config.json', 'model.safetensors', 'special_tokens_map.json', 'tokenizer.json', 'tokenizer_config.json']);
  await m.dispose();
});

test('a JSONL line a kill cut short is skipped on read and cut before the next append', async () => {
  const f = join(root, 'torn.jsonl');
  await writeFile(f, '{"step":1}\n{"step":2}\n{"step":3,"lo');
  assert.equal(parseJsonLines(await readFile(f, 'utf8')), { records: [{ step: 1 }, { step: 2 }], skipped: 1 });
  await appendLines(f, '{"step":3}\n');
  assert.is(await readFile(f, 'utf8'), '{"step":1}\n{"step":2}\n{"step":3}\n');
});

test(`checkpoint (model + training state + trainer state + tokenizer): ${CHECKPOINT_TRIALS} SIGKILLs, the last good set always loads and resumes`, async () => {
  const ck = join(root, 'checkpoint');
  const tally = new Tally('checkpoint');
  let verified = 0;
  const refBytes = new Map<number, Map<string, Buffer>>();
  const { child } = await killTrials('checkpoint', CHECKPOINT_TRIALS, 300, async (t, c) => {
    const before = verified;
    await checkOne(t, c);
    return verified !== before;
  });
  async function checkOne(t: number, c: Child): Promise<void> {
    tally.trials++;
    const resumed = c.last('resumed', 'checkpoint');
    if (resumed !== undefined && resumed !== verified) tally.fail(t, `the child resumed version ${resumed}, but the last good state checked was ${verified}`);
    const done = Math.max(verified, c.last('done', 'checkpoint') ?? 0);
    const started = Math.max(done, c.last('start', 'checkpoint') ?? 0);
    tally.see(await swapState(ck));
    const dir = await resolveDir(ck);
    if (!(await exists(join(dir, 'trainer_state.json')))) {
      if (done > 0) tally.fail(t, `no checkpoint after version ${done} was saved`);
      return;
    }
    try {
      const v = Number((await loadTrainerState(ck)).version);
      if (!(v >= done && v <= started)) tally.fail(t, `found version ${v}; saves done up to ${done}, started up to ${started}`);
      let ref = refBytes.get(v);
      if (!ref) refBytes.set(v, (ref = await folderBytes(join(root, 'refs', String(v)))));
      const diff = sameBytes(await folderBytes(dir), ref);
      if (diff) tally.fail(t, `version ${v} does not match its saved copy: ${diff}`);
      const m = await Model.load(ck, { trainingState: true });
      const tok = await Tokenizer.load(ck);
      if (m.step !== v || tok.config.minielm_crash_version !== v) tally.fail(t, `version ${v} loads as step ${m.step} with tokenizer version ${String(tok.config.minielm_crash_version)}`);
      // It resumes: one more step trains.
      const r = await m.trainStep(checkpointBatch(v + 1), CHECKPOINT_OPTIMIZER);
      if (r.step !== v + 1 || !Number.isFinite(r.loss)) tally.fail(t, `resume from version ${v} gave step ${r.step}, loss ${r.loss}`);
      await m.dispose();
      verified = v;
    } catch (err) {
      tally.fail(t, `the checkpoint does not load: ${(err as Error).message}`);
    }
  }
  await child.kill();
  // Resumed ~N times, the chain still equals an uninterrupted one (weights, moments, step, RNG, tokenizer).
  const straight = await Model.create(CHECKPOINT_CONFIG, { seed: CHECKPOINT_SEED });
  for (let v = 1; v <= verified; v++) await straight.trainStep(checkpointBatch(v), CHECKPOINT_OPTIMIZER);
  const base = await Tokenizer.load(join(root, 'fixture', 'tokenizer'));
  await saveCheckpoint(join(root, 'straight'), straight, { step: verified, version: verified }, (d) => tokenizerVersion(base, verified).save(d));
  await straight.dispose();
  const exact = sameBytes(await folderBytes(join(root, 'straight')), await folderBytes(ck));
  console.log(tally.report(`final version ${verified}, ${exact ? `NOT equal to an uninterrupted run (${exact})` : 'byte-identical to an uninterrupted run'}`));
  tally.assertClean();
  assert.ok(verified >= Math.min(10, CHECKPOINT_TRIALS), `the kills left time to save (reached version ${verified})`);
  assert.is(exact, null, 'resumed chain equals the uninterrupted one');
});

// Once seen to hang under scripts/test.js: a resumed child finished the run before its kill, the trial failed,
// and the next child, left waiting for "go", kept this process alive. Now a finished run ends the trials, and
// no child outlives the suite (killAll).
test(`online trainer: ${ONLINE_TRIALS} SIGKILLs mid-run, each time the last checkpoint loads, and the resumed run ends exactly where an uninterrupted one does`, async () => {
  const world = await onlineWorld(root);
  const refDigest: string[] = [];
  const ref = await trainOnline(onlineOptions(root, world, join(root, 'online-ref'), (p) => refDigest.push(paramDigest(p))));
  await ref.policy.dispose();
  const ck = join(root, 'online', 'checkpoint');
  const tally = new Tally('online trainer');
  let verified = 0;
  let tornLogs = 0;
  const { child, kills } = await killTrials('online', ONLINE_TRIALS, 1000, async (t, _c, outcome) => {
    const before = verified;
    if (outcome === 'finished') tally.trials--; // checked like a kill, but not counted as one
    await checkOne(t);
    return verified !== before;
  }, true);
  // A fast machine can finish the run before the last trials (they resume close to its end): enough kills must
  // still have landed mid-run.
  assert.ok(kills >= Math.min(4, ONLINE_TRIALS), `only ${kills} of ${ONLINE_TRIALS} kills landed before the run finished`);
  async function checkOne(t: number): Promise<void> {
    tally.trials++;
    tally.see(await swapState(ck));
    const dir = await resolveDir(ck);
    try {
      if (await exists(join(dir, 'trainer_state.json'))) {
        const s = await loadTrainerState(ck);
        const it = Number(s.iteration);
        if (it < verified) tally.fail(t, `checkpoint went back from iteration ${verified} to ${it}`);
        const m = await Model.load(ck, { trainingState: true });
        if (paramDigest(m) !== refDigest[it]) tally.fail(t, `iteration ${it}'s weights differ from the uninterrupted run's`);
        await m.dispose();
        await Tokenizer.load(ck);
        verified = it;
      } else if (verified > 0) tally.fail(t, `no checkpoint after iteration ${verified} was saved`);
      const best = await resolveDir(join(root, 'online', 'best'));
      if (await exists(join(best, 'trainer_state.json'))) {
        const j = Number((await loadTrainerState(best)).iteration);
        const m = await Model.load(best);
        if (paramDigest(m) !== refDigest[j]) tally.fail(t, `best (iteration ${j}) differs from that iteration of the uninterrupted run`);
        await m.dispose();
      }
      const log = await readFile(join(root, 'online', 'log.jsonl'), 'utf8').catch(() => '');
      const torn = !log.endsWith('\n') && log.length > 0;
      if (torn) tornLogs++;
      if (parseJsonLines(log).skipped > (torn ? 1 : 0)) tally.fail(t, 'log.jsonl has a broken line that is not its torn tail');
    } catch (err) {
      tally.fail(t, `the checkpoint does not load: ${(err as Error).message}`);
    }
  }
  // The next child resumes and runs to the end.
  child.go();
  const end = await child.exited;
  assert.is(end.code, 0, child.stderr);
  const diff = sameBytes(await folderBytes(ck), await folderBytes(join(root, 'online-ref', 'checkpoint')));
  const bestDiff = sameBytes(await folderBytes(join(root, 'online', 'best')), await folderBytes(join(root, 'online-ref', 'best')));
  // Wall-clock fields (time, time/*_s) differ between any two runs; everything else must match.
  const records = async (out: string) => parseJsonLines<Record<string, unknown>>(await readFile(join(out, 'log.jsonl'), 'utf8')).records.filter((r) => r.event === undefined).map((r) => Object.fromEntries(Object.entries(r).filter(([k]) => k !== 'time' && !k.startsWith('time/'))));
  const logs = [await records(join(root, 'online')), await records(join(root, 'online-ref'))];
  console.log(tally.report(`resumed to iteration ${refDigest.length - 1}: checkpoint ${diff ?? 'identical'}, best ${bestDiff ?? 'identical'}, log ${logs[0].length} records ${JSON.stringify(logs[0]) === JSON.stringify(logs[1]) ? 'identical' : 'DIFFERENT'}; torn log tails seen ${tornLogs}`));
  tally.assertClean();
  assert.ok(verified > 0, 'some kill came after a checkpoint, so a run really resumed mid-way');
  assert.is(diff, null, 'final checkpoint equals the uninterrupted run');
  assert.is(bestDiff, null, 'best equals the uninterrupted run');
  const at = logs[0].findIndex((r, i) => JSON.stringify(r) !== JSON.stringify(logs[1][i]));
  if (at >= 0 || logs[0].length !== logs[1].length)
    assert.unreachable(`the log differs from the uninterrupted run's at record ${at} (${logs[0].length} vs ${logs[1].length} records):\n${JSON.stringify(logs[0][at])}\n${JSON.stringify(logs[1][at])}`);
});

test(`every other state file (relevance scorer, tokenizer, profiles, JSONL log, report file): ${MISC_TRIALS} SIGKILLs`, async () => {
  const tokDir = join(root, 'tokenizer');
  const initialModel = await Model.create({ ...CHECKPOINT_CONFIG, vocab_size: 400 }, { seed: 2 });
  await initialModel.save(tokDir);
  await initialModel.dispose();
  await (await Tokenizer.load(join(root, 'fixture', 'tokenizer'))).save(tokDir);
  const modelFiles = await folderBytes(tokDir);
  await cp(tokDir, join(root, 'refs-tokenizer', '0'), { recursive: true });
  const kinds = ['scorer', 'tokenizer', 'profiles', 'jsonl', 'report'] as const;
  const tallies = Object.fromEntries(kinds.map((k) => [k, new Tally(k)])) as Record<(typeof kinds)[number], Tally>;
  const verified: Record<string, number> = Object.fromEntries(kinds.map((k) => [k, 0]));
  let tornTails = 0;
  const { child } = await killTrials('misc', MISC_TRIALS, 1500, async (t, c) => {
    const before = JSON.stringify(verified);
    await checkAll(t, c);
    return JSON.stringify(verified) !== before;
  });
  async function checkAll(t: number, c: Child): Promise<void> {
    for (const kind of kinds) {
      const tally = tallies[kind];
      tally.trials++;
      const resumed = c.last('resumed', kind);
      if (resumed !== undefined && resumed !== verified[kind]) tally.fail(t, `the child resumed ${kind} version ${resumed}, the last good one checked was ${verified[kind]}`);
      const done = Math.max(verified[kind], c.last('done', kind) ?? 0);
      const started = Math.max(done, c.last('start', kind) ?? 0);
      try {
        let v: number;
        if (kind === 'scorer') {
          const dir = join(root, 'scorer');
          tally.see(await swapState(dir));
          const from = await resolveDir(dir);
          if (!(await exists(join(from, 'relevance.json')))) {
            if (done > 0) tally.fail(t, `no scorer after version ${done} was saved`);
            continue;
          }
          v = Number((JSON.parse(await readFile(join(from, 'relevance.json'), 'utf8')) as { version: number }).version);
          const diff = sameBytes(await folderBytes(from), await folderBytes(join(root, 'refs-scorer', String(v))));
          if (diff) tally.fail(t, `scorer version ${v}: ${diff}`);
          const s = await LearnedRelevanceScorer.load(dir);
          if (!s.model.config.score_head || s.model.config.n_embd !== SCORER_CONFIG.n_embd) tally.fail(t, 'the scorer loads with the wrong config');
          await s.dispose();
        } else if (kind === 'tokenizer') {
          tally.see(await swapState(tokDir));
          const from = await resolveDir(tokDir);
          v = Number((await Tokenizer.load(tokDir)).config.minielm_crash_version ?? 0);
          const now = await folderBytes(from);
          const diff = sameBytes(now, await folderBytes(join(root, 'refs-tokenizer', String(v))), ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']) ?? sameBytes(now, modelFiles, ['config.json', 'model.safetensors']);
          if (diff) tally.fail(t, `tokenizer version ${v}: ${diff}`);
        } else if (kind === 'profiles') {
          const file = join(root, 'profiles.json');
          if (!(await exists(file))) {
            if (done > 0) tally.fail(t, `no profiles after version ${done} was saved`);
            continue;
          }
          const got = loadProfiles(file);
          v = Number(got[0].id.split('-')[1]);
          assert.equal(got, profilesVersion(v));
          tally.see('whole');
        } else if (kind === 'jsonl') {
          const text = await readFile(join(root, 'log.jsonl'), 'utf8').catch(() => '');
          const cut = text.lastIndexOf('\n') + 1;
          if (cut < text.length) tornTails++;
          tally.see(cut < text.length ? 'torn tail' : 'whole lines');
          const { records, skipped } = parseJsonLines<{ step: number }>(text.slice(0, cut));
          if (skipped) tally.fail(t, `${skipped} complete lines do not parse`);
          v = records.length;
          if (!records.every((r, i) => r.step === i + 1)) tally.fail(t, `the log's steps are not 1..${v} in order (lost, fused or repeated lines)`);
        } else {
          const file = join(root, 'report.json');
          if (!(await exists(file))) {
            if (done > 0) tally.fail(t, `no report after version ${done} was saved`);
            continue;
          }
          const text = await readFile(file, 'utf8');
          v = (JSON.parse(text) as { version: number }).version;
          if (text !== atomicPayload(v)) tally.fail(t, `report version ${v} is not the text that was saved`);
          tally.see('whole');
        }
        if (!(v >= done && v <= started)) tally.fail(t, `${kind}: found version ${v}; saves done up to ${done}, started up to ${started}`);
        verified[kind] = v;
      } catch (err) {
        tally.fail(t, `${kind} does not load: ${(err as Error).message}`);
      }
    }
  }
  await child.kill();
  for (const kind of kinds) console.log(tallies[kind].report(`reached version ${verified[kind]}${kind === 'jsonl' ? `, torn tails seen ${tornTails}` : ''}`));
  for (const kind of kinds) tallies[kind].assertClean();
  for (const kind of kinds) assert.ok(verified[kind] > 0, `${kind}: something was saved`);
});

test.run();
