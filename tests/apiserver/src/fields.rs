//! Field ownership: field sets, `managedFields` (FieldsV1), and server-side
//! apply's merge, conflicts and removal.
//!
//! The schema is what the listed kinds need: associative lists are merged
//! by their keys (containers, env, volumes and pull secrets by name; container
//! ports by `containerPort` and `protocol`; Service ports by `port` and
//! `protocol`; volume mounts by `mountPath`; conditions by `type`; owner
//! references by `uid`), `finalizers` is a set, a workload's `spec.selector`
//! is atomic, every other list is atomic and every other map granular.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use crate::errors::ApiError;
use crate::kinds::Kind;
use crate::util;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PE {
    /// `f:name`
    Field(String),
    /// `k:{"name":"x"}`: an item of an associative list, by its keys.
    Key(String),
    /// `v:"x"`: an item of a set.
    Val(String),
    /// `i:0`
    Index(usize),
}

pub type Path = Vec<PE>;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ListType {
    Atomic,
    Map(&'static [&'static str]),
    Set,
}

/// The list type at a path of field names (list items skipped).
pub fn list_type(kind: &str, names: &[&str]) -> ListType {
    let n = names.len();
    let last = names.last().copied().unwrap_or_default();
    let prev = if n >= 2 { names[n - 2] } else { "" };
    let in_container = matches!(
        prev,
        "containers" | "initContainers" | "ephemeralContainers"
    );
    match last {
        "containers" | "initContainers" | "ephemeralContainers" => ListType::Map(&["name"]),
        "env" if in_container => ListType::Map(&["name"]),
        "ports" if kind == "Service" && names == ["spec", "ports"] => {
            ListType::Map(&["port", "protocol"])
        }
        "ports" if in_container => ListType::Map(&["containerPort", "protocol"]),
        "volumeMounts" => ListType::Map(&["mountPath"]),
        "volumeDevices" => ListType::Map(&["devicePath"]),
        "volumes" | "imagePullSecrets" => ListType::Map(&["name"]),
        "conditions" if prev == "status" => ListType::Map(&["type"]),
        "ownerReferences" if prev == "metadata" => ListType::Map(&["uid"]),
        "finalizers" if prev == "metadata" => ListType::Set,
        "hostAliases" => ListType::Map(&["ip"]),
        "topologySpreadConstraints" => ListType::Map(&["topologyKey", "whenUnsatisfiable"]),
        _ => ListType::Atomic,
    }
}

/// A map owned as a whole (a workload's label selector).
fn atomic_map(kind: &str, names: &[&str]) -> bool {
    names == ["spec", "selector"] && kind != "Service"
}

/// A key field's value in an item, with the schema's default.
fn key_value(item: &Value, key: &str) -> Value {
    match item.get(key) {
        Some(v) => v.clone(),
        None if key == "protocol" => json!("TCP"),
        None => Value::Null,
    }
}

fn item_key(item: &Value, keys: &[&str]) -> String {
    let mut m = Map::new();
    for k in keys {
        m.insert((*k).to_string(), key_value(item, k));
    }
    util::canonical(&Value::Object(m))
}

/// Which fields of an object count.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scope {
    /// Everything but status (for a kind with a status subresource).
    Main,
    /// Status only.
    Status,
    /// Everything (a kind without a status subresource).
    All,
}

impl Scope {
    pub fn of(kind: &Kind, subresource: Option<&str>) -> Scope {
        match subresource {
            Some("status") => Scope::Status,
            _ if kind.status => Scope::Main,
            _ => Scope::All,
        }
    }
}

const META_IGNORED: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

#[derive(Clone, Debug, Default, PartialEq)]
pub struct FieldSet(pub BTreeSet<Path>);

impl FieldSet {
    /// Every leaf and list item of `obj` in `scope`.
    pub fn of(kind: &str, obj: &Value, scope: Scope) -> FieldSet {
        let mut out = BTreeSet::new();
        if let Some(m) = obj.as_object() {
            for (k, v) in m {
                let take = match k.as_str() {
                    "apiVersion" | "kind" => false,
                    "status" => scope != Scope::Main,
                    _ => scope != Scope::Status,
                };
                if !take {
                    continue;
                }
                if k == "metadata" {
                    for (mk, mv) in v.as_object().into_iter().flatten() {
                        if META_IGNORED.contains(&mk.as_str()) {
                            continue;
                        }
                        let mut path = vec![PE::Field("metadata".into()), PE::Field(mk.clone())];
                        let mut names = vec!["metadata", mk.as_str()];
                        walk(kind, mv, &mut path, &mut names, &mut out);
                    }
                    continue;
                }
                let mut path = vec![PE::Field(k.clone())];
                let mut names = vec![k.as_str()];
                walk(kind, v, &mut path, &mut names, &mut out);
            }
        }
        FieldSet(out)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, p: &Path) -> bool {
        self.0.contains(p)
    }

    /// `p` or anything under it.
    pub fn covers(&self, p: &Path) -> bool {
        self.0
            .range(p.clone()..)
            .next()
            .is_some_and(|q| q.starts_with(p))
    }

    /// Leaves: paths with nothing under them in this set.
    pub fn is_leaf(&self, p: &Path) -> bool {
        let mut it = self.0.range(p.clone()..);
        it.next();
        !it.next().is_some_and(|q| q.starts_with(p))
    }

    pub fn to_fields_v1(&self) -> Value {
        let mut root = Map::new();
        for p in &self.0 {
            let mut node = &mut root;
            for pe in p {
                node = node
                    .entry(encode(pe))
                    .or_insert_with(|| Value::Object(Map::new()))
                    .as_object_mut()
                    .expect("object");
            }
            // An item that has children is marked with ".".
            let is_item = matches!(p.last(), Some(PE::Key(_)) | Some(PE::Index(_)));
            if is_item && self.covers_strictly(p) {
                node.insert(".".into(), json!({}));
            }
        }
        Value::Object(root)
    }

    fn covers_strictly(&self, p: &Path) -> bool {
        !self.is_leaf(p)
    }

    pub fn from_fields_v1(v: &Value) -> FieldSet {
        fn walk(node: &Map<String, Value>, path: &mut Path, out: &mut BTreeSet<Path>) {
            for (k, child) in node {
                if k == "." {
                    out.insert(path.clone());
                    continue;
                }
                let Some(pe) = decode(k) else { continue };
                path.push(pe);
                match child.as_object() {
                    Some(m) if !m.is_empty() => walk(m, path, out),
                    _ => {
                        out.insert(path.clone());
                    }
                }
                path.pop();
            }
        }
        let mut out = BTreeSet::new();
        if let Some(m) = v.as_object() {
            walk(m, &mut Vec::new(), &mut out);
        }
        FieldSet(out)
    }
}

fn walk<'a>(
    kind: &str,
    v: &'a Value,
    path: &mut Path,
    names: &mut Vec<&'a str>,
    out: &mut BTreeSet<Path>,
) {
    match v {
        Value::Object(m) if !m.is_empty() && !atomic_map(kind, names) => {
            for (k, child) in m {
                path.push(PE::Field(k.clone()));
                names.push(k.as_str());
                walk(kind, child, path, names, out);
                names.pop();
                path.pop();
            }
        }
        Value::Array(items) => match list_type(kind, names) {
            ListType::Atomic => {
                out.insert(path.clone());
            }
            ListType::Set => {
                for item in items {
                    path.push(PE::Val(util::canonical(item)));
                    out.insert(path.clone());
                    path.pop();
                }
            }
            ListType::Map(keys) => {
                for item in items {
                    path.push(PE::Key(item_key(item, keys)));
                    out.insert(path.clone());
                    if let Some(m) = item.as_object() {
                        for (k, child) in m {
                            path.push(PE::Field(k.clone()));
                            names.push(k.as_str());
                            walk(kind, child, path, names, out);
                            names.pop();
                            path.pop();
                        }
                    }
                    path.pop();
                }
            }
        },
        _ => {
            out.insert(path.clone());
        }
    }
}

fn encode(pe: &PE) -> String {
    match pe {
        PE::Field(f) => format!("f:{f}"),
        PE::Key(k) => format!("k:{k}"),
        PE::Val(v) => format!("v:{v}"),
        PE::Index(i) => format!("i:{i}"),
    }
}

fn decode(s: &str) -> Option<PE> {
    let (p, rest) = s.split_at_checked(2)?;
    Some(match p {
        "f:" => PE::Field(rest.into()),
        "k:" => PE::Key(util::canonical(&serde_json::from_str(rest).ok()?)),
        "v:" => PE::Val(util::canonical(&serde_json::from_str(rest).ok()?)),
        "i:" => PE::Index(rest.parse().ok()?),
        _ => return None,
    })
}

/// A path the way conflicts name it: `.spec.template.spec.containers[name="c"].image`.
pub fn display(p: &Path) -> String {
    let mut s = String::new();
    for pe in p {
        match pe {
            PE::Field(f) => {
                s.push('.');
                s.push_str(f);
            }
            PE::Key(k) => {
                let m: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
                let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v}")).collect();
                s.push_str(&format!("[{}]", parts.join(",")));
            }
            PE::Val(v) => s.push_str(&format!("[={v}]")),
            PE::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

fn find_item<'a>(items: &'a [Value], pe: &PE) -> Option<(usize, &'a Value)> {
    match pe {
        PE::Key(k) => {
            let want: Map<String, Value> = serde_json::from_str(k).ok()?;
            let keys: Vec<&str> = want.keys().map(String::as_str).collect();
            items
                .iter()
                .enumerate()
                .find(|(_, it)| item_key(it, &keys) == *k)
        }
        PE::Val(v) => items
            .iter()
            .enumerate()
            .find(|(_, it)| util::canonical(it) == *v),
        PE::Index(i) => items.get(*i).map(|it| (*i, it)),
        PE::Field(_) => None,
    }
}

pub fn value_at<'a>(obj: &'a Value, p: &Path) -> Option<&'a Value> {
    let mut cur = obj;
    for pe in p {
        cur = match (pe, cur) {
            (PE::Field(f), Value::Object(m)) => m.get(f)?,
            (_, Value::Array(items)) => find_item(items, pe)?.1,
            _ => return None,
        };
    }
    Some(cur)
}

pub fn remove_at(obj: &mut Value, p: &Path) {
    let Some((last, parent)) = p.split_last() else {
        return;
    };
    let mut cur = obj;
    for pe in parent {
        let next = match (pe, cur) {
            (PE::Field(f), Value::Object(m)) => m.get_mut(f),
            (_, Value::Array(items)) => match find_item(items, pe).map(|(i, _)| i) {
                Some(i) => items.get_mut(i),
                None => None,
            },
            _ => None,
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    match (last, cur) {
        (PE::Field(f), Value::Object(m)) => {
            m.remove(f);
        }
        (_, Value::Array(items)) => {
            if let Some((i, _)) = find_item(items, last) {
                items.remove(i);
            }
        }
        _ => {}
    }
}

/// A key field of a list item (`name` under `k:{"name":…}`).
fn is_key_field(p: &Path) -> bool {
    let n = p.len();
    match (n.checked_sub(2).map(|i| &p[i]), p.last()) {
        (Some(PE::Key(k)), Some(PE::Field(f))) => {
            serde_json::from_str::<Map<String, Value>>(k).is_ok_and(|m| m.contains_key(f))
        }
        _ => false,
    }
}

/// Merges an applied configuration into the live object: maps field by
/// field, associative lists item by item (by key), everything else replaced.
pub fn merge(kind: &str, live: &mut Value, applied: &Value) {
    fn go<'a>(kind: &str, live: &mut Value, applied: &'a Value, names: &mut Vec<&'a str>) {
        match (live, applied) {
            (Value::Object(l), Value::Object(a)) if !atomic_map(kind, names) => {
                for (k, av) in a {
                    if av.is_null() {
                        l.remove(k);
                        continue;
                    }
                    names.push(k.as_str());
                    match l.get_mut(k) {
                        Some(lv) => go(kind, lv, av, names),
                        None => {
                            l.insert(k.clone(), av.clone());
                        }
                    }
                    names.pop();
                }
            }
            (Value::Array(l), Value::Array(a)) => match list_type(kind, names) {
                ListType::Map(keys) => {
                    for item in a {
                        let key = item_key(item, keys);
                        match l.iter_mut().find(|it| item_key(it, keys) == key) {
                            Some(existing) => go(kind, existing, item, names),
                            None => l.push(item.clone()),
                        }
                    }
                }
                ListType::Set => {
                    for item in a {
                        if !l.contains(item) {
                            l.push(item.clone());
                        }
                    }
                }
                ListType::Atomic => *l = a.clone(),
            },
            (live, applied) => *live = applied.clone(),
        }
    }
    go(kind, live, applied, &mut Vec::new());
}

#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub time: String,
    pub subresource: Option<String>,
    pub set: FieldSet,
}

impl Entry {
    fn same_owner(&self, manager: &str, operation: &str, sub: Option<&str>) -> bool {
        self.manager == manager && self.operation == operation && self.subresource.as_deref() == sub
    }
}

pub fn entries(obj: &Value) -> Vec<Entry> {
    util::at(obj, &["metadata", "managedFields"])
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|e| Entry {
            manager: util::str_at(e, &["manager"]).unwrap_or_default().into(),
            operation: util::str_at(e, &["operation"]).unwrap_or("Update").into(),
            api_version: util::str_at(e, &["apiVersion"]).unwrap_or_default().into(),
            time: util::str_at(e, &["time"]).unwrap_or_default().into(),
            subresource: util::str_at(e, &["subresource"]).map(str::to_string),
            set: e
                .get("fieldsV1")
                .map(FieldSet::from_fields_v1)
                .unwrap_or_default(),
        })
        .collect()
}

pub fn write_entries(obj: &mut Value, entries: &[Entry]) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.set.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": e.set.to_fields_v1(),
            });
            if let Some(s) = &e.subresource {
                v["subresource"] = json!(s);
            }
            v
        })
        .collect();
    let meta = util::obj_mut(obj, &["metadata"]);
    if list.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert("managedFields".into(), Value::Array(list));
    }
}

/// Drops from every entry the paths `obj` no longer has.
fn prune_absent(entries: &mut [Entry], obj: &Value) {
    for e in entries.iter_mut() {
        e.set.0.retain(|p| value_at(obj, p).is_some());
    }
}

/// Records a non-apply write (create, update, patch) by `manager`: it
/// takes the fields whose value it changed; fields that are gone are
/// nobody's. The entries come from `old` (what a client sends is ignored).
#[allow(clippy::too_many_arguments)]
pub fn track_update(
    kind: &Kind,
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    subresource: Option<&str>,
    now: &str,
) {
    let mut list = old.map(entries).unwrap_or_default();
    let scope = Scope::of(kind, subresource);
    let set = FieldSet::of(kind.kind, new, scope);
    let changed: BTreeSet<Path> = set
        .0
        .iter()
        .filter(|p| {
            let before = old.and_then(|o| value_at(o, p));
            let after = value_at(new, p);
            let is_item = matches!(p.last(), Some(PE::Key(_)) | Some(PE::Val(_)));
            if is_item {
                before.is_none()
            } else {
                before != after
            }
        })
        .cloned()
        .collect();
    prune_absent(&mut list, new);
    if !changed.is_empty() {
        for e in list.iter_mut() {
            if !e.same_owner(manager, "Update", subresource) {
                e.set.0.retain(|p| !changed.contains(p));
            }
        }
        let api_version = kind.api_version();
        match list
            .iter_mut()
            .find(|e| e.same_owner(manager, "Update", subresource))
        {
            Some(e) => {
                e.set.0.extend(changed);
                e.time = now.to_string();
            }
            None => list.push(Entry {
                manager: manager.into(),
                operation: "Update".into(),
                api_version,
                time: now.into(),
                subresource: subresource.map(str::to_string),
                set: FieldSet(changed),
            }),
        }
    }
    write_entries(new, &list);
}

pub struct Apply<'a> {
    pub kind: &'a Kind,
    pub manager: &'a str,
    pub force: bool,
    pub subresource: Option<&'a str>,
    pub now: &'a str,
}

/// Server-side apply of `applied` onto `live` (or onto nothing): conflicts
/// with other managers' differing values (409 unless forced), the merge,
/// and removal of what this manager applied before and no longer does,
/// when nobody else owns it. Returns the object before defaulting.
pub fn apply(a: &Apply, live: Option<&Value>, applied: &Value) -> Result<Value, ApiError> {
    let kind = a.kind;
    let scope = Scope::of(kind, a.subresource);
    let mut applied = applied.clone();
    // What the scope does not cover is not applied (status through the
    // object, the object through /status).
    if let Some(m) = applied.as_object_mut() {
        match scope {
            Scope::Main => {
                m.remove("status");
            }
            Scope::Status => {
                m.retain(|k, _| matches!(k.as_str(), "apiVersion" | "kind" | "metadata" | "status"))
            }
            Scope::All => {}
        }
    }
    let new_set = FieldSet::of(kind.kind, &applied, scope);
    let empty = json!({});
    let base = live.unwrap_or(&empty);
    let mut list = entries(base);
    let me = |e: &Entry| e.same_owner(a.manager, "Apply", a.subresource);

    // Conflicts: a leaf another manager owns, with a different value.
    let mut conflicts: Vec<(String, String, Path)> = Vec::new();
    for p in new_set.0.iter().filter(|p| new_set.is_leaf(p)) {
        let (want, have) = (value_at(&applied, p), value_at(base, p));
        if want == have {
            continue;
        }
        for e in list.iter().filter(|e| !me(e)) {
            if e.set.contains(p) {
                conflicts.push((e.manager.clone(), e.api_version.clone(), p.clone()));
            }
        }
    }
    if !conflicts.is_empty() {
        if !a.force {
            return Err(conflict_error(&conflicts));
        }
        for e in list.iter_mut().filter(|e| !me(e)) {
            e.set
                .0
                .retain(|p| !conflicts.iter().any(|(_, _, c)| c == p));
        }
    }

    // Removal: what this manager applied before, no longer applies, and
    // nobody else owns.
    let mut result = base.clone();
    let old_set = list
        .iter()
        .find(|e| me(e))
        .map(|e| e.set.clone())
        .unwrap_or_default();
    let mut dropped: Vec<&Path> = old_set.0.iter().filter(|p| !new_set.covers(p)).collect();
    // Items before their fields (an item is found by its key fields), and
    // never the key field of an item that stays.
    dropped.sort_by_key(|p| p.len());
    let mut removed: Vec<&Path> = Vec::new();
    for p in dropped {
        if removed.iter().any(|r| p.starts_with(r)) || is_key_field(p) {
            continue;
        }
        let others = list.iter().filter(|e| !me(e)).any(|e| e.set.covers(p));
        if !others {
            remove_at(&mut result, p);
            removed.push(p);
        }
    }
    // Maps emptied by the removal go too (labels, annotations).
    if let Some(meta) = result.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.retain(|k, v| {
            !(matches!(k.as_str(), "labels" | "annotations")
                && v.as_object().is_some_and(Map::is_empty))
        });
    }

    merge(kind.kind, &mut result, &applied);

    match list.iter_mut().find(|e| me(e)) {
        Some(e) => {
            e.set = new_set;
            e.time = a.now.into();
            e.api_version = kind.api_version();
        }
        None => list.push(Entry {
            manager: a.manager.into(),
            operation: "Apply".into(),
            api_version: kind.api_version(),
            time: a.now.into(),
            subresource: a.subresource.map(str::to_string),
            set: new_set,
        }),
    }
    prune_absent(&mut list, &result);
    write_entries(&mut result, &list);
    Ok(result)
}

fn conflict_error(conflicts: &[(String, String, Path)]) -> ApiError {
    let n = conflicts.len();
    let mut by_manager: Vec<(&str, &str, Vec<String>)> = Vec::new();
    for (m, v, p) in conflicts {
        match by_manager.iter_mut().find(|(bm, _, _)| bm == m) {
            Some((_, _, ps)) => ps.push(display(p)),
            None => by_manager.push((m, v, vec![display(p)])),
        }
    }
    let mut message = format!(
        "Apply failed with {n} conflict{}: ",
        if n == 1 { "" } else { "s" }
    );
    let parts: Vec<String> = by_manager
        .iter()
        .map(|(m, v, ps)| {
            if ps.len() == 1 && n == 1 {
                format!("conflict with \"{m}\" using {v}: {}", ps[0])
            } else {
                let lines: Vec<String> = ps.iter().map(|p| format!("- {p}")).collect();
                format!("conflicts with \"{m}\" using {v}:\n{}", lines.join("\n"))
            }
        })
        .collect();
    message.push_str(&parts.join("\n"));
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|(m, v, p)| {
            json!({"reason": "FieldManagerConflict", "message": format!("conflict with \"{m}\" using {v}"), "field": display(p)})
        })
        .collect();
    let mut e = ApiError::new(409, "Conflict", message);
    e.details = Some(Box::new(json!({"causes": causes})));
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_v1_round_trips_with_item_markers() {
        let obj = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "x", "labels": {"app": "x"}},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [
                {"name": "c", "image": "i:1", "ports": [{"containerPort": 80}]}
            ]}}}
        });
        let set = FieldSet::of("Deployment", &obj, Scope::Main);
        let v1 = set.to_fields_v1();
        let c = &v1["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"c\"}"];
        assert_eq!(c["."], json!({}));
        assert_eq!(c["f:image"], json!({}));
        assert_eq!(
            c["f:ports"]["k:{\"containerPort\":80,\"protocol\":\"TCP\"}"]["f:containerPort"],
            json!({})
        );
        assert_eq!(FieldSet::from_fields_v1(&v1), set);
    }
}
