//! The human plan view: `+` create, `~` update, `-/+` replace, `-` delete.

use std::fmt::Write;

use crate::model::{Ownership, Props, Value};
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

fn props_block(out: &mut String, props: &Props, indent: &str) {
    // Rule descriptions repeat the rules; they are sent, not shown.
    for (k, v) in props.iter().filter(|(k, _)| k.as_str() != "descriptions") {
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
    h
}

fn change(out: &mut String, c: &Change, color: bool) {
    let _ = writeln!(out, "  {}", header(c, color));
    let indent = "      ";
    if let Some(reason) = &c.reason {
        let _ = writeln!(out, "{indent}# {reason}");
    }
    match c.action {
        Action::Create => props_block(out, c.after.as_ref().unwrap_or(&Props::new()), indent),
        Action::Delete => {}
        Action::Update | Action::Replace => {
            for f in &c.changed {
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
