//! Label and field selectors, in the API's query syntax.

use serde_json::{Map, Value};

use crate::errors::ApiError;
use crate::util;

#[derive(Clone, Debug, PartialEq)]
enum Op {
    Eq(String),
    NotEq(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    NotExists,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct LabelSelector(Vec<(String, Op)>);

impl LabelSelector {
    pub fn parse(s: &str) -> Result<LabelSelector, ApiError> {
        let mut reqs = Vec::new();
        let mut rest = s.trim();
        while !rest.is_empty() {
            // One requirement, up to the next comma outside parentheses.
            let mut depth = 0;
            let mut end = rest.len();
            for (i, c) in rest.char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    ',' if depth == 0 => {
                        end = i;
                        break;
                    }
                    _ => {}
                }
            }
            let req = rest[..end].trim();
            rest = rest.get(end + 1..).unwrap_or("").trim();
            reqs.push(parse_requirement(req)?);
        }
        Ok(LabelSelector(reqs))
    }

    /// From a `LabelSelector` object (`matchLabels`, `matchExpressions`).
    pub fn from_object(sel: &Value) -> LabelSelector {
        let mut reqs = Vec::new();
        if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
            for (k, v) in m {
                reqs.push((k.clone(), Op::Eq(v.as_str().unwrap_or_default().into())));
            }
        }
        for e in sel
            .get("matchExpressions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let key = util::str_at(e, &["key"]).unwrap_or_default().to_string();
            let values: Vec<String> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            let op = match util::str_at(e, &["operator"]).unwrap_or_default() {
                "In" => Op::In(values),
                "NotIn" => Op::NotIn(values),
                "Exists" => Op::Exists,
                _ => Op::NotExists,
            };
            reqs.push((key, op));
        }
        LabelSelector(reqs)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|(k, op)| match op {
            Op::Eq(v) => get(k) == Some(v.as_str()),
            Op::NotEq(v) => get(k) != Some(v.as_str()),
            Op::In(vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Op::NotIn(vs) => !get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Op::Exists => get(k).is_some(),
            Op::NotExists => get(k).is_none(),
        })
    }

    /// The selector in query syntax (`app=x,tier in (a,b)`), as Scale's
    /// `status.selector` carries it.
    pub fn to_query(&self) -> String {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|(k, op)| match op {
                Op::Eq(v) => format!("{k}={v}"),
                Op::NotEq(v) => format!("{k}!={v}"),
                Op::In(vs) => format!("{k} in ({})", vs.join(",")),
                Op::NotIn(vs) => format!("{k} notin ({})", vs.join(",")),
                Op::Exists => k.clone(),
                Op::NotExists => format!("!{k}"),
            })
            .collect();
        parts.join(",")
    }
}

fn parse_requirement(req: &str) -> Result<(String, Op), ApiError> {
    let bad = || {
        ApiError::bad_request(format!(
            "unable to parse requirement: invalid label selector {req:?}"
        ))
    };
    if let Some(k) = req.strip_prefix('!') {
        return Ok((k.trim().to_string(), Op::NotExists));
    }
    if let Some((k, v)) = req.split_once("!=") {
        return Ok((k.trim().into(), Op::NotEq(v.trim().into())));
    }
    if let Some((k, v)) = req.split_once("==") {
        return Ok((k.trim().into(), Op::Eq(v.trim().into())));
    }
    if let Some((k, v)) = req.split_once('=') {
        return Ok((k.trim().into(), Op::Eq(v.trim().into())));
    }
    for (word, notin) in [(" notin ", true), (" in ", false)] {
        if let Some((k, v)) = req.split_once(word) {
            let v = v.trim();
            let inner = v
                .strip_prefix('(')
                .and_then(|v| v.strip_suffix(')'))
                .ok_or_else(bad)?;
            let vals: Vec<String> = inner
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            let op = if notin { Op::NotIn(vals) } else { Op::In(vals) };
            return Ok((k.trim().into(), op));
        }
    }
    if req.chars().any(|c| c.is_whitespace() || "()<>".contains(c)) {
        return Err(bad());
    }
    Ok((req.to_string(), Op::Exists))
}

#[derive(Clone, Debug, Default)]
pub struct FieldSelector(Vec<(String, bool, String)>);

/// The fields each kind can be selected by, beside `metadata.name` and
/// `metadata.namespace`.
fn supported(kind: &str, field: &str) -> bool {
    matches!(field, "metadata.name" | "metadata.namespace")
        || match kind {
            "Pod" => matches!(
                field,
                "spec.nodeName"
                    | "spec.restartPolicy"
                    | "spec.schedulerName"
                    | "spec.serviceAccountName"
                    | "spec.hostNetwork"
                    | "status.phase"
                    | "status.podIP"
                    | "status.nominatedNodeName"
            ),
            "Node" => field == "spec.unschedulable",
            "Namespace" => field == "status.phase",
            "Secret" => field == "type",
            "ReplicaSet" => field == "status.replicas",
            "Service" => field == "spec.clusterIP" || field == "spec.type",
            _ => false,
        }
}

impl FieldSelector {
    pub fn parse(kind: &str, s: &str) -> Result<FieldSelector, ApiError> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, neg, v) = if let Some((k, v)) = part.split_once("!=") {
                (k, true, v)
            } else if let Some((k, v)) = part.split_once("==") {
                (k, false, v)
            } else if let Some((k, v)) = part.split_once('=') {
                (k, false, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                )));
            };
            let k = k.trim();
            if !supported(kind, k) {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {k}"
                )));
            }
            out.push((k.to_string(), neg, v.trim().to_string()));
        }
        Ok(FieldSelector(out))
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(k, neg, v)| {
            let path: Vec<&str> = k.split('.').collect();
            let actual = match util::at(obj, &path) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Bool(b)) => b.to_string(),
                Some(Value::Number(n)) => n.to_string(),
                _ if k == "spec.unschedulable" || k == "spec.hostNetwork" => "false".into(),
                _ => String::new(),
            };
            (actual == *v) != *neg
        })
    }

    /// The name an exact `metadata.name=` selects, to skip a scan.
    pub fn exact_name(&self) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, neg, _)| k == "metadata.name" && !neg)
            .map(|(_, _, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selectors_match_like_the_api() {
        let l = json!({"app": "web", "tier": "front"});
        let m = l.as_object();
        for (sel, want) in [
            ("app=web", true),
            ("app==web,tier=front", true),
            ("app!=web", false),
            ("tier in (front,back)", true),
            ("tier notin (front)", false),
            ("app", true),
            ("!app", false),
            ("missing", false),
            ("!missing", true),
            ("", true),
        ] {
            assert_eq!(LabelSelector::parse(sel).unwrap().matches(m), want, "{sel}");
        }
    }

    #[test]
    fn unsupported_field_labels_are_refused() {
        let e = FieldSelector::parse("Deployment", "spec.replicas=1").unwrap_err();
        assert_eq!(e.code, 400);
        assert_eq!(e.message, "field label not supported: spec.replicas");
        let f = FieldSelector::parse("Pod", "status.phase!=Running,metadata.name=x").unwrap();
        assert!(f.matches(&json!({"metadata": {"name": "x"}, "status": {"phase": "Pending"}})));
    }
}
