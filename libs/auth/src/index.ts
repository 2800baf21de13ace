export * from './secret-hash';
export * from './token.service';
export * from './jwt.strategies';
export * from './operator-directory';
