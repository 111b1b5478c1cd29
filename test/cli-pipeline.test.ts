// The pipeline's CLI commands: help texts, and clear errors (named flag, non-zero exit, no stack trace) for
// bad input instead of crashes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';

const root = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..');
function cli(...args: string[]): { status: number | null; out: string } {
  const r = spawnSync(process.execPath, [join(root, 'bin', 'minielm.js'), ...args], { cwd: root, encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

test('a reader that closes the pipe early (minielm info | head -1) ends the output, not in a crash', async () => {
  const child = spawn(process.execPath, [join(root, 'bin', 'minielm.js'), 'info'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  // Close our end after the first chunk, as head does; the CLI's next writes meet EPIPE.
  child.stdout.once('data', () => child.stdout.destroy());
  const code: number | null = await new Promise((resolve) => child.on('close', (c) => resolve(c)));
  assert.is(code, 0, stderr);
  assert.not.match(stderr, /EPIPE|Unhandled/);
});

test('help texts', () => {
  for (const cmd of ['train', 'eval', 'report', 'run', 'demo']) {
    const r = cli(cmd, '--help');
    assert.is(r.status, 0, `${cmd} --help exits 0`);
    assert.match(r.out, /Usage: minielm/);
  }
  const top = cli('--help');
  for (const cmd of ['demo', 'run', 'data', 'tokenizer', 'relevance', 'train', 'eval', 'report', 'judge']) assert.match(top.out, new RegExp(`\\n  ${cmd}\\s`));
});

test('bad input gives a coded, named error and a non-zero exit', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'minielm-cli-'));
  try {
    const cases: [string[], RegExp][] = [
      [['train', 'sft', '--out', dir], /MINIELM_INVALID_ARGUMENT.*--pairs/],
      [['train', 'sft', '--pairs', join(dir, 'nope'), '--out', dir], /MINIELM_NOT_FOUND.*train\.jsonl/],
      [['train', 'online', '--out', dir], /--init/],
      [['train', 'online', '--init', dir, '--out', dir, '--algo', 'ppo'], /--algo must be dpo or grpo/],
      [['train', 'online', '--init', dir, '--out', dir, '--dense-rewards'], /apply to --algo grpo/],
      [['train', 'online', '--init', dir, '--out', dir, '--algo', 'grpo', '--grpo-loss-type', 'x'], /--grpo-loss-type/],
      [['train', 'bogus'], /expected "pretrain", "sft", "distill" or "online"/],
      [['eval', 'offline'], /--model/],
      [['report', '--run', dir], /MINIELM_NOT_FOUND.*report\.json/],
      [['run', '--preset', 'huge'], /--preset must be one of/],
      [['demo', '--seed', '-3'], /--seed/],
    ];
    await mkdir(join(dir, 'bad'), { recursive: true });
    await writeFile(join(dir, 'bad', 'train.jsonl'), '{"query": "a", "rewrite": 3}\n');
    await writeFile(join(dir, 'bad', 'test.jsonl'), '');
    cases.push([['train', 'sft', '--pairs', join(dir, 'bad'), '--out', dir], /train\.jsonl:1: needs string fields/]);
    for (const [args, pattern] of cases) {
      const r = cli(...args);
      assert.ok(r.status !== 0 && r.status !== null, `${args.join(' ')} exits non-zero (got ${r.status})`);
      assert.match(r.out, pattern, `${args.join(' ')}: ${r.out.slice(0, 300)}`);
      assert.not.match(r.out, /\n\s+at .*\.ts:\d+/, 'no stack trace');
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test.run();
