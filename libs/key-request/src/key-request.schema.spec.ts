import { lookupValue, parseAnswer, sourceAllowed } from './key-request.schema';

const valid = { error: 0, data: { id: '001', name: 'web-1', ip: '10.0.0.0/24', key: 'k'.repeat(32) } };
const withData = (patch: Record<string, unknown>): string =>
  JSON.stringify({ ...valid, data: { ...valid.data, ...patch } });

describe('key request input validation', () => {
  it.each([
    ['id', '019a0c1e-1111-7000-8000-000000000001', '019a0c1e-1111-7000-8000-000000000001'],
    ['id', '019A0C1E-1111-7000-8000-000000000001', '019a0c1e-1111-7000-8000-000000000001'],
    ['id', '001', '001'],
    ['id', '12345678', '12345678'],
    ['ip', '192.168.1.100', '192.168.1.100'],
    ['ip', '2001:db8::1', '2001:db8::1'],
  ] as const)('accepts %s %s', (kind, value, sent) => {
    expect(lookupValue(kind, value)).toBe(sent);
  });

  it.each([
    ['id', "001' OR '1'='1"],
    ['id', '$(touch herald-pwned)'],
    ['id', ';reboot'],
    ['id', '001\n002'],
    ['id', '01'],
    ['id', '123456789'],
    ['id', 'x'.repeat(10_000)],
    ['ip', '10.0.0.1; reboot'],
    ['ip', '10.0.0.1\n'],
    ['ip', '999.1.1.1'],
    ['ip', ''],
  ] as const)('refuses %s %j before anything is called', (kind, value) => {
    expect(lookupValue(kind, value)).toBeUndefined();
  });
});

describe('key request answer validation', () => {
  it('takes a valid answer, and a not-found answer', () => {
    expect(parseAnswer(JSON.stringify(valid))).toEqual({ found: true, ...valid.data });
    expect(parseAnswer('{"error": 4, "message": "No agent key found"}\n')).toEqual({
      found: false,
      error: 4,
      message: 'No agent key found',
    });
  });

  it.each([
    ['empty output', ''],
    ['not JSON', 'hello'],
    ['trailing junk', `${JSON.stringify(valid)} extra`],
    ['two objects', `${JSON.stringify(valid)}${JSON.stringify(valid)}`],
    ['an array', '[1]'],
    ['error not a digit', JSON.stringify({ ...valid, error: '0' })],
    ['error two digits', JSON.stringify({ error: 10, message: 'x' })],
    ['missing data', '{"error": 0}'],
    ['extra top-level field', JSON.stringify({ ...valid, extra: 1 })],
    ['extra data field', withData({ extra: 'x' })],
    ['id too short', withData({ id: '01' })],
    ['id with letters', withData({ id: '00a' })],
    ['id too long', withData({ id: '123456789' })],
    ['id missing', withData({ id: undefined })],
    ['name with a space', withData({ name: 'web 1' })],
    ['name with a slash', withData({ name: '../x' })],
    ['name too long', withData({ name: 'n'.repeat(129) })],
    ['name empty', withData({ name: '' })],
    ['ip not an address', withData({ ip: 'somewhere' })],
    ['ip bad mask', withData({ ip: '10.0.0.0/33' })],
    ['ip with a port', withData({ ip: '10.0.0.1:80' })],
    ['key empty', withData({ key: '' })],
    ['key too long', withData({ key: 'k'.repeat(129) })],
    ['key not printable', withData({ key: 'abc\u0000def' })],
    ['key a number', withData({ key: 42 })],
    ['message missing on error', '{"error": 4}'],
    ['message not printable', JSON.stringify({ error: 4, message: 'bad\nline' })],
  ])('refuses an answer with %s', (_case, output) => {
    expect(() => parseAnswer(output)).toThrow();
  });
});

describe('allowed source ranges', () => {
  it.each([
    [['any'], '203.0.113.9', true],
    [undefined, '203.0.113.9', true],
    [['10.0.0.5'], '10.0.0.5', true],
    [['10.0.0.5'], '10.0.0.6', false],
    [['10.0.0.0/24'], '10.0.0.200', true],
    [['10.0.0.0/24'], '10.0.1.1', false],
    [['10.0.0.0/24'], '::ffff:10.0.0.7', true],
    [['2001:db8::/32'], '2001:db8:1::5', true],
    [['2001:db8::/32'], '2001:db9::5', false],
    [['0.0.0.0/0'], '198.51.100.1', true],
    [['10.0.0.0/8', '192.168.0.0/16'], '192.168.3.4', true],
  ] as const)('%j allows %s: %s', (allowed, address, expected) => {
    expect(sourceAllowed(allowed as readonly string[] | undefined, address)).toBe(expected);
  });
});
