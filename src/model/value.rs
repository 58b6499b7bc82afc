use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use super::ResourceId;

pub type Props = BTreeMap<String, Value>;

/// A reference to another resource, resolved to its physical id at apply time.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Ref {
    #[serde(rename = "ref")]
    pub target: ResourceId,
}

/// A property value. Lists are compared as sets (order never matters for the
/// kinds scopectl manages), so they are kept sorted.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(untagged)]
pub enum Value {
    Bool(bool),
    Int(i64),
    Str(String),
    List(Vec<Value>),
    Ref(Ref),
    Map(BTreeMap<String, Value>),
}

impl Value {
    pub fn str(s: impl Into<String>) -> Self {
        Value::Str(s.into())
    }

    pub fn reference(id: &ResourceId) -> Self {
        Value::Ref(Ref { target: id.clone() })
    }

    pub fn list(mut items: Vec<Value>) -> Self {
        items.sort();
        items.dedup();
        Value::List(items)
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_list(&self) -> &[Value] {
        match self {
            Value::List(l) => l,
            _ => &[],
        }
    }

    pub fn as_map(&self) -> Option<&BTreeMap<String, Value>> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    pub(super) fn refs(&self, out: &mut BTreeSet<ResourceId>) {
        match self {
            Value::Ref(r) => {
                out.insert(r.target.clone());
            }
            Value::List(l) => l.iter().for_each(|v| v.refs(out)),
            Value::Map(m) => m.values().for_each(|v| v.refs(out)),
            _ => {}
        }
    }

    pub fn strings<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Value::Str(s) => out.push(s),
            Value::List(l) => l.iter().for_each(|v| v.strings(out)),
            Value::Map(m) => m.values().for_each(|v| v.strings(out)),
            _ => {}
        }
    }

    /// Replaces references by physical ids. `None` when a target has no id
    /// yet (it is created or replaced by the same plan).
    pub fn resolve(&self, lookup: &dyn Fn(&ResourceId) -> Option<String>) -> Option<Value> {
        Some(match self {
            Value::Ref(r) => Value::Str(lookup(&r.target)?),
            Value::List(l) => {
                let mut items = l
                    .iter()
                    .map(|v| v.resolve(lookup))
                    .collect::<Option<Vec<_>>>()?;
                // Resolved references sort anew (sets of ids); a list
                // without any keeps its order (a container's args).
                if l.iter().any(|v| matches!(v, Value::Ref(_))) {
                    items.sort();
                }
                Value::List(items)
            }
            Value::Map(m) => Value::Map(
                m.iter()
                    .map(|(k, v)| Some((k.clone(), v.resolve(lookup)?)))
                    .collect::<Option<_>>()?,
            ),
            other => other.clone(),
        })
    }
}

impl Value {
    /// Like [`Value::resolve`], but keeps references that have no id yet.
    pub fn resolve_partial(&self, lookup: &dyn Fn(&ResourceId) -> Option<String>) -> Value {
        match self {
            Value::Ref(r) => lookup(&r.target)
                .map(Value::Str)
                .unwrap_or_else(|| self.clone()),
            Value::List(l) if l.iter().any(|v| matches!(v, Value::Ref(_))) => {
                Value::list(l.iter().map(|v| v.resolve_partial(lookup)).collect())
            }
            Value::List(l) => Value::List(l.iter().map(|v| v.resolve_partial(lookup)).collect()),
            Value::Map(m) => Value::Map(
                m.iter()
                    .map(|(k, v)| (k.clone(), v.resolve_partial(lookup)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Ref(r) => write!(f, "{}", r.target),
            Value::List(l) => {
                f.write_str("[")?;
                for (i, v) in l.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
            Value::Map(m) => {
                f.write_str("{ ")?;
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k} = {v}")?;
                }
                f.write_str(" }")
            }
        }
    }
}
