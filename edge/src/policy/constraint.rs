//! Argument constraints of allow rules: a JSON pointer into a tool call's arguments and what
//! the value there must be (a glob, a path glob, or one of a list).

use serde_json::Value;

use crate::policy::glob::{pattern_accepts, PathGlob};

#[derive(Debug, Clone)]
pub(super) enum Check {
    Pattern(String),
    Path(PathGlob),
    OneOf(Vec<Value>),
}

#[derive(Debug, Clone)]
pub(super) struct Constraint {
    pub(super) pointer: String,
    pub(super) check: Check,
}

impl Constraint {
    pub(super) fn holds(&self, arguments: Option<&Value>) -> bool {
        let Some(value) = arguments.and_then(|a| a.pointer(&self.pointer)) else {
            return false;
        };
        match &self.check {
            Check::Pattern(p) => value.as_str().is_some_and(|s| pattern_accepts(p, s)),
            Check::Path(g) => value.as_str().is_some_and(|s| g.matches(s)),
            Check::OneOf(options) => options.iter().any(|o| scalar_eq(o, value)),
        }
    }
}

pub(super) fn scalar_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(a), Value::String(b)) => a == b,
        (Value::Bool(a), Value::Bool(b)) => a == b,
        (Value::Number(a), Value::Number(b)) => {
            if let (Some(a), Some(b)) = (a.as_i64(), b.as_i64()) {
                a == b
            } else if let (Some(a), Some(b)) = (a.as_u64(), b.as_u64()) {
                a == b
            } else {
                matches!((a.as_f64(), b.as_f64()), (Some(a), Some(b)) if a == b)
            }
        }
        _ => false,
    }
}
