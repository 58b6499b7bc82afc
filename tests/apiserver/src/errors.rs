//! API errors as the API server words them: a `Status` object with the
//! reason, code and, for validation, the causes.

use serde_json::{json, Value};

use crate::kinds::Kind;

#[derive(Clone, Debug)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Box<Value>>,
    /// Seconds, for 429.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message)
    }

    pub fn not_found(kind: &Kind, name: &str) -> ApiError {
        let mut e = ApiError::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", kind.qualified_plural()),
        );
        e.details = Some(Box::new(details(kind, name)));
        e
    }

    pub fn path_not_found() -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    pub fn already_exists(kind: &Kind, name: &str) -> ApiError {
        let mut e = ApiError::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", kind.qualified_plural()),
        );
        e.details = Some(Box::new(details(kind, name)));
        e
    }

    /// A stale `resourceVersion` (or a seeded write conflict).
    pub fn conflict(kind: &Kind, name: &str) -> ApiError {
        let mut e = ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                kind.qualified_plural()
            ),
        );
        e.details = Some(Box::new(details(kind, name)));
        e
    }

    pub fn method_not_allowed(message: impl Into<String>) -> ApiError {
        ApiError::new(405, "MethodNotAllowed", message)
    }

    pub fn unsupported_media_type(ct: &str) -> ApiError {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got {ct:?})"),
        )
    }

    /// 410: a resource version older than the history kept.
    pub fn expired(message: impl Into<String>) -> ApiError {
        ApiError::new(410, "Expired", message)
    }

    pub fn unauthorized() -> ApiError {
        ApiError::new(401, "Unauthorized", "Unauthorized")
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(500, "InternalError", message)
    }

    /// A 422 from field errors, worded as the API server words it:
    /// `Deployment.apps "x" is invalid: spec.replicas: Invalid value: -1: …`.
    pub fn invalid(kind: &Kind, name: &str, errs: Vec<FieldError>) -> ApiError {
        let parts: Vec<String> = errs.iter().map(FieldError::to_string).collect();
        let joined = if parts.len() == 1 {
            parts[0].clone()
        } else {
            format!("[{}]", parts.join(", "))
        };
        let mut e = ApiError::new(
            422,
            "Invalid",
            format!("{} \"{name}\" is invalid: {joined}", kind.qualified_kind()),
        );
        let mut d = json!({"name": name, "kind": kind.kind});
        if !kind.group.is_empty() {
            d["group"] = json!(kind.group);
        }
        d["causes"] = errs
            .iter()
            .map(|f| json!({"reason": f.kind.reason(), "message": f.body(), "field": f.field}))
            .collect();
        e.details = Some(Box::new(d));
        e
    }

    pub fn status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        });
        if let Some(d) = self.details.as_deref() {
            s["details"] = d.clone();
        }
        if let Some(r) = self.retry_after {
            s["details"] = json!({"retryAfterSeconds": r});
        }
        s["code"] = json!(self.code);
        s
    }
}

fn details(kind: &Kind, name: &str) -> Value {
    let mut d = json!({"name": name, "kind": kind.plural});
    if !kind.group.is_empty() {
        d["group"] = json!(kind.group);
    }
    d
}

#[derive(Clone, Debug, PartialEq)]
pub enum FieldErrorKind {
    /// The value, Go-formatted (`"Foo"`, `-1`), and the detail.
    Invalid(String, String),
    Required(String),
    Duplicate(String),
    NotSupported(String, Vec<String>),
    Forbidden(String),
}

impl FieldErrorKind {
    fn reason(&self) -> &'static str {
        match self {
            FieldErrorKind::Invalid(..) => "FieldValueInvalid",
            FieldErrorKind::Required(_) => "FieldValueRequired",
            FieldErrorKind::Duplicate(_) => "FieldValueDuplicate",
            FieldErrorKind::NotSupported(..) => "FieldValueNotSupported",
            FieldErrorKind::Forbidden(_) => "FieldValueForbidden",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct FieldError {
    pub field: String,
    pub kind: FieldErrorKind,
}

impl FieldError {
    pub fn invalid(
        field: impl Into<String>,
        value: &Value,
        detail: impl Into<String>,
    ) -> FieldError {
        FieldError {
            field: field.into(),
            kind: FieldErrorKind::Invalid(go_value(value), detail.into()),
        }
    }

    /// `Invalid value` with the value already written Go's way.
    pub fn invalid_raw(
        field: impl Into<String>,
        value: String,
        detail: impl Into<String>,
    ) -> FieldError {
        FieldError {
            field: field.into(),
            kind: FieldErrorKind::Invalid(value, detail.into()),
        }
    }

    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            kind: FieldErrorKind::Required(detail.into()),
        }
    }

    pub fn duplicate(field: impl Into<String>, value: &Value) -> FieldError {
        FieldError {
            field: field.into(),
            kind: FieldErrorKind::Duplicate(go_value(value)),
        }
    }

    pub fn not_supported(field: impl Into<String>, value: &Value, allowed: &[&str]) -> FieldError {
        FieldError {
            field: field.into(),
            kind: FieldErrorKind::NotSupported(
                go_value(value),
                allowed.iter().map(|s| format!("\"{s}\"")).collect(),
            ),
        }
    }

    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            kind: FieldErrorKind::Forbidden(detail.into()),
        }
    }

    /// The part after `field: `.
    pub fn body(&self) -> String {
        match &self.kind {
            FieldErrorKind::Invalid(v, d) if d.is_empty() => format!("Invalid value: {v}"),
            FieldErrorKind::Invalid(v, d) => format!("Invalid value: {v}: {d}"),
            FieldErrorKind::Required(d) if d.is_empty() => "Required value".into(),
            FieldErrorKind::Required(d) => format!("Required value: {d}"),
            FieldErrorKind::Duplicate(v) => format!("Duplicate value: {v}"),
            FieldErrorKind::NotSupported(v, allowed) => {
                format!(
                    "Unsupported value: {v}: supported values: {}",
                    allowed.join(", ")
                )
            }
            FieldErrorKind::Forbidden(d) => format!("Forbidden: {d}"),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}

/// A JSON value the way Go's `%#v` shows it in field errors.
pub fn go_value(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Null => "null".into(),
        Value::Object(m) if m.values().all(Value::is_string) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let inner: Vec<String> = keys
                .iter()
                .map(|k| format!("{:?}:{:?}", k, m[*k].as_str().unwrap_or_default()))
                .collect();
            format!("map[string]string{{{}}}", inner.join(", "))
        }
        other => other.to_string(),
    }
}
