//! The network language's syntax tree, as RON deserializes it (see `zoo/README.md`).

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};

use super::expr::{self, Expr, Value};

/// A whole network file.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Network {
    pub name: String,
    pub input: Image,
    #[serde(default)]
    pub params: BTreeMap<String, Expression>,
    #[serde(default)]
    pub blocks: BTreeMap<String, Block>,
    pub body: Vec<Statement>,
}

/// The network's input, one image per batch item.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Image {
    pub channels: Expression,
    pub height: Expression,
    pub width: Expression,
}

/// A reusable piece of network with parameters.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Block {
    #[serde(default)]
    pub params: Vec<String>,
    pub body: Vec<Statement>,
}

/// Activations that `Conv(act: ..)` can apply.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    Relu,
    Relu6,
    Hardswish,
    Sigmoid,
}

/// `bn: true` (batch norm named by position) or `bn: "bn1"` (named).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Bn {
    #[default]
    Off,
    On,
    Named(String),
}

/// One statement of a body; each reads the current tensor (or `from:`) and makes a new one.
// A file's statements are parsed once and expanded once: the size of the largest variant
// costs nothing worth boxing for.
#[allow(clippy::large_enum_variant)]
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub enum Statement {
    Conv {
        out: Expression,
        kernel: Expression,
        stride: Option<Expression>,
        padding: Option<Expression>,
        dilation: Option<Expression>,
        groups: Option<Expression>,
        bias: Option<Expression>,
        #[serde(default)]
        bn: Bn,
        act: Option<Act>,
        name: Option<String>,
        from: Option<String>,
    },
    BatchNorm {
        eps: Option<Expression>,
        name: Option<String>,
    },
    Relu,
    Relu6,
    Hardswish,
    Sigmoid,
    MaxPool {
        kernel: Expression,
        stride: Option<Expression>,
        padding: Option<Expression>,
    },
    AvgPool {
        kernel: Expression,
        stride: Option<Expression>,
        padding: Option<Expression>,
    },
    GlobalAvgPool,
    Linear {
        out: Expression,
        bias: Option<Expression>,
        name: Option<String>,
    },
    Flatten,
    Softmax,
    Dropout {
        p: Expression,
    },
    Add(Vec<String>),
    Mul(Vec<String>),
    Concat(Vec<String>),
    Split {
        parts: Option<Expression>,
        sizes: Option<Expression>,
        names: Vec<String>,
        from: Option<String>,
    },
    ChannelShuffle {
        groups: Expression,
    },
    Reshape {
        shape: Expression,
    },
    Transpose {
        perm: Expression,
    },
    Sequence {
        name: Option<String>,
        from: Option<String>,
        body: Vec<Statement>,
    },
    Use {
        block: String,
        #[serde(default)]
        with: BTreeMap<String, Expression>,
        name: Option<String>,
        from: Option<String>,
    },
    Repeat {
        times: Expression,
        var: Option<String>,
        body: Vec<Statement>,
    },
    If {
        cond: Expression,
        then: Vec<Statement>,
        #[serde(rename = "else", default)]
        otherwise: Vec<Statement>,
    },
    Stages {
        names: Vec<String>,
        vars: BTreeMap<String, Expression>,
        body: Vec<Statement>,
    },
    Alias {
        name: String,
        from: Option<String>,
    },
}

/// An expression as written: a RON number, bool or list, or a string in the expression
/// language. The text is kept for error messages.
#[derive(Debug, Clone)]
pub struct Expression {
    /// The parsed expression.
    pub expr: Expr,
    /// Its text in the expression language (a RON list `[1, 2]` reads `[1, 2]`, a RON real
    /// `1.0` reads `1.0`), which parses back to `expr`, so it can be passed on as a `--set`
    /// override.
    pub text: String,
}

impl<'de> Deserialize<'de> for Expression {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Expression, D::Error> {
        d.deserialize_any(ExpressionVisitor)
    }
}

struct ExpressionVisitor;

impl ExpressionVisitor {
    fn lit<E>(value: Value) -> Result<Expression, E> {
        Ok(Expression { text: value.to_string(), expr: Expr::Lit(value) })
    }
}

impl<'de> Visitor<'de> for ExpressionVisitor {
    type Value = Expression;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number, a bool, a list, or an expression in a string such as \"c / 2\"")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Expression, E> {
        Self::lit(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Expression, E> {
        Self::lit(Value::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Expression, E> {
        let v = i64::try_from(v).map_err(|_| E::custom(format!("the number {v} is too large")))?;
        Self::lit(Value::Int(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Expression, E> {
        // `1.0` must not read back as the whole number `1`: whole reals keep a decimal point.
        let text = if v.fract() == 0.0 && v.abs() < 1e15 { format!("{v:.1}") } else { v.to_string() };
        Ok(Expression { expr: Expr::Lit(Value::Float(v)), text })
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Expression, E> {
        let expr = expr::parse(v).map_err(E::custom)?;
        Ok(Expression { expr, text: v.to_string() })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Expression, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Expression>()? {
            items.push(item);
        }
        let text = format!("[{}]", items.iter().map(|e| e.text.as_str()).collect::<Vec<_>>().join(", "));
        Ok(Expression { expr: Expr::List(items.into_iter().map(|e| e.expr).collect()), text })
    }
}

impl<'de> Deserialize<'de> for Bn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Bn, D::Error> {
        struct BnVisitor;
        impl Visitor<'_> for BnVisitor {
            type Value = Bn;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true, false, or the batch norm's name as a string")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Bn, E> {
                Ok(if v { Bn::On } else { Bn::Off })
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Bn, E> {
                Ok(Bn::Named(v.to_string()))
            }
        }
        d.deserialize_any(BnVisitor)
    }
}
