export * from './expect-eventually';
export * from './net';
export * from './herald-process';
