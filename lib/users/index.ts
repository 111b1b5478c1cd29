export type { Judge, JudgeRequest, JudgeBatchOptions } from './judge.ts';
export { checkJudgeRequest } from './judge.ts';
export * from './profiles.ts';
export * from './chat-client.ts';
export * from './llm-judge.ts';
export * from './embedded-judge.ts';
export type { Engagement, ProductLike } from '../rewards/types.ts';
