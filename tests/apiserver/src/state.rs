//! The store: objects by kind, namespace and name; one resource version
//! counter for everything (as etcd's revision); the event history watches
//! resume from; and the write pipeline every create, update, patch, apply
//! and delete goes through (defaults, validation, allocation, generation,
//! managed fields, no-op detection, garbage collection).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};
use tokio::sync::broadcast;

use crate::errors::ApiError;
use crate::fields;
use crate::kinds::{self, Kind, KINDS};
use crate::services::Alloc;
use crate::util::{self, Rng};
use crate::validate;

pub type Key = (usize, String, String);

#[derive(Debug)]
pub struct Event {
    pub rv: u64,
    pub kind: usize,
    pub ns: String,
    pub ty: &'static str,
    pub obj: Arc<Value>,
    /// The object before a modification (selectors decide ADDED/DELETED).
    pub prev: Option<Arc<Value>>,
}

/// Simulated time: real time scaled from the start, or moved by hand.
#[derive(Clone, Debug)]
pub enum Clock {
    Scaled {
        origin_ms: i64,
        start: Instant,
        scale: f64,
    },
    Manual {
        now_ms: i64,
    },
}

impl Clock {
    pub fn now_ms(&self) -> i64 {
        match self {
            Clock::Scaled {
                origin_ms,
                start,
                scale,
            } => origin_ms + (start.elapsed().as_secs_f64() * 1000.0 * scale) as i64,
            Clock::Manual { now_ms } => *now_ms,
        }
    }

    pub fn scale(&self) -> f64 {
        match self {
            Clock::Scaled { scale, .. } => *scale,
            Clock::Manual { .. } => f64::INFINITY,
        }
    }
}

/// How a write is made.
#[derive(Clone, Debug)]
pub struct WriteOpts {
    pub manager: String,
    pub subresource: Option<String>,
    pub dry_run: bool,
    /// Managed fields were already worked out (server-side apply).
    pub applied: bool,
    /// Skip validation (the server's own controllers).
    pub trusted: bool,
}

impl WriteOpts {
    pub fn manager(m: &str) -> WriteOpts {
        WriteOpts {
            manager: m.into(),
            subresource: None,
            dry_run: false,
            applied: false,
            trusted: false,
        }
    }

    pub fn status(m: &str) -> WriteOpts {
        WriteOpts {
            subresource: Some("status".into()),
            trusted: true,
            ..WriteOpts::manager(m)
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Propagation {
    Background,
    Foreground,
    Orphan,
}

pub struct State {
    pub objects: BTreeMap<Key, Arc<Value>>,
    pub rv: u64,
    pub history: VecDeque<Arc<Event>>,
    pub history_limit: usize,
    /// The newest resource version no longer in the history: a watch from
    /// before it gets 410.
    pub compacted: u64,
    pub tx: broadcast::Sender<Arc<Event>>,
    pub rng: Rng,
    pub alloc: Alloc,
    pub clock: Clock,
    /// Something changed that the controllers should look at.
    pub dirty: bool,
    pub sim: crate::controllers::Sim,
}

impl State {
    pub fn new(service_cidr: &str, seed: u64, clock: Clock, history_limit: usize) -> State {
        let (tx, _) = broadcast::channel(16_384);
        State {
            objects: BTreeMap::new(),
            rv: 1,
            history: VecDeque::new(),
            history_limit: history_limit.max(1),
            compacted: 0,
            tx,
            rng: Rng::new(seed),
            alloc: Alloc::new(service_cidr),
            clock,
            dirty: true,
            sim: crate::controllers::Sim::default(),
        }
    }

    pub fn now(&self) -> String {
        util::rfc3339(self.clock.now_ms())
    }

    pub fn get(&self, kind: usize, ns: &str, name: &str) -> Option<&Arc<Value>> {
        let ns = if KINDS[kind].namespaced { ns } else { "" };
        self.objects.get(&(kind, ns.to_string(), name.to_string()))
    }

    /// Every object of `kind` in `ns` (all namespaces when `None`), in key order.
    pub fn list(&self, kind: usize, ns: Option<&str>) -> Vec<Arc<Value>> {
        let lo = (kind, ns.unwrap_or_default().to_string(), String::new());
        self.objects
            .range(lo..)
            .take_while(|((k, n, _), _)| *k == kind && ns.is_none_or(|ns| ns == n))
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn emit(
        &mut self,
        kind: usize,
        ns: &str,
        ty: &'static str,
        obj: Arc<Value>,
        prev: Option<Arc<Value>>,
    ) {
        let e = Arc::new(Event {
            rv: self.rv,
            kind,
            ns: ns.to_string(),
            ty,
            obj,
            prev,
        });
        self.history.push_back(e.clone());
        while self.history.len() > self.history_limit {
            if let Some(old) = self.history.pop_front() {
                self.compacted = old.rv;
            }
        }
        let _ = self.tx.send(e);
        self.dirty = true;
    }

    /// Stores `obj` with the next resource version.
    fn store(&mut self, kind: usize, mut obj: Value, prev: Option<Arc<Value>>) -> Arc<Value> {
        self.rv += 1;
        util::set(
            &mut obj,
            &["metadata", "resourceVersion"],
            json!(self.rv.to_string()),
        );
        let ns = util::namespace(&obj).to_string();
        let key = (kind, ns.clone(), util::name(&obj).to_string());
        let obj = Arc::new(obj);
        self.objects.insert(key, obj.clone());
        let ty = if prev.is_some() { "MODIFIED" } else { "ADDED" };
        self.emit(kind, &ns, ty, obj.clone(), prev);
        obj
    }

    fn unstore(&mut self, kind: usize, ns: &str, name: &str) -> Option<Arc<Value>> {
        let old = self
            .objects
            .remove(&(kind, ns.to_string(), name.to_string()))?;
        self.rv += 1;
        let mut gone = (*old).clone();
        util::set(
            &mut gone,
            &["metadata", "resourceVersion"],
            json!(self.rv.to_string()),
        );
        let gone = Arc::new(gone);
        self.emit(kind, ns, "DELETED", gone.clone(), Some(old));
        if kind == kinds::SERVICE {
            self.alloc.release(&format!("{ns}/{name}"));
        }
        Some(gone)
    }

    /// The NamespaceLifecycle admission plugin on a create (kubernetes
    /// `staging/src/k8s.io/apiserver/pkg/admission/plugin/namespace/lifecycle/admission.go`,
    /// `Lifecycle.Admit`): no content in a missing namespace, and no new
    /// content in one whose phase is Terminating, with the
    /// `NamespaceTerminating` cause (`admission.NewForbidden`).
    fn namespace_ok(&self, kind: &Kind, ns: &str, name: &str) -> Result<(), ApiError> {
        if !kind.namespaced {
            return Ok(());
        }
        match self.get(kinds::NAMESPACE, "", ns) {
            None => Err(ApiError::not_found(&KINDS[kinds::NAMESPACE], ns)),
            Some(n) if util::str_at(n, &["status", "phase"]) == Some("Terminating") => {
                let mut e = ApiError::new(
                    403,
                    "Forbidden",
                    format!(
                        "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                        kind.qualified_plural(),
                    ),
                );
                let mut d = json!({"name": name, "kind": kind.plural, "causes": [{
                    "reason": "NamespaceTerminating",
                    "message": format!("namespace {ns} is being terminated"),
                    "field": "metadata.namespace",
                }]});
                if !kind.group.is_empty() {
                    d["group"] = json!(kind.group);
                }
                e.details = Some(Box::new(d));
                Err(e)
            }
            Some(_) => Ok(()),
        }
    }

    /// Defaults, validation and allocation shared by create and update.
    fn prepare(
        &mut self,
        kind_ix: usize,
        obj: &mut Value,
        old: Option<&Value>,
        opts: &WriteOpts,
    ) -> Result<(), ApiError> {
        let kind = &KINDS[kind_ix];
        strip_nulls(obj);
        validate::default(kind, obj);
        if !opts.trusted {
            let mut errs = validate::validate(kind, obj);
            if let Some(old) = old {
                errs.extend(validate::validate_update(kind, old, obj));
            }
            if !errs.is_empty() {
                return Err(ApiError::invalid(kind, util::name(obj), errs));
            }
        }
        if kind_ix == kinds::SERVICE {
            let owner = format!("{}/{}", util::namespace(obj), util::name(obj));
            let mut alloc = self.alloc.clone();
            alloc
                .assign(&owner, obj, old)
                .map_err(|errs| ApiError::invalid(kind, util::name(obj), errs))?;
            if !opts.dry_run {
                self.alloc = alloc;
            }
        }
        Ok(())
    }

    pub fn create(
        &mut self,
        kind_ix: usize,
        ns: &str,
        mut obj: Value,
        opts: &WriteOpts,
    ) -> Result<Arc<Value>, ApiError> {
        let kind = &KINDS[kind_ix];
        if !obj.is_object() {
            return Err(ApiError::bad_request("the body must be an object"));
        }
        let meta = util::obj_mut(&mut obj, &["metadata"]);
        if kind.namespaced {
            match meta.get("namespace").and_then(Value::as_str) {
                Some(n) if !n.is_empty() && n != ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ))
                }
                _ => {
                    meta.insert("namespace".into(), json!(ns));
                }
            }
        } else {
            meta.remove("namespace");
        }
        if meta
            .get("name")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            if let Some(g) = meta.get("generateName").and_then(Value::as_str) {
                let name = format!("{g}{}", self.rng.suffix(5));
                meta.insert("name".into(), json!(name));
            }
        }
        if meta
            .get("resourceVersion")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
        {
            return Err(ApiError::bad_request(
                "resourceVersion should not be set on objects to be created",
            ));
        }
        let name = util::name(&obj).to_string();
        self.namespace_ok(kind, ns, &name)?;
        if self.get(kind_ix, ns, &name).is_some() {
            return Err(ApiError::already_exists(kind, &name));
        }
        let uid = self.rng.uid();
        let now = self.now();
        let meta = util::obj_mut(&mut obj, &["metadata"]);
        meta.insert("uid".into(), json!(uid));
        meta.insert("creationTimestamp".into(), json!(now));
        meta.remove("deletionTimestamp");
        meta.remove("generation");
        if kind.generation {
            meta.insert("generation".into(), json!(1));
        }
        if let Some(m) = obj.as_object_mut() {
            m.insert("apiVersion".into(), json!(kind.api_version()));
            m.insert("kind".into(), json!(kind.kind));
            if kind.status && !opts.trusted && kind.kind != "Node" {
                m.remove("status");
            }
        }
        self.prepare(kind_ix, &mut obj, None, opts)?;
        if !opts.applied {
            fields::track_update(
                kind,
                None,
                &mut obj,
                &opts.manager,
                opts.subresource.as_deref(),
                &now,
            );
        }
        if opts.dry_run {
            return Ok(Arc::new(obj));
        }
        Ok(self.store(kind_ix, obj, None))
    }

    /// Replaces an object (or, through `/status`, its status). `new` is the
    /// full desired object; its `resourceVersion`, when set, must be current.
    pub fn update(
        &mut self,
        kind_ix: usize,
        ns: &str,
        name: &str,
        mut new: Value,
        opts: &WriteOpts,
    ) -> Result<Arc<Value>, ApiError> {
        let kind = &KINDS[kind_ix];
        let old = self
            .get(kind_ix, ns, name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(kind, name))?;
        if !new.is_object() {
            return Err(ApiError::bad_request("the body must be an object"));
        }
        if let Some(rv) =
            util::str_at(&new, &["metadata", "resourceVersion"]).filter(|s| !s.is_empty())
        {
            if rv != util::str_at(&old, &["metadata", "resourceVersion"]).unwrap_or_default() {
                return Err(ApiError::conflict(kind, name));
            }
        }
        let body_name = util::name(&new);
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let scope = fields::Scope::of(kind, opts.subresource.as_deref());
        if scope == fields::Scope::Status {
            let status = new.get("status").cloned();
            new = (*old).clone();
            match status {
                Some(s) => util::set(&mut new, &["status"], s),
                None => {
                    util::remove(&mut new, &["status"]);
                }
            }
        } else if scope == fields::Scope::Main {
            match old.get("status") {
                Some(s) => util::set(&mut new, &["status"], s.clone()),
                None => {
                    util::remove(&mut new, &["status"]);
                }
            }
        }
        {
            let m = new.as_object_mut().expect("object");
            m.insert("apiVersion".into(), json!(kind.api_version()));
            m.insert("kind".into(), json!(kind.kind));
        }
        for f in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "generation",
        ] {
            match util::at(&old, &["metadata", f]) {
                Some(v) => util::set(&mut new, &["metadata", f], v.clone()),
                None => {
                    util::remove(&mut new, &["metadata", f]);
                }
            }
        }
        self.prepare(kind_ix, &mut new, Some(&old), opts)?;
        if kind.generation && old.get("spec") != new.get("spec") {
            let g = util::i64_at(&old, &["metadata", "generation"]).unwrap_or(0) + 1;
            util::set(&mut new, &["metadata", "generation"], json!(g));
        }
        let now = self.now();
        if !opts.applied {
            fields::track_update(
                kind,
                Some(&old),
                &mut new,
                &opts.manager,
                opts.subresource.as_deref(),
                &now,
            );
        }
        util::set(
            &mut new,
            &["metadata", "resourceVersion"],
            old["metadata"]["resourceVersion"].clone(),
        );
        if same_ignoring_times(&old, &new) {
            return Ok(old);
        }
        if opts.dry_run {
            return Ok(Arc::new(new));
        }
        // The update that removes an object's last finalizer removes it
        // (`store.go`, `ShouldDeleteDuringUpdate`): not a pod still in its
        // grace period, nor a namespace (its controller finalizes it).
        let finalizing = util::at(&new, &["metadata", "deletionTimestamp"]).is_some()
            && util::at(&new, &["metadata", "finalizers"])
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty)
            && util::i64_at(&old, &["metadata", "deletionGracePeriodSeconds"]).unwrap_or(0) == 0
            && kind_ix != kinds::NAMESPACE;
        if finalizing {
            self.store(kind_ix, new, Some(old));
            return self
                .remove_now(kind_ix, ns, name, Propagation::Background)
                .ok_or_else(|| ApiError::not_found(kind, name));
        }
        Ok(self.store(kind_ix, new, Some(old)))
    }

    /// Deletes an object: marked when it has finalizers, removed otherwise;
    /// dependents follow (or are orphaned).
    pub fn delete(
        &mut self,
        kind_ix: usize,
        ns: &str,
        name: &str,
        propagation: Propagation,
        preconditions: &Value,
        dry_run: bool,
    ) -> Result<Arc<Value>, ApiError> {
        self.delete_with(kind_ix, ns, name, propagation, preconditions, dry_run, None)
    }

    /// [`State::delete`] with DeleteOptions' `gracePeriodSeconds`.
    #[allow(clippy::too_many_arguments)]
    pub fn delete_with(
        &mut self,
        kind_ix: usize,
        ns: &str,
        name: &str,
        propagation: Propagation,
        preconditions: &Value,
        dry_run: bool,
        grace: Option<i64>,
    ) -> Result<Arc<Value>, ApiError> {
        let kind = &KINDS[kind_ix];
        let ns = if kind.namespaced { ns } else { "" };
        let old = self
            .get(kind_ix, ns, name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(kind, name))?;
        for f in ["uid", "resourceVersion"] {
            if let Some(want) = preconditions.get(f).and_then(Value::as_str) {
                if util::str_at(&old, &["metadata", f]) != Some(want) {
                    let mut e = ApiError::conflict(kind, name);
                    e.message = format!(
                        "Operation cannot be fulfilled on {} \"{name}\": the {} in the precondition does not match the one in the object",
                        kind.qualified_plural(),
                        if f == "uid" { "UID" } else { "ResourceVersion" }
                    );
                    return Err(e);
                }
            }
        }
        if kind_ix == kinds::NAMESPACE && matches!(name, "default" | "kube-system" | "kube-public")
        {
            return Err(ApiError::new(
                403,
                "Forbidden",
                format!("namespaces \"{name}\" is forbidden: this namespace may not be deleted"),
            ));
        }
        if dry_run {
            return Ok(old);
        }
        let deleting = util::at(&old, &["metadata", "deletionTimestamp"]).is_some();
        // A namespace is marked and Terminating while the namespace
        // controller empties it (kubernetes
        // `pkg/registry/core/namespace/storage/storage.go`, `REST.Delete`:
        // deletionTimestamp, phase Terminating, 200 with the object; a
        // repeated DELETE returns it as it is).
        if kind_ix == kinds::NAMESPACE
            && util::at(&old, &["spec", "finalizers"])
                .and_then(Value::as_array)
                .is_some_and(|f| !f.is_empty())
        {
            if deleting {
                return Ok(old);
            }
            let mut marked = (*old).clone();
            util::set(
                &mut marked,
                &["metadata", "deletionTimestamp"],
                json!(self.now()),
            );
            util::set(&mut marked, &["status", "phase"], json!("Terminating"));
            self.dirty = true;
            return Ok(self.store(kind_ix, marked, Some(old)));
        }
        // A pod on a node terminates gracefully (kubernetes
        // `pkg/registry/core/pod/strategy.go`, `CheckGracefulDelete`; the
        // period from the options, else the pod's
        // terminationGracePeriodSeconds, default 30; 0 for an unscheduled or
        // finished pod): deletionTimestamp is now + the period
        // (`registry/rest/delete.go`, `BeforeDelete`) and the kubelet removes
        // it then. A repeated DELETE with a period no shorter changes nothing.
        if kind_ix == kinds::POD {
            let phase = util::str_at(&old, &["status", "phase"]).unwrap_or_default();
            let period = if util::str_at(&old, &["spec", "nodeName"]).is_none()
                || matches!(phase, "Succeeded" | "Failed")
            {
                0
            } else {
                grace
                    .or_else(|| {
                        util::at(&old, &["spec", "terminationGracePeriodSeconds"])
                            .and_then(Value::as_i64)
                    })
                    .unwrap_or(30)
                    .max(0)
            };
            let current =
                util::at(&old, &["metadata", "deletionGracePeriodSeconds"]).and_then(Value::as_i64);
            if period > 0 && current.is_none_or(|c| period < c) {
                let mut marked = (*old).clone();
                let at = self.clock.now_ms() + period * 1000;
                util::set(
                    &mut marked,
                    &["metadata", "deletionTimestamp"],
                    json!(util::rfc3339(at)),
                );
                util::set(
                    &mut marked,
                    &["metadata", "deletionGracePeriodSeconds"],
                    json!(period),
                );
                self.dirty = true;
                return Ok(self.store(kind_ix, marked, Some(old)));
            }
            if period > 0 {
                return Ok(old);
            }
        }
        let has_finalizers = util::at(&old, &["metadata", "finalizers"])
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        // Foreground: the owner stays, with the `foregroundDeletion`
        // finalizer, until the garbage collector has removed its dependents
        // (kubernetes `registry/generic/registry/store.go`,
        // `deletionFinalizersForGarbageCollection`; `pkg/controller/
        // garbagecollector`, `processDeletingDependentsItem`).
        if propagation == Propagation::Foreground && !deleting {
            let uid = util::uid(&old).to_string();
            let dependents: Vec<Key> = self
                .objects
                .iter()
                .filter(|(_, v)| owned_by(v, &uid))
                .map(|(k, _)| k.clone())
                .collect();
            if !dependents.is_empty() {
                let mut marked = (*old).clone();
                let mut fins: Vec<Value> = util::at(&old, &["metadata", "finalizers"])
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                fins.push(json!("foregroundDeletion"));
                util::set(&mut marked, &["metadata", "finalizers"], json!(fins));
                util::set(
                    &mut marked,
                    &["metadata", "deletionTimestamp"],
                    json!(self.now()),
                );
                util::set(
                    &mut marked,
                    &["metadata", "deletionGracePeriodSeconds"],
                    json!(0),
                );
                let out = self.store(kind_ix, marked, Some(old));
                for (k, n, o) in dependents {
                    let _ = self.delete(k, &n, &o, Propagation::Foreground, &json!({}), false);
                }
                self.dirty = true;
                return Ok(out);
            }
        }
        if has_finalizers {
            if util::at(&old, &["metadata", "deletionTimestamp"]).is_some() {
                return Ok(old);
            }
            let mut marked = (*old).clone();
            util::set(
                &mut marked,
                &["metadata", "deletionTimestamp"],
                json!(self.now()),
            );
            util::set(
                &mut marked,
                &["metadata", "deletionGracePeriodSeconds"],
                json!(0),
            );
            return Ok(self.store(kind_ix, marked, Some(old)));
        }
        self.remove_now(kind_ix, ns, name, propagation)
            .ok_or_else(|| ApiError::not_found(kind, name))
    }

    /// Removes an object and, by propagation, what it owns (a namespace:
    /// everything in it).
    fn remove_now(
        &mut self,
        kind_ix: usize,
        ns: &str,
        name: &str,
        propagation: Propagation,
    ) -> Option<Arc<Value>> {
        let gone = self.unstore(kind_ix, ns, name)?;
        let uid = util::uid(&gone).to_string();
        let dependents: Vec<(Key, Arc<Value>)> = self
            .objects
            .iter()
            .filter(|(_, v)| owned_by(v, &uid))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for ((k, n, o), dep) in dependents {
            if propagation == Propagation::Orphan {
                let mut d = (*dep).clone();
                if let Some(refs) = d["metadata"]["ownerReferences"].as_array_mut() {
                    refs.retain(|r| r["uid"] != uid.as_str());
                }
                self.store(k, d, Some(dep));
            } else {
                // The garbage collector deletes each dependent as a client
                // would: a pod terminates gracefully.
                let _ = self.delete(k, &n, &o, Propagation::Background, &json!({}), false);
            }
        }
        Some(gone)
    }

    /// Removes an object now, whatever its grace period (the kubelet's
    /// final delete with grace 0, the namespace controller's finalize).
    pub fn remove(&mut self, kind_ix: usize, ns: &str, name: &str) -> Option<Arc<Value>> {
        self.remove_now(kind_ix, ns, name, Propagation::Background)
    }
}

pub fn owned_by(obj: &Value, uid: &str) -> bool {
    util::at(obj, &["metadata", "ownerReferences"])
        .and_then(Value::as_array)
        .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid))
}

pub fn controlled_by(obj: &Value, uid: &str) -> bool {
    util::at(obj, &["metadata", "ownerReferences"])
        .and_then(Value::as_array)
        .is_some_and(|refs| {
            refs.iter()
                .any(|r| r["uid"] == uid && r["controller"] == true)
        })
}

/// Equal but for managed-field timestamps: a write that changes nothing
/// else is a no-op (no new resource version, no event).
fn same_ignoring_times(a: &Value, b: &Value) -> bool {
    fn strip(v: &Value) -> Value {
        let mut v = v.clone();
        if let Some(list) = v["metadata"]["managedFields"].as_array_mut() {
            for e in list {
                if let Some(m) = e.as_object_mut() {
                    m.remove("time");
                }
            }
        }
        v
    }
    strip(a) == strip(b)
}

/// Drops null fields, as decoding into the API's types does (kubectl sends
/// `creationTimestamp: null` in templates; a template must compare equal
/// to the one it was copied from).
fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(strip_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}
