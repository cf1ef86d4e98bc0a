//! Conditions: a small expression language over event fields, such as
//! `level == "debug" and not exists(error)`. Steps like `drop` and `route` hold one; it is parsed
//! and checked when the configuration loads and evaluated for every event.
//!
//! ```text
//! expr       := or
//! or         := and (("or" | "||") and)*
//! and        := unary (("and" | "&&") unary)*
//! unary      := ("not" | "!") unary | primary
//! primary    := "(" expr ")" | "exists" "(" path ")" | comparison
//! comparison := operand [ op operand ]
//! op         := "==" | "!=" | "=~" | "!~" | "<" | "<=" | ">" | ">="
//! operand    := path | string | number | "true" | "false" | "null"
//! ```
//!
//! Strings are `"double quoted"` (escapes `\" \\ \n \t \r`) or `'single quoted'` (no escapes).
//! Keywords are lower case; `and or not exists true false null` are never field paths. A word
//! that reads as a number (`-12`, `2.5`, `1e3`) is a number, not a path.
//!
//! How values compare:
//! - `==` and `!=` keep types strict: strings equal strings, numbers equal numbers whatever their
//!   form (`200 == 200.0`), but the string `"200"` does not equal the number `200`. A missing
//!   field and a JSON `null` are both equal to `null` and to each other. A time equals the
//!   string of its RFC 3339 text; objects and arrays compare as JSON.
//! - `=~` and `!~` search a field's text with the regex on their right, which must be a string
//!   literal: numbers and booleans are searched as their JSON text, objects and arrays as compact
//!   JSON. A missing or `null` field never matches, so `!~` holds for it.
//! - `<`, `<=`, `>` and `>=` compare numbers only; here a string that reads as a number (`"200"`)
//!   counts as one. Anything else, a missing field included, makes the comparison false.
//! - An operand alone holds when it exists and is not `false`, `null`, `""` or zero.
//! - `exists(path)` holds when the field is present, even when it is `null`.

use std::cmp::Ordering;
use std::fmt::{self, Write as _};

use chrono::{DateTime, Utc};
use regex::Regex;
use serde_json::{Number, Value};

use super::path::{FieldPath, FieldRef, Fields};
use crate::event::timestamp;

/// How deep `(` and `not` may nest; bounds the recursion of parsing and evaluating.
const MAX_DEPTH: usize = 64;

/// A parsed condition, ready to evaluate against events.
#[derive(Clone)]
pub struct Condition {
    text: Box<str>,
    expr: Expr,
}

/// Why a condition does not parse.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message} (at character {position} of `{text}`)")]
pub struct ConditionError {
    /// What is wrong.
    pub message: String,
    /// Where, in characters counted from 1; one past the last character when the text ends early.
    pub position: usize,
    /// The whole condition as written.
    pub text: String,
}

impl Condition {
    /// Parses `text`, compiling its regexes.
    pub fn parse(text: &str) -> Result<Condition, ConditionError> {
        match parse_expr(text) {
            Ok(expr) => Ok(Condition {
                text: text.into(),
                expr,
            }),
            Err(fault) => Err(fault.into_error(text)),
        }
    }

    /// Every field path the condition reads, once each, in the order they appear.
    pub fn fields(&self) -> Vec<&FieldPath> {
        let mut paths = Vec::new();
        self.expr.collect_fields(&mut paths);
        paths
    }

    /// Whether the condition holds for `fields`.
    pub fn eval(&self, fields: &impl Fields) -> bool {
        self.expr.eval(fields)
    }

    /// The condition as written.
    pub fn text(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Condition").field(&self.text).finish()
    }
}

// ---------------------------------------------------------------------------------------------
// The compiled form and its evaluation.

/// A node of the compiled condition.
#[derive(Debug, Clone)]
enum Expr {
    /// `a or b or …`
    Any(Vec<Expr>),
    /// `a and b and …`
    All(Vec<Expr>),
    Not(Box<Expr>),
    Exists(FieldPath),
    /// An operand on its own.
    Truthy(Operand),
    Compare(Operand, CompareOp, Operand),
    /// `=~` (or `!~` when `negated`).
    Matches {
        subject: Operand,
        regex: Regex,
        negated: bool,
    },
}

/// One side of a comparison.
#[derive(Debug, Clone, PartialEq)]
enum Operand {
    Path(FieldPath),
    Literal(Literal),
}

/// A value written in the condition.
#[derive(Debug, Clone, PartialEq)]
enum Literal {
    Str(Box<str>),
    Num(Num),
    Bool(bool),
    Null,
}

/// The comparisons other than regex matches.
#[derive(Debug, Clone, Copy, PartialEq)]
enum CompareOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A number, kept exact when it is an integer.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Num {
    Uint(u64),
    Int(i64),
    Float(f64),
}

/// A value as comparisons see it, borrowed from the event or the condition.
#[derive(Debug, Clone, Copy)]
enum Val<'a> {
    Missing,
    Null,
    Bool(bool),
    Num(Num),
    Str(&'a str),
    Time(DateTime<Utc>),
    /// An object or an array.
    Nested(&'a Value),
}

impl Expr {
    fn eval<F: Fields + ?Sized>(&self, fields: &F) -> bool {
        match self {
            Expr::Any(terms) => terms.iter().any(|term| term.eval(fields)),
            Expr::All(terms) => terms.iter().all(|term| term.eval(fields)),
            Expr::Not(inner) => !inner.eval(fields),
            Expr::Exists(path) => fields.field(path).is_some(),
            Expr::Truthy(operand) => operand.resolve(fields).is_truthy(),
            Expr::Compare(left, op, right) => op.holds(left.resolve(fields), right.resolve(fields)),
            Expr::Matches {
                subject,
                regex,
                negated,
            } => regex_finds(regex, subject.resolve(fields)) != *negated,
        }
    }

    fn collect_fields<'a>(&'a self, paths: &mut Vec<&'a FieldPath>) {
        match self {
            Expr::Any(terms) | Expr::All(terms) => {
                for term in terms {
                    term.collect_fields(paths);
                }
            }
            Expr::Not(inner) => inner.collect_fields(paths),
            Expr::Exists(path) => add_path(paths, path),
            Expr::Truthy(operand)
            | Expr::Matches {
                subject: operand, ..
            } => add_operand(paths, operand),
            Expr::Compare(left, _, right) => {
                add_operand(paths, left);
                add_operand(paths, right);
            }
        }
    }
}

/// Adds the path `operand` reads, if it reads one.
fn add_operand<'a>(paths: &mut Vec<&'a FieldPath>, operand: &'a Operand) {
    if let Operand::Path(path) = operand {
        add_path(paths, path);
    }
}

/// Adds `path` to `paths` unless it is there already.
fn add_path<'a>(paths: &mut Vec<&'a FieldPath>, path: &'a FieldPath) {
    if !paths.contains(&path) {
        paths.push(path);
    }
}

impl Operand {
    fn resolve<'a, F: Fields + ?Sized>(&'a self, fields: &'a F) -> Val<'a> {
        match self {
            Operand::Path(path) => Val::of_field(fields.field(path)),
            Operand::Literal(literal) => literal.as_val(),
        }
    }
}

impl Literal {
    fn as_val(&self) -> Val<'_> {
        match self {
            Literal::Str(s) => Val::Str(s),
            Literal::Num(n) => Val::Num(*n),
            Literal::Bool(b) => Val::Bool(*b),
            Literal::Null => Val::Null,
        }
    }
}

impl<'a> Val<'a> {
    fn of_field(field: Option<FieldRef<'a>>) -> Val<'a> {
        match field {
            None => Val::Missing,
            Some(FieldRef::Str(s)) => Val::Str(s),
            Some(FieldRef::Uint(n)) => Val::Num(Num::Uint(n)),
            Some(FieldRef::Time(t)) => Val::Time(t),
            Some(FieldRef::Json(value)) => Val::of_json(value),
        }
    }

    fn of_json(value: &'a Value) -> Val<'a> {
        match value {
            Value::Null => Val::Null,
            Value::Bool(b) => Val::Bool(*b),
            Value::Number(n) => Val::Num(Num::of_json(n)),
            Value::String(s) => Val::Str(s),
            Value::Array(_) | Value::Object(_) => Val::Nested(value),
        }
    }

    /// Present and not `false`, `null`, `""` or zero.
    fn is_truthy(self) -> bool {
        match self {
            Val::Missing | Val::Null => false,
            Val::Bool(b) => b,
            Val::Num(n) => !n.is_zero(),
            Val::Str(s) => !s.is_empty(),
            Val::Time(_) | Val::Nested(_) => true,
        }
    }

    /// The number for `<`-style comparisons: numbers, and strings that read as numbers.
    fn as_number(self) -> Option<Num> {
        match self {
            Val::Num(n) => Some(n),
            Val::Str(s) => Num::parse(s),
            _ => None,
        }
    }
}

impl CompareOp {
    fn holds(self, left: Val<'_>, right: Val<'_>) -> bool {
        match self {
            CompareOp::Eq => equal(left, right),
            CompareOp::Ne => !equal(left, right),
            CompareOp::Lt => numeric_order(left, right) == Some(Ordering::Less),
            CompareOp::Le => matches!(
                numeric_order(left, right),
                Some(Ordering::Less | Ordering::Equal)
            ),
            CompareOp::Gt => numeric_order(left, right) == Some(Ordering::Greater),
            CompareOp::Ge => matches!(
                numeric_order(left, right),
                Some(Ordering::Greater | Ordering::Equal)
            ),
        }
    }
}

/// `==`: types stay strict; missing and `null` equal each other.
fn equal(left: Val<'_>, right: Val<'_>) -> bool {
    match (left, right) {
        (Val::Missing | Val::Null, Val::Missing | Val::Null) => true,
        (Val::Bool(a), Val::Bool(b)) => a == b,
        (Val::Num(a), Val::Num(b)) => a.compare(b) == Some(Ordering::Equal),
        (Val::Str(a), Val::Str(b)) => a == b,
        (Val::Time(a), Val::Time(b)) => a == b,
        (Val::Time(t), Val::Str(s)) | (Val::Str(s), Val::Time(t)) => timestamp(t) == s,
        (Val::Nested(a), Val::Nested(b)) => a == b,
        _ => false,
    }
}

/// The order of two values that are both numbers (or strings that read as numbers).
fn numeric_order(left: Val<'_>, right: Val<'_>) -> Option<Ordering> {
    left.as_number()?.compare(right.as_number()?)
}

/// Whether `regex` finds a match in the text of `subject`; never for missing or `null`.
fn regex_finds(regex: &Regex, subject: Val<'_>) -> bool {
    match subject {
        Val::Missing | Val::Null => false,
        Val::Str(s) => regex.is_match(s),
        Val::Bool(b) => regex.is_match(if b { "true" } else { "false" }),
        Val::Num(n) => {
            let mut text = ShortText::default();
            match write!(text, "{n}") {
                Ok(()) => regex.is_match(text.as_str()),
                Err(_) => regex.is_match(&n.to_string()),
            }
        }
        Val::Time(t) => regex.is_match(&timestamp(t)),
        Val::Nested(value) => regex.is_match(&value.to_string()),
    }
}

/// A short text built on the stack, so numbers can be matched without allocating.
struct ShortText {
    bytes: [u8; 48],
    len: usize,
}

impl Default for ShortText {
    fn default() -> Self {
        ShortText {
            bytes: [0; 48],
            len: 0,
        }
    }
}

impl ShortText {
    fn as_str(&self) -> &str {
        self.bytes
            .get(..self.len)
            .and_then(|bytes| std::str::from_utf8(bytes).ok())
            .unwrap_or_default()
    }
}

impl fmt::Write for ShortText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let slot = self.bytes.get_mut(self.len..end).ok_or(fmt::Error)?;
        slot.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

impl Num {
    fn of_json(n: &Number) -> Num {
        if let Some(u) = n.as_u64() {
            Num::Uint(u)
        } else if let Some(i) = n.as_i64() {
            Num::Int(i)
        } else {
            Num::Float(n.as_f64().unwrap_or(f64::NAN))
        }
    }

    /// Reads `text` when all of it is a number (`-?digits(.digits)?(e[+-]?digits)?`).
    fn parse(text: &str) -> Option<Num> {
        if text.is_empty() || number_len(text) != text.len() {
            return None;
        }
        if !text.contains(['.', 'e', 'E']) {
            if let Ok(u) = text.parse::<u64>() {
                return Some(Num::Uint(u));
            }
            if let Ok(i) = text.parse::<i64>() {
                return Some(Num::Int(i));
            }
        }
        let float: f64 = text.parse().ok()?;
        float.is_finite().then_some(Num::Float(float))
    }

    fn as_f64(self) -> f64 {
        match self {
            Num::Uint(u) => u as f64,
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }

    fn is_zero(self) -> bool {
        match self {
            Num::Uint(u) => u == 0,
            Num::Int(i) => i == 0,
            Num::Float(f) => f == 0.0,
        }
    }

    /// Integers compare exactly; a float against anything compares as floats.
    fn compare(self, other: Num) -> Option<Ordering> {
        match (self, other) {
            (Num::Uint(a), Num::Uint(b)) => Some(a.cmp(&b)),
            (Num::Int(a), Num::Int(b)) => Some(a.cmp(&b)),
            (Num::Uint(a), Num::Int(b)) => Some(compare_uint_int(a, b)),
            (Num::Int(a), Num::Uint(b)) => Some(compare_uint_int(b, a).reverse()),
            (a, b) => a.as_f64().partial_cmp(&b.as_f64()),
        }
    }
}

fn compare_uint_int(a: u64, b: i64) -> Ordering {
    match u64::try_from(b) {
        Ok(b) => a.cmp(&b),
        Err(_) => Ordering::Greater,
    }
}

/// The JSON text of the number (`200`, `-3`, `2.5`, `200.0`).
impl fmt::Display for Num {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Num::Uint(u) => write!(f, "{u}"),
            Num::Int(i) => write!(f, "{i}"),
            Num::Float(x) => match Number::from_f64(*x) {
                Some(n) => write!(f, "{n}"),
                None => write!(f, "{x}"),
            },
        }
    }
}

/// The length in bytes of the number at the start of `text`, or 0 when none starts there.
fn number_len(text: &str) -> usize {
    let bytes = text.as_bytes();
    let sign = usize::from(bytes.first() == Some(&b'-'));
    let whole = digits_at(bytes, sign);
    if whole == 0 {
        return 0;
    }
    let mut end = sign + whole;
    if bytes.get(end) == Some(&b'.') {
        let fraction = digits_at(bytes, end + 1);
        if fraction == 0 {
            return 0;
        }
        end += 1 + fraction;
    }
    if matches!(bytes.get(end), Some(b'e' | b'E')) {
        let exponent_sign = usize::from(matches!(bytes.get(end + 1), Some(b'+' | b'-')));
        let exponent = digits_at(bytes, end + 1 + exponent_sign);
        if exponent > 0 {
            end += 1 + exponent_sign + exponent;
        }
    }
    end
}

/// How many ASCII digits start at `bytes[from]`.
fn digits_at(bytes: &[u8], from: usize) -> usize {
    bytes.get(from..).map_or(0, |rest| {
        rest.iter().take_while(|b| b.is_ascii_digit()).count()
    })
}

// ---------------------------------------------------------------------------------------------
// Lexing.

/// A parse failure at a byte offset; turned into a `ConditionError` with a character position.
#[derive(Debug)]
struct Fault {
    at: usize,
    message: String,
}

impl Fault {
    fn new(at: usize, message: impl Into<String>) -> Fault {
        Fault {
            at,
            message: message.into(),
        }
    }

    fn into_error(self, text: &str) -> ConditionError {
        let before = text.get(..self.at).unwrap_or(text);
        ConditionError {
            message: self.message,
            position: before.chars().count() + 1,
            text: text.to_owned(),
        }
    }
}

/// The tokens of the language.
#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    And,
    Or,
    Not,
    Exists,
    Op(Op),
    Str(String),
    Num(Num),
    True,
    False,
    Null,
    Path(FieldPath),
    End,
}

/// The comparison operators, regex matches included.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Compare(CompareOp),
    Match,
    NotMatch,
}

impl Token {
    /// The operand this token is, if it is one.
    fn to_operand(&self) -> Option<Operand> {
        let literal = match self {
            Token::Path(path) => return Some(Operand::Path(path.clone())),
            Token::Str(s) => Literal::Str(s.as_str().into()),
            Token::Num(n) => Literal::Num(*n),
            Token::True => Literal::Bool(true),
            Token::False => Literal::Bool(false),
            Token::Null => Literal::Null,
            _ => return None,
        };
        Some(Operand::Literal(literal))
    }
}

/// A token and the byte range it came from.
#[derive(Debug)]
struct Spanned {
    token: Token,
    start: usize,
    end: usize,
}

/// Splits the text into tokens, one at a time.
struct Lexer<'t> {
    text: &'t str,
    pos: usize,
}

/// Characters that make up words: field paths, keywords and numbers.
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '@' | '.')
}

impl Lexer<'_> {
    fn next_token(&mut self) -> Result<Spanned, Fault> {
        let rest = self.text.get(self.pos..).unwrap_or_default();
        let trimmed = rest.trim_start();
        let start = self.pos + (rest.len() - trimmed.len());
        let (token, len) = match trimmed.chars().next() {
            None => (Token::End, 0),
            Some('(') => (Token::Open, 1),
            Some(')') => (Token::Close, 1),
            Some('"') => double_quoted(trimmed, start)?,
            Some('\'') => single_quoted(trimmed, start)?,
            Some('=' | '!' | '<' | '>' | '&' | '|') => {
                symbol(trimmed).map_err(|message| Fault::new(start, message))?
            }
            Some(c) if is_word_char(c) => word(trimmed, start)?,
            Some(c) => return Err(Fault::new(start, format!("unexpected character `{c}`"))),
        };
        self.pos = start + len;
        Ok(Spanned {
            token,
            start,
            end: self.pos,
        })
    }
}

/// An operator made of symbols, and its length.
fn symbol(text: &str) -> Result<(Token, usize), String> {
    let bytes = text.as_bytes();
    let compare = |op| Token::Op(Op::Compare(op));
    let found = match (bytes.first(), bytes.get(1)) {
        (Some(b'='), Some(b'=')) => (compare(CompareOp::Eq), 2),
        (Some(b'='), Some(b'~')) => (Token::Op(Op::Match), 2),
        (Some(b'='), _) => return Err("`=` is not an operator; use `==` to compare".into()),
        (Some(b'!'), Some(b'=')) => (compare(CompareOp::Ne), 2),
        (Some(b'!'), Some(b'~')) => (Token::Op(Op::NotMatch), 2),
        (Some(b'!'), _) => (Token::Not, 1),
        (Some(b'<'), Some(b'=')) => (compare(CompareOp::Le), 2),
        (Some(b'<'), _) => (compare(CompareOp::Lt), 1),
        (Some(b'>'), Some(b'=')) => (compare(CompareOp::Ge), 2),
        (Some(b'>'), _) => (compare(CompareOp::Gt), 1),
        (Some(b'&'), Some(b'&')) => (Token::And, 2),
        (Some(b'&'), _) => return Err("`&` is not an operator; use `&&` or `and`".into()),
        (Some(b'|'), Some(b'|')) => (Token::Or, 2),
        (Some(b'|'), _) => return Err("`|` is not an operator; use `||` or `or`".into()),
        _ => return Err("expected an operator".into()),
    };
    Ok(found)
}

/// A `"double quoted"` string starting at `text` (absolute offset `start`), and its length.
fn double_quoted(text: &str, start: usize) -> Result<(Token, usize), Fault> {
    let body = text.get(1..).unwrap_or_default();
    let mut value = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((Token::Str(value), i + 2)),
            '\\' => match chars.next() {
                Some((_, '"')) => value.push('"'),
                Some((_, '\\')) => value.push('\\'),
                Some((_, 'n')) => value.push('\n'),
                Some((_, 't')) => value.push('\t'),
                Some((_, 'r')) => value.push('\r'),
                Some((_, other)) => {
                    return Err(Fault::new(
                        start + 1 + i,
                        format!(
                            "unknown escape `\\{other}` in a string; use \\\" \\\\ \\n \\t or \\r, \
                             or single quotes for text without escapes"
                        ),
                    ));
                }
                None => break,
            },
            c => value.push(c),
        }
    }
    Err(Fault::new(start, "this string is never closed with `\"`"))
}

/// A `'single quoted'` string starting at `text` (absolute offset `start`), and its length.
fn single_quoted(text: &str, start: usize) -> Result<(Token, usize), Fault> {
    let body = text.get(1..).unwrap_or_default();
    match body.split_once('\'') {
        Some((inside, _)) => Ok((Token::Str(inside.to_owned()), inside.len() + 2)),
        None => Err(Fault::new(start, "this string is never closed with `'`")),
    }
}

/// A number, keyword or field path starting at `text` (absolute offset `start`), and its length.
fn word(text: &str, start: usize) -> Result<(Token, usize), Fault> {
    let number = number_len(text);
    let after_number = text.get(number..).and_then(|rest| rest.chars().next());
    if number > 0 && !after_number.is_some_and(is_word_char) {
        let digits = text.get(..number).unwrap_or_default();
        return match Num::parse(digits) {
            Some(n) => Ok((Token::Num(n), number)),
            None => Err(Fault::new(
                start,
                format!("number `{digits}` is out of range"),
            )),
        };
    }
    let len = text.find(|c| !is_word_char(c)).unwrap_or(text.len());
    let word = text.get(..len).unwrap_or_default();
    let token = match word {
        "and" => Token::And,
        "or" => Token::Or,
        "not" => Token::Not,
        "exists" => Token::Exists,
        "true" => Token::True,
        "false" => Token::False,
        "null" => Token::Null,
        _ => match FieldPath::parse(word) {
            Ok(path) => Token::Path(path),
            Err(e) => return Err(Fault::new(start, e.to_string())),
        },
    };
    Ok((token, len))
}

// ---------------------------------------------------------------------------------------------
// Parsing.

/// Parses the whole text into a compiled expression.
fn parse_expr(text: &str) -> Result<Expr, Fault> {
    let mut parser = Parser::new(text)?;
    if parser.current.token == Token::End {
        return Err(Fault::new(parser.current.start, "the condition is empty"));
    }
    let expr = parser.parse_or()?;
    match parser.current.token {
        Token::End => Ok(expr),
        Token::Close => Err(Fault::new(
            parser.current.start,
            "this `)` has no `(` to close",
        )),
        _ => Err(parser.unexpected("expected `and`, `or` or the end of the condition")),
    }
}

/// A recursive-descent parser with one token of lookahead.
struct Parser<'t> {
    lexer: Lexer<'t>,
    current: Spanned,
    depth: usize,
}

impl<'t> Parser<'t> {
    fn new(text: &'t str) -> Result<Parser<'t>, Fault> {
        let mut lexer = Lexer { text, pos: 0 };
        let current = lexer.next_token()?;
        Ok(Parser {
            lexer,
            current,
            depth: 0,
        })
    }

    /// Moves to the next token, returning the one just passed.
    fn advance(&mut self) -> Result<Spanned, Fault> {
        let next = self.lexer.next_token()?;
        Ok(std::mem::replace(&mut self.current, next))
    }

    /// The current token, as the user wrote it, for messages.
    fn found(&self) -> String {
        match self.current.token {
            Token::End => "the end of the condition".to_owned(),
            _ => {
                let source = self.lexer.text.get(self.current.start..self.current.end);
                format!("`{}`", source.unwrap_or_default())
            }
        }
    }

    /// A fault at the current token: "`expected`, found …".
    fn unexpected(&self, expected: &str) -> Fault {
        Fault::new(
            self.current.start,
            format!("{expected}, found {}", self.found()),
        )
    }

    /// Goes one level deeper into `(` or `not`, refusing to go too deep.
    fn descend(&mut self, at: usize) -> Result<(), Fault> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Fault::new(
                at,
                format!("the condition nests `(` and `not` more than {MAX_DEPTH} deep"),
            ));
        }
        Ok(())
    }

    fn parse_or(&mut self) -> Result<Expr, Fault> {
        let mut terms = vec![self.parse_and()?];
        while self.current.token == Token::Or {
            self.advance()?;
            terms.push(self.parse_and()?);
        }
        Ok(combine_terms(terms, Expr::Any))
    }

    fn parse_and(&mut self) -> Result<Expr, Fault> {
        let mut terms = vec![self.parse_unary()?];
        while self.current.token == Token::And {
            self.advance()?;
            terms.push(self.parse_unary()?);
        }
        Ok(combine_terms(terms, Expr::All))
    }

    fn parse_unary(&mut self) -> Result<Expr, Fault> {
        if self.current.token != Token::Not {
            return self.parse_primary();
        }
        let not = self.advance()?;
        self.descend(not.start)?;
        let inner = self.parse_unary()?;
        self.depth -= 1;
        Ok(Expr::Not(Box::new(inner)))
    }

    fn parse_primary(&mut self) -> Result<Expr, Fault> {
        match self.current.token {
            Token::Open => self.parse_parenthesized(),
            Token::Exists => self.parse_exists(),
            _ => self.parse_comparison(),
        }
    }

    fn parse_parenthesized(&mut self) -> Result<Expr, Fault> {
        let open = self.advance()?;
        self.descend(open.start)?;
        let inner = self.parse_or()?;
        self.depth -= 1;
        match self.current.token {
            Token::Close => {
                self.advance()?;
                Ok(inner)
            }
            Token::End => Err(Fault::new(open.start, "this `(` is never closed")),
            _ => Err(self.unexpected("expected `)`, `and` or `or`")),
        }
    }

    fn parse_exists(&mut self) -> Result<Expr, Fault> {
        self.advance()?;
        if self.current.token != Token::Open {
            return Err(self.unexpected("expected `(` after `exists`"));
        }
        self.advance()?;
        let Token::Path(path) = &self.current.token else {
            return Err(self.unexpected("`exists(…)` takes a field path"));
        };
        let path = path.clone();
        self.advance()?;
        if self.current.token != Token::Close {
            return Err(self.unexpected("expected `)` after the field path in `exists(…)`"));
        }
        self.advance()?;
        Ok(Expr::Exists(path))
    }

    fn parse_comparison(&mut self) -> Result<Expr, Fault> {
        let Some(left) = self.current.token.to_operand() else {
            return Err(
                self.unexpected("expected a field path, a value, `not`, `exists(…)` or `(`")
            );
        };
        self.advance()?;
        let Token::Op(op) = self.current.token else {
            return Ok(Expr::Truthy(left));
        };
        let op_source = self.found();
        self.advance()?;
        match op {
            Op::Compare(compare) => {
                let Some(right) = self.current.token.to_operand() else {
                    return Err(self.unexpected(&format!(
                        "expected a field path or a value after {op_source}"
                    )));
                };
                self.advance()?;
                Ok(Expr::Compare(left, compare, right))
            }
            Op::Match | Op::NotMatch => {
                let regex = self.parse_regex(&op_source)?;
                Ok(Expr::Matches {
                    subject: left,
                    regex,
                    negated: op == Op::NotMatch,
                })
            }
        }
    }

    /// The string literal right of `=~` or `!~`, compiled.
    fn parse_regex(&mut self, op_source: &str) -> Result<Regex, Fault> {
        let Token::Str(pattern) = &self.current.token else {
            return Err(self.unexpected(&format!(
                "the right side of {op_source} must be a quoted regex"
            )));
        };
        match Regex::new(pattern) {
            Ok(regex) => {
                self.advance()?;
                Ok(regex)
            }
            Err(e) => Err(Fault::new(
                self.current.start,
                format!("invalid regex {}: {e}", self.found()),
            )),
        }
    }
}

/// The only term itself, or `combine` of several.
fn combine_terms(terms: Vec<Expr>, combine: fn(Vec<Expr>) -> Expr) -> Expr {
    match <[Expr; 1]>::try_from(terms) {
        Ok([only]) => only,
        Err(terms) => combine(terms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::path::fixtures::{Typed, object};
    use serde_json::json;

    fn holds(condition: &str, event: Value) -> bool {
        Condition::parse(condition)
            .unwrap_or_else(|e| panic!("{e}"))
            .eval(&object(event))
    }

    fn error(condition: &str) -> ConditionError {
        match Condition::parse(condition) {
            Ok(parsed) => panic!("{condition:?} parsed as {:?}", parsed.expr),
            Err(e) => e,
        }
    }

    fn path(text: &str) -> FieldPath {
        FieldPath::parse(text).unwrap()
    }

    #[test]
    fn and_binds_tighter_than_or() {
        let parsed = Condition::parse("a or b and c").unwrap();
        let Expr::Any(terms) = &parsed.expr else {
            panic!("{:?}", parsed.expr)
        };
        assert_eq!(terms.len(), 2);
        assert!(matches!(terms[1], Expr::All(_)));
        // (a or b) and c would be false here.
        assert!(holds(
            "a or b and c",
            json!({"a": true, "b": false, "c": false})
        ));
        assert!(holds(
            "a || b && c",
            json!({"a": true, "b": false, "c": false})
        ));
        assert!(!holds(
            "(a or b) and c",
            json!({"a": true, "b": false, "c": false})
        ));
    }

    #[test]
    fn not_applies_to_a_whole_comparison() {
        let parsed = Condition::parse("not a == b").unwrap();
        assert!(matches!(&parsed.expr, Expr::Not(inner) if matches!(**inner, Expr::Compare(..))));
        // (not a) == "y" would be false == "y", which is false.
        assert!(holds(r#"not a == "y""#, json!({"a": "x"})));
        assert!(holds(r#"!a == "y""#, json!({"a": "x"})));
        assert!(holds("not not a", json!({"a": 1})));
        assert!(!holds("!(a or b)", json!({"a": 0, "b": 1})));
    }

    #[test]
    fn whitespace_is_optional() {
        assert!(holds(
            r#"(level=="debug"&&!exists(error))"#,
            json!({"level": "debug"})
        ));
        assert!(holds(
            "  level   ==\n'debug'\tand  x>=1 ",
            json!({"level": "debug", "x": 1})
        ));
    }

    #[test]
    fn both_quote_styles_and_escapes() {
        assert!(holds(
            r#"m == "a\"b\\c\n\t\r""#,
            json!({"m": "a\"b\\c\n\t\r"})
        ));
        assert!(holds(r#"m == 'a\n"b'"#, json!({"m": "a\\n\"b"})));
        assert!(holds(r#"m == "it's""#, json!({"m": "it's"})));
        assert!(holds("m == ''", json!({"m": ""})));
        assert!(holds(r#"m == "é ü""#, json!({"m": "é ü"})));
    }

    #[test]
    fn the_brief_example_works() {
        let drop = Condition::parse(r#"level == "debug" and not exists(error)"#).unwrap();
        assert!(drop.eval(&object(json!({"level": "debug"}))));
        assert!(!drop.eval(&object(json!({"level": "debug", "error": null}))));
        assert!(!drop.eval(&object(json!({"level": "info"}))));
        assert_eq!(drop.text(), r#"level == "debug" and not exists(error)"#);
        assert_eq!(
            format!("{drop:?}"),
            r#"Condition("level == \"debug\" and not exists(error)")"#
        );
    }

    #[test]
    fn nested_paths_are_read() {
        let event = json!({
            "http": {"response": {"status_code": 503}},
            "@timestamp": "t",
            "log": {"file": {"path": "/var/log/app.log"}},
            "kubernetes": {"pod-name": "web-1"}
        });
        assert!(holds("http.response.status_code >= 500", event.clone()));
        assert!(holds(r"log.file.path =~ '\.log$'", event.clone()));
        assert!(holds(r#"@timestamp == "t""#, event.clone()));
        assert!(holds(r#"kubernetes.pod-name == "web-1""#, event.clone()));
        assert!(!holds("exists(http.response.status_code.x)", event.clone()));
        assert!(holds("exists(http.response)", event));
    }

    #[test]
    fn strings_and_numbers_compare_by_type() {
        let event = json!({"s": "200", "i": 200, "f": 200.0, "neg": -3, "big": u64::MAX});
        assert!(holds("i == 200.0", event.clone()));
        assert!(holds("f == 200", event.clone()));
        assert!(holds("i == f", event.clone()));
        assert!(holds("neg == -3", event.clone()));
        assert!(holds("neg < i", event.clone()));
        assert!(holds("big > neg", event.clone()));
        assert!(holds("big == 18446744073709551615", event.clone()));
        assert!(!holds("big == 18446744073709551614", event.clone()));
        assert!(holds("i == 2e2", event.clone()));
        // Equality is strict: a string is never a number.
        assert!(!holds("s == 200", event.clone()));
        assert!(holds("s != 200", event.clone()));
        assert!(holds(r#"s == "200""#, event.clone()));
        assert!(!holds(r#"i == "200""#, event.clone()));
        // Ordering reads strings as numbers.
        assert!(holds("s > 199.5", event.clone()));
        assert!(holds("s <= i", event.clone()));
        assert!(holds("s >= 200", event.clone()));
        assert!(!holds("s < 200", event));
    }

    #[test]
    fn ordering_needs_numbers() {
        let event = json!({"word": "abc", "flag": true, "obj": {}, "empty": "", "spaced": " 5"});
        for condition in [
            r#"word > "a""#,
            "word < 1",
            "flag > 0",
            "obj >= 0",
            "empty <= 0",
            "spaced < 10",
            "1 > missing",
            r#""5" > "4.x""#,
        ] {
            assert!(!holds(condition, event.clone()), "{condition}");
        }
        assert!(holds(r#""5" > "4""#, event));
    }

    #[test]
    fn bools_null_and_nested_values_compare_as_json() {
        let event = json!({"ok": true, "n": null, "tags": ["a", "b"], "o": {"k": 1}});
        assert!(holds("ok == true", event.clone()));
        assert!(holds("ok != false", event.clone()));
        assert!(!holds("ok == 1", event.clone()));
        assert!(holds("n == null", event.clone()));
        assert!(holds("n == missing", event.clone()));
        assert!(!holds(r#"n == """#, event.clone()));
        assert!(holds("o == o", event.clone()));
        assert!(!holds("o == tags", event.clone()));
        assert!(!holds(r#"tags == "a""#, event.clone()));
        assert!(holds(r#"tags =~ '^\["a","b"\]$'"#, event));
    }

    #[test]
    fn missing_fields_under_every_operator() {
        let event = json!({"present": 1});
        let cases = [
            ("missing == null", true),
            ("missing != null", false),
            (r#"missing == "x""#, false),
            (r#"missing != "x""#, true),
            ("missing == 0", false),
            ("missing != 0", true),
            ("missing == false", false),
            ("missing == other_missing", true),
            ("missing == present", false),
            (r#"missing =~ """#, false),
            (r#"missing !~ "x""#, true),
            ("missing < 1", false),
            ("missing <= 1", false),
            ("missing > 1", false),
            ("missing >= 1", false),
            ("missing", false),
            ("not missing", true),
            ("exists(missing)", false),
        ];
        for (condition, expected) in cases {
            assert_eq!(holds(condition, event.clone()), expected, "{condition}");
        }
    }

    #[test]
    fn an_operand_alone_tests_truthiness() {
        let cases = [
            (json!({"x": true}), true),
            (json!({"x": false}), false),
            (json!({"x": null}), false),
            (json!({"x": ""}), false),
            (json!({"x": "0"}), true),
            (json!({"x": 0}), false),
            (json!({"x": 0.0}), false),
            (json!({"x": -1}), true),
            (json!({"x": []}), true),
            (json!({"x": {}}), true),
            (json!({}), false),
        ];
        for (event, expected) in cases {
            assert_eq!(holds("x", event.clone()), expected, "{event}");
        }
        assert!(holds("true", json!({})));
        assert!(!holds("null or false or 0 or ''", json!({})));
        assert!(holds("'x' and 1", json!({})));
    }

    #[test]
    fn exists_counts_null_as_present() {
        assert!(holds("exists(a)", json!({"a": null})));
        assert!(holds("exists( a.b )", json!({"a": {"b": false}})));
        assert!(!holds("exists(a.b)", json!({"a": 1})));
    }

    #[test]
    fn regex_searches_text_and_json_text() {
        let event =
            json!({"msg": "GET /health", "code": 503, "ratio": 2.5, "ok": false, "n": null});
        assert!(holds(r#"msg =~ "health""#, event.clone()));
        assert!(holds(r#"msg !~ "^POST""#, event.clone()));
        assert!(!holds(r#"msg =~ "^health""#, event.clone()));
        assert!(holds(r"code =~ '^5\d\d$'", event.clone()));
        assert!(holds(r#"code !~ "^4""#, event.clone()));
        assert!(holds(r"ratio =~ '^2\.5$'", event.clone()));
        assert!(holds(r#"ok =~ "^false$""#, event.clone()));
        assert!(!holds(r#"n =~ "null""#, event.clone()));
        assert!(holds(r#"n !~ "null""#, event.clone()));
        assert!(holds(r"msg =~ '\s/h'", event));
    }

    #[test]
    fn typed_fields_compare_like_their_json() {
        let run = |text: &str| Condition::parse(text).unwrap().eval(&Typed);
        assert!(run(r#"@timestamp == "2024-05-01T12:00:00.000000000Z""#));
        assert!(!run(r#"@timestamp == "2024-05-01T12:00:00Z""#));
        assert!(run(r#"@timestamp =~ "^2024-05""#));
        assert!(!run("@timestamp > 0"));
        assert!(run("offset == 4096.0"));
        assert!(run("offset > 4095 and offset < 4097"));
        assert!(run(r#"offset =~ "^4096$""#));
        assert!(run(r#"message =~ " 200$" and message != "200""#));
        assert!(run("exists(@timestamp) and not exists(nothing)"));
    }

    #[test]
    fn fields_lists_each_path_once() {
        let parsed = Condition::parse(
            r#"a == b or (not exists(c.d) and a =~ "x") or e > 1 or "lit" == 'lit' or f"#,
        )
        .unwrap();
        let names: Vec<&str> = parsed.fields().iter().map(|p| p.as_str()).collect();
        assert_eq!(names, ["a", "b", "c.d", "e", "f"]);
        assert!(Condition::parse("true").unwrap().fields().is_empty());
        assert_eq!(
            Condition::parse("exists(x)").unwrap().fields(),
            [&path("x")]
        );
    }

    #[test]
    fn numbers_and_paths_are_told_apart() {
        assert!(holds("1e3 == 1000", json!({})));
        assert!(holds("-2.5e-1 == -0.25", json!({})));
        assert!(holds("2x == 1", json!({"2x": 1})));
        assert!(holds("v1.2 == 3", json!({"v1": {"2": 3}})));
        assert!(holds("a-b == 1", json!({"a-b": 1})));
    }

    #[test]
    fn errors_give_reason_and_position() {
        let e = error("");
        assert_eq!(
            (e.position, e.message.as_str()),
            (1, "the condition is empty")
        );
        assert_eq!(error("   ").position, 4);

        let e = error("(a == 1");
        assert_eq!(e.position, 1);
        assert!(e.message.contains("never closed"), "{e}");

        let e = error("a == 1)");
        assert_eq!(e.position, 7);
        assert!(e.message.contains("no `(`"), "{e}");

        let e = error(r#"level = "x""#);
        assert_eq!(e.position, 7);
        assert!(e.message.contains("use `==`"), "{e}");

        let e = error("a ==");
        assert_eq!(e.position, 5);
        assert!(e.message.contains("after `==`"), "{e}");
        assert!(e.message.contains("the end of the condition"), "{e}");

        let e = error(r#"msg =~ "(""#);
        assert_eq!(e.position, 8);
        assert!(e.message.starts_with("invalid regex `\"(\"`"), "{e}");

        let e = error("a == 1 b");
        assert_eq!(e.position, 8);
        assert!(e.message.contains("found `b`"), "{e}");

        let e = error(r#"level == "debug" and"#);
        assert_eq!(e.position, 21);
        assert!(e.message.starts_with("expected a field path"), "{e}");

        let rendered = error("a ==").to_string();
        assert_eq!(
            rendered,
            "expected a field path or a value after `==`, found the end of the condition \
             (at character 5 of `a ==`)"
        );
    }

    #[test]
    fn malformed_input_is_rejected() {
        let cases = [
            ("and b", 1, "expected a field path"),
            ("a or or b", 6, "found `or`"),
            ("a == == b", 6, "after `==`"),
            ("a =~ b", 6, "must be a quoted regex"),
            ("a !~ 5", 6, "must be a quoted regex"),
            ("()", 2, "found `)`"),
            ("(a b)", 4, "expected `)`"),
            ("a & b", 3, "use `&&`"),
            ("a | b", 3, "use `||`"),
            ("a === b", 5, "use `==`"),
            ("a ~ b", 3, "unexpected character `~`"),
            ("a == $x", 6, "unexpected character `$`"),
            (r#"a == "open"#, 6, "never closed"),
            ("a == 'open", 6, "never closed"),
            (r#"a == "bad\q""#, 10, "unknown escape `\\q`"),
            ("exists a", 8, "expected `(` after `exists`"),
            ("exists(1)", 8, "takes a field path"),
            ("exists(a", 9, "expected `)`"),
            ("exists == 1", 8, "expected `(`"),
            ("a..b == 1", 1, "empty part"),
            ("a == 1e999", 6, "out of range"),
            ("a == b == c", 8, "expected `and`, `or`"),
            ("true false", 6, "found `false`"),
            ("not", 4, "the end of the condition"),
        ];
        for (text, position, reason) in cases {
            let e = error(text);
            assert_eq!(e.position, position, "{text}: {e}");
            assert!(e.message.contains(reason), "{text}: {e}");
            assert_eq!(e.text, text);
        }
    }

    #[test]
    fn positions_count_characters_not_bytes() {
        let e = error(r#"msg == "é" = 1"#);
        assert_eq!(e.position, 12, "{e}");
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let deep = format!("{}a{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(error(&deep).message.contains("more than 64 deep"));
        let nots = format!("{}a", "not ".repeat(10_000));
        assert!(error(&nots).message.contains("more than 64 deep"));
        let fine = format!("{}a{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert!(holds(&fine, json!({"a": 1})));
        let long = vec!["a"; 10_000].join(" or ");
        assert!(holds(&long, json!({"a": 1})));
    }

    #[test]
    fn number_syntax_is_exact() {
        assert_eq!(Num::parse("200"), Some(Num::Uint(200)));
        assert_eq!(Num::parse("-7"), Some(Num::Int(-7)));
        assert_eq!(Num::parse("2.5"), Some(Num::Float(2.5)));
        assert_eq!(Num::parse("1E2"), Some(Num::Float(100.0)));
        for bad in [
            "", "-", "1.", ".5", "1e", "inf", "NaN", " 1", "1 ", "0x10", "+1",
        ] {
            assert_eq!(Num::parse(bad), None, "{bad:?}");
        }
    }
}
