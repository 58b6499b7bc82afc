//! The human plan view: `+` create, `~` update, `-/+` replace, `-` delete.

use std::fmt::Write;

use crate::model::{Kind, Ownership, Props, Value};
use crate::plan::{Action, Change, Plan};

fn paint(color: bool, action: Action, text: &str) -> String {
    if !color {
        return text.to_string();
    }
    let code = match action {
        Action::Create => "32",
        Action::Update => "33",
        Action::Replace => "35",
        Action::Delete => "31",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

fn show(v: &Value) -> String {
    match v {
        Value::Ref(r) => format!("(known after apply: {})", r.target),
        Value::Map(m) if m.contains_key("protocol") && m.contains_key("source") => rule(v),
        // User data and the like: the JSON plan has the text; the digest
        // beside it shows whether it changed.
        Value::Str(s) if s.contains('\n') => format!("({} lines)", s.lines().count()),
        Value::Str(_) => v.to_string(),
        other => {
            // Nested references (`{ ref = "addr" }`) read better as addresses.
            let mut s = other.to_string();
            while let Some(start) = s.find("{ ref = \"") {
                let rest = &s[start + 9..];
                let Some(end) = rest.find("\" }") else { break };
                let addr = rest[..end].to_string();
                s.replace_range(start..start + 9 + end + 3, &addr);
            }
            s
        }
    }
}

/// Security-group rules read as `tcp 5432 from X  "description"`.
fn rule(v: &Value) -> String {
    let Some(m) = v.as_map() else {
        return v.to_string();
    };
    let s = |k: &str| {
        m.get(k).map(|v| match v {
            Value::Ref(r) => r.target.to_string(),
            Value::Str(s) => s.clone(),
            other => other.to_string(),
        })
    };
    let proto = s("protocol").unwrap_or_default();
    let (from, to) = (s("from").unwrap_or_default(), s("to").unwrap_or_default());
    let ports = if proto == "-1" {
        "all traffic".to_string()
    } else if from == to {
        format!("{proto} {from}")
    } else {
        format!("{proto} {from}-{to}")
    };
    format!("{ports} from {}", s("source").unwrap_or_default())
}

/// A JSON document held in a string (an IAM policy), parsed.
fn json_doc(v: &Value) -> Option<serde_json::Value> {
    let s = v.as_str()?;
    if !s.trim_start().starts_with('{') {
        return None;
    }
    serde_json::from_str(&crate::desired::canonical_json(s)).ok()
}

/// Pretty-printed with sorted keys (the canonical text's order), one line each.
fn pretty(v: &serde_json::Value) -> Vec<String> {
    serde_json::to_string_pretty(v)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// A policy's statements by `Sid` (or position, for statements without one).
fn statements(doc: &serde_json::Value) -> Vec<(String, serde_json::Value)> {
    let list = match doc.get("Statement") {
        Some(serde_json::Value::Array(a)) => a.clone(),
        Some(one) => vec![one.clone()],
        None => Vec::new(),
    };
    list.into_iter()
        .enumerate()
        .map(|(i, st)| {
            let key = st
                .get("Sid")
                .and_then(|s| s.as_str())
                .map(str::to_string)
                .unwrap_or_else(|| format!("#{}", i + 1));
            (key, st)
        })
        .collect()
}

/// Which statements of a policy changed: removed (`-`), added (`+`), or
/// changed (`~`, with its old and new text); the rest are counted.
fn policy_diff(
    out: &mut String,
    field: &str,
    old: &serde_json::Value,
    new: &serde_json::Value,
    indent: &str,
) {
    let (old, new) = (statements(old), statements(new));
    let _ = writeln!(out, "{indent}{field}: statements");
    let mut same = 0;
    for (k, st) in &old {
        match new.iter().find(|(n, _)| n == k) {
            None => {
                let _ = writeln!(out, "{indent}  - {k}");
                for l in pretty(st) {
                    let _ = writeln!(out, "{indent}      - {l}");
                }
            }
            Some((_, now)) if now == st => same += 1,
            Some((_, now)) => {
                let _ = writeln!(out, "{indent}  ~ {k}");
                let (a, b) = (pretty(st), pretty(now));
                for l in a.iter().filter(|l| !b.contains(l)) {
                    let _ = writeln!(out, "{indent}      - {l}");
                }
                for l in b.iter().filter(|l| !a.contains(l)) {
                    let _ = writeln!(out, "{indent}      + {l}");
                }
            }
        }
    }
    for (k, st) in new.iter().filter(|(k, _)| !old.iter().any(|(o, _)| o == k)) {
        let _ = writeln!(out, "{indent}  + {k}");
        for l in pretty(st) {
            let _ = writeln!(out, "{indent}      + {l}");
        }
    }
    if same > 0 {
        let _ = writeln!(out, "{indent}  ({same} unchanged)");
    }
}

fn props_block(out: &mut String, kind: Option<Kind>, props: &Props, indent: &str) {
    let decl = |k: &str| kind.and_then(|kind| kind.schema().field(k));
    // Rule descriptions repeat the rules; they are sent, not shown.
    for (k, v) in props.iter().filter(|(k, _)| k.as_str() != "descriptions") {
        if decl(k).is_some_and(|f| f.sensitive) {
            let _ = writeln!(out, "{indent}{k} = (sensitive)");
            continue;
        }
        if let Some(doc) = json_doc(v) {
            let _ = writeln!(out, "{indent}{k} =");
            for l in pretty(&doc) {
                let _ = writeln!(out, "{indent}  {l}");
            }
            continue;
        }
        match v {
            Value::List(items) if !items.is_empty() => {
                let _ = writeln!(out, "{indent}{k}:");
                for i in items {
                    let _ = writeln!(out, "{indent}  {}", show(i));
                }
            }
            _ => {
                let _ = writeln!(out, "{indent}{k} = {}", show(v));
            }
        }
    }
}

fn header(c: &Change, color: bool) -> String {
    let mut h = format!(
        "{} {}",
        paint(color, c.action, c.action.symbol()),
        c.address
    );
    if let Some(p) = &c.physical_id {
        let _ = write!(h, " ({p})");
    }
    if c.ownership == Ownership::OnAdopted {
        h.push_str("  [on an adopted resource]");
    }
    if c.control_plane {
        h.push_str("  [control plane]");
    }
    h
}

fn change(out: &mut String, c: &Change, color: bool) {
    let _ = writeln!(out, "  {}", header(c, color));
    let indent = "      ";
    if let Some(reason) = &c.reason {
        let _ = writeln!(out, "{indent}# {reason}");
    }
    if c.action == Action::Replace {
        let order = if c.create_before_delete == Some(true) {
            "the new one is created before the old one is deleted"
        } else {
            "the old one is deleted before the new one is created"
        };
        let _ = writeln!(out, "{indent}# {order}");
    }
    match c.action {
        // A Kubernetes object is long: its address says what it is, the JSON
        // plan holds every field, and the Secret's sensitive digest only.
        Action::Create if c.address.kind().is_some_and(Kind::is_k8s) => {}
        Action::Create => props_block(
            out,
            c.address.kind(),
            c.after.as_ref().unwrap_or(&Props::new()),
            indent,
        ),
        Action::Delete => {}
        Action::Update | Action::Replace => {
            for f in &c.changed {
                let sensitive = c
                    .address
                    .kind()
                    .and_then(|k| k.schema().field(&f.field))
                    .is_some_and(|d| d.sensitive);
                if sensitive {
                    let _ = writeln!(out, "{indent}{}: (sensitive)", f.field);
                    continue;
                }
                let docs = f.before.as_ref().and_then(json_doc).zip(json_doc(&f.after));
                if let Some((old, new)) = docs {
                    policy_diff(out, &f.field, &old, &new, indent);
                    continue;
                }
                match (&f.before, &f.after) {
                    (Some(Value::List(old)), Value::List(new)) => {
                        let _ = writeln!(out, "{indent}{}:", f.field);
                        for i in old.iter().filter(|i| !new.contains(i)) {
                            let _ = writeln!(out, "{indent}  - {}", show(i));
                        }
                        for i in new.iter().filter(|i| !old.contains(i)) {
                            let _ = writeln!(out, "{indent}  + {}", show(i));
                        }
                    }
                    (before, after) => {
                        let old = before.as_ref().map(show).unwrap_or_else(|| "(none)".into());
                        let _ = writeln!(out, "{indent}{}: {old} -> {}", f.field, show(after));
                    }
                }
            }
        }
    }
}

/// The whole plan as text for stdout.
pub fn render_plan(plan: &Plan, color: bool) -> String {
    let mut out = String::new();
    for n in &plan.notices {
        let _ = writeln!(out, "{n}");
    }
    if plan.is_empty() {
        let _ = writeln!(
            out,
            "No changes. {}/{} matches the config ({} resources).",
            plan.project, plan.env, plan.summary.unchanged
        );
        return out;
    }
    let _ = writeln!(
        out,
        "scopectl will make these changes to {}/{}:\n",
        plan.project, plan.env
    );
    for c in &plan.changes {
        change(&mut out, c, color);
    }
    let _ = writeln!(out, "\n{}", render_summary(plan));
    out
}

pub fn render_summary(plan: &Plan) -> String {
    let s = &plan.summary;
    format!(
        "Plan: {} to create, {} to update, {} to replace, {} to delete ({} unchanged).",
        s.create, s.update, s.replace, s.delete, s.unchanged
    )
}
