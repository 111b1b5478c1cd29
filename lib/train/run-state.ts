// What every trainer shares: JSONL logs that survive a resume, atomic checkpoints of the model plus the
// trainer's own position, Ctrl-C handling that saves and exits cleanly, and NaN/Inf detection.
import { readFile, writeFile, access } from 'node:fs/promises';
import { join } from 'node:path';
import { Model } from '../model/model.ts';
import { appendLines, recoverDir, resolveDir, writeFileAtomic } from '../util/atomic.ts';
import { MinielmError } from '../errors.ts';

export interface TrainerState {
  /** Optimizer steps done. */
  step: number;
  /** Trainer-specific position (epoch, cursor, ...) and bookkeeping (best metric). */
  [key: string]: unknown;
}

/**
 * Appends one JSON object per line; on resume, drops lines logged after the checkpoint's step. A line a
 * kill cut short is dropped too (on resume, and before the first append of a fresh start).
 */
export class JsonlLog {
  readonly file: string;
  constructor(file: string) {
    this.file = file;
  }

  async truncateAfter(step: number): Promise<void> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch {
      return;
    }
    const kept = text.split('\n').filter((line) => {
      if (!line.trim()) return false;
      try {
        const rec = JSON.parse(line) as { step?: number };
        return rec.step === undefined || rec.step <= step;
      } catch {
        return false;
      }
    });
    await writeFileAtomic(this.file, kept.length ? `${kept.join('\n')}\n` : '');
  }

  async write(record: Record<string, unknown>): Promise<void> {
    await appendLines(this.file, `${JSON.stringify({ time: new Date().toISOString(), ...record })}\n`);
  }
}

export async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Writes `<dir>` as one set: the model with its optimizer state, trainer_state.json and whatever `addFiles`
 * writes (the tokenizer). Model.save replaces the folder as a whole (lib/util/atomic.ts), so a kill at any
 * point leaves the previous checkpoint or this one, never new weights with old moments or trainer state.
 */
export async function saveCheckpoint(dir: string, model: Model, state: TrainerState, addFiles?: (tmpDir: string) => Promise<void>): Promise<void> {
  await model.save(dir, {
    trainingState: true,
    extraFiles: async (stage) => {
      await writeFile(join(stage, 'trainer_state.json'), `${JSON.stringify(state, null, 2)}\n`);
      if (addFiles) await addFiles(stage);
    },
  });
}

/**
 * Whether `<dir>` holds a checkpoint to resume from. It first completes (or rolls back) a save a kill
 * interrupted, so the trainer resumes from the last complete checkpoint instead of starting over.
 */
export async function hasCheckpoint(dir: string): Promise<boolean> {
  await recoverDir(dir);
  return exists(join(dir, 'trainer_state.json'));
}

export async function loadTrainerState(dir: string): Promise<TrainerState> {
  const file = join(await resolveDir(dir), 'trainer_state.json');
  try {
    const s = JSON.parse(await readFile(file, 'utf8')) as TrainerState;
    if (!Number.isInteger(s.step) || s.step < 0) throw new Error('step is missing');
    return s;
  } catch (err) {
    throw new MinielmError('MINIELM_CHECKPOINT', `${file}: cannot resume from it (${(err as Error).message}); delete the folder to start over`);
  }
}

/** Aborts `controller` on SIGINT/SIGTERM so the loop can save and exit; a second Ctrl-C exits at once. */
export function interruptOnSignals(controller: AbortController): () => void {
  let count = 0;
  const handler = (): void => {
    count++;
    if (count === 1) {
      process.stderr.write('\ninterrupted: finishing the current step, saving a checkpoint and exiting (Ctrl-C again to quit now)\n');
      controller.abort();
    } else {
      process.exit(130);
    }
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return () => {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  };
}

export function isNonFinite(err: unknown): boolean {
  return (err as { code?: string })?.code === 'MINIELM_NON_FINITE';
}
