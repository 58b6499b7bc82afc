//! What each kind's fields are, declared once: the planner, the plan view,
//! the JSON plan and the providers read this (kops' typed tasks and
//! Terraform's schema with `ForceNew` beside each field).

#[cfg(test)]
use super::Kind;
use super::{Props, Value};

/// A field's type. A reference holds a `{"ref": address}` while desired and
/// an AWS id once resolved or observed (or an adopted resource's id).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    Str,
    Int,
    Bool,
    Ref,
    /// A map of plain values (a health check, a rule).
    Map,
    List(Elem, Order),
    /// A section of a Kubernetes object (any JSON shape), compared on the
    /// fields desired sets; differences are reported per leaf path.
    Object,
}

/// What a list holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elem {
    Str,
    Int,
    Ref,
    Map,
}

/// Whether a list's order is part of its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// Compared as written (container, env and args order will matter).
    Ordered,
    /// Compared as a set: AWS returns these in its own order.
    Set,
}

/// What a difference in the field means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnChange {
    /// Changed in place (an update).
    Update,
    /// Cannot change in place: the resource is replaced.
    Replace,
    /// Observed only (an address AWS assigns, a status): never compared.
    Computed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    pub name: &'static str,
    pub ty: Type,
    pub on_change: OnChange,
    /// Sent when creating, never read back or compared.
    pub write_only: bool,
    /// Shown as `(sensitive)` in the plan.
    pub sensitive: bool,
}

impl Field {
    const fn new(name: &'static str, ty: Type) -> Field {
        Field {
            name,
            ty,
            on_change: OnChange::Update,
            write_only: false,
            sensitive: false,
        }
    }
    pub const fn str(name: &'static str) -> Field {
        Field::new(name, Type::Str)
    }
    pub const fn int(name: &'static str) -> Field {
        Field::new(name, Type::Int)
    }
    pub const fn bool(name: &'static str) -> Field {
        Field::new(name, Type::Bool)
    }
    pub const fn reference(name: &'static str) -> Field {
        Field::new(name, Type::Ref)
    }
    pub const fn map(name: &'static str) -> Field {
        Field::new(name, Type::Map)
    }
    pub const fn object(name: &'static str) -> Field {
        Field::new(name, Type::Object)
    }
    pub const fn set(name: &'static str, of: Elem) -> Field {
        Field::new(name, Type::List(of, Order::Set))
    }
    pub const fn list(name: &'static str, of: Elem) -> Field {
        Field::new(name, Type::List(of, Order::Ordered))
    }
    pub const fn replace(mut self) -> Field {
        self.on_change = OnChange::Replace;
        self
    }
    pub const fn computed(mut self) -> Field {
        self.on_change = OnChange::Computed;
        self
    }
    pub const fn write_only(mut self) -> Field {
        self.write_only = true;
        self
    }
    pub const fn sensitive(mut self) -> Field {
        self.sensitive = true;
        self
    }

    /// Compared between desired and observed.
    pub fn compared(&self) -> bool {
        !self.write_only && self.on_change != OnChange::Computed
    }

    /// Whether `v` has this field's type.
    pub fn accepts(&self, v: &Value) -> bool {
        fn elem(e: Elem, v: &Value) -> bool {
            match (e, v) {
                (Elem::Str, Value::Str(_)) | (Elem::Int, Value::Int(_)) => true,
                (Elem::Ref, Value::Ref(_) | Value::Str(_)) => true,
                (Elem::Map, Value::Map(m)) => m.values().all(plain),
                _ => false,
            }
        }
        fn plain(v: &Value) -> bool {
            match v {
                Value::List(l) => l.iter().all(plain),
                Value::Map(m) => m.values().all(plain),
                _ => true,
            }
        }
        match (self.ty, v) {
            (Type::Str, Value::Str(_)) | (Type::Int, Value::Int(_)) => true,
            (Type::Bool, Value::Bool(_)) => true,
            (Type::Ref, Value::Ref(_) | Value::Str(_)) => true,
            (Type::Map, Value::Map(m)) => m.values().all(plain),
            (Type::List(e, _), Value::List(items)) => items.iter().all(|i| elem(e, i)),
            (Type::Object, v) => plain(v),
            _ => false,
        }
    }
}

/// How a replacement goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplaceOrder {
    /// The old one is deleted first (a name, a range or a volume is freed).
    DeleteFirst,
    /// The new one is created first: capacity never drops.
    CreateFirst,
    /// A new value overwrites the old in one write (state-store items).
    Overwrite,
}

#[derive(Debug)]
pub struct Schema {
    pub fields: &'static [Field],
    pub replace: ReplaceOrder,
}

impl Schema {
    pub fn field(&self, name: &str) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Names of the fields that force a replacement.
    pub fn replacing(&self) -> impl Iterator<Item = &'static str> {
        self.fields
            .iter()
            .filter(|f| f.on_change == OnChange::Replace)
            .map(|f| f.name)
    }

    /// Checks props against the declaration: every prop declared, of its
    /// type, and (desired) no computed field. Returns what is wrong.
    pub fn check(&self, props: &Props, desired: bool) -> Result<(), String> {
        for (name, v) in props {
            let Some(f) = self.field(name) else {
                return Err(format!("`{name}` is not a declared field"));
            };
            if !f.accepts(v) {
                return Err(format!("`{name}` = {v} is not a {:?}", f.ty));
            }
            if desired && f.on_change == OnChange::Computed {
                return Err(format!("`{name}` is computed, never desired"));
            }
        }
        Ok(())
    }
}

use Elem as E;
use Field as F;

macro_rules! schema {
    ($order:ident; $($f:expr),* $(,)?) => {
        Schema { fields: &[$($f),*], replace: ReplaceOrder::$order }
    };
}

pub(super) static VPC: Schema =
    schema!(DeleteFirst; F::str("cidr").replace(), F::bool("dns_hostnames"));
pub(super) static INTERNET_GATEWAY: Schema = schema!(DeleteFirst; F::reference("vpc"));
pub(super) static SUBNET: Schema = schema!(DeleteFirst;
    F::str("cidr").replace(),
    F::str("zone").replace(),
    F::reference("vpc").replace(),
    F::bool("public_ip"),
);
pub(super) static ROUTE_TABLE: Schema = schema!(DeleteFirst; F::reference("vpc").replace());
pub(super) static ROUTE_TABLE_ASSOCIATION: Schema = schema!(DeleteFirst;
    F::reference("subnet").replace(),
    F::reference("route_table").replace(),
);
pub(super) static ROUTE: Schema = schema!(DeleteFirst;
    F::reference("route_table").replace(),
    F::str("destination").replace(),
    F::reference("gateway"),
    F::reference("peering"),
);
pub(super) static SECURITY_GROUP: Schema = schema!(DeleteFirst;
    F::reference("vpc").replace(),
    F::str("group_name").replace(),
    F::str("description").replace(),
);
pub(super) static SECURITY_GROUP_INGRESS: Schema = schema!(DeleteFirst;
    F::reference("group").replace(),
    F::set("rules", E::Map),
    // AWS does not key rules on their descriptions and does not always read
    // them back: sent, not compared.
    F::set("descriptions", E::Map).write_only(),
    F::map("rule_ids").computed(),
);
pub(super) static VPC_PEERING: Schema = schema!(DeleteFirst;
    F::reference("vpc").replace(),
    F::reference("peer_vpc").replace(),
    F::bool("dns_resolution"),
    F::str("status").computed(),
);
pub(super) static INSTANCE_PROFILE: Schema = schema!(DeleteFirst;
    F::str("name").replace(),
    F::str("path").replace(),
    F::str("policy"),
    F::bool("profile"),
);
pub(super) static INSTANCE: Schema = schema!(CreateFirst;
    F::str("ami").replace(),
    F::str("instance_type").replace(),
    F::reference("subnet").replace(),
    F::str("user_data").replace(),
    F::reference("profile").replace(),
    F::set("security_groups", E::Ref).replace(),
    // Metadata options change in place (ModifyInstanceMetadataOptions).
    F::str("metadata"),
    F::str("root_volume").replace(),
    // Large; its digest (`user_data`) is compared instead.
    F::str("user_data_text").write_only(),
    F::str("private_ip").computed(),
    F::str("private_dns").computed(),
);
pub(super) static LOAD_BALANCER: Schema = schema!(DeleteFirst;
    F::str("name").replace(),
    F::set("listeners", E::Map).replace(),
    F::str("scheme").replace(),
    F::set("subnets", E::Ref),
    F::set("security_groups", E::Ref),
    F::map("health_check"),
    // Set at create and by `finish`; not read back (one call per balancer
    // would make the plan's calls grow with services).
    F::map("attributes").write_only(),
    F::str("dns_name").computed(),
);
pub(super) static REGISTRATION: Schema = schema!(CreateFirst;
    F::reference("load_balancer").replace(),
    F::reference("instance").replace(),
);
pub(super) static K8S_LOAD_BALANCER: Schema = schema!(DeleteFirst;
    F::reference("vpc").computed(),
    F::set("subnets", E::Ref).computed(),
    F::set("security_groups", E::Ref).computed(),
);
pub(super) static K8S_SECURITY_GROUP: Schema = schema!(DeleteFirst; F::reference("vpc").computed());
pub(super) static CA: Schema = schema!(Overwrite;
    F::str("subject").replace(),
    // Generations change in place: that is how a CA rotates in stages.
    F::set("generations", E::Int),
    F::int("signing"),
    F::str("expires").computed(),
);
pub(super) static CERTIFICATE: Schema = schema!(Overwrite;
    F::str("subject").replace(),
    F::str("usage").replace(),
    F::reference("ca").replace(),
    F::int("issuer").replace(),
    F::set("sans", E::Str).replace(),
    F::reference("load_balancer").replace(),
    F::set("masters", E::Ref).replace(),
    F::str("renewal").replace(),
    F::str("expires").computed(),
);
pub(super) static KEY_PAIR: Schema = schema!(Overwrite; F::str("algorithm").replace());
pub(super) static TOKEN: Schema = schema!(Overwrite;
    F::str("purpose").replace(),
    F::str("ttl").replace(),
    // Moved on by `pki rotate`: a new token.
    F::int("serial").replace(),
    // `usable`, `expiring` or `expired`, from `expires` and the clock when
    // observed: a launch needs a usable token.
    F::str("state").replace(),
    // The token's public half (its Secret's name in the cluster).
    F::str("token_id").computed(),
    F::str("expires").computed(),
);
pub(super) static VOLUME: Schema = schema!(DeleteFirst;
    F::str("zone").replace(),
    F::bool("encrypted").replace(),
    // Grown in place (ModifyVolume): a new volume would lose etcd's data.
    F::int("size_gib"),
    F::str("volume_type"),
);
pub(super) static VOLUME_ATTACHMENT: Schema = schema!(DeleteFirst;
    F::reference("volume").replace(),
    F::reference("instance").replace(),
    F::str("device").replace(),
);
pub(super) static SNAPSHOT: Schema = schema!(DeleteFirst;
    F::reference("volume").replace(),
    F::str("description").replace(),
);

// Kubernetes objects: their sections (see `model::k8s`). A field the API
// never lets change in place replaces the object.
macro_rules! k8s_schema {
    ($($f:expr),* $(,)?) => {
        schema!(DeleteFirst; F::object("labels"), F::object("annotations"), $($f),*)
    };
}
pub(super) static K8S_NAMESPACE: Schema = k8s_schema!();
pub(super) static K8S_SERVICE_ACCOUNT: Schema = k8s_schema!();
pub(super) static K8S_CONFIG_MAP: Schema = k8s_schema!(F::object("data"));
pub(super) static K8S_SECRET: Schema = k8s_schema!(
    F::str("type").replace(),
    // A digest of the data: the values never enter a plan.
    F::str("digest").sensitive(),
);
pub(super) static K8S_CLUSTER_ROLE: Schema = k8s_schema!(F::object("rules"));
pub(super) static K8S_ROLE: Schema = k8s_schema!(F::object("rules"));
pub(super) static K8S_CLUSTER_ROLE_BINDING: Schema =
    k8s_schema!(F::object("role_ref").replace(), F::object("subjects"));
pub(super) static K8S_ROLE_BINDING: Schema =
    k8s_schema!(F::object("role_ref").replace(), F::object("subjects"));
pub(super) static K8S_WORKLOAD: Schema =
    k8s_schema!(F::object("spec"), F::object("selector").replace());
pub(super) static K8S_SERVICE: Schema =
    k8s_schema!(F::object("spec"), F::object("cluster_ip").replace());
pub(super) static K8S_PDB: Schema = k8s_schema!(F::object("spec"));
pub(super) static K8S_NETWORK_POLICY: Schema = k8s_schema!(F::object("spec"));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_declares_unique_fields() {
        for k in Kind::ALL {
            let s = k.schema();
            let mut names: Vec<&str> = s.fields.iter().map(|f| f.name).collect();
            names.sort_unstable();
            let n = names.len();
            names.dedup();
            assert_eq!(names.len(), n, "{k:?} declares a field twice");
            for f in s.fields {
                assert!(
                    !(f.write_only && f.on_change == OnChange::Replace),
                    "{k:?}.{}: a write-only field is never compared, so cannot replace",
                    f.name
                );
            }
        }
    }

    #[test]
    fn undeclared_and_mistyped_props_are_found() {
        let s = Kind::Subnet.schema();
        let ok = Props::from([("public_ip".into(), Value::Bool(true))]);
        assert!(s.check(&ok, true).is_ok());
        let typo = Props::from([("public_ips".into(), Value::Bool(true))]);
        assert!(s.check(&typo, true).unwrap_err().contains("public_ips"));
        let mistyped = Props::from([("public_ip".into(), Value::str("yes"))]);
        assert!(s.check(&mistyped, true).is_err());
        let computed = Props::from([("private_ip".into(), Value::str("10.0.0.1"))]);
        assert!(Kind::Instance.schema().check(&computed, true).is_err());
        assert!(Kind::Instance.schema().check(&computed, false).is_ok());
    }
}
