import { murmur2, partitionForKey } from './murmur2-partitioner';

describe('murmur2 partitioner', () => {
  it("matches the vectors of Apache Kafka's UtilsTest.testMurmur2", () => {
    const cases: Array<[string, number]> = [
      ['21', -973932308],
      ['foobar', -790332482],
      ['a-little-bit-long-string', -985981536],
      ['a-little-bit-longer-string', -1486304829],
      ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971],
      ['abc', 479470107],
    ];
    for (const [key, expected] of cases) {
      expect({ key, hash: murmur2(key) }).toEqual({ key, hash: expected });
    }
  });

  it('hashes the UTF-8 bytes of a string key', () => {
    expect(murmur2('agent-é')).toBe(murmur2(Buffer.from('agent-é', 'utf8')));
  });

  it('masks the sign bit (not abs) and takes the positive modulo', () => {
    // "21" hashes negative: (-973932308 & 0x7fffffff) % 7
    expect(partitionForKey('21', 7)).toBe((-973932308 & 0x7fffffff) % 7);
    for (let i = 0; i < 200; i++) {
      const p = partitionForKey(`agent-${i}`, 6);
      expect(p).toBeGreaterThanOrEqual(0);
      expect(p).toBeLessThan(6);
    }
  });

  it('rejects a partition count that is not a positive integer', () => {
    expect(() => partitionForKey('k', 0)).toThrow(/positive integer/);
  });
});
