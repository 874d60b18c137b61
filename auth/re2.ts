/*
 * A linear-time matcher for the RE2 syntax that token services (GitLab's `tag_immutable_patterns`) use
 * for tag patterns. JavaScript's RegExp backtracks: a pattern like `(a|a)*b` or `a*a*a*a*b` from a token
 * could hold the event loop for minutes on a 128-character tag. Here a pattern is parsed into a
 * Thompson NFA and simulated one character at a time, so a match costs at most
 * (program size × tag length) steps whatever the pattern, as in RE2 itself.
 *
 * Supported: literals, `.`, classes (`[a-z]`, `[^…]`, `[[:alpha:]]`, `\d \w \s` and their negations),
 * groups (`(…)`, `(?:…)`, `(?P<n>…)`, `(?<n>…)`), flags `(?i)`, `(?i:…)` (and `s`, `m`, which change
 * nothing on a tag: tags hold no newline), alternation, `* + ? {n} {n,} {n,m}` (lazy forms too), anchors
 * `^ $ \A \z`, `\b \B`, `\Q…\E`, `\xhh`. Matching is unanchored (Go's MatchString): anchor with `^…$`.
 * Anything else (Unicode classes, backreferences, lookaround: RE2 has no such thing) is a syntax error.
 */

export class Re2SyntaxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'Re2SyntaxError';
  }
}

type CharTest = (c: number) => boolean;

type Node =
  | { t: 'char'; test: CharTest }
  | { t: 'cat'; items: Node[] }
  | { t: 'alt'; items: Node[] }
  | { t: 'rep'; node: Node; min: number; max: number }
  | { t: 'assert'; kind: Assertion };

type Assertion = 'begin' | 'end' | 'word' | 'nonword';

type Inst =
  | { op: 'char'; test: CharTest; next: number }
  | { op: 'split'; x: number; y: number }
  | { op: 'jmp'; x: number }
  | { op: 'assert'; kind: Assertion; next: number }
  | { op: 'match' };

/** RE2's own limit on a counted repetition. */
const MAX_REPEAT = 1000;
/** Bounds the NFA (and so the cost of a match): `(a{100}){100}` is refused, not built. */
const MAX_PROGRAM = 2_000;

interface Flags {
  i: boolean;
}

const isWord: CharTest = (c) => (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95;
const isDigit: CharTest = (c) => c >= 48 && c <= 57;
const isSpace: CharTest = (c) => c === 32 || (c >= 9 && c <= 13);
const not =
  (test: CharTest): CharTest =>
  (c) =>
    !test(c);

const equals =
  (code: number): CharTest =>
  (c) =>
    c === code;
const PERL_CLASSES: Record<string, CharTest> = { d: isDigit, D: not(isDigit), w: isWord, W: not(isWord), s: isSpace, S: not(isSpace) };
const CONTROLS: Record<string, number> = { n: 10, t: 9, r: 13, f: 12, v: 11, a: 7 };

const POSIX: Record<string, CharTest> = {
  alnum: (c) => isWord(c) && c !== 95,
  alpha: (c) => (c >= 65 && c <= 90) || (c >= 97 && c <= 122),
  ascii: (c) => c <= 127,
  blank: (c) => c === 32 || c === 9,
  cntrl: (c) => c < 32 || c === 127,
  digit: isDigit,
  graph: (c) => c > 32 && c < 127,
  lower: (c) => c >= 97 && c <= 122,
  print: (c) => c >= 32 && c < 127,
  punct: (c) => c > 32 && c < 127 && !(isWord(c) && c !== 95),
  space: isSpace,
  upper: (c) => c >= 65 && c <= 90,
  word: isWord,
  xdigit: (c) => isDigit(c) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102),
};

function foldCase(test: CharTest): CharTest {
  return (c) => {
    if (test(c)) return true;
    if (c >= 65 && c <= 90) return test(c + 32);
    if (c >= 97 && c <= 122) return test(c - 32);
    return false;
  };
}

class Parser {
  private pos = 0;

  constructor(private readonly src: string) {}

  parse(): Node {
    const node = this.alternation({ i: false });
    if (this.pos < this.src.length) throw new Re2SyntaxError(`unexpected ) at offset ${this.pos}`);
    return node;
  }

  private peek(): string | undefined {
    return this.src[this.pos];
  }

  private alternation(flags: Flags): Node {
    const items = [this.concatenation(flags)];
    while (this.peek() === '|') {
      this.pos++;
      items.push(this.concatenation(flags));
    }
    return items.length === 1 ? (items[0] as Node) : { t: 'alt', items };
  }

  private concatenation(outer: Flags): Node {
    // A bare `(?i)` changes the flags for the rest of the enclosing group.
    const flags = { ...outer };
    const items: Node[] = [];
    for (;;) {
      const c = this.peek();
      if (c === undefined || c === '|' || c === ')') break;
      const atom = this.atom(flags);
      if (atom === undefined) continue;
      items.push(this.repetition(atom));
    }
    return items.length === 1 ? (items[0] as Node) : { t: 'cat', items };
  }

  private repetition(atom: Node): Node {
    let node = atom;
    let repeated = false;
    for (;;) {
      const c = this.peek();
      let min: number;
      let max: number;
      if (c === '*' || c === '+' || c === '?') {
        this.pos++;
        [min, max] = c === '*' ? [0, Infinity] : c === '+' ? [1, Infinity] : [0, 1];
      } else if (c === '{') {
        const m = /^\{(\d+)(,(\d*))?\}/.exec(this.src.slice(this.pos));
        if (!m) return node; // a `{` that starts no count is a literal, as in RE2
        this.pos += m[0].length;
        min = Number(m[1]);
        max = m[2] === undefined ? min : m[3] === '' ? Infinity : Number(m[3]);
        if (min > MAX_REPEAT || (max !== Infinity && max > MAX_REPEAT)) throw new Re2SyntaxError(`repetition count above ${MAX_REPEAT}`);
        if (max < min) throw new Re2SyntaxError(`invalid repetition {${min},${max}}`);
      } else {
        return node;
      }
      if (repeated) throw new Re2SyntaxError('invalid nested repetition operator');
      repeated = true;
      if (this.peek() === '?') this.pos++; // lazy: the same yes/no answer
      node = { t: 'rep', node, min, max };
    }
  }

  /** One atom, or undefined for a flag setting `(?i)` that matches nothing itself. */
  private atom(flags: Flags): Node | undefined {
    const c = this.src[this.pos++] as string;
    switch (c) {
      case '(':
        return this.group(flags);
      case '[':
        return this.charNode(this.charClass(), flags);
      case '.':
        return { t: 'char', test: () => true };
      case '^':
        return { t: 'assert', kind: 'begin' };
      case '$':
        return { t: 'assert', kind: 'end' };
      case '\\':
        return this.escape(flags);
      case '*':
      case '+':
      case '?':
        throw new Re2SyntaxError(`missing argument to repetition operator ${c}`);
      default: {
        return this.charNode(equals(c.codePointAt(0) as number), flags);
      }
    }
  }

  private charNode(test: CharTest, flags: Flags): Node {
    return { t: 'char', test: flags.i ? foldCase(test) : test };
  }

  private group(flags: Flags): Node | undefined {
    let inner = flags;
    if (this.peek() === '?') {
      const rest = this.src.slice(this.pos + 1);
      const named = /^P?<[A-Za-z_][A-Za-z0-9_]*>/.exec(rest);
      const setting = /^(-?[ims]+|[ims]+-[ims]*)(:|\))/.exec(rest);
      if (named) {
        this.pos += 1 + named[0].length;
      } else if (rest.startsWith(':')) {
        this.pos += 2;
      } else if (setting) {
        this.pos += 1 + setting[0].length;
        const [on, off = ''] = (setting[1] as string).split('-');
        const next = { ...flags };
        if (on?.includes('i')) next.i = true;
        if (off.includes('i')) next.i = false;
        if (setting[2] === ')') {
          flags.i = next.i;
          return undefined;
        }
        inner = next;
      } else {
        throw new Re2SyntaxError(`unsupported group syntax (?${rest.slice(0, 3)}: RE2 has no lookaround or backreferences`);
      }
    }
    const node = this.alternation(inner);
    if (this.src[this.pos] !== ')') throw new Re2SyntaxError('missing closing )');
    this.pos++;
    return node;
  }

  /** An escape outside a class. */
  private escape(flags: Flags): Node {
    const c = this.src[this.pos];
    if (c === undefined) throw new Re2SyntaxError('trailing backslash');
    if (c === 'A' || c === 'z' || c === 'b' || c === 'B') {
      this.pos++;
      return { t: 'assert', kind: c === 'A' ? 'begin' : c === 'z' ? 'end' : c === 'b' ? 'word' : 'nonword' };
    }
    if (c === 'Q') {
      const end = this.src.indexOf('\\E', this.pos + 1);
      const text = this.src.slice(this.pos + 1, end === -1 ? undefined : end);
      this.pos = end === -1 ? this.src.length : end + 2;
      return { t: 'cat', items: Array.from(text, (ch) => this.charNode(equals(ch.codePointAt(0) as number), flags)) };
    }
    const value = this.escapeValue();
    return this.charNode(typeof value === 'number' ? equals(value) : value, flags);
  }

  /** After a backslash: a code point (`\.`, `\x41`, `\n`) or a class (`\d`), shared by classes. */
  private escapeValue(): number | CharTest {
    const c = this.src[this.pos++];
    if (c === undefined) throw new Re2SyntaxError('trailing backslash');
    const perl = PERL_CLASSES[c];
    if (perl) return perl;
    const control = CONTROLS[c];
    if (control !== undefined) return control;
    if (c === 'x') {
      const m = /^(\{([0-9A-Fa-f]{1,6})\}|[0-9A-Fa-f]{2})/.exec(this.src.slice(this.pos));
      if (!m) throw new Re2SyntaxError('invalid \\x escape');
      this.pos += m[0].length;
      return parseInt(m[2] ?? m[1] ?? '', 16);
    }
    if (/[A-Za-z0-9]/.test(c)) throw new Re2SyntaxError(`unsupported escape \\${c}`);
    return c.codePointAt(0) as number;
  }

  private charClass(): CharTest {
    const negate = this.peek() === '^';
    if (negate) this.pos++;
    const tests: CharTest[] = [];
    let first = true;
    for (;;) {
      const c = this.peek();
      if (c === undefined) throw new Re2SyntaxError('missing closing ]');
      if (c === ']' && !first) {
        this.pos++;
        break;
      }
      first = false;
      const posix = /^\[:(\^?)([a-z]+):\]/.exec(this.src.slice(this.pos));
      if (posix) {
        const test = POSIX[posix[2] as string];
        if (!test) throw new Re2SyntaxError(`unknown class [:${posix[2]}:]`);
        this.pos += posix[0].length;
        tests.push(posix[1] === '^' ? not(test) : test);
        continue;
      }
      const low = this.classChar();
      if (typeof low === 'function') {
        tests.push(low);
        continue;
      }
      if (this.peek() === '-' && this.src[this.pos + 1] !== ']' && this.src[this.pos + 1] !== undefined) {
        this.pos++;
        const high = this.classChar();
        if (typeof high === 'function') throw new Re2SyntaxError('invalid character class range');
        if (high < low) throw new Re2SyntaxError('invalid character class range');
        tests.push((x) => x >= low && x <= high);
      } else {
        tests.push((x) => x === low);
      }
    }
    const any: CharTest = (x) => tests.some((t) => t(x));
    return negate ? not(any) : any;
  }

  /** A code point, or a test for a class escape such as `\d`. */
  private classChar(): number | CharTest {
    const c = this.src[this.pos++] as string;
    return c === '\\' ? this.escapeValue() : (c.codePointAt(0) as number);
  }
}

function compile(node: Node): Inst[] {
  const prog: Inst[] = [];
  const push = (inst: Inst): number => {
    if (prog.length >= MAX_PROGRAM) throw new Re2SyntaxError('pattern too large');
    prog.push(inst);
    return prog.length - 1;
  };
  // Each emit leaves its instructions' dangling exits pointing at prog.length (the next one emitted).
  const emit = (n: Node): void => {
    switch (n.t) {
      case 'char':
        push({ op: 'char', test: n.test, next: prog.length + 1 });
        return;
      case 'assert':
        push({ op: 'assert', kind: n.kind, next: prog.length + 1 });
        return;
      case 'cat':
        for (const item of n.items) emit(item);
        return;
      case 'alt': {
        const jumps: number[] = [];
        n.items.forEach((item, index) => {
          if (index < n.items.length - 1) {
            const split = push({ op: 'split', x: prog.length + 1, y: -1 });
            emit(item);
            jumps.push(push({ op: 'jmp', x: -1 }));
            (prog[split] as { y: number }).y = prog.length;
          } else {
            emit(item);
          }
        });
        for (const j of jumps) (prog[j] as { x: number }).x = prog.length;
        return;
      }
      case 'rep': {
        for (let k = 0; k < n.min; k++) emit(n.node);
        if (n.max === Infinity) {
          const split = push({ op: 'split', x: prog.length + 1, y: -1 });
          emit(n.node);
          push({ op: 'jmp', x: split });
          (prog[split] as { y: number }).y = prog.length;
          return;
        }
        const splits: number[] = [];
        for (let k = n.min; k < n.max; k++) {
          splits.push(push({ op: 'split', x: prog.length + 1, y: -1 }));
          emit(n.node);
        }
        for (const s of splits) (prog[s] as { y: number }).y = prog.length;
        return;
      }
    }
  };
  emit(node);
  push({ op: 'match' });
  return prog;
}

/** A compiled pattern: `test` runs in O(program × input) time. */
export interface Re2Pattern {
  readonly source: string;
  test(input: string): boolean;
}

/** Parses and compiles an RE2 pattern; throws Re2SyntaxError for anything outside the supported syntax. */
export function compileRe2(source: string): Re2Pattern {
  const prog = compile(new Parser(source).parse());
  return { source, test: (input) => run(prog, input) };
}

function run(prog: Inst[], input: string): boolean {
  const codes = Array.from(input, (ch) => ch.codePointAt(0) as number);
  const holds = (kind: Assertion, pos: number): boolean => {
    if (kind === 'begin') return pos === 0;
    if (kind === 'end') return pos === codes.length;
    const before = pos > 0 && isWord(codes[pos - 1] as number);
    const after = pos < codes.length && isWord(codes[pos] as number);
    return kind === 'word' ? before !== after : before === after;
  };
  // Iterative: a program of 2,000 instructions could nest splits deeper than the call stack.
  const add = (list: Set<number>, start: number, pos: number): void => {
    const stack = [start];
    while (stack.length > 0) {
      const pc = stack.pop() as number;
      if (list.has(pc)) continue;
      list.add(pc);
      const inst = prog[pc] as Inst;
      if (inst.op === 'jmp') stack.push(inst.x);
      else if (inst.op === 'split') stack.push(inst.y, inst.x);
      else if (inst.op === 'assert' && holds(inst.kind, pos)) stack.push(inst.next);
    }
  };
  let current = new Set<number>();
  for (let pos = 0; ; pos++) {
    // Unanchored: a match may start at every position.
    add(current, 0, pos);
    for (const pc of current) if ((prog[pc] as Inst).op === 'match') return true;
    if (pos === codes.length) return false;
    const next = new Set<number>();
    const code = codes[pos] as number;
    for (const pc of current) {
      const inst = prog[pc] as Inst;
      if (inst.op === 'char' && inst.test(code)) add(next, inst.next, pos + 1);
    }
    current = next;
  }
}
