export * from './hash.ts';
export * from './redact.ts';
export * from './types.ts';
