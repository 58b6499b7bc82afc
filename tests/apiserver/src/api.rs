//! Requests: routing, authentication outcome, faults, the verbs, content
//! negotiation (JSON, YAML bodies, Tables), watches, and the request log.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};

use crate::errors::ApiError;
use crate::fields;
use crate::kinds::{self, Kind, KINDS};
use crate::patch;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::state::{Event, Propagation, State, WriteOpts};
use crate::table;
use crate::util;
use crate::{Cluster, Fault, Record};

/// Who sent a request, as the TLS layer found out.
#[derive(Clone, Debug, PartialEq)]
pub enum Auth {
    /// A client certificate signed by the cluster CA: its CN and O.
    User { name: String, groups: Vec<String> },
    /// No client certificate.
    Anonymous,
    /// A certificate the cluster CA did not sign (or expired).
    Invalid,
}

#[derive(Clone, Debug)]
pub struct Request {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub accept: String,
    pub content_type: String,
    pub user_agent: String,
    pub body: Bytes,
    pub auth: Auth,
}

impl Request {
    /// A request from the cluster admin (tests that skip TLS).
    pub fn admin(method: Method, path_and_query: &str, body: impl Into<Bytes>) -> Request {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        Request {
            method,
            path: path.into(),
            query: query.into(),
            accept: "application/json".into(),
            content_type: "application/json".into(),
            user_agent: "test".into(),
            body: body.into(),
            auth: Auth::User {
                name: "kubernetes-admin".into(),
                groups: vec!["system:masters".into()],
            },
        }
    }

    pub fn content_type(mut self, ct: &str) -> Request {
        self.content_type = ct.into();
        self
    }

    pub fn accept(mut self, a: &str) -> Request {
        self.accept = a.into();
        self
    }
}

pub enum Body {
    Full(Bytes),
    /// A watch: newline-delimited JSON events until the sender ends.
    Stream(mpsc::Receiver<Bytes>),
}

pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Body,
}

impl Response {
    fn json(status: u16, v: &Value) -> Response {
        Response {
            status,
            content_type: "application/json",
            headers: Vec::new(),
            body: Body::Full(Bytes::from(serde_json::to_vec(v).unwrap_or_default())),
        }
    }

    fn text(status: u16, s: &str) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            headers: Vec::new(),
            body: Body::Full(Bytes::from(s.to_string())),
        }
    }

    fn error(e: &ApiError) -> Response {
        let mut r = Response::json(e.code, &e.status());
        if let Some(s) = e.retry_after {
            r.headers.push(("Retry-After", s.to_string()));
        }
        r
    }

    /// No answer: the server closes the connection (a cut connection, or a
    /// request held by a freeze). Status 0 in [`Cluster::handle`]'s result.
    pub fn cut() -> Response {
        Response {
            status: 0,
            content_type: "text/plain; charset=utf-8",
            headers: Vec::new(),
            body: Body::Full(Bytes::new()),
        }
    }

    pub fn is_cut(&self) -> bool {
        self.status == 0
    }

    /// The body of a full response, as JSON (tests).
    pub fn json_body(&self) -> Value {
        match &self.body {
            Body::Full(b) => serde_json::from_slice(b).unwrap_or(Value::Null),
            Body::Stream(_) => Value::Null,
        }
    }

    /// The next watch event (tests); `None` when the stream ended or
    /// nothing came within `wait`.
    pub async fn next_event(&mut self, wait: Duration) -> Option<Value> {
        let Body::Stream(rx) = &mut self.body else {
            return None;
        };
        let line = tokio::time::timeout(wait, rx.recv()).await.ok()??;
        serde_json::from_slice(&line).ok()
    }
}

struct Query(Vec<(String, String)>);

impl Query {
    fn parse(q: &str) -> Query {
        Query(form_urlencoded::parse(q.as_bytes()).into_owned().collect())
    }

    fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }

    fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true" | "1"))
    }
}

#[derive(Debug)]
struct Target {
    kind: usize,
    ns: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

fn parse_target(group: &str, version: &str, segs: &[&str]) -> Option<Target> {
    let s = |i: usize| segs.get(i).map(|s| s.to_string());
    if segs.len() >= 3 && segs[0] == "namespaces" {
        if let Some(k) = kinds::find(group, version, segs[2]).filter(|k| KINDS[*k].namespaced) {
            if segs.len() > 5 {
                return None;
            }
            return Some(Target {
                kind: k,
                ns: s(1),
                name: s(3),
                sub: s(4),
            });
        }
    }
    let k = kinds::find(group, version, segs.first()?)?;
    if segs.len() > 3 {
        return None;
    }
    Some(Target {
        kind: k,
        ns: None,
        name: s(1),
        sub: s(2),
    })
}

fn decode(req: &Request) -> Result<Value, ApiError> {
    let ct = req
        .content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim();
    let v: Value = match ct {
        "application/json"
        | "application/merge-patch+json"
        | "application/strategic-merge-patch+json"
        | "application/json-patch+json"
        | "" => serde_json::from_slice(&req.body)
            .map_err(|e| ApiError::bad_request(format!("error decoding JSON: {e}")))?,
        "application/yaml" | "application/apply-patch+yaml" => serde_norway::from_slice(&req.body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?,
        other => return Err(ApiError::unsupported_media_type(other)),
    };
    Ok(v)
}

fn wants_table(req: &Request) -> bool {
    req.accept
        .split(',')
        .next()
        .is_some_and(|first| first.contains("as=Table"))
}

fn verb_of(method: &Method, t: &Target, q: &Query) -> &'static str {
    match *method {
        Method::GET if t.name.is_some() => "get",
        Method::GET if q.flag("watch") => "watch",
        Method::GET => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if t.name.is_some() => "delete",
        Method::DELETE => "deletecollection",
        _ => "unknown",
    }
}

fn version_doc(v: &str) -> Value {
    let minor = v.split('.').nth(1).unwrap_or("31");
    json!({
        "major": "1",
        "minor": minor,
        "gitVersion": format!("v{v}.0"),
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2024-08-13T07:28:49Z",
        "goVersion": "go1.22.5",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

fn manager(q: &Query, req: &Request) -> String {
    match q.get("fieldManager") {
        Some(m) if !m.is_empty() => m.to_string(),
        _ => req
            .user_agent
            .split('/')
            .next()
            .filter(|s| !s.is_empty())
            .unwrap_or("unknown")
            .chars()
            .take(128)
            .collect(),
    }
}

impl Cluster {
    /// Answers one request.
    pub async fn handle(&self, req: Request) -> Response {
        // Came while frozen: never served, never logged.
        if self.held().await {
            return Response::cut();
        }
        let start = Instant::now();
        let q = Query::parse(&req.query);
        let segs: Vec<&str> = req.path.split('/').filter(|s| !s.is_empty()).collect();
        let user = match &req.auth {
            Auth::User { name, .. } => name.clone(),
            Auth::Anonymous => "system:anonymous".into(),
            Auth::Invalid => String::new(),
        };
        let public = matches!(
            segs.as_slice(),
            ["version"] | ["livez"] | ["readyz"] | ["healthz"]
        );
        let mut record = Record {
            seq: 0,
            verb: req.method.as_str().to_lowercase(),
            path: req.path.clone(),
            status: 0,
            fault: None,
            user,
            micros: 0,
            at_micros: start.duration_since(self.inner.born).as_micros() as u64,
        };
        let latency = self.config().latency;
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let resp = if req.auth == Auth::Invalid {
            Response::error(&ApiError::unauthorized())
        } else if req.auth == Auth::Anonymous && !public {
            let msg = format!(
                "forbidden: User \"system:anonymous\" cannot {} path \"{}\"",
                req.method.as_str().to_lowercase(),
                req.path
            );
            Response::error(&ApiError::new(403, "Forbidden", msg))
        } else {
            self.route(&req, &q, &segs, &mut record).await
        };
        record.status = resp.status;
        record.micros = start.elapsed().as_micros() as u64;
        let write = is_write(&record.verb);
        let cut_after = record.fault == Some(Fault::CutAfter);
        self.record(record);
        if write {
            let froze = {
                let mut f = self.freezer();
                f.writes += 1;
                if f.at.is_some_and(|at| f.writes >= at) {
                    f.at = None;
                    f.frozen = true;
                    true
                } else {
                    false
                }
            };
            if froze {
                self.held().await;
                return Response::cut();
            }
        }
        if cut_after {
            return Response::cut();
        }
        resp
    }

    async fn route(
        &self,
        req: &Request,
        q: &Query,
        segs: &[&str],
        record: &mut Record,
    ) -> Response {
        let get = req.method == Method::GET;
        match segs {
            ["version"] if get => {
                return Response::json(200, &version_doc(&self.config().kubernetes_version))
            }
            ["livez"] | ["readyz"] | ["healthz"] if get => {
                if q.get("verbose").is_some() {
                    return Response::text(
                        200,
                        &format!("[+]ping ok\n[+]etcd ok\n{} check passed\n", segs[0]),
                    );
                }
                return Response::text(200, "ok");
            }
            ["api"] if get => return Response::json(200, &kinds::api_versions("127.0.0.1:6443")),
            ["apis"] if get => return Response::json(200, &kinds::api_group_list()),
            ["api", "v1"] if get => {
                return Response::json(200, &kinds::api_resource_list("", "v1").unwrap_or_default())
            }
            ["openapi", "v3"] if get => return Response::json(200, &kinds::openapi_v3_root()),
            ["openapi", "v3", "api", v] if get => {
                return match kinds::openapi_v3("", v) {
                    Some(v) => Response::json(200, &v),
                    None => Response::error(&ApiError::path_not_found()),
                }
            }
            ["openapi", "v3", "apis", g, v] if get => {
                return match kinds::openapi_v3(g, v) {
                    Some(v) => Response::json(200, &v),
                    None => Response::error(&ApiError::path_not_found()),
                }
            }
            ["apis", g] if get => {
                return match kinds::api_group(g) {
                    Some(v) => Response::json(200, &v),
                    None => Response::error(&ApiError::path_not_found()),
                }
            }
            ["apis", g, v] if get => {
                return match kinds::api_resource_list(g, v) {
                    Some(v) => Response::json(200, &v),
                    None => Response::error(&ApiError::path_not_found()),
                }
            }
            _ => {}
        }
        let (group, version, rest) = match segs {
            ["api", "v1", rest @ ..] => ("", "v1", rest),
            ["apis", g, v, rest @ ..] => (*g, *v, rest),
            _ => return Response::error(&ApiError::path_not_found()),
        };
        let Some(t) = parse_target(group, version, rest) else {
            return Response::error(&ApiError::path_not_found());
        };
        let verb = verb_of(&req.method, &t, q);
        record.verb = verb.into();
        let fault = if self.within_limit(verb, &req.path) {
            self.draw_fault(verb)
        } else {
            None
        };
        let fault = self.count_in_a_row(verb, &req.path, fault);
        record.fault = fault;
        match fault {
            Some(Fault::Latency) => {
                let max = self.config().faults.max_latency;
                let ms = self
                    .inner
                    .faults
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .below(max.as_millis() as u64 + 1);
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            Some(Fault::Throttle) => {
                let mut e = ApiError::new(
                    429,
                    "TooManyRequests",
                    "the server has received too many requests and has asked us to try again later",
                );
                e.retry_after = Some(1);
                return Response::error(&e);
            }
            Some(Fault::Status500) => return Response::error(&ApiError::internal(
                "an error on the server (\"injected\") has prevented the request from succeeding",
            )),
            Some(Fault::Status503) => {
                return Response::error(&ApiError::new(
                    503,
                    "ServiceUnavailable",
                    "the server is currently unable to handle the request",
                ))
            }
            Some(Fault::Conflict) => {
                let name = t.name.clone().unwrap_or_default();
                return Response::error(&ApiError::conflict(&KINDS[t.kind], &name));
            }
            Some(Fault::CutBefore) => return Response::cut(),
            _ => {}
        }
        let result = match verb {
            "watch" => self.watch(req, q, &t, fault == Some(Fault::CutWatch)),
            _ => {
                let mut st = self.state();
                let r = self.resource(&mut st, req, q, &t, verb);
                if st.dirty {
                    self.inner.wake.notify_one();
                }
                r
            }
        };
        match result {
            Ok(r) => r,
            Err(e) => Response::error(&e),
        }
    }

    /// Whether `Faults::max_in_a_row` allows another fault on `verb` `path`.
    fn within_limit(&self, verb: &str, path: &str) -> bool {
        let max = self.config().faults.max_in_a_row;
        max == 0
            || self
                .inner
                .in_a_row
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&(verb.to_string(), path.to_string()))
                .is_none_or(|n| *n < max)
    }

    /// Counts faults in a row per verb and path (latency is no failure).
    fn count_in_a_row(&self, verb: &str, path: &str, fault: Option<Fault>) -> Option<Fault> {
        if self.config().faults.max_in_a_row > 0 {
            let mut m = self
                .inner
                .in_a_row
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let key = (verb.to_string(), path.to_string());
            match fault {
                Some(f) if f != Fault::Latency => *m.entry(key).or_default() += 1,
                _ => {
                    m.remove(&key);
                }
            }
        }
        fault
    }

    fn draw_fault(&self, verb: &str) -> Option<Fault> {
        let f = &self.config().faults;
        if f.rate <= 0.0 {
            return None;
        }
        let write = is_write(verb);
        let mut choices = Vec::new();
        if f.throttle {
            choices.push(Fault::Throttle);
        }
        if f.errors {
            choices.extend([Fault::Status500, Fault::Status503]);
        }
        if f.conflicts && write {
            choices.push(Fault::Conflict);
        }
        if f.cut_watches && verb == "watch" {
            choices.push(Fault::CutWatch);
        }
        if f.cut_connections && verb != "watch" {
            choices.extend([Fault::CutBefore, Fault::CutAfter]);
        }
        if !f.max_latency.is_zero() {
            choices.push(Fault::Latency);
        }
        if choices.is_empty() {
            return None;
        }
        if f.every_kind_per_verb {
            let mut seen = self
                .inner
                .per_verb
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let n = seen.entry(verb.to_string()).or_default();
            let i = *n;
            *n += 1;
            if i.is_multiple_of(2) && i / 2 < choices.len() {
                // A write meets its conflict first.
                let mut order = choices.clone();
                order.sort_by_key(|c| *c != Fault::Conflict);
                return Some(order[i / 2]);
            }
        }
        let mut rng = self.inner.faults.lock().unwrap_or_else(|e| e.into_inner());
        if rng.unit() >= f.rate {
            return None;
        }
        Some(choices[rng.below(choices.len() as u64) as usize])
    }

    fn resource(
        &self,
        st: &mut State,
        req: &Request,
        q: &Query,
        t: &Target,
        verb: &str,
    ) -> Result<Response, ApiError> {
        let kind = &KINDS[t.kind];
        let ns = t.ns.clone().unwrap_or_default();
        if kind.namespaced
            && t.ns.is_none()
            && !matches!(verb, "list" | "watch" | "deletecollection")
        {
            return Err(ApiError::path_not_found());
        }
        let sub = t.sub.as_deref();
        match sub {
            None => {}
            Some("status") if kind.status => {}
            Some("scale") if kind.scale => {}
            Some(_) => return Err(ApiError::path_not_found()),
        }
        let dry_run = q.get("dryRun") == Some("All");
        let opts = WriteOpts {
            manager: manager(q, req),
            subresource: sub.map(str::to_string),
            dry_run,
            applied: false,
            trusted: false,
        };
        let table = wants_table(req);
        let include = q.get("includeObject").unwrap_or("Metadata");
        let now_ms = st.clock.now_ms();
        let name = t.name.clone().unwrap_or_default();
        let out = |o: &Value| -> Value {
            if table {
                let meta = json!({"resourceVersion": o["metadata"]["resourceVersion"]});
                table::table(kind, &[o], now_ms, include, meta, true)
            } else {
                o.clone()
            }
        };
        match verb {
            "get" => {
                let o = st
                    .get(t.kind, &ns, &name)
                    .ok_or_else(|| ApiError::not_found(kind, &name))?;
                if sub == Some("scale") {
                    return Ok(Response::json(200, &scale_of(o)));
                }
                Ok(Response::json(200, &out(o)))
            }
            "list" => self.list(st, req, q, t, table, include),
            "create" => {
                if t.name.is_some() {
                    return Err(ApiError::method_not_allowed(
                        "the server does not allow this method on the requested resource",
                    ));
                }
                let body = decode(req)?;
                check_type(kind, &body)?;
                let o = st.create(t.kind, &ns, body, &opts)?;
                Ok(Response::json(201, &o))
            }
            "update" => {
                let body = decode(req)?;
                if sub == Some("scale") {
                    return self.write_scale(st, t, &ns, &name, body, &opts);
                }
                check_type(kind, &body)?;
                let existed = st.get(t.kind, &ns, &name).is_some();
                if !existed {
                    return Err(ApiError::not_found(kind, &name));
                }
                let o = st.update(t.kind, &ns, &name, body, &opts)?;
                Ok(Response::json(200, &o))
            }
            "patch" => self.patch(st, req, q, t, &ns, &name, opts),
            "delete" => {
                let (prop, pre, body_dry) = delete_options(req, q, kind)?;
                let grace = grace_period(req, q);
                let o =
                    st.delete_with(t.kind, &ns, &name, prop, &pre, dry_run || body_dry, grace)?;
                Ok(Response::json(200, &o))
            }
            "deletecollection" => {
                let (prop, pre, body_dry) = delete_options(req, q, kind)?;
                let labels = LabelSelector::parse(q.get("labelSelector").unwrap_or(""))?;
                let fields = FieldSelector::parse(kind.kind, q.get("fieldSelector").unwrap_or(""))?;
                let victims: Vec<Arc<Value>> = st
                    .list(t.kind, t.ns.as_deref())
                    .into_iter()
                    .filter(|o| labels.matches(util::labels(o)) && fields.matches(o))
                    .collect();
                let mut items = Vec::new();
                for v in victims {
                    items.push(
                        (*st.delete(
                            t.kind,
                            util::namespace(&v),
                            util::name(&v),
                            prop,
                            &pre,
                            dry_run || body_dry,
                        )?)
                        .clone(),
                    );
                }
                Ok(Response::json(
                    200,
                    &json!({"kind": format!("{}List", kind.kind), "apiVersion": kind.api_version(), "metadata": {"resourceVersion": st.rv.to_string()}, "items": items}),
                ))
            }
            _ => Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            )),
        }
    }

    fn list(
        &self,
        st: &State,
        _req: &Request,
        q: &Query,
        t: &Target,
        table: bool,
        include: &str,
    ) -> Result<Response, ApiError> {
        let kind = &KINDS[t.kind];
        let labels = LabelSelector::parse(q.get("labelSelector").unwrap_or(""))?;
        let fields = FieldSelector::parse(kind.kind, q.get("fieldSelector").unwrap_or(""))?;
        let limit: usize = q
            .get("limit")
            .and_then(|l| l.parse().ok())
            .filter(|l| *l > 0)
            .unwrap_or(usize::MAX);
        let start_after = match q.get("continue").filter(|c| !c.is_empty()) {
            Some(token) => {
                use base64::Engine as _;
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(token)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                    .ok_or_else(|| ApiError::bad_request("continue key is not valid"))?;
                let rv = raw["rv"].as_u64().unwrap_or(0);
                if rv < st.compacted {
                    return Err(ApiError::expired("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list."));
                }
                Some(raw["start"].as_str().unwrap_or_default().to_string())
            }
            None => None,
        };
        let candidates: Vec<Arc<Value>> = match (fields.exact_name(), t.ns.as_deref()) {
            (Some(n), Some(ns)) => st.get(t.kind, ns, n).cloned().into_iter().collect(),
            (Some(n), None) if !kind.namespaced => {
                st.get(t.kind, "", n).cloned().into_iter().collect()
            }
            _ => st.list(t.kind, t.ns.as_deref()),
        };
        let mut matching = candidates
            .into_iter()
            .filter(|o| {
                start_after
                    .as_ref()
                    .is_none_or(|s| format!("{}/{}", util::namespace(o), util::name(o)) > *s)
            })
            .filter(|o| labels.matches(util::labels(o)) && fields.matches(o));
        let page: Vec<Arc<Value>> = matching.by_ref().take(limit).collect();
        let remaining = matching.count();
        let mut meta = json!({"resourceVersion": st.rv.to_string()});
        if remaining > 0 {
            if let Some(last) = page.last() {
                use base64::Engine as _;
                let token = json!({"rv": st.rv, "start": format!("{}/{}", util::namespace(last), util::name(last))});
                meta["continue"] =
                    json!(base64::engine::general_purpose::STANDARD.encode(token.to_string()));
                meta["remainingItemCount"] = json!(remaining);
            }
        }
        if table {
            let objs: Vec<&Value> = page.iter().map(|o| o.as_ref()).collect();
            return Ok(Response::json(
                200,
                &table::table(kind, &objs, st.clock.now_ms(), include, meta, true),
            ));
        }
        let items: Vec<Value> = page
            .iter()
            .map(|o| {
                let mut o = (**o).clone();
                if let Some(m) = o.as_object_mut() {
                    m.remove("apiVersion");
                    m.remove("kind");
                }
                o
            })
            .collect();
        Ok(Response::json(
            200,
            &json!({"kind": format!("{}List", kind.kind), "apiVersion": kind.api_version(), "metadata": meta, "items": items}),
        ))
    }

    #[allow(clippy::too_many_arguments)]
    fn patch(
        &self,
        st: &mut State,
        req: &Request,
        q: &Query,
        t: &Target,
        ns: &str,
        name: &str,
        mut opts: WriteOpts,
    ) -> Result<Response, ApiError> {
        let kind = &KINDS[t.kind];
        let ct = req
            .content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        let body = decode(req)?;
        if ct == "application/apply-patch+yaml" {
            if q.get("fieldManager").is_none_or(str::is_empty) {
                return Err(ApiError::bad_request(
                    "PATCH requests with apply patch type must specify a fieldManager",
                ));
            }
            if t.sub.as_deref() == Some("scale") {
                return Err(ApiError::unsupported_media_type(&ct));
            }
            check_type(kind, &body)?;
            if body.get("apiVersion").is_none() || body.get("kind").is_none() {
                return Err(ApiError::bad_request(
                    "apiVersion and kind are required in an apply configuration",
                ));
            }
            let body_name = util::name(&body);
            if body_name != name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({body_name}) does not match the name on the URL ({name})"
                )));
            }
            let now = st.now();
            let live = st.get(t.kind, ns, name).cloned();
            let a = fields::Apply {
                kind,
                manager: &opts.manager,
                force: q.flag("force"),
                subresource: t.sub.as_deref(),
                now: &now,
            };
            let mut result = fields::apply(&a, live.as_deref(), &body)?;
            opts.applied = true;
            return match live {
                None => {
                    util::remove(&mut result, &["metadata", "resourceVersion"]);
                    let o = st.create(t.kind, ns, result, &opts)?;
                    Ok(Response::json(201, &o))
                }
                Some(_) => Ok(Response::json(
                    200,
                    &*st.update(t.kind, ns, name, result, &opts)?,
                )),
            };
        }
        let live = st
            .get(t.kind, ns, name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(kind, name))?;
        let mut target = if t.sub.as_deref() == Some("scale") {
            scale_of(&live)
        } else {
            (*live).clone()
        };
        match ct.as_str() {
            "application/json-patch+json" => patch::json_patch(&mut target, &body)?,
            "application/merge-patch+json" => patch::merge_patch(&mut target, &body),
            "application/strategic-merge-patch+json" => {
                patch::strategic_merge_patch(kind.kind, &mut target, &body)?
            }
            other => return Err(ApiError::unsupported_media_type(other)),
        }
        if t.sub.as_deref() == Some("scale") {
            return self.write_scale(st, t, ns, name, target, &opts);
        }
        let o = st.update(t.kind, ns, name, target, &opts)?;
        Ok(Response::json(200, &o))
    }

    fn write_scale(
        &self,
        st: &mut State,
        t: &Target,
        ns: &str,
        name: &str,
        scale: Value,
        opts: &WriteOpts,
    ) -> Result<Response, ApiError> {
        let kind = &KINDS[t.kind];
        let live = st
            .get(t.kind, ns, name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(kind, name))?;
        if let Some(rv) =
            util::str_at(&scale, &["metadata", "resourceVersion"]).filter(|s| !s.is_empty())
        {
            if Some(rv) != util::str_at(&live, &["metadata", "resourceVersion"]) {
                return Err(ApiError::conflict(kind, name));
            }
        }
        let replicas = util::at(&scale, &["spec", "replicas"])
            .cloned()
            .unwrap_or(json!(0));
        if replicas.as_i64().is_none_or(|r| r < 0) {
            return Err(ApiError::invalid(
                kind,
                name,
                vec![crate::errors::FieldError::invalid(
                    "spec.replicas",
                    &replicas,
                    "must be greater than or equal to 0",
                )],
            ));
        }
        let mut n = (*live).clone();
        n["spec"]["replicas"] = replicas;
        // The scale subresource writes the object's spec; ownership is
        // recorded against `scale`.
        let opts = WriteOpts {
            subresource: Some("scale".into()),
            ..opts.clone()
        };
        let o = st.update(t.kind, ns, name, n, &opts)?;
        Ok(Response::json(200, &scale_of(&o)))
    }

    fn watch(&self, req: &Request, q: &Query, t: &Target, cut: bool) -> Result<Response, ApiError> {
        let kind_ix = t.kind;
        let kind = &KINDS[kind_ix];
        let labels = LabelSelector::parse(q.get("labelSelector").unwrap_or(""))?;
        let fields = FieldSelector::parse(kind.kind, q.get("fieldSelector").unwrap_or(""))?;
        let table = wants_table(req);
        let include = q.get("includeObject").unwrap_or("Metadata").to_string();
        let bookmarks = q.flag("allowWatchBookmarks");
        let timeout = q
            .get("timeoutSeconds")
            .and_then(|s| s.parse::<u64>().ok())
            .map(Duration::from_secs)
            .unwrap_or(Duration::from_secs(1800));
        let ns = t.ns.clone();
        let (tx, rx) = mpsc::channel::<Bytes>(256);
        let (mut initial, mut sub, start_rv, cut_after) = {
            let st = self.state();
            let rv_param = q.get("resourceVersion").unwrap_or("");
            let mut initial: Vec<Value> = Vec::new();
            let now_ms = st.clock.now_ms();
            let matches = |o: &Value| {
                ns.as_deref().is_none_or(|n| n == util::namespace(o))
                    && labels.matches(util::labels(o))
                    && fields.matches(o)
            };
            let mut first = true;
            let mut enc = |ty: &str, o: &Value| -> Value {
                let obj = if table {
                    let t = table::table(
                        kind,
                        &[o],
                        now_ms,
                        &include,
                        json!({"resourceVersion": o["metadata"]["resourceVersion"]}),
                        first,
                    );
                    first = false;
                    t
                } else {
                    o.clone()
                };
                json!({"type": ty, "object": obj})
            };
            if rv_param.is_empty() || rv_param == "0" {
                for o in st.list(kind_ix, ns.as_deref()) {
                    if matches(&o) {
                        initial.push(enc("ADDED", &o));
                    }
                }
            } else {
                let rv: u64 = rv_param.parse().map_err(|_| {
                    ApiError::bad_request(format!("invalid resource version {rv_param:?}"))
                })?;
                if rv < st.compacted {
                    let e = ApiError::expired(format!(
                        "too old resource version: {rv} ({})",
                        st.compacted + 1
                    ));
                    initial.push(json!({"type": "ERROR", "object": e.status()}));
                    let _ = tx.try_send(line(&initial[0]));
                    return Ok(stream(rx));
                }
                for e in st.history.iter().filter(|e| e.rv > rv && e.kind == kind_ix) {
                    if let Some((ty, o)) = translate(e, &matches) {
                        initial.push(enc(ty, &o));
                    }
                }
            }
            let cut_after = if cut {
                Some(
                    1 + self
                        .inner
                        .faults
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .below(3) as usize,
                )
            } else {
                None
            };
            (
                std::mem::take(&mut initial),
                st.tx.subscribe(),
                st.rv,
                cut_after,
            )
        };
        let bookmark_every = self.config().bookmark_interval;
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut sent = 0usize;
            let mut last_rv = start_rv;
            let deadline = tokio::time::Instant::now() + timeout;
            let mut first = initial.is_empty();
            for ev in initial.drain(..) {
                if tx.send(line(&ev)).await.is_err() {
                    return;
                }
                sent += 1;
                if cut_after.is_some_and(|n| sent >= n) {
                    return;
                }
            }
            let mut tick = tokio::time::interval(bookmark_every);
            tick.tick().await;
            loop {
                tokio::select! {
                    ev = sub.recv() => {
                        let ev = match ev {
                            Ok(ev) => ev,
                            Err(broadcast::error::RecvError::Lagged(_)) | Err(broadcast::error::RecvError::Closed) => return,
                        };
                        if ev.rv <= last_rv {
                            continue;
                        }
                        last_rv = ev.rv;
                        if ev.kind != kind_ix {
                            continue;
                        }
                        let matches = |o: &Value| ns.as_deref().is_none_or(|n| n == util::namespace(o)) && labels.matches(util::labels(o)) && fields.matches(o);
                        let Some((ty, o)) = translate(&ev, &matches) else { continue };
                        let obj = if table {
                            let now_ms = match weak.upgrade() {
                                Some(inner) => inner.state.lock().unwrap_or_else(|e| e.into_inner()).clock.now_ms(),
                                None => return,
                            };
                            let t = table::table(kind, &[&o], now_ms, &include, json!({"resourceVersion": o["metadata"]["resourceVersion"]}), !first);
                            first = true;
                            t
                        } else {
                            o
                        };
                        if tx.send(line(&json!({"type": ty, "object": obj}))).await.is_err() {
                            return;
                        }
                        sent += 1;
                        if cut_after.is_some_and(|n| sent >= n) {
                            return;
                        }
                    }
                    _ = tick.tick(), if bookmarks => {
                        let b = json!({"type": "BOOKMARK", "object": {"kind": kind.kind, "apiVersion": kind.api_version(), "metadata": {"resourceVersion": last_rv.to_string(), "creationTimestamp": null}}});
                        if tx.send(line(&b)).await.is_err() {
                            return;
                        }
                    }
                    _ = tokio::time::sleep_until(deadline) => return,
                    _ = tx.closed() => return,
                }
            }
        });
        Ok(stream(rx))
    }
}

fn line(v: &Value) -> Bytes {
    let mut b = serde_json::to_vec(v).unwrap_or_default();
    b.push(b'\n');
    Bytes::from(b)
}

fn stream(rx: mpsc::Receiver<Bytes>) -> Response {
    Response {
        status: 200,
        content_type: "application/json",
        headers: Vec::new(),
        body: Body::Stream(rx),
    }
}

/// An event as a watch with selectors sees it: a modification that makes
/// an object match is ADDED, one that makes it stop matching is DELETED.
fn translate(e: &Event, matches: &dyn Fn(&Value) -> bool) -> Option<(&'static str, Value)> {
    let now = matches(&e.obj);
    match e.ty {
        "MODIFIED" => {
            let before = e.prev.as_deref().is_some_and(matches);
            match (before, now) {
                (true, true) => Some(("MODIFIED", (*e.obj).clone())),
                (false, true) => Some(("ADDED", (*e.obj).clone())),
                (true, false) => Some(("DELETED", (*e.obj).clone())),
                (false, false) => None,
            }
        }
        ty => now.then(|| (ty, (*e.obj).clone())),
    }
}

fn check_type(kind: &Kind, body: &Value) -> Result<(), ApiError> {
    if let Some(av) = body.get("apiVersion").and_then(Value::as_str) {
        if av != kind.api_version() {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({})",
                kind.api_version()
            )));
        }
    }
    if let Some(k) = body.get("kind").and_then(Value::as_str) {
        if k != kind.kind {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                kind.kind
            )));
        }
    }
    Ok(())
}

/// DeleteOptions' `gracePeriodSeconds` (body, then query).
fn grace_period(req: &Request, q: &Query) -> Option<i64> {
    serde_json::from_slice::<Value>(&req.body)
        .ok()
        .and_then(|b| b["gracePeriodSeconds"].as_i64())
        .or_else(|| q.get("gracePeriodSeconds").and_then(|g| g.parse().ok()))
}

fn delete_options(
    req: &Request,
    q: &Query,
    kind: &Kind,
) -> Result<(Propagation, Value, bool), ApiError> {
    let body: Value = if req.body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&req.body)
            .map_err(|e| ApiError::bad_request(format!("error decoding DeleteOptions: {e}")))?
    };
    let policy = body["propagationPolicy"]
        .as_str()
        .or(q.get("propagationPolicy"))
        .map(str::to_string)
        .or_else(|| {
            body["orphanDependents"]
                .as_bool()
                .filter(|o| *o)
                .map(|_| "Orphan".to_string())
        });
    let prop = match policy.as_deref() {
        None | Some("Background") => Propagation::Background,
        Some("Foreground") => Propagation::Foreground,
        Some("Orphan") => Propagation::Orphan,
        Some(other) => {
            return Err(ApiError::invalid(
                kind,
                "",
                vec![crate::errors::FieldError::not_supported(
                    "propagationPolicy",
                    &json!(other),
                    &["Foreground", "Background", "Orphan", "nil"],
                )],
            ))
        }
    };
    let dry = body["dryRun"]
        .as_array()
        .is_some_and(|d| d.iter().any(|x| x == "All"));
    Ok((
        prop,
        body.get("preconditions").cloned().unwrap_or(json!({})),
        dry,
    ))
}

/// A workload's `autoscaling/v1` Scale.
fn scale_of(o: &Value) -> Value {
    let m = &o["metadata"];
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {"name": m["name"], "namespace": m["namespace"], "uid": m["uid"], "resourceVersion": m["resourceVersion"], "creationTimestamp": m["creationTimestamp"]},
        "spec": {"replicas": o["spec"]["replicas"].as_i64().unwrap_or(0)},
        "status": {"replicas": o["status"]["replicas"].as_i64().unwrap_or(0), "selector": crate::controllers::selector_query(o)},
    })
}

fn is_write(verb: &str) -> bool {
    matches!(
        verb,
        "create" | "update" | "patch" | "delete" | "deletecollection"
    )
}
