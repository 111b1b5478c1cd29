export * from './model.ts';
export * from './safetensors.ts';
