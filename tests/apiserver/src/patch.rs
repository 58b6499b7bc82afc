//! JSON patch (RFC 6902), JSON merge patch (RFC 7386) and strategic merge
//! patch (lists merged by their patch merge key, `$patch`, `$retainKeys`,
//! `$deleteFromPrimitiveList`, `$setElementOrder`).

use serde_json::{Map, Value};

use crate::errors::ApiError;

pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            let t = target.as_object_mut().expect("object");
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

fn pointer_tokens(p: &str) -> Result<Vec<String>, ApiError> {
    if p.is_empty() {
        return Ok(Vec::new());
    }
    let rest = p
        .strip_prefix('/')
        .ok_or_else(|| ApiError::bad_request(format!("invalid JSON pointer {p:?}")))?;
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn parent_mut<'a>(
    doc: &'a mut Value,
    tokens: &[String],
    path: &str,
) -> Result<&'a mut Value, ApiError> {
    let mut cur = doc;
    for t in tokens {
        cur = match cur {
            Value::Object(m) => m.get_mut(t),
            Value::Array(a) => t.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
            _ => None,
        }
        .ok_or_else(|| missing(path))?;
    }
    Ok(cur)
}

fn missing(path: &str) -> ApiError {
    ApiError::new(
        422,
        "Invalid",
        format!("the server rejected our request due to an error in our request: replace operation does not apply: doc is missing path: {path:?}"),
    )
}

fn add(doc: &mut Value, path: &str, value: Value, replace: bool) -> Result<(), ApiError> {
    let tokens = pointer_tokens(path)?;
    let Some((last, parent)) = tokens.split_last() else {
        *doc = value;
        return Ok(());
    };
    match parent_mut(doc, parent, path)? {
        Value::Object(m) => {
            if replace && !m.contains_key(last) {
                return Err(missing(path));
            }
            m.insert(last.clone(), value);
        }
        Value::Array(a) => {
            if last == "-" && !replace {
                a.push(value);
            } else {
                let i: usize = last.parse().map_err(|_| missing(path))?;
                if replace {
                    *a.get_mut(i).ok_or_else(|| missing(path))? = value;
                } else if i <= a.len() {
                    a.insert(i, value);
                } else {
                    return Err(missing(path));
                }
            }
        }
        _ => return Err(missing(path)),
    }
    Ok(())
}

fn take(doc: &mut Value, path: &str) -> Result<Value, ApiError> {
    let tokens = pointer_tokens(path)?;
    let (last, parent) = tokens.split_last().ok_or_else(|| missing(path))?;
    match parent_mut(doc, parent, path)? {
        Value::Object(m) => m.remove(last).ok_or_else(|| missing(path)),
        Value::Array(a) => {
            let i: usize = last.parse().map_err(|_| missing(path))?;
            if i < a.len() {
                Ok(a.remove(i))
            } else {
                Err(missing(path))
            }
        }
        _ => Err(missing(path)),
    }
}

pub fn json_patch(doc: &mut Value, ops: &Value) -> Result<(), ApiError> {
    let ops = ops
        .as_array()
        .ok_or_else(|| ApiError::bad_request("a JSON patch must be an array of operations"))?;
    for op in ops {
        let path = op.get("path").and_then(Value::as_str).unwrap_or_default();
        let value = || {
            op.get("value")
                .cloned()
                .ok_or_else(|| ApiError::bad_request("missing value"))
        };
        match op.get("op").and_then(Value::as_str).unwrap_or_default() {
            "add" => add(doc, path, value()?, false)?,
            "replace" => add(doc, path, value()?, true)?,
            "remove" => {
                take(doc, path)?;
            }
            "move" => {
                let from = op.get("from").and_then(Value::as_str).unwrap_or_default();
                let v = take(doc, from)?;
                add(doc, path, v, false)?;
            }
            "copy" => {
                let from = op.get("from").and_then(Value::as_str).unwrap_or_default();
                let v = doc.pointer(from).cloned().ok_or_else(|| missing(from))?;
                add(doc, path, v, false)?;
            }
            "test" => {
                if doc.pointer(path) != Some(&value()?) {
                    return Err(ApiError::new(
                        422,
                        "Invalid",
                        format!("the server rejected our request due to an error in our request: testing value {path} failed"),
                    ));
                }
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "unexpected operation {other:?}"
                )))
            }
        }
    }
    Ok(())
}

/// The patch merge key of a list (by field names along the path), or
/// `Some("")` for a list of primitives merged as a set.
fn merge_key(kind: &str, names: &[&str]) -> Option<&'static str> {
    let n = names.len();
    let last = names.last().copied().unwrap_or_default();
    let prev = if n >= 2 { names[n - 2] } else { "" };
    let in_container = matches!(
        prev,
        "containers" | "initContainers" | "ephemeralContainers"
    );
    match last {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "imagePullSecrets" => Some("name"),
        "env" if in_container => Some("name"),
        "ports" if kind == "Service" => Some("port"),
        "ports" if in_container => Some("containerPort"),
        "volumeMounts" => Some("mountPath"),
        "conditions" => Some("type"),
        "ownerReferences" => Some("uid"),
        "hostAliases" => Some("ip"),
        "topologySpreadConstraints" => Some("topologyKey"),
        "finalizers" => Some(""),
        _ => None,
    }
}

fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(
            a.iter()
                .filter(|x| x.get("$patch").is_none())
                .map(strip_directives)
                .collect(),
        ),
        other => other.clone(),
    }
}

pub fn strategic_merge_patch(
    kind: &str,
    target: &mut Value,
    patch: &Value,
) -> Result<(), ApiError> {
    smp(kind, target, patch, &mut Vec::new())
}

fn smp<'a>(
    kind: &str,
    target: &mut Value,
    patch: &'a Value,
    names: &mut Vec<&'a str>,
) -> Result<(), ApiError> {
    let Some(p) = patch.as_object() else {
        *target = patch.clone();
        return Ok(());
    };
    match p.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            *target = strip_directives(patch);
            return Ok(());
        }
        Some("delete") => {
            *target = Value::Object(Map::new());
            return Ok(());
        }
        _ => {}
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    for (k, pv) in p {
        if k.starts_with("$setElementOrder/") || k == "$patch" || k == "$retainKeys" {
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            let t = target.as_object_mut().expect("object");
            if let (Some(Value::Array(items)), Some(del)) = (t.get_mut(field), pv.as_array()) {
                items.retain(|x| !del.contains(x));
            }
            continue;
        }
        let t = target.as_object_mut().expect("object");
        if pv.is_null() {
            t.remove(k);
            continue;
        }
        names.push(k.as_str());
        match pv {
            Value::Object(inner) => {
                if inner.get("$patch").and_then(Value::as_str) == Some("delete") {
                    t.remove(k);
                } else {
                    let slot = t.entry(k.clone()).or_insert(Value::Null);
                    if slot.is_object() {
                        smp(kind, slot, pv, names)?;
                    } else {
                        *slot = strip_directives(pv);
                    }
                }
            }
            Value::Array(items) => {
                let slot = t.entry(k.clone()).or_insert(Value::Array(Vec::new()));
                merge_list(kind, slot, items, names)?;
            }
            other => {
                t.insert(k.clone(), other.clone());
            }
        }
        names.pop();
    }
    if let Some(Value::Array(keep)) = p.get("$retainKeys") {
        let keep: Vec<&str> = keep.iter().filter_map(Value::as_str).collect();
        if let Some(t) = target.as_object_mut() {
            t.retain(|k, _| keep.contains(&k.as_str()));
        }
    }
    Ok(())
}

fn merge_list<'a>(
    kind: &str,
    slot: &mut Value,
    items: &'a [Value],
    names: &mut Vec<&'a str>,
) -> Result<(), ApiError> {
    let replace_all = items
        .iter()
        .any(|x| x.get("$patch").and_then(Value::as_str) == Some("replace"));
    let key = merge_key(kind, names);
    if replace_all || key.is_none() || !slot.is_array() {
        *slot = strip_directives(&Value::Array(items.to_vec()));
        return Ok(());
    }
    let key = key.unwrap_or_default();
    let list = slot.as_array_mut().expect("array");
    if key.is_empty() {
        for x in items {
            if !list.contains(x) {
                list.push(x.clone());
            }
        }
        return Ok(());
    }
    for item in items {
        let k = item.get(key).cloned().unwrap_or(Value::Null);
        let pos = list.iter().position(|x| x.get(key) == Some(&k));
        if item.get("$patch").and_then(Value::as_str) == Some("delete") {
            if let Some(i) = pos {
                list.remove(i);
            }
            continue;
        }
        match pos {
            Some(i) => smp(kind, &mut list[i], item, names)?,
            None => list.push(strip_directives(item)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_merge_merges_containers_by_name() {
        let mut d = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
            {"name": "b", "image": "b:1"}
        ]}}}});
        let p = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
        "containers": [
            {"name": "a", "image": "a:2", "env": [{"name": "Y", "value": "2"}]},
            {"name": "b", "$patch": "delete"}
        ]}}}});
        strategic_merge_patch("Deployment", &mut d, &p).unwrap();
        let c = &d["spec"]["template"]["spec"]["containers"];
        assert_eq!(c.as_array().unwrap().len(), 1);
        assert_eq!(c[0]["image"], "a:2");
        assert_eq!(c[0]["env"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn json_patch_replace_needs_the_path() {
        let mut d = json!({"metadata": {"annotations": {"a": "1"}}});
        json_patch(
            &mut d,
            &json!([{"op": "replace", "path": "/metadata/annotations", "value": {"b": "2"}}]),
        )
        .unwrap();
        assert_eq!(d["metadata"]["annotations"], json!({"b": "2"}));
        let e = json_patch(
            &mut d,
            &json!([{"op": "replace", "path": "/spec/x", "value": 1}]),
        )
        .unwrap_err();
        assert_eq!(e.code, 422);
        json_patch(&mut d, &json!([{"op": "add", "path": "/metadata/labels", "value": {}}, {"op": "add", "path": "/metadata/labels/a~1b", "value": "c"}])).unwrap();
        assert_eq!(d["metadata"]["labels"]["a/b"], "c");
    }

    #[test]
    fn merge_patch_removes_nulls() {
        let mut d = json!({"a": {"b": 1, "c": 2}, "l": [1, 2]});
        merge_patch(&mut d, &json!({"a": {"b": null}, "l": [3]}));
        assert_eq!(d, json!({"a": {"c": 2}, "l": [3]}));
    }
}
