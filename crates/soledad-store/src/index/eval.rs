//! Evaluating index expressions against a document (u1db's getters).

use serde_json::Value;

use super::expr::Expr;

/// An intermediate value: what a field yields before it becomes an index key.
#[derive(Debug, Clone, PartialEq)]
enum Scalar {
    Str(String),
    Int(serde_json::Number),
    Float(serde_json::Number),
    Bool(bool),
}

impl Scalar {
    fn from_json(value: &Value) -> Option<Self> {
        match value {
            Value::String(s) => Some(Self::Str(s.clone())),
            Value::Number(n) if n.is_i64() || n.is_u64() => Some(Self::Int(n.clone())),
            Value::Number(n) => Some(Self::Float(n.clone())),
            Value::Bool(b) => Some(Self::Bool(*b)),
            Value::Null | Value::Array(_) | Value::Object(_) => None,
        }
    }

    /// The key text stored in the index (as u1db's SQLite backend stored it:
    /// text as is, numbers in decimal, booleans as 1/0).
    fn into_key(self) -> String {
        match self {
            Self::Str(s) => s,
            Self::Int(n) | Self::Float(n) => n.to_string(),
            Self::Bool(b) => if b { "1" } else { "0" }.to_owned(),
        }
    }
}

/// u1db `extract_field`: follows the dotted path through objects, and through
/// lists at any level; the final value yields scalars (a list yields its scalar
/// items).
fn extract(value: &Value, path: &[String], out: &mut Vec<Scalar>) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    let Value::Object(map) = value else {
        return;
    };
    let Some(found) = map.get(first) else {
        return;
    };
    if rest.is_empty() {
        match found {
            Value::Array(items) => out.extend(items.iter().filter_map(Scalar::from_json)),
            other => out.extend(Scalar::from_json(other)),
        }
        return;
    }
    match found {
        Value::Array(items) => {
            for item in items {
                extract(item, rest, out);
            }
        }
        Value::Object(_) => extract(found, rest, out),
        _ => {}
    }
}

fn eval(expr: &Expr, doc: &Value) -> Vec<Scalar> {
    match expr {
        Expr::Field(path) => {
            let mut out = Vec::new();
            extract(doc, path, &mut out);
            out
        }
        Expr::Lower(inner) => eval(inner, doc)
            .into_iter()
            .filter_map(|v| match v {
                Scalar::Str(s) => Some(Scalar::Str(s.to_lowercase())),
                _ => None,
            })
            .collect(),
        Expr::Number(inner, width) => eval(inner, doc)
            .into_iter()
            .filter_map(|v| match v {
                Scalar::Int(n) => Some(Scalar::Str(format!(
                    "{:0width$}",
                    IntText(&n),
                    width = *width
                ))),
                _ => None,
            })
            .collect(),
        Expr::Bool(inner) => eval(inner, doc)
            .into_iter()
            .filter_map(|v| match v {
                Scalar::Bool(b) => Some(Scalar::Str(if b { "1" } else { "0" }.to_owned())),
                _ => None,
            })
            .collect(),
        Expr::SplitWords(inner) => {
            let mut words: Vec<Scalar> = Vec::new();
            for value in eval(inner, doc) {
                if let Scalar::Str(s) = value {
                    for word in s.split_whitespace() {
                        let word = Scalar::Str(word.to_owned());
                        if !words.contains(&word) {
                            words.push(word);
                        }
                    }
                }
            }
            words
        }
        Expr::Combine(inners) => inners.iter().flat_map(|inner| eval(inner, doc)).collect(),
        Expr::IsNull(inner) => vec![Scalar::Bool(eval(inner, doc).is_empty())],
    }
}

/// Zero-padding that matches Python's `"%0Nd" % n` for negative numbers too.
struct IntText<'a>(&'a serde_json::Number);

impl std::fmt::Display for IntText<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(n) = self.0.as_i64() {
            std::fmt::Display::fmt(&n, f)
        } else if let Some(n) = self.0.as_u64() {
            std::fmt::Display::fmt(&n, f)
        } else {
            std::fmt::Display::fmt(self.0, f)
        }
    }
}

/// The distinct index keys `expr` yields for `doc`.
pub(crate) fn keys(expr: &Expr, doc: &Value) -> Vec<String> {
    let mut keys: Vec<String> = eval(expr, doc).into_iter().map(Scalar::into_key).collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::super::expr::parse;
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn k(expr: &str, doc: &Value) -> Vec<String> {
        keys(&parse(expr).unwrap(), doc)
    }

    #[test]
    fn u1db_getter_cases() {
        let doc = json!({
            "name": "Foo Bar", "n": 12, "neg": -3, "f": 1.5, "t": true, "nil": null,
            "list": ["a", {"x": 1}, ["nested"], "b", 7],
            "sub": {"name": "Inner", "deep": {"v": "x"}},
            "people": [{"name": "Ann"}, {"name": "Bob"}, {"other": 1}, "str"],
        });
        assert_eq!(k("name", &doc), ["Foo Bar"]);
        assert_eq!(k("lower(name)", &doc), ["foo bar"]);
        assert_eq!(k("split_words(name)", &doc), ["Bar", "Foo"]);
        assert_eq!(k("lower(split_words(name))", &doc), ["bar", "foo"]);
        assert_eq!(k("number(n, 5)", &doc), ["00012"]);
        assert_eq!(k("number(neg, 5)", &doc), ["-0003"]);
        assert_eq!(k("number(name, 5)", &doc), Vec::<String>::new());
        assert_eq!(k("number(t, 5)", &doc), Vec::<String>::new());
        assert_eq!(k("number(f, 5)", &doc), Vec::<String>::new());
        assert_eq!(k("bool(t)", &doc), ["1"]);
        assert_eq!(k("bool(n)", &doc), Vec::<String>::new());
        assert_eq!(k("n", &doc), ["12"]);
        assert_eq!(k("t", &doc), ["1"]);
        assert_eq!(k("nil", &doc), Vec::<String>::new());
        assert_eq!(k("missing", &doc), Vec::<String>::new());
        assert_eq!(k("list", &doc), ["7", "a", "b"]);
        assert_eq!(k("sub", &doc), Vec::<String>::new());
        assert_eq!(k("sub.name", &doc), ["Inner"]);
        assert_eq!(k("sub.deep.v", &doc), ["x"]);
        assert_eq!(k("name.sub", &doc), Vec::<String>::new());
        assert_eq!(k("people.name", &doc), ["Ann", "Bob"]);
        assert_eq!(
            k("combine(sub.name, people.name)", &doc),
            ["Ann", "Bob", "Inner"]
        );
        assert_eq!(k("is_null(missing)", &doc), ["1"]);
        assert_eq!(k("is_null(nil)", &doc), ["1"]);
        assert_eq!(k("is_null(name)", &doc), ["0"]);
    }

    proptest! {
        #[test]
        fn keys_never_panic(expr in "(lower|split_words|bool|is_null)\\((a|a\\.b|b)\\)", s in ".{0,20}", n in any::<i64>()) {
            let doc = json!({"a": s, "b": n, "c": [s, n]});
            let _ = keys(&parse(&expr).unwrap(), &doc);
        }
    }
}
