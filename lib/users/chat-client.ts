// A minimal client for OpenAI-compatible chat-completions endpoints (vLLM, llama.cpp server, Ollama, hosted
// APIs): per-request timeout, retries with exponential backoff and jitter, a concurrency limit, stable errors.
import { MinielmError, invalidArgument } from '../errors.ts';

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export interface CompleteOptions {
  temperature?: number;
  maxTokens?: number;
  seed?: number;
  signal?: AbortSignal;
}

export interface ChatClient {
  readonly baseURL: string;
  readonly model: string;
  /** The assistant's text for one conversation. */
  complete(messages: ChatMessage[], options?: CompleteOptions): Promise<string>;
}

export interface ChatClientOptions {
  /** e.g. http://127.0.0.1:8000/v1 — "/chat/completions" is appended. */
  baseURL: string;
  model: string;
  /** Defaults to env MINIELM_JUDGE_API_KEY, then OPENAI_API_KEY; local servers usually need none. */
  apiKey?: string;
  /** Per-request limit in ms (connect + full body). Default 60 000. */
  timeoutMs?: number;
  /** Extra attempts after the first for timeouts, dropped connections, 429, 5xx and malformed bodies. Default 4. */
  retries?: number;
  /** First backoff in ms; doubles each retry, capped by maxBackoffMs, then jittered to 50–100 %. Default 500. */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** Requests in flight at once. Default 8. */
  concurrency?: number;
}

/** A counting semaphore: at most `limit` tasks run at once, the rest queue in order. */
export class ConcurrencyLimit {
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw invalidArgument(`concurrency must be an integer >= 1, got ${limit}.`);
  }
  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.active++;
    try {
      return await task();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }
}

class RetryableFailure extends Error {
  constructor(
    message: string,
    readonly kind: 'timeout' | 'unreachable' | 'dropped' | 'status' | 'malformed',
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new MinielmError('MINIELM_ABORTED', 'the judge request was cancelled.'));
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(new MinielmError('MINIELM_ABORTED', 'the judge request was cancelled.'));
    };
    // The listener goes when the timer fires, so a long-lived signal does not collect one per retry.
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });

function errorCode(err: unknown): string | undefined {
  let e: unknown = err;
  for (let depth = 0; depth < 4 && e; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

export class OpenAIChatClient implements ChatClient {
  readonly baseURL: string;
  readonly model: string;
  private readonly url: string;
  private readonly apiKey: string | undefined;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly backoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly limit: ConcurrencyLimit;
  /** HTTP attempts made, retries included (for logs and tests). */
  requests = 0;

  constructor(options: ChatClientOptions) {
    if (!options.model) throw invalidArgument('the LLM judge needs a model name (--model).');
    let parsed: URL;
    try {
      parsed = new URL(options.baseURL);
    } catch {
      throw invalidArgument(`--base-url "${options.baseURL}" is not a URL; give e.g. http://127.0.0.1:8000/v1.`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
      throw invalidArgument(`--base-url "${options.baseURL}" must be http(s).`);
    }
    this.baseURL = options.baseURL.replace(/\/+$/, '');
    this.url = `${this.baseURL}/chat/completions`;
    this.model = options.model;
    this.apiKey = options.apiKey ?? process.env.MINIELM_JUDGE_API_KEY ?? process.env.OPENAI_API_KEY;
    this.timeoutMs = options.timeoutMs ?? 60_000;
    this.retries = options.retries ?? 4;
    this.backoffMs = options.backoffMs ?? 500;
    this.maxBackoffMs = options.maxBackoffMs ?? 10_000;
    this.limit = new ConcurrencyLimit(options.concurrency ?? 8);
    for (const [name, v] of [['timeoutMs', this.timeoutMs], ['retries', this.retries], ['backoffMs', this.backoffMs], ['maxBackoffMs', this.maxBackoffMs]] as const) {
      if (!Number.isFinite(v) || v < 0) throw invalidArgument(`chat client option ${name} must be a number >= 0, got ${v}.`);
    }
  }

  async complete(messages: ChatMessage[], options: CompleteOptions = {}): Promise<string> {
    const body = JSON.stringify({
      model: this.model,
      messages,
      temperature: options.temperature ?? 0,
      max_tokens: options.maxTokens ?? 64,
      ...(options.seed !== undefined ? { seed: options.seed } : {}),
      stream: false,
    });
    let last: RetryableFailure | undefined;
    for (let attempt = 0; attempt <= this.retries; attempt++) {
      if (attempt > 0) {
        const exp = Math.min(this.maxBackoffMs, this.backoffMs * 2 ** (attempt - 1));
        const wait = Math.max(last?.retryAfterMs ?? 0, exp * (0.5 + 0.5 * Math.random()));
        await sleep(Math.min(wait, this.maxBackoffMs), options.signal);
      }
      try {
        return await this.limit.run(() => this.attempt(body, options.signal));
      } catch (err) {
        if (!(err instanceof RetryableFailure)) throw err;
        last = err;
      }
    }
    const tries = this.retries + 1;
    const where = `${this.url} (model "${this.model}")`;
    switch (last?.kind) {
      case 'timeout':
        throw new MinielmError('MINIELM_TIMEOUT', `the judge endpoint ${where} did not answer within ${this.timeoutMs} ms in ${tries} attempt(s); raise --timeout-ms or check the server load.`);
      case 'unreachable':
        throw new MinielmError('MINIELM_UNREACHABLE', `cannot connect to the judge endpoint ${where} (${last.message}) after ${tries} attempt(s); is the server running and --base-url right?`);
      default:
        throw new MinielmError('MINIELM_JUDGE', `the judge endpoint ${where} failed ${tries} time(s); last problem: ${last?.message ?? 'unknown'}.`);
    }
  }

  private async attempt(body: string, signal: AbortSignal | undefined): Promise<string> {
    this.requests++;
    const timeout = AbortSignal.timeout(this.timeoutMs);
    const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
    const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json' };
    if (this.apiKey) headers.authorization = `Bearer ${this.apiKey}`;
    let status: number;
    let text: string;
    let retryAfter: string | null = null;
    try {
      const res = await fetch(this.url, { method: 'POST', headers, body, signal: combined });
      status = res.status;
      retryAfter = res.headers.get('retry-after');
      text = await res.text();
    } catch (err) {
      if (signal?.aborted) throw new MinielmError('MINIELM_ABORTED', 'the judge request was cancelled.', { cause: err });
      if (timeout.aborted || (err as Error)?.name === 'TimeoutError') throw new RetryableFailure(`no answer within ${this.timeoutMs} ms`, 'timeout');
      const code = errorCode(err);
      if (code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EHOSTUNREACH') {
        throw new RetryableFailure(code, 'unreachable');
      }
      throw new RetryableFailure(`connection dropped (${code ?? (err as Error).message})`, 'dropped');
    }
    if (status === 408 || status === 409 || status === 429 || status >= 500) {
      const seconds = retryAfter !== null ? Number(retryAfter) : NaN;
      throw new RetryableFailure(`HTTP ${status}: ${text.slice(0, 200)}`, 'status', Number.isFinite(seconds) ? seconds * 1000 : undefined);
    }
    if (status < 200 || status >= 300) {
      const hint =
        status === 401 || status === 403
          ? 'set MINIELM_JUDGE_API_KEY (or OPENAI_API_KEY) to a valid key'
          : status === 404
            ? 'check --base-url (it usually ends in /v1) and --model'
            : 'check the request options';
      throw new MinielmError('MINIELM_JUDGE', `the judge endpoint ${this.url} answered HTTP ${status}: ${text.slice(0, 300)}; ${hint}.`);
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new RetryableFailure(`response body is not JSON (began: ${JSON.stringify(text.slice(0, 80))})`, 'malformed');
    }
    const content = (json as { choices?: { message?: { content?: unknown } }[] })?.choices?.[0]?.message?.content;
    if (typeof content !== 'string') {
      throw new RetryableFailure(`response has no choices[0].message.content (began: ${JSON.stringify(text.slice(0, 80))})`, 'malformed');
    }
    return content;
  }
}
