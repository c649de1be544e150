/// Bigger programs (from large counted repetitions) are not worth compiling.
const MAX_PROGRAM: usize = 20_000;
const MAX_COUNT: u32 = 1_000;

#[derive(Clone, Debug)]
enum Item {
    Range(char, char),
    Digit(bool),
    Word(bool),
    Space(bool),
}

impl Item {
    fn matches(&self, c: char) -> bool {
        match *self {
            Item::Range(lo, hi) => (lo..=hi).contains(&c),
            Item::Digit(neg) => c.is_ascii_digit() != neg,
            Item::Word(neg) => (c.is_ascii_alphanumeric() || c == '_') != neg,
            Item::Space(neg) => (c.is_whitespace() || c == '\u{feff}') != neg,
        }
    }
}

#[derive(Clone, Debug)]
struct Class {
    negated: bool,
    items: Vec<Item>,
}

impl Class {
    fn matches(&self, c: char) -> bool {
        self.items.iter().any(|i| i.matches(c)) != self.negated
    }
}

#[derive(Debug)]
enum Node {
    Class(Class),
    Start,
    End,
    Concat(Vec<Node>),
    Alt(Vec<Node>),
    Repeat(Box<Node>, u32, Option<u32>),
}

#[derive(Debug)]
enum Inst {
    Class(Class),
    Split(usize, usize),
    Jmp(usize),
    Start,
    End,
    Match,
}

/// A compiled pattern.
#[derive(Debug)]
pub(super) struct Regex {
    program: Vec<Inst>,
}

impl Regex {
    /// Compiles `src`, or `None` if it uses syntax outside the subset.
    pub(super) fn new(src: &str) -> Option<Regex> {
        let mut parser = Parser {
            chars: src.chars().collect(),
            pos: 0,
        };
        let node = parser.alt()?;
        if parser.pos != parser.chars.len() {
            return None; // a stray `)`
        }
        let mut program = Vec::new();
        emit(&node, &mut program)?;
        program.push(Inst::Match);
        Some(Regex { program })
    }

    /// Whether the pattern matches anywhere in `s` (JSON Schema patterns are not
    /// implicitly anchored).
    pub(super) fn is_match(&self, s: &str) -> bool {
        let chars: Vec<char> = s.chars().collect();
        let mut mark = vec![usize::MAX; self.program.len()];
        let mut threads = Vec::new();
        for i in 0..=chars.len() {
            if self.add(&mut threads, &mut mark, 0, i, chars.len()) {
                return true;
            }
            let Some(&c) = chars.get(i) else { break };
            let mut next = Vec::new();
            for &pc in &threads {
                if let Inst::Class(class) = &self.program[pc] {
                    if class.matches(c)
                        && self.add(&mut next, &mut mark, pc + 1, i + 1, chars.len())
                    {
                        return true;
                    }
                }
            }
            threads = next;
        }
        false
    }

    /// Adds the thread at `pc` and everything reachable from it without consuming a
    /// character; `true` if that reaches `Match`.
    fn add(
        &self,
        list: &mut Vec<usize>,
        mark: &mut [usize],
        pc: usize,
        i: usize,
        len: usize,
    ) -> bool {
        let mut stack = vec![pc];
        while let Some(pc) = stack.pop() {
            if mark[pc] == i {
                continue;
            }
            mark[pc] = i;
            match self.program[pc] {
                Inst::Match => return true,
                Inst::Class(_) => list.push(pc),
                Inst::Jmp(to) => stack.push(to),
                Inst::Split(a, b) => stack.extend([b, a]),
                Inst::Start if i == 0 => stack.push(pc + 1),
                Inst::End if i == len => stack.push(pc + 1),
                Inst::Start | Inst::End => {}
            }
        }
        false
    }
}

fn emit(node: &Node, program: &mut Vec<Inst>) -> Option<()> {
    if program.len() > MAX_PROGRAM {
        return None;
    }
    match node {
        Node::Class(c) => program.push(Inst::Class(c.clone())),
        Node::Start => program.push(Inst::Start),
        Node::End => program.push(Inst::End),
        Node::Concat(nodes) => {
            for n in nodes {
                emit(n, program)?;
            }
        }
        Node::Alt(branches) => {
            let mut jumps = Vec::new();
            for (i, branch) in branches.iter().enumerate() {
                if i + 1 == branches.len() {
                    emit(branch, program)?;
                } else {
                    let split = program.len();
                    program.push(Inst::Split(0, 0));
                    emit(branch, program)?;
                    jumps.push(program.len());
                    program.push(Inst::Jmp(0));
                    program[split] = Inst::Split(split + 1, program.len());
                }
            }
            let end = program.len();
            for j in jumps {
                program[j] = Inst::Jmp(end);
            }
        }
        Node::Repeat(n, min, max) => {
            for _ in 0..*min {
                emit(n, program)?;
            }
            match max {
                None => {
                    let split = program.len();
                    program.push(Inst::Split(0, 0));
                    emit(n, program)?;
                    program.push(Inst::Jmp(split));
                    program[split] = Inst::Split(split + 1, program.len());
                }
                Some(max) => {
                    let mut splits = Vec::new();
                    for _ in *min..*max {
                        splits.push(program.len());
                        program.push(Inst::Split(0, 0));
                        emit(n, program)?;
                    }
                    let end = program.len();
                    for s in splits {
                        program[s] = Inst::Split(s + 1, end);
                    }
                }
            }
        }
    }
    Some(())
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        Some(c)
    }

    fn eat(&mut self, c: char) -> bool {
        let hit = self.peek() == Some(c);
        if hit {
            self.pos += 1;
        }
        hit
    }

    fn alt(&mut self) -> Option<Node> {
        let mut branches = vec![self.concat()?];
        while self.eat('|') {
            branches.push(self.concat()?);
        }
        Some(if branches.len() == 1 {
            branches.remove(0)
        } else {
            Node::Alt(branches)
        })
    }

    fn concat(&mut self) -> Option<Node> {
        let mut nodes = Vec::new();
        while let Some(c) = self.peek() {
            if c == '|' || c == ')' {
                break;
            }
            let atom = self.atom()?;
            nodes.push(self.quantifier(atom)?);
        }
        Some(Node::Concat(nodes))
    }

    fn atom(&mut self) -> Option<Node> {
        let single = |c: char| {
            Node::Class(Class {
                negated: false,
                items: vec![Item::Range(c, c)],
            })
        };
        Some(match self.next()? {
            '(' => {
                if self.eat('?') && !self.eat(':') {
                    return None; // lookaround, named groups
                }
                let inner = self.alt()?;
                if !self.eat(')') {
                    return None;
                }
                inner
            }
            '[' => Node::Class(self.class()?),
            '.' => Node::Class(Class {
                negated: true,
                items: ['\n', '\r', '\u{2028}', '\u{2029}']
                    .map(|c| Item::Range(c, c))
                    .to_vec(),
            }),
            '^' => Node::Start,
            '$' => Node::End,
            '\\' => match self.escape(false)? {
                Item::Range(c, _) => single(c),
                item => Node::Class(Class {
                    negated: false,
                    items: vec![item],
                }),
            },
            '*' | '+' | '?' | '{' | '}' | ']' | ')' => return None,
            c => single(c),
        })
    }

    fn quantifier(&mut self, atom: Node) -> Option<Node> {
        let (min, max) = match self.peek() {
            Some('*') => (0, None),
            Some('+') => (1, None),
            Some('?') => (0, Some(1)),
            Some('{') => {
                self.pos += 1;
                let min = self.number()?;
                let max = if self.eat(',') {
                    if self.peek() == Some('}') {
                        None
                    } else {
                        Some(self.number()?)
                    }
                } else {
                    Some(min)
                };
                if self.peek() != Some('}') || max.is_some_and(|m| m < min) {
                    return None;
                }
                (min, max)
            }
            _ => return Some(atom),
        };
        self.pos += 1;
        self.eat('?'); // laziness does not change whether there is a match
        if matches!(atom, Node::Start | Node::End) || max.unwrap_or(min) > MAX_COUNT {
            return None;
        }
        Some(Node::Repeat(Box::new(atom), min, max))
    }

    fn number(&mut self) -> Option<u32> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        self.chars[start..self.pos]
            .iter()
            .collect::<String>()
            .parse()
            .ok()
    }

    fn class(&mut self) -> Option<Class> {
        let negated = self.eat('^');
        let mut items = Vec::new();
        if self.peek() == Some(']') {
            return None; // `[]` and `[^]` are legal but too odd to bother
        }
        loop {
            let item = match self.next()? {
                ']' => break,
                '\\' => self.escape(true)?,
                c => Item::Range(c, c),
            };
            let is_range = self.peek() == Some('-')
                && !matches!(self.chars.get(self.pos + 1), Some(']') | None);
            match item {
                Item::Range(lo, _) if is_range => {
                    self.pos += 1;
                    let hi = match self.next()? {
                        '\\' => match self.escape(true)? {
                            Item::Range(hi, _) => hi,
                            _ => return None,
                        },
                        c => c,
                    };
                    if hi < lo {
                        return None;
                    }
                    items.push(Item::Range(lo, hi));
                }
                _ if is_range => return None, // `[\d-x]`
                item => items.push(item),
            }
        }
        Some(Class { negated, items })
    }

    /// After a backslash: a class shorthand, or a single character as `Range(c, c)`.
    fn escape(&mut self, in_class: bool) -> Option<Item> {
        let c = match self.next()? {
            'd' => return Some(Item::Digit(false)),
            'D' => return Some(Item::Digit(true)),
            'w' => return Some(Item::Word(false)),
            'W' => return Some(Item::Word(true)),
            's' => return Some(Item::Space(false)),
            'S' => return Some(Item::Space(true)),
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'f' => '\u{c}',
            'v' => '\u{b}',
            'b' if in_class => '\u{8}',
            '0' if !self.peek().is_some_and(|c| c.is_ascii_digit()) => '\0',
            'x' => self.hex(2)?,
            'u' => self.hex(4)?,
            c if c.is_ascii_alphanumeric() => return None, // \b, \B, \1, \p, \c…
            c => c,
        };
        Some(Item::Range(c, c))
    }

    fn hex(&mut self, digits: usize) -> Option<char> {
        let s: String = self
            .chars
            .get(self.pos..self.pos + digits)?
            .iter()
            .collect();
        self.pos += digits;
        char::from_u32(u32::from_str_radix(&s, 16).ok()?)
    }
}
