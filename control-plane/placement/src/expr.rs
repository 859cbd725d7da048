//! The `member_of` expression language over host attributes.
//!
//! ```text
//! expr       := or
//! or         := and ("or" and)*
//! and        := unary ("and" unary)*
//! unary      := "not" unary | "(" expr ")" | comparison
//! comparison := ATTR ("==" | "!=" | ">" | ">=" | "<" | "<=") VALUE
//!             | ATTR ["not"] "in" "[" VALUE ("," VALUE)* "]"
//!             | ATTR "=~" VALUE          (a regular expression, matched anywhere)
//!             | ATTR "exists"
//! ATTR       := [A-Za-z_][A-Za-z0-9_.:/-]*     e.g. os, arch, zone, host.id
//! VALUE      := "double" | 'single' quoted | a bare word or number
//! ```
//!
//! Ordering comparisons are numeric when both sides are numbers, else by text.
//! A comparison on an attribute the host lacks is false (`exists` says whether
//! it has it); `not` negates. Errors carry the byte offset where they occur.

use std::collections::BTreeMap;
use std::fmt;

use regex::Regex;

/// A syntax error, with the 0-based byte offset it was found at.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("at position {position}: {message}")]
pub struct ParseError {
    pub position: usize,
    pub message: String,
}

#[derive(Clone, Debug)]
pub enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Compare { attr: String, op: CmpOp, value: String },
    In { attr: String, values: Vec<String>, negated: bool },
    Matches { attr: String, regex: Regex },
    Exists { attr: String },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Op(&'static str),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Ident(s) => write!(f, "{s:?}"),
            Tok::Str(s) => write!(f, "string {s:?}"),
            Tok::Op(o) => write!(f, "{o:?}"),
            Tok::LParen => f.write_str("\"(\""),
            Tok::RParen => f.write_str("\")\""),
            Tok::LBracket => f.write_str("\"[\""),
            Tok::RBracket => f.write_str("\"]\""),
            Tok::Comma => f.write_str("\",\""),
        }
    }
}

fn err(position: usize, message: impl Into<String>) -> ParseError {
    ParseError { position, message: message.into() }
}

fn lex(src: &str) -> Result<Vec<(usize, Tok)>, ParseError> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'(' => {
                out.push((i, Tok::LParen));
                i += 1;
            }
            b')' => {
                out.push((i, Tok::RParen));
                i += 1;
            }
            b'[' => {
                out.push((i, Tok::LBracket));
                i += 1;
            }
            b']' => {
                out.push((i, Tok::RBracket));
                i += 1;
            }
            b',' => {
                out.push((i, Tok::Comma));
                i += 1;
            }
            b'"' | b'\'' => {
                let start = i;
                i += 1;
                let mut s = String::new();
                loop {
                    match bytes.get(i) {
                        None => return Err(err(start, "unterminated string")),
                        Some(&q) if q == c => {
                            i += 1;
                            break;
                        }
                        Some(b'\\') if matches!(bytes.get(i + 1), Some(&q) if q == c || q == b'\\') => {
                            s.push(bytes[i + 1] as char);
                            i += 2;
                        }
                        Some(_) => {
                            let ch = src[i..].chars().next().ok_or_else(|| err(i, "invalid text"))?;
                            s.push(ch);
                            i += ch.len_utf8();
                        }
                    }
                }
                out.push((start, Tok::Str(s)));
            }
            b'=' | b'!' | b'<' | b'>' => {
                let two = src.get(i..i + 2).unwrap_or("");
                let op = match two {
                    "==" => "==",
                    "!=" => "!=",
                    ">=" => ">=",
                    "<=" => "<=",
                    "=~" => "=~",
                    _ => match c {
                        b'>' => ">",
                        b'<' => "<",
                        _ => return Err(err(i, format!("unknown operator {:?}", &src[i..i + 1]))),
                    },
                };
                out.push((i, Tok::Op(op)));
                i += op.len();
            }
            c if c.is_ascii_alphanumeric() || c == b'_' || c == b'-' || c == b'.' => {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || b"_.:/-".contains(&bytes[i])) {
                    i += 1;
                }
                out.push((start, Tok::Ident(src[start..i].to_owned())));
            }
            _ => {
                let ch = src[i..].chars().next().unwrap_or('?');
                return Err(err(i, format!("unexpected character {ch:?}")));
            }
        }
    }
    Ok(out)
}

struct Parser<'a> {
    toks: Vec<(usize, Tok)>,
    pos: usize,
    src: &'a str,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(_, t)| t)
    }

    fn offset(&self) -> usize {
        self.toks.get(self.pos).map_or(self.src.len(), |(o, _)| *o)
    }

    fn next(&mut self) -> Option<(usize, Tok)> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn is_keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(s)) if s == word)
    }

    fn expr(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.and()?;
        while self.is_keyword("or") {
            self.pos += 1;
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.unary()?;
        while self.is_keyword("and") {
            self.pos += 1;
            let right = self.unary()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        if self.is_keyword("not") {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if self.peek() == Some(&Tok::LParen) {
            self.pos += 1;
            let inner = self.expr()?;
            let at = self.offset();
            match self.next() {
                Some((_, Tok::RParen)) => return Ok(inner),
                Some((o, t)) => return Err(err(o, format!("expected \")\", found {t}"))),
                None => return Err(err(at, "expected \")\" before the end")),
            }
        }
        self.comparison()
    }

    fn value(&mut self) -> Result<String, ParseError> {
        let at = self.offset();
        match self.next() {
            Some((_, Tok::Str(s))) | Some((_, Tok::Ident(s))) => Ok(s),
            Some((o, t)) => Err(err(o, format!("expected a value, found {t}"))),
            None => Err(err(at, "expected a value before the end")),
        }
    }

    fn comparison(&mut self) -> Result<Expr, ParseError> {
        let at = self.offset();
        let attr = match self.next() {
            Some((_, Tok::Ident(s))) if !matches!(s.as_str(), "and" | "or" | "in" | "exists") => s,
            Some((o, t)) => return Err(err(o, format!("expected an attribute name, found {t}"))),
            None => return Err(err(at, "expected an attribute name before the end")),
        };
        let at = self.offset();
        match self.next() {
            Some((_, Tok::Op(op))) => {
                let value_at = self.offset();
                let value = self.value()?;
                let op = match op {
                    "==" => CmpOp::Eq,
                    "!=" => CmpOp::Ne,
                    ">" => CmpOp::Gt,
                    ">=" => CmpOp::Ge,
                    "<" => CmpOp::Lt,
                    "<=" => CmpOp::Le,
                    _ => {
                        let regex = Regex::new(&value)
                            .map_err(|e| err(value_at, format!("invalid regular expression: {e}")))?;
                        return Ok(Expr::Matches { attr, regex });
                    }
                };
                Ok(Expr::Compare { attr, op, value })
            }
            Some((_, Tok::Ident(w))) if w == "exists" => Ok(Expr::Exists { attr }),
            Some((_, Tok::Ident(w))) if w == "in" => Ok(Expr::In { attr, values: self.list()?, negated: false }),
            Some((o, Tok::Ident(w))) if w == "not" => match self.next() {
                Some((_, Tok::Ident(w))) if w == "in" => Ok(Expr::In { attr, values: self.list()?, negated: true }),
                _ => Err(err(o, "expected \"not in\"")),
            },
            Some((o, t)) => Err(err(o, format!("expected an operator after {attr:?}, found {t}"))),
            None => Err(err(at, format!("expected an operator after {attr:?}"))),
        }
    }

    fn list(&mut self) -> Result<Vec<String>, ParseError> {
        let at = self.offset();
        match self.next() {
            Some((_, Tok::LBracket)) => {}
            Some((o, t)) => return Err(err(o, format!("expected \"[\", found {t}"))),
            None => return Err(err(at, "expected \"[\"")),
        }
        let mut values = vec![self.value()?];
        loop {
            let at = self.offset();
            match self.next() {
                Some((_, Tok::Comma)) => values.push(self.value()?),
                Some((_, Tok::RBracket)) => return Ok(values),
                Some((o, t)) => return Err(err(o, format!("expected \",\" or \"]\", found {t}"))),
                None => return Err(err(at, "expected \"]\" before the end")),
            }
        }
    }
}

impl Expr {
    pub fn parse(src: &str) -> Result<Expr, ParseError> {
        let toks = lex(src)?;
        if toks.is_empty() {
            return Err(err(0, "the expression is empty"));
        }
        let mut p = Parser { toks, pos: 0, src };
        let e = p.expr()?;
        if let Some((o, t)) = p.toks.get(p.pos) {
            return Err(err(*o, format!("unexpected {t} after a complete expression")));
        }
        Ok(e)
    }

    /// Evaluates against a host's attributes.
    pub fn matches(&self, attrs: &BTreeMap<String, String>) -> bool {
        match self {
            Expr::And(a, b) => a.matches(attrs) && b.matches(attrs),
            Expr::Or(a, b) => a.matches(attrs) || b.matches(attrs),
            Expr::Not(a) => !a.matches(attrs),
            Expr::Exists { attr } => attrs.contains_key(attr),
            Expr::Compare { attr, op, value } => attrs.get(attr).is_some_and(|have| compare(have, *op, value)),
            Expr::In { attr, values, negated } => {
                attrs.get(attr).is_some_and(|have| values.iter().any(|v| v == have) != *negated)
            }
            Expr::Matches { attr, regex } => attrs.get(attr).is_some_and(|have| regex.is_match(have)),
        }
    }
}

fn compare(have: &str, op: CmpOp, want: &str) -> bool {
    let ord = match (have.parse::<f64>(), want.parse::<f64>()) {
        (Ok(a), Ok(b)) => a.partial_cmp(&b),
        _ => Some(have.cmp(want)),
    };
    let Some(ord) = ord else { return false };
    use std::cmp::Ordering::*;
    match op {
        CmpOp::Eq => ord == Equal,
        CmpOp::Ne => ord != Equal,
        CmpOp::Gt => ord == Greater,
        CmpOp::Ge => ord != Less,
        CmpOp::Lt => ord == Less,
        CmpOp::Le => ord != Greater,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn evaluates() {
        let h = attrs(&[("os", "linux"), ("arch", "amd64"), ("cores", "16"), ("zone", "eu-1a"), ("host.id", "h1")]);
        let yes = [
            "os == linux",
            "os == 'linux' and arch != arm64",
            "cores > 8 and cores <= 16",
            "cores >= 16",
            "cores < 100",
            "zone in [eu-1a, eu-1b]",
            "zone not in [us-1a]",
            "zone =~ \"^eu-\"",
            "gpu exists or os == linux",
            "not gpu exists",
            "not (os == windows or arch == arm64)",
            "(os == linux) and (zone =~ '1a$')",
            "cores > 9",
        ];
        for e in yes {
            assert!(Expr::parse(e).unwrap_or_else(|x| panic!("{e}: {x}")).matches(&h), "{e}");
        }
        let no = [
            "os == windows",
            "gpu == yes",
            "gpu != yes",
            "cores > 16",
            "zone in [us-1a]",
            "cores < 9",
            "not os exists",
        ];
        for e in no {
            assert!(!Expr::parse(e).unwrap_or_else(|x| panic!("{e}: {x}")).matches(&h), "{e}");
        }
        // Text comparison when either side is not a number.
        assert!(Expr::parse("zone > eu-1").expect("parse").matches(&h));
    }

    #[test]
    fn errors_point_at_the_problem() {
        let cases = [
            ("", 0, "empty"),
            ("os ==", 5, "expected a value"),
            ("os = linux", 3, "unknown operator"),
            ("os == linux and", 15, "expected an attribute"),
            ("(os == linux", 12, "expected \")\""),
            ("os == linux)", 11, "unexpected"),
            ("zone in [a, b", 13, "expected \"]\""),
            ("zone in a", 8, "expected \"[\""),
            ("os == 'linux", 6, "unterminated"),
            ("os =~ '('", 6, "invalid regular expression"),
            ("os linux", 3, "expected an operator"),
            ("os == linux @", 12, "unexpected character"),
            ("zone not [a]", 5, "expected \"not in\""),
        ];
        for (src, pos, msg) in cases {
            let e = Expr::parse(src).expect_err(src);
            assert_eq!(e.position, pos, "{src:?}: {e}");
            assert!(e.message.contains(msg), "{src:?}: {e}");
        }
    }
}
