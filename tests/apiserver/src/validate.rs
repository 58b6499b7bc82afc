//! Defaulting and validation of the kinds the server stores, worded as the
//! API server words its errors.

use serde_json::{json, Map, Value};

use crate::errors::FieldError;
use crate::kinds::Kind;
use crate::util;

const DNS1123_SUBDOMAIN: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1123_LABEL: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1035_LABEL: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const LABEL_VALUE: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const NAME_PART: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

fn lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

pub fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| lower_alnum(c) || c == '-')
        && s.starts_with(lower_alnum)
        && s.ends_with(lower_alnum)
}

fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

fn is_dns1035_label(s: &str) -> bool {
    is_dns1123_label(s) && s.starts_with(|c: char| c.is_ascii_lowercase())
}

fn name_part_ok(s: &str) -> bool {
    let alnum = |c: char| c.is_ascii_alphanumeric();
    !s.is_empty()
        && s.chars().all(|c| alnum(c) || "-_.".contains(c))
        && s.starts_with(alnum)
        && s.ends_with(alnum)
}

/// A qualified name (a label or annotation key): `[prefix/]name`.
fn qualified_name_errors(key: &str) -> Vec<String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let mut out = Vec::new();
    if let Some(p) = prefix {
        if p.is_empty() {
            out.push("prefix part must be non-empty".to_string());
        } else if !is_dns1123_subdomain(p) {
            out.push(format!("prefix part {DNS1123_SUBDOMAIN}"));
        }
    }
    if name.is_empty() {
        out.push("name part must be non-empty".into());
    } else if name.len() > 63 {
        out.push("name part must be no more than 63 characters".into());
    } else if !name_part_ok(name) {
        out.push(NAME_PART.into());
    }
    out
}

fn label_map(errs: &mut Vec<FieldError>, field: &str, labels: Option<&Value>) {
    let Some(m) = labels.and_then(Value::as_object) else {
        return;
    };
    for (k, v) in m {
        for e in qualified_name_errors(k) {
            errs.push(FieldError::invalid(field, &json!(k), e));
        }
        let v = v.as_str().unwrap_or_default();
        if v.len() > 63 {
            errs.push(FieldError::invalid(
                field,
                &json!(v),
                "must be no more than 63 characters",
            ));
        } else if !v.is_empty() && !name_part_ok(v) {
            errs.push(FieldError::invalid(field, &json!(v), LABEL_VALUE));
        }
    }
}

/// Name rules by kind: Services and Namespaces are labels, RBAC objects
/// path segments, the rest subdomains.
fn name_errors(kind: &Kind, name: &str) -> Option<String> {
    match kind.kind {
        "Service" => {
            if name.len() > 63 {
                Some("must be no more than 63 characters".into())
            } else if !is_dns1035_label(name) {
                Some(DNS1035_LABEL.into())
            } else {
                None
            }
        }
        "Namespace" => {
            if name.len() > 63 {
                Some("must be no more than 63 characters".into())
            } else if !is_dns1123_label(name) {
                Some(DNS1123_LABEL.into())
            } else {
                None
            }
        }
        "ClusterRole" | "ClusterRoleBinding" | "Role" | "RoleBinding" => {
            if name == "." || name == ".." {
                Some(format!("may not be '{name}'"))
            } else if name.contains('/') || name.contains('%') {
                Some(format!(
                    "may not contain '{}'",
                    if name.contains('/') { "/" } else { "%" }
                ))
            } else {
                None
            }
        }
        _ => {
            if name.len() > 253 {
                Some("must be no more than 253 characters".into())
            } else if !is_dns1123_subdomain(name) {
                Some(DNS1123_SUBDOMAIN.into())
            } else {
                None
            }
        }
    }
}

/// IANA service name rules for port names.
fn port_name_errors(s: &str) -> Option<&'static str> {
    if s.len() > 15 {
        Some("must be no more than 15 characters")
    } else if !s.chars().all(|c| lower_alnum(c) || c == '-') {
        Some("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    } else if s.contains("--") {
        Some("must not contain consecutive hyphens")
    } else if !s.chars().any(|c| c.is_ascii_lowercase()) {
        Some("must contain at least one letter (a-z)")
    } else if s.starts_with('-') || s.ends_with('-') {
        Some("must not begin or end with a hyphen")
    } else {
        None
    }
}

const PORT_RANGE: &str = "must be between 1 and 65535, inclusive";

fn port_number(errs: &mut Vec<FieldError>, field: &str, v: Option<&Value>, required: bool) {
    match v {
        None | Some(Value::Null) if required => errs.push(FieldError::required(field, "")),
        None | Some(Value::Null) => {}
        Some(v) => {
            let ok = v.as_i64().is_some_and(|p| (1..=65535).contains(&p));
            if !ok {
                errs.push(FieldError::invalid(field, v, PORT_RANGE));
            }
        }
    }
}

fn protocol(errs: &mut Vec<FieldError>, field: &str, v: Option<&Value>) {
    if let Some(v) = v {
        if !matches!(v.as_str(), Some("TCP" | "UDP" | "SCTP")) {
            errs.push(FieldError::not_supported(field, v, &["SCTP", "TCP", "UDP"]));
        }
    }
}

fn int_or_percent(v: &Value) -> bool {
    v.as_i64().is_some_and(|i| i >= 0)
        || v.as_str().is_some_and(|s| {
            s.strip_suffix('%')
                .is_some_and(|n| n.parse::<u32>().is_ok())
        })
}

pub fn containers(errs: &mut Vec<FieldError>, base: &str, spec: &Value) {
    let list = spec.get("containers").and_then(Value::as_array);
    let Some(list) = list.filter(|l| !l.is_empty()) else {
        errs.push(FieldError::required(format!("{base}.containers"), ""));
        return;
    };
    let mut seen = Vec::new();
    for (i, c) in list.iter().enumerate() {
        let f = format!("{base}.containers[{i}]");
        match c.get("name").and_then(Value::as_str) {
            None | Some("") => errs.push(FieldError::required(format!("{f}.name"), "")),
            Some(n) => {
                if n.len() > 63 {
                    errs.push(FieldError::invalid(
                        format!("{f}.name"),
                        &json!(n),
                        "must be no more than 63 characters",
                    ));
                } else if !is_dns1123_label(n) {
                    errs.push(FieldError::invalid(
                        format!("{f}.name"),
                        &json!(n),
                        DNS1123_LABEL,
                    ));
                }
                if seen.contains(&n) {
                    errs.push(FieldError::duplicate(format!("{f}.name"), &json!(n)));
                }
                seen.push(n);
            }
        }
        if c.get("image")
            .and_then(Value::as_str)
            .is_none_or(|s| s.trim().is_empty())
        {
            errs.push(FieldError::required(format!("{f}.image"), ""));
        }
        let mut port_names = Vec::new();
        for (j, p) in c
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let pf = format!("{f}.ports[{j}]");
            port_number(
                errs,
                &format!("{pf}.containerPort"),
                p.get("containerPort"),
                true,
            );
            protocol(errs, &format!("{pf}.protocol"), p.get("protocol"));
            if let Some(n) = p.get("name").and_then(Value::as_str) {
                if let Some(e) = port_name_errors(n) {
                    errs.push(FieldError::invalid(format!("{pf}.name"), &json!(n), e));
                }
                if port_names.contains(&n) {
                    errs.push(FieldError::duplicate(format!("{pf}.name"), &json!(n)));
                }
                port_names.push(n);
            }
        }
        for (j, e) in c
            .get("env")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            if e.get("name")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                errs.push(FieldError::required(format!("{f}.env[{j}].name"), ""));
            }
        }
    }
}

fn workload(errs: &mut Vec<FieldError>, kind: &Kind, obj: &Value) {
    let spec = obj.get("spec").cloned().unwrap_or(json!({}));
    if let Some(r) = spec.get("replicas") {
        if r.as_i64().is_none_or(|r| r < 0) {
            errs.push(FieldError::invalid(
                "spec.replicas",
                r,
                "must be greater than or equal to 0",
            ));
        }
    }
    let selector = spec.get("selector");
    let empty = selector.is_none_or(|s| {
        s.get("matchLabels")
            .and_then(Value::as_object)
            .is_none_or(Map::is_empty)
            && s.get("matchExpressions")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty)
    });
    let tlabels = util::at(&spec, &["template", "metadata", "labels"]);
    if empty {
        errs.push(FieldError::required("spec.selector", ""));
    } else if let Some(sel) = selector {
        label_map(errs, "spec.selector.matchLabels", sel.get("matchLabels"));
        let s = crate::selectors::LabelSelector::from_object(sel);
        if !s.matches(tlabels.and_then(Value::as_object)) {
            errs.push(FieldError::invalid(
                "spec.template.metadata.labels",
                tlabels.unwrap_or(&json!({})),
                "`selector` does not match template `labels`",
            ));
        }
    }
    label_map(errs, "spec.template.metadata.labels", tlabels);
    let pod = util::at(&spec, &["template", "spec"])
        .cloned()
        .unwrap_or(json!({}));
    containers(errs, "spec.template.spec", &pod);
    if kind.kind != "Pod" {
        if let Some(rp) = pod.get("restartPolicy") {
            if rp != "Always" {
                errs.push(FieldError::not_supported(
                    "spec.template.spec.restartPolicy",
                    rp,
                    &["Always"],
                ));
            }
        }
    }
    if kind.kind == "Deployment" {
        let ru = util::at(&spec, &["strategy", "rollingUpdate"]);
        if let Some(ru) = ru {
            for f in ["maxSurge", "maxUnavailable"] {
                if let Some(v) = ru.get(f) {
                    if !int_or_percent(v) {
                        errs.push(FieldError::invalid(format!("spec.strategy.rollingUpdate.{f}"), v, "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"));
                    }
                }
            }
            let zero = |v: Option<&Value>| v.is_some_and(|v| v == &json!(0) || v == &json!("0%"));
            if zero(ru.get("maxSurge")) && zero(ru.get("maxUnavailable")) {
                errs.push(FieldError::invalid(
                    "spec.strategy.rollingUpdate.maxUnavailable",
                    ru.get("maxUnavailable").unwrap_or(&json!(0)),
                    "may not be 0 when `maxSurge` is 0",
                ));
            }
        }
        if let Some(p) = spec.get("progressDeadlineSeconds") {
            let min = spec
                .get("minReadySeconds")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            if p.as_i64().is_none_or(|p| p <= min) {
                errs.push(FieldError::invalid(
                    "spec.progressDeadlineSeconds",
                    p,
                    "must be greater than minReadySeconds",
                ));
            }
        }
    }
}

fn service(errs: &mut Vec<FieldError>, obj: &Value) {
    let spec = obj.get("spec").cloned().unwrap_or(json!({}));
    let ty = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    if !matches!(
        ty,
        "ClusterIP" | "NodePort" | "LoadBalancer" | "ExternalName"
    ) {
        errs.push(FieldError::not_supported(
            "spec.type",
            &json!(ty),
            &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
        ));
    }
    let ports = spec
        .get("ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if ty == "ExternalName" {
        if spec
            .get("externalName")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            errs.push(FieldError::required("spec.externalName", ""));
        }
    } else if ports.is_empty() && spec.get("clusterIP").and_then(Value::as_str) != Some("None") {
        errs.push(FieldError::required("spec.ports", ""));
    }
    let mut names: Vec<&str> = Vec::new();
    let mut keys: Vec<(i64, String)> = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        let f = format!("spec.ports[{i}]");
        match p.get("name").and_then(Value::as_str) {
            None | Some("") if ports.len() > 1 => {
                errs.push(FieldError::required(format!("{f}.name"), ""))
            }
            None | Some("") => {}
            Some(n) => {
                if let Some(e) =
                    port_name_errors(n).filter(|_| !is_dns1123_label(n) || n.len() > 15)
                {
                    errs.push(FieldError::invalid(format!("{f}.name"), &json!(n), e));
                } else if !is_dns1123_label(n) {
                    errs.push(FieldError::invalid(
                        format!("{f}.name"),
                        &json!(n),
                        DNS1123_LABEL,
                    ));
                }
                if names.contains(&n) {
                    errs.push(FieldError::duplicate(format!("{f}.name"), &json!(n)));
                }
                names.push(n);
            }
        }
        port_number(errs, &format!("{f}.port"), p.get("port"), true);
        protocol(errs, &format!("{f}.protocol"), p.get("protocol"));
        match p.get("targetPort") {
            Some(Value::String(s)) => {
                if let Some(e) = port_name_errors(s) {
                    errs.push(FieldError::invalid(format!("{f}.targetPort"), &json!(s), e));
                }
            }
            Some(v @ Value::Number(_)) => {
                port_number(errs, &format!("{f}.targetPort"), Some(v), true)
            }
            _ => {}
        }
        if p.get("nodePort").is_some_and(|v| !v.is_null()) && ty == "ClusterIP" {
            errs.push(FieldError::forbidden(
                format!("{f}.nodePort"),
                "may not be used when `type` is 'ClusterIP'",
            ));
        }
        let key = (
            p.get("port").and_then(Value::as_i64).unwrap_or(0),
            p.get("protocol")
                .and_then(Value::as_str)
                .unwrap_or("TCP")
                .to_string(),
        );
        if keys.contains(&key) {
            errs.push(FieldError::duplicate(
                f.clone(),
                &json!(format!("{}/{}", key.0, key.1)),
            ));
        }
        keys.push(key);
    }
    label_map(errs, "spec.selector", spec.get("selector"));
}

/// Everything checked on create and update.
pub fn validate(kind: &Kind, obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let name = util::name(obj);
    if name.is_empty() {
        errs.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else if let Some(e) = name_errors(kind, name) {
        errs.push(FieldError::invalid("metadata.name", &json!(name), e));
    }
    label_map(
        &mut errs,
        "metadata.labels",
        util::at(obj, &["metadata", "labels"]),
    );
    if let Some(a) = util::at(obj, &["metadata", "annotations"]).and_then(Value::as_object) {
        for k in a.keys() {
            for e in qualified_name_errors(k) {
                errs.push(FieldError::invalid("metadata.annotations", &json!(k), e));
            }
        }
    }
    match kind.kind {
        "Deployment" | "ReplicaSet" | "DaemonSet" => workload(&mut errs, kind, obj),
        "Pod" => containers(&mut errs, "spec", obj.get("spec").unwrap_or(&json!({}))),
        "Service" => service(&mut errs, obj),
        "ConfigMap" | "Secret" => {
            for field in ["data", "binaryData", "stringData"] {
                for k in obj
                    .get(field)
                    .and_then(Value::as_object)
                    .into_iter()
                    .flat_map(Map::keys)
                {
                    let ok = !k.is_empty()
                        && k.len() <= 253
                        && k.chars()
                            .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c));
                    if !ok {
                        errs.push(FieldError::invalid(format!("{field}[{k}]"), &json!(k), "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"));
                    }
                }
            }
        }
        _ => {}
    }
    errs
}

/// Checks that only apply to an update (immutable fields).
pub fn validate_update(kind: &Kind, old: &Value, new: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if matches!(kind.kind, "Deployment" | "ReplicaSet" | "DaemonSet") {
        let (a, b) = (
            util::at(old, &["spec", "selector"]),
            util::at(new, &["spec", "selector"]),
        );
        if a != b {
            errs.push(FieldError::invalid_raw(
                "spec.selector",
                format!("v1.LabelSelector{{MatchLabels:{}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}}", crate::errors::go_value(b.and_then(|s| s.get("matchLabels")).unwrap_or(&json!({})))),
                "field is immutable",
            ));
        }
    }
    errs
}

fn default_pod_spec(spec: &mut Map<String, Value>) {
    spec.entry("restartPolicy").or_insert(json!("Always"));
    spec.entry("terminationGracePeriodSeconds")
        .or_insert(json!(30));
    spec.entry("dnsPolicy").or_insert(json!("ClusterFirst"));
    spec.entry("securityContext").or_insert(json!({}));
    spec.entry("schedulerName")
        .or_insert(json!("default-scheduler"));
    for list in ["containers", "initContainers"] {
        for c in spec
            .get_mut(list)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            let Some(c) = c.as_object_mut() else { continue };
            let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
            let tag = image_tag(image);
            let policy = if tag == "latest" {
                "Always"
            } else {
                "IfNotPresent"
            };
            c.entry("imagePullPolicy").or_insert(json!(policy));
            c.entry("terminationMessagePath")
                .or_insert(json!("/dev/termination-log"));
            c.entry("terminationMessagePolicy").or_insert(json!("File"));
            c.entry("resources").or_insert(json!({}));
            for p in c
                .get_mut("ports")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                if let Some(p) = p.as_object_mut() {
                    p.entry("protocol").or_insert(json!("TCP"));
                }
            }
        }
    }
}

/// The tag of an image reference (`latest` when it has none).
pub fn image_tag(image: &str) -> &str {
    let image = image.split('@').next().unwrap_or(image);
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.rsplit_once(':') {
        Some((_, tag)) => tag,
        None => "latest",
    }
}

/// The API server's defaults for the listed kinds.
pub fn default(kind: &Kind, obj: &mut Value) {
    match kind.kind {
        "Deployment" | "ReplicaSet" | "DaemonSet" => {
            let spec = util::obj_mut(obj, &["spec"]);
            if kind.kind != "DaemonSet" {
                spec.entry("replicas").or_insert(json!(1));
            }
            if kind.kind != "ReplicaSet" {
                spec.entry("revisionHistoryLimit").or_insert(json!(10));
            }
            if kind.kind == "Deployment" {
                spec.entry("progressDeadlineSeconds").or_insert(json!(600));
                let strategy = spec.entry("strategy").or_insert(json!({}));
                if let Some(s) = strategy.as_object_mut() {
                    let ty = s.entry("type").or_insert(json!("RollingUpdate")).clone();
                    if ty == "RollingUpdate" {
                        let ru = s.entry("rollingUpdate").or_insert(json!({}));
                        if let Some(ru) = ru.as_object_mut() {
                            ru.entry("maxSurge").or_insert(json!("25%"));
                            ru.entry("maxUnavailable").or_insert(json!("25%"));
                        }
                    }
                }
            }
            if kind.kind == "DaemonSet" {
                let strategy = spec.entry("updateStrategy").or_insert(json!({}));
                if let Some(s) = strategy.as_object_mut() {
                    let ty = s.entry("type").or_insert(json!("RollingUpdate")).clone();
                    if ty == "RollingUpdate" {
                        let ru = s.entry("rollingUpdate").or_insert(json!({}));
                        if let Some(ru) = ru.as_object_mut() {
                            ru.entry("maxUnavailable").or_insert(json!(1));
                            ru.entry("maxSurge").or_insert(json!(0));
                        }
                    }
                }
            }
            default_pod_spec(util::obj_mut(obj, &["spec", "template", "spec"]));
        }
        "Pod" => {
            let spec = util::obj_mut(obj, &["spec"]);
            default_pod_spec(spec);
            spec.entry("serviceAccountName").or_insert(json!("default"));
            spec.entry("enableServiceLinks").or_insert(json!(true));
        }
        "Service" => {
            let spec = util::obj_mut(obj, &["spec"]);
            let ty = spec
                .entry("type")
                .or_insert(json!("ClusterIP"))
                .as_str()
                .unwrap_or_default()
                .to_string();
            if ty != "ExternalName" {
                spec.entry("sessionAffinity").or_insert(json!("None"));
                spec.entry("internalTrafficPolicy")
                    .or_insert(json!("Cluster"));
            }
            if ty == "NodePort" || ty == "LoadBalancer" {
                spec.entry("externalTrafficPolicy")
                    .or_insert(json!("Cluster"));
            }
            if ty == "LoadBalancer" {
                spec.entry("allocateLoadBalancerNodePorts")
                    .or_insert(json!(true));
            }
            for p in spec
                .get_mut("ports")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                if let Some(p) = p.as_object_mut() {
                    p.entry("protocol").or_insert(json!("TCP"));
                    if let Some(port) = p.get("port").cloned() {
                        p.entry("targetPort").or_insert(port);
                    }
                }
            }
            if ty != "ExternalName" {
                util::obj_mut(obj, &["status"])
                    .entry("loadBalancer")
                    .or_insert(json!({}));
            }
        }
        "Namespace" => {
            let name = util::name(obj).to_string();
            util::obj_mut(obj, &["metadata", "labels"])
                .insert("kubernetes.io/metadata.name".into(), json!(name));
            util::obj_mut(obj, &["spec"])
                .entry("finalizers")
                .or_insert(json!(["kubernetes"]));
            util::obj_mut(obj, &["status"])
                .entry("phase")
                .or_insert(json!("Active"));
        }
        "Secret" => {
            if let Some(m) = obj.as_object_mut() {
                m.entry("type").or_insert(json!("Opaque"));
                // stringData is write-only: folded into data, base64.
                if let Some(Value::Object(sd)) = m.remove("stringData") {
                    use base64::Engine as _;
                    let data = m.entry("data").or_insert(json!({}));
                    if let Some(d) = data.as_object_mut() {
                        for (k, v) in sd {
                            let s = v.as_str().unwrap_or_default();
                            d.insert(
                                k,
                                json!(base64::engine::general_purpose::STANDARD.encode(s)),
                            );
                        }
                    }
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::KINDS;

    #[test]
    fn image_tags() {
        assert_eq!(image_tag("nginx"), "latest");
        assert_eq!(image_tag("registry:5000/x/y:v1-crashloop"), "v1-crashloop");
        assert_eq!(image_tag("registry:5000/x/y"), "latest");
    }

    #[test]
    fn a_bad_name_is_worded_like_the_api_server() {
        let svc = &KINDS[crate::kinds::SERVICE];
        let errs = validate(
            svc,
            &json!({"metadata": {"name": "1abc"}, "spec": {"ports": [{"port": 0}]}}),
        );
        let e = crate::errors::ApiError::invalid(svc, "1abc", errs);
        assert_eq!(e.code, 422);
        assert!(e.message.starts_with("Service \"1abc\" is invalid: [metadata.name: Invalid value: \"1abc\": a DNS-1035 label"), "{}", e.message);
        assert!(
            e.message.contains(
                "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive"
            ),
            "{}",
            e.message
        );
    }
}
