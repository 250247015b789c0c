//! The u1db index expression language: parser.
//!
//! ```text
//! expr  := field | op "(" expr ("," arg)* ")"
//! field := name ("." name)*          e.g. "name", "address.city"
//! op    := lower | number | bool | split_words | combine | is_null
//! ```
//! `number(expr, width)` takes an integer width; `combine` takes one or more
//! expressions; the others take exactly one.

use crate::error::{Result, StoreError};

/// Longest expression accepted (bytes).
pub const MAX_EXPRESSION_BYTES: usize = 4096;
/// Deepest nesting of operations accepted.
const MAX_DEPTH: usize = 32;
/// Largest `number()` width accepted.
const MAX_NUMBER_WIDTH: usize = 255;

/// A parsed index expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Expr {
    /// A dotted path into the document.
    Field(Vec<String>),
    /// Lower-cased strings.
    Lower(Box<Expr>),
    /// Integers zero-padded to a width.
    Number(Box<Expr>, usize),
    /// Booleans as `"1"` / `"0"`.
    Bool(Box<Expr>),
    /// The whitespace-separated words of strings.
    SplitWords(Box<Expr>),
    /// The values of all inner expressions.
    Combine(Vec<Expr>),
    /// Whether the inner expression yields nothing.
    IsNull(Box<Expr>),
}

fn err(reason: &'static str) -> StoreError {
    StoreError::IndexDefinitionParseError { reason }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token<'a> {
    Open,
    Close,
    Comma,
    Word(&'a str),
}

fn tokenize(text: &str) -> Vec<Token<'_>> {
    let mut tokens = Vec::new();
    let mut start = 0;
    for (i, c) in text.char_indices() {
        let delimiter = match c {
            '(' => Some(Token::Open),
            ')' => Some(Token::Close),
            ',' => Some(Token::Comma),
            _ => None,
        };
        if let Some(delimiter) = delimiter {
            let word = text.get(start..i).unwrap_or_default().trim();
            if !word.is_empty() {
                tokens.push(Token::Word(word));
            }
            tokens.push(delimiter);
            start = i + c.len_utf8();
        }
    }
    let word = text.get(start..).unwrap_or_default().trim();
    if !word.is_empty() {
        tokens.push(Token::Word(word));
    }
    tokens
}

/// A term before it is known to be an expression or a literal argument.
enum Term<'a> {
    Word(&'a str),
    Op(Expr),
}

struct Parser<'a> {
    tokens: Vec<Token<'a>>,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn next(&mut self) -> Option<Token<'a>> {
        let token = self.tokens.get(self.pos).cloned();
        if token.is_some() {
            self.pos += 1;
        }
        token
    }

    fn peek(&self) -> Option<&Token<'a>> {
        self.tokens.get(self.pos)
    }

    fn term(&mut self, depth: usize) -> Result<Term<'a>> {
        if depth > MAX_DEPTH {
            return Err(err("expression nested too deeply"));
        }
        match self.next() {
            None => Err(err("unexpected end of index definition")),
            Some(Token::Word(word)) => {
                if self.peek() == Some(&Token::Open) {
                    self.pos += 1;
                    self.op(word, depth).map(Term::Op)
                } else {
                    Ok(Term::Word(word))
                }
            }
            Some(_) => Err(err("unexpected token at start of expression")),
        }
    }

    fn op(&mut self, name: &str, depth: usize) -> Result<Expr> {
        let mut args = Vec::new();
        loop {
            args.push(self.term(depth + 1)?);
            match self.next() {
                Some(Token::Close) => break,
                Some(Token::Comma) => {}
                _ => return Err(err("unexpected token in parentheses")),
            }
        }
        let mut args = args.into_iter();
        let one = |args: &mut std::vec::IntoIter<Term<'_>>| -> Result<Box<Expr>> {
            match (args.next(), args.next()) {
                (Some(arg), None) => Ok(Box::new(to_expr(arg)?)),
                _ => Err(err("wrong number of arguments")),
            }
        };
        match name {
            "lower" => Ok(Expr::Lower(one(&mut args)?)),
            "bool" => Ok(Expr::Bool(one(&mut args)?)),
            "split_words" => Ok(Expr::SplitWords(one(&mut args)?)),
            "is_null" => Ok(Expr::IsNull(one(&mut args)?)),
            "combine" => Ok(Expr::Combine(args.map(to_expr).collect::<Result<_>>()?)),
            "number" => match (args.next(), args.next(), args.next()) {
                (Some(inner), Some(Term::Word(width)), None) => {
                    let width: usize = width
                        .parse()
                        .map_err(|_| err("number() width must be a non-negative integer"))?;
                    if width > MAX_NUMBER_WIDTH {
                        return Err(err("number() width too large"));
                    }
                    Ok(Expr::Number(Box::new(to_expr(inner)?), width))
                }
                (_, Some(Term::Op(_)), None) => {
                    Err(err("number() width must be a non-negative integer"))
                }
                _ => Err(err("wrong number of arguments")),
            },
            _ => Err(err("unknown operation")),
        }
    }
}

fn to_expr(term: Term<'_>) -> Result<Expr> {
    match term {
        Term::Op(expr) => Ok(expr),
        Term::Word(word) => field(word),
    }
}

fn field(word: &str) -> Result<Expr> {
    let parts: Vec<String> = word.split('.').map(str::to_owned).collect();
    if parts.iter().any(String::is_empty) {
        return Err(err(
            "field names must not be empty or start or end with '.'",
        ));
    }
    Ok(Expr::Field(parts))
}

/// Parses one index expression.
pub(crate) fn parse(text: &str) -> Result<Expr> {
    if text.len() > MAX_EXPRESSION_BYTES {
        return Err(err("expression too long"));
    }
    let mut parser = Parser {
        tokens: tokenize(text),
        pos: 0,
    };
    let term = parser.term(0)?;
    if parser.peek().is_some() {
        return Err(err("unexpected token after end of expression"));
    }
    to_expr(term)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use proptest::prelude::*;

    fn f(path: &str) -> Expr {
        Expr::Field(path.split('.').map(str::to_owned).collect())
    }

    #[test]
    fn parses_u1db_examples() {
        assert_eq!(parse("name").unwrap(), f("name"));
        assert_eq!(parse(" a.b.c ").unwrap(), f("a.b.c"));
        assert_eq!(
            parse("lower(name)").unwrap(),
            Expr::Lower(Box::new(f("name")))
        );
        assert_eq!(
            parse("number(a.b, 5)").unwrap(),
            Expr::Number(Box::new(f("a.b")), 5)
        );
        assert_eq!(
            parse("lower( split_words( body ) )").unwrap(),
            Expr::Lower(Box::new(Expr::SplitWords(Box::new(f("body")))))
        );
        assert_eq!(
            parse("combine(a, lower(b), c.d)").unwrap(),
            Expr::Combine(vec![f("a"), Expr::Lower(Box::new(f("b"))), f("c.d")])
        );
        assert_eq!(parse("is_null(x)").unwrap(), Expr::IsNull(Box::new(f("x"))));
        assert_eq!(parse("bool(x)").unwrap(), Expr::Bool(Box::new(f("x"))));
    }

    #[test]
    fn rejects_bad_expressions() {
        for bad in [
            "",
            "   ",
            "a.",
            ".a",
            "a..b",
            "lower(",
            "lower()",
            "lower(a",
            "lower(a))",
            "lower(a, b)",
            "unknown(a)",
            "number(a)",
            "number(a, x)",
            "number(a, -1)",
            "number(a, 1, 2)",
            "number(a, lower(b))",
            "number(a, 100000)",
            "(a)",
            ",a",
            "a)",
            "a b(c)",
            "lower(a) b",
            "combine()",
            "lower(,)",
        ] {
            assert!(
                matches!(
                    parse(bad),
                    Err(StoreError::IndexDefinitionParseError { .. })
                ),
                "{bad:?} parsed"
            );
        }
        let deep = format!("{}a{}", "lower(".repeat(100), ")".repeat(100));
        assert!(parse(&deep).is_err());
    }

    proptest! {
        #[test]
        fn never_panics(s in "[a-z(), .0-9_]{0,40}") {
            let _ = parse(&s);
        }
    }
}
