//! The arithmetic of network files: channel counts, repeats and conditions written as
//! expressions over named parameters (`"c / 2"`, `"make_divisible(32 * width, 8)"`).

use std::collections::BTreeMap;
use std::fmt;

/// A value an expression evaluates to.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A whole number.
    Int(i64),
    /// A real number (from a literal like `0.5`, or a division that does not come out even).
    Float(f64),
    /// A truth value, for `If` conditions.
    Bool(bool),
    /// A list, indexed as `list[i]`.
    List(Vec<Value>),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::List(items) => {
                write!(f, "[")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{v}")?;
                }
                write!(f, "]")
            }
        }
    }
}

/// A parsed expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// A literal.
    Lit(Value),
    /// A list of expressions (`[116, 232, 464]` in RON, or a list literal inside a string).
    List(Vec<Expr>),
    /// A name looked up in the environment.
    Var(String),
    /// A unary operator: `-` or `!`.
    Unary(char, Box<Expr>),
    /// A binary operator.
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// `list[index]`.
    Index(Box<Expr>, Box<Expr>),
    /// A built-in function call.
    Call(String, Vec<Expr>),
}

/// Binary operators, loosest binding first in the grammar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    /// `||`
    Or,
    /// `&&`
    And,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`: exact when it divides, real otherwise.
    Div,
    /// `//`: floor division of whole numbers.
    FloorDiv,
    /// `%`
    Rem,
}

/// The built-in functions and their arity, for error messages.
const FUNCTIONS: &[(&str, usize)] = &[
    ("round", 1),
    ("floor", 1),
    ("ceil", 1),
    ("sqrt", 1),
    ("min", 2),
    ("max", 2),
    ("make_divisible", 2),
    ("len", 1),
];

/// Names visible to an expression: innermost scope last.
#[derive(Default, Clone, Debug)]
pub struct Env {
    scopes: Vec<BTreeMap<String, Value>>,
}

impl Env {
    /// An environment with one empty scope.
    pub fn new() -> Env {
        Env { scopes: vec![BTreeMap::new()] }
    }

    /// Binds a name in the innermost scope.
    pub fn bind(&mut self, name: &str, value: Value) {
        self.scopes.last_mut().expect("an env always has a scope").insert(name.to_string(), value);
    }

    /// Opens a scope.
    pub fn push(&mut self) {
        self.scopes.push(BTreeMap::new());
    }

    /// Closes the innermost scope.
    pub fn pop(&mut self) {
        self.scopes.pop();
    }

    /// Looks a name up, innermost scope first.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.scopes.iter().rev().find_map(|s| s.get(name))
    }

    /// All bound names, sorted, for "did you mean" messages.
    fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.scopes.iter().flat_map(|s| s.keys().map(String::as_str)).collect();
        names.sort_unstable();
        names.dedup();
        names
    }
}

/// The longest expression, in characters, and the deepest nesting of parentheses, brackets,
/// calls and unary operators. Parsing and evaluation recurse, so these bounds keep any input
/// far from the end of the stack; real expressions fit on a line and nest a few levels.
const MAX_LEN: usize = 1000;
const MAX_DEPTH: usize = 32;

/// Parses an expression from its text.
pub fn parse(text: &str) -> Result<Expr, String> {
    let len = text.chars().count();
    if len > MAX_LEN {
        return Err(format!("the expression is {len} characters long; at most {MAX_LEN} are allowed"));
    }
    let mut p = Parser { chars: text.char_indices().collect(), pos: 0, depth: 0, text };
    let e = p.expr()?;
    p.skip_ws();
    if let Some(&(at, c)) = p.chars.get(p.pos) {
        return Err(format!("unexpected `{c}` at offset {at} in expression `{text}`"));
    }
    Ok(e)
}

struct Parser<'a> {
    chars: Vec<(usize, char)>,
    pos: usize,
    /// How many `unary` calls are open: every nesting passes through one.
    depth: usize,
    text: &'a str,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while self.chars.get(self.pos).is_some_and(|&(_, c)| c.is_whitespace()) {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<char> {
        self.skip_ws();
        self.chars.get(self.pos).map(|&(_, c)| c)
    }

    fn eat(&mut self, token: &str) -> bool {
        self.skip_ws();
        let rest: String = self.chars[self.pos..].iter().take(token.len()).map(|&(_, c)| c).collect();
        if rest == token {
            self.pos += token.len();
            true
        } else {
            false
        }
    }

    fn error(&self, expected: &str) -> String {
        match self.chars.get(self.pos) {
            Some(&(at, c)) => {
                format!("expected {expected} at offset {at} in expression `{}`, found `{c}`", self.text)
            }
            None => format!("expected {expected} at the end of expression `{}`", self.text),
        }
    }

    fn expr(&mut self) -> Result<Expr, String> {
        self.binary(0)
    }

    /// Precedence climbing over the levels below, loosest first.
    fn binary(&mut self, level: usize) -> Result<Expr, String> {
        const LEVELS: &[&[(&str, BinOp)]] = &[
            &[("||", BinOp::Or)],
            &[("&&", BinOp::And)],
            &[
                ("==", BinOp::Eq),
                ("!=", BinOp::Ne),
                ("<=", BinOp::Le),
                (">=", BinOp::Ge),
                ("<", BinOp::Lt),
                (">", BinOp::Gt),
            ],
            &[("+", BinOp::Add), ("-", BinOp::Sub)],
            &[("*", BinOp::Mul), ("//", BinOp::FloorDiv), ("/", BinOp::Div), ("%", BinOp::Rem)],
        ];
        if level == LEVELS.len() {
            return self.unary();
        }
        let mut lhs = self.binary(level + 1)?;
        'outer: loop {
            for &(token, op) in LEVELS[level] {
                if self.eat(token) {
                    let rhs = self.binary(level + 1)?;
                    lhs = Expr::Binary(op, Box::new(lhs), Box::new(rhs));
                    continue 'outer;
                }
            }
            return Ok(lhs);
        }
    }

    fn unary(&mut self) -> Result<Expr, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!("expression `{}` nests more than {MAX_DEPTH} levels deep", self.text));
        }
        let e = self.operand();
        self.depth -= 1;
        e
    }

    /// A unary operator and its operand, or a primary followed by any number of `[index]`.
    fn operand(&mut self) -> Result<Expr, String> {
        for op in ['-', '!'] {
            if self.peek() == Some(op) {
                self.pos += 1;
                return Ok(Expr::Unary(op, Box::new(self.unary()?)));
            }
        }
        let mut e = self.primary()?;
        while self.eat("[") {
            let index = self.expr()?;
            if !self.eat("]") {
                return Err(self.error("`]`"));
            }
            e = Expr::Index(Box::new(e), Box::new(index));
        }
        Ok(e)
    }

    fn primary(&mut self) -> Result<Expr, String> {
        match self.peek() {
            Some('(') => {
                self.pos += 1;
                let e = self.expr()?;
                if !self.eat(")") {
                    return Err(self.error("`)`"));
                }
                Ok(e)
            }
            Some('[') => {
                self.pos += 1;
                let items = self.list("]")?;
                Ok(Expr::List(items))
            }
            Some(c) if c.is_ascii_digit() || c == '.' => self.number(),
            Some(c) if c.is_alphabetic() || c == '_' => {
                let start = self.pos;
                while self.chars.get(self.pos).is_some_and(|&(_, c)| c.is_alphanumeric() || c == '_') {
                    self.pos += 1;
                }
                let name: String = self.chars[start..self.pos].iter().map(|&(_, c)| c).collect();
                match name.as_str() {
                    "true" => return Ok(Expr::Lit(Value::Bool(true))),
                    "false" => return Ok(Expr::Lit(Value::Bool(false))),
                    _ => {}
                }
                if self.eat("(") {
                    let args = self.list(")")?;
                    let Some(&(_, arity)) = FUNCTIONS.iter().find(|(f, _)| *f == name) else {
                        let known: Vec<&str> = FUNCTIONS.iter().map(|(f, _)| *f).collect();
                        return Err(format!(
                            "unknown function `{name}`; the functions are {}",
                            known.join(", ")
                        ));
                    };
                    if args.len() != arity {
                        return Err(format!("`{name}` takes {arity} argument(s), got {}", args.len()));
                    }
                    return Ok(Expr::Call(name, args));
                }
                Ok(Expr::Var(name))
            }
            _ => Err(self.error("a number, a name or `(`")),
        }
    }

    fn list(&mut self, close: &str) -> Result<Vec<Expr>, String> {
        let mut items = Vec::new();
        if self.eat(close) {
            return Ok(items);
        }
        loop {
            items.push(self.expr()?);
            if self.eat(close) {
                return Ok(items);
            }
            if !self.eat(",") {
                return Err(self.error(&format!("`,` or `{close}`")));
            }
        }
    }

    fn number(&mut self) -> Result<Expr, String> {
        let start = self.pos;
        while self.chars.get(self.pos).is_some_and(|&(_, c)| c.is_ascii_digit() || c == '.' || c == '_') {
            self.pos += 1;
        }
        let text: String =
            self.chars[start..self.pos].iter().map(|&(_, c)| c).filter(|&c| c != '_').collect();
        if text.contains('.') {
            text.parse().map(|x| Expr::Lit(Value::Float(x))).map_err(|_| format!("bad number `{text}`"))
        } else {
            text.parse()
                .map(|i| Expr::Lit(Value::Int(i)))
                .map_err(|_| format!("number `{text}` is too large"))
        }
    }
}

impl Expr {
    /// The names the expression reads, in the order they appear.
    pub fn names(&self) -> Vec<&str> {
        let mut names = Vec::new();
        self.collect_names(&mut names);
        names
    }

    fn collect_names<'a>(&'a self, names: &mut Vec<&'a str>) {
        match self {
            Expr::Lit(_) => {}
            Expr::Var(name) => names.push(name),
            Expr::List(items) | Expr::Call(_, items) => items.iter().for_each(|e| e.collect_names(names)),
            Expr::Unary(_, e) => e.collect_names(names),
            Expr::Binary(_, a, b) | Expr::Index(a, b) => {
                a.collect_names(names);
                b.collect_names(names);
            }
        }
    }

    /// Evaluates the expression; errors say what went wrong in words.
    pub fn eval(&self, env: &Env) -> Result<Value, String> {
        match self {
            Expr::Lit(v) => Ok(v.clone()),
            Expr::List(items) => items.iter().map(|e| e.eval(env)).collect::<Result<_, _>>().map(Value::List),
            Expr::Var(name) => env.get(name).cloned().ok_or_else(|| {
                let known = env.names();
                match known.iter().find(|k| similar(k, name)) {
                    Some(k) => format!("unknown name `{name}` (did you mean `{k}`?)"),
                    None if known.is_empty() => format!("unknown name `{name}`"),
                    None => format!("unknown name `{name}`; the names here are {}", known.join(", ")),
                }
            }),
            Expr::Unary(op, e) => match (op, e.eval(env)?) {
                ('-', Value::Int(i)) => i.checked_neg().map(Value::Int).ok_or_else(overflow),
                ('-', Value::Float(x)) => Ok(Value::Float(-x)),
                ('!', Value::Bool(b)) => Ok(Value::Bool(!b)),
                (op, v) => Err(format!("`{op}` does not apply to {}", kind(&v))),
            },
            Expr::Binary(op, a, b) => binary(*op, a.eval(env)?, b.eval(env)?),
            Expr::Index(list, index) => {
                let list = list.eval(env)?;
                let Value::List(items) = &list else {
                    return Err(format!("only lists can be indexed, not {}", kind(&list)));
                };
                let i = index.eval(env)?;
                let Value::Int(i) = i else {
                    return Err(format!("a list index must be a whole number, not {}", kind(&i)));
                };
                usize::try_from(i)
                    .ok()
                    .and_then(|i| items.get(i))
                    .cloned()
                    .ok_or_else(|| format!("index {i} is out of range for a list of {}", items.len()))
            }
            Expr::Call(name, args) => {
                let args: Vec<Value> = args.iter().map(|a| a.eval(env)).collect::<Result<_, _>>()?;
                call(name, &args)
            }
        }
    }
}

/// Whether two names differ by at most one edit, for "did you mean" hints.
fn similar(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let sub = prev[j - 1] + usize::from(a[i - 1] != b[j - 1]);
            cur[j] = sub.min(prev[j] + 1).min(cur[j - 1] + 1);
        }
        prev = cur;
    }
    prev[b.len()] <= 1
}

fn overflow() -> String {
    "arithmetic overflow".to_string()
}

/// Describes a value's kind for error messages.
pub fn kind(v: &Value) -> String {
    match v {
        Value::Int(i) => format!("the number {i}"),
        Value::Float(x) => format!("the number {x}"),
        Value::Bool(b) => format!("the truth value {b}"),
        Value::List(_) => "a list".to_string(),
    }
}

fn as_float(v: &Value) -> Option<f64> {
    match v {
        Value::Int(i) => Some(*i as f64),
        Value::Float(x) => Some(*x),
        _ => None,
    }
}

fn binary(op: BinOp, a: Value, b: Value) -> Result<Value, String> {
    use BinOp::*;
    match (op, &a, &b) {
        (Or, Value::Bool(x), Value::Bool(y)) => return Ok(Value::Bool(*x || *y)),
        (And, Value::Bool(x), Value::Bool(y)) => return Ok(Value::Bool(*x && *y)),
        (Eq, Value::Bool(x), Value::Bool(y)) => return Ok(Value::Bool(x == y)),
        (Ne, Value::Bool(x), Value::Bool(y)) => return Ok(Value::Bool(x != y)),
        (Or | And, ..) => {
            return Err(format!("`||` and `&&` need truth values, got {} and {}", kind(&a), kind(&b)));
        }
        _ => {}
    }
    if let (Value::Int(x), Value::Int(y)) = (&a, &b) {
        let (x, y) = (*x, *y);
        let int = |r: Option<i64>| r.map(Value::Int).ok_or_else(overflow);
        return match op {
            Add => int(x.checked_add(y)),
            Sub => int(x.checked_sub(y)),
            Mul => int(x.checked_mul(y)),
            Div | FloorDiv | Rem if y == 0 => Err("division by zero".to_string()),
            // `wrapping_rem`: i64::MIN by -1 divides evenly, and `checked_div` then reports
            // the overflow; `%` would panic.
            Div if x.wrapping_rem(y) == 0 => int(x.checked_div(y)),
            Div => Ok(Value::Float(x as f64 / y as f64)),
            FloorDiv => int(x.checked_div_euclid(y)),
            Rem => int(x.checked_rem_euclid(y)),
            _ => Ok(Value::Bool(compare(op, x.cmp(&y)))),
        };
    }
    let (Some(x), Some(y)) = (as_float(&a), as_float(&b)) else {
        return Err(format!("arithmetic needs numbers, got {} and {}", kind(&a), kind(&b)));
    };
    match op {
        Add => Ok(Value::Float(x + y)),
        Sub => Ok(Value::Float(x - y)),
        Mul => Ok(Value::Float(x * y)),
        Div | FloorDiv | Rem if y == 0.0 => Err("division by zero".to_string()),
        Div => Ok(Value::Float(x / y)),
        FloorDiv => Ok(Value::Float((x / y).floor())),
        Rem => Ok(Value::Float(x.rem_euclid(y))),
        _ => Ok(Value::Bool(compare(op, x.total_cmp(&y)))),
    }
}

fn compare(op: BinOp, ord: std::cmp::Ordering) -> bool {
    use std::cmp::Ordering::*;
    match op {
        BinOp::Eq => ord == Equal,
        BinOp::Ne => ord != Equal,
        BinOp::Lt => ord == Less,
        BinOp::Le => ord != Greater,
        BinOp::Gt => ord == Greater,
        BinOp::Ge => ord != Less,
        _ => unreachable!("only comparisons reach compare"),
    }
}

/// A real number to a whole one, or an error when it is out of range or not finite.
fn to_int(x: f64) -> Result<Value, String> {
    if x.is_finite() && x.abs() < 9.0e15 {
        Ok(Value::Int(x as i64))
    } else {
        Err(format!("{x} is out of range for a whole number"))
    }
}

fn call(name: &str, args: &[Value]) -> Result<Value, String> {
    let num = |i: usize| {
        as_float(&args[i]).ok_or_else(|| format!("`{name}` needs numbers, got {}", kind(&args[i])))
    };
    match name {
        // Half away from zero, as people round by hand (Python's banker's rounding would turn
        // 58.5 into 58 and surprise everybody).
        "round" => to_int(num(0)?.round()),
        "floor" => to_int(num(0)?.floor()),
        "ceil" => to_int(num(0)?.ceil()),
        "sqrt" => {
            let x = num(0)?;
            if x < 0.0 {
                return Err(format!("`sqrt` of the negative number {x}"));
            }
            Ok(Value::Float(x.sqrt()))
        }
        "min" | "max" => match (&args[0], &args[1]) {
            (Value::Int(a), Value::Int(b)) => {
                Ok(Value::Int(if name == "min" { *a.min(b) } else { *a.max(b) }))
            }
            _ => {
                let (a, b) = (num(0)?, num(1)?);
                Ok(Value::Float(if name == "min" { a.min(b) } else { a.max(b) }))
            }
        },
        "make_divisible" => {
            // torchvision's `_make_divisible`: round to the nearest multiple of the divisor, never
            // below the divisor, and never more than 10% below the value.
            let (v, divisor) = (num(0)?, num(1)?);
            if divisor < 1.0 || divisor.fract() != 0.0 {
                return Err(format!("`make_divisible` needs a whole divisor of at least 1, got {divisor}"));
            }
            let mut rounded = ((v + divisor / 2.0) / divisor).floor() * divisor;
            rounded = rounded.max(divisor);
            if rounded < 0.9 * v {
                rounded += divisor;
            }
            to_int(rounded)
        }
        "len" => match &args[0] {
            Value::List(items) => Ok(Value::Int(items.len() as i64)),
            v => Err(format!("`len` needs a list, got {}", kind(v))),
        },
        _ => unreachable!("the parser only accepts known functions"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(text: &str) -> Result<Value, String> {
        let mut env = Env::new();
        env.bind("c", Value::Int(116));
        env.bind("width", Value::Float(0.75));
        env.bind("stage_out", Value::List(vec![Value::Int(48), Value::Int(96)]));
        parse(text)?.eval(&env)
    }

    #[test]
    fn arithmetic_keeps_whole_numbers_whole() {
        assert_eq!(eval("c / 2"), Ok(Value::Int(58)));
        assert_eq!(eval("c / 3 * 3"), Ok(Value::Float(116.0)));
        assert_eq!(eval("c // 3"), Ok(Value::Int(38)));
        assert_eq!(eval("1 + 2 * 3 - 4 % 3"), Ok(Value::Int(6)));
        assert_eq!(eval("-(2 - 5)"), Ok(Value::Int(3)));
    }

    #[test]
    fn rounding_functions() {
        assert_eq!(eval("make_divisible(32 * width, 8)"), Ok(Value::Int(24)));
        assert_eq!(eval("make_divisible(16 * 0.35, 8)"), Ok(Value::Int(8)));
        assert_eq!(eval("round(58.5)"), Ok(Value::Int(59)));
        assert_eq!(eval("max(c, 200)"), Ok(Value::Int(200)));
        assert_eq!(eval("len(stage_out)"), Ok(Value::Int(2)));
    }

    #[test]
    fn conditions() {
        assert_eq!(eval("c == 116 && !(c < 3)"), Ok(Value::Bool(true)));
        assert_eq!(eval("c != 116 || false"), Ok(Value::Bool(false)));
        assert_eq!(eval("stage_out[1] >= 96"), Ok(Value::Bool(true)));
    }

    #[test]
    fn errors_are_sentences() {
        assert_eq!(eval("cc * 2"), Err("unknown name `cc` (did you mean `c`?)".into()));
        assert_eq!(eval("c / 0"), Err("division by zero".into()));
        assert_eq!(eval("9223372036854775807 + 1"), Err("arithmetic overflow".into()));
        assert_eq!(eval("(-9223372036854775807 - 1) / -1"), Err("arithmetic overflow".into()));
        assert_eq!(eval("stage_out[2]"), Err("index 2 is out of range for a list of 2".into()));
        assert_eq!(
            eval("c +"),
            Err("expected a number, a name or `(` at the end of expression `c +`".into())
        );
        assert_eq!(eval("foo(1)").unwrap_err().split(';').next(), Some("unknown function `foo`"));
        assert_eq!(eval("c c"), Err("unexpected `c` at offset 2 in expression `c c`".into()));
    }

    #[test]
    fn nesting_and_length_are_bounded() {
        let deep = format!("{}1{}", "(".repeat(40), ")".repeat(40));
        assert_eq!(eval(&deep).unwrap_err(), format!("expression `{deep}` nests more than 32 levels deep"));
        assert_eq!(
            eval(&"-".repeat(40)).unwrap_err().split('`').nth(2),
            Some(" nests more than 32 levels deep")
        );
        let long = vec!["1"; 600].join("+");
        assert_eq!(
            eval(&long).unwrap_err(),
            "the expression is 1199 characters long; at most 1000 are allowed"
        );
        assert_eq!(eval(&format!("{}1{}", "(".repeat(30), ")".repeat(30))), Ok(Value::Int(1)));
    }

    #[test]
    fn names_lists_every_name_read() {
        assert_eq!(parse("max(c, w[i]) * -c").unwrap().names(), ["c", "w", "i", "c"]);
    }
}
