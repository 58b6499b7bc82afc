//! The vocabulary shared by every layer: resource addresses, kinds, values.
//!
//! Nothing here knows how a kind is created; `Kind` only carries what the
//! planner needs (which fields are immutable, how kinds are named).

pub mod k8s;
pub mod schema;
mod value;

pub use schema::{OnChange, ReplaceOrder, Schema};
pub use value::{Props, Ref, Value};

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

/// A stable logical address, e.g. `ec2/subnet/nodes-us-east-1a`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(transparent)]
pub struct ResourceId(String);

impl ResourceId {
    pub fn new(kind: Kind, name: &str) -> Self {
        ResourceId(format!("{}/{}", kind.prefix(), name))
    }

    /// Parses an address read back from a tag or a plan file.
    pub fn parse(s: &str) -> Option<Self> {
        let id = ResourceId(s.to_string());
        id.kind().map(|_| id)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn kind(&self) -> Option<Kind> {
        Kind::ALL.iter().copied().find(|k| {
            self.0
                .strip_prefix(k.prefix())
                .is_some_and(|r| r.starts_with('/') && r.len() > 1)
        })
    }

    /// The part after the kind prefix.
    pub fn name(&self) -> &str {
        self.kind()
            .map(|k| &self.0[k.prefix().len() + 1..])
            .unwrap_or(&self.0)
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Declares every kind once: its variant, its address prefix and its field
/// declaration (see [`schema`]). Adding a kind is one line here.
macro_rules! kinds {
    ($($(#[$doc:meta])* $kind:ident = $prefix:literal => $schema:ident,)*) => {
        /// Every kind of resource scopectl manages.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "kebab-case")]
        pub enum Kind {
            $($(#[$doc])* $kind,)*
        }

        impl Kind {
            pub const ALL: &'static [Kind] = &[$(Kind::$kind,)*];

            pub fn prefix(self) -> &'static str {
                match self {
                    $(Kind::$kind => $prefix,)*
                }
            }

            /// What this kind's fields are.
            pub fn schema(self) -> &'static Schema {
                match self {
                    $(Kind::$kind => &schema::$schema,)*
                }
            }
        }
    };
}

kinds! {
    Vpc = "ec2/vpc" => VPC,
    InternetGateway = "ec2/internet-gateway" => INTERNET_GATEWAY,
    Subnet = "ec2/subnet" => SUBNET,
    RouteTable = "ec2/route-table" => ROUTE_TABLE,
    RouteTableAssociation = "ec2/route-table-association" => ROUTE_TABLE_ASSOCIATION,
    Route = "ec2/route" => ROUTE,
    SecurityGroup = "ec2/security-group" => SECURITY_GROUP,
    SecurityGroupIngress = "ec2/security-group-ingress" => SECURITY_GROUP_INGRESS,
    VpcPeering = "ec2/vpc-peering-connection" => VPC_PEERING,
    /// An IAM role with its inline policy, and the instance profile for it.
    InstanceProfile = "iam/instance-profile" => INSTANCE_PROFILE,
    Instance = "ec2/instance" => INSTANCE,
    /// A classic ELB (the API's, or a service's).
    LoadBalancer = "elb/load-balancer" => LOAD_BALANCER,
    /// One instance registered with one load balancer.
    Registration = "elb/registration" => REGISTRATION,
    /// A classic ELB that Kubernetes created for a Service; only deleted.
    K8sLoadBalancer = "elb/k8s-load-balancer" => K8S_LOAD_BALANCER,
    /// The `k8s-elb-*` group beside such an ELB; only deleted.
    K8sSecurityGroup = "ec2/k8s-security-group" => K8S_SECURITY_GROUP,
    /// A certificate authority in the state store (one or two generations).
    Ca = "pki/ca" => CA,
    /// A leaf certificate and its key in the state store.
    Certificate = "pki/cert" => CERTIFICATE,
    /// The service-account signing key pair.
    KeyPair = "pki/key" => KEY_PAIR,
    /// The bootstrap token nodes join with.
    Token = "pki/token" => TOKEN,
    /// An EBS volume (a master's etcd data): outlives its instance.
    Volume = "ec2/volume" => VOLUME,
    /// A volume attached to an instance.
    VolumeAttachment = "ec2/volume-attachment" => VOLUME_ATTACHMENT,
    /// An EBS snapshot taken before a master's replacement; only `down`
    /// deletes it.
    Snapshot = "ec2/snapshot" => SNAPSHOT,
    // Kubernetes objects: `k8s/<apiVersion>/<Kind>/[<namespace>/]<name>`.
    Namespace = "k8s/v1/Namespace" => K8S_NAMESPACE,
    ClusterRole = "k8s/rbac.authorization.k8s.io/v1/ClusterRole" => K8S_CLUSTER_ROLE,
    ClusterRoleBinding = "k8s/rbac.authorization.k8s.io/v1/ClusterRoleBinding" => K8S_CLUSTER_ROLE_BINDING,
    Role = "k8s/rbac.authorization.k8s.io/v1/Role" => K8S_ROLE,
    RoleBinding = "k8s/rbac.authorization.k8s.io/v1/RoleBinding" => K8S_ROLE_BINDING,
    ServiceAccount = "k8s/v1/ServiceAccount" => K8S_SERVICE_ACCOUNT,
    ConfigMap = "k8s/v1/ConfigMap" => K8S_CONFIG_MAP,
    Secret = "k8s/v1/Secret" => K8S_SECRET,
    Deployment = "k8s/apps/v1/Deployment" => K8S_WORKLOAD,
    DaemonSet = "k8s/apps/v1/DaemonSet" => K8S_WORKLOAD,
    Service = "k8s/v1/Service" => K8S_SERVICE,
    PodDisruptionBudget = "k8s/policy/v1/PodDisruptionBudget" => K8S_PDB,
    NetworkPolicy = "k8s/networking.k8s.io/v1/NetworkPolicy" => K8S_NETWORK_POLICY,
}

impl Kind {
    /// A short human label used in status output.
    pub fn label(self) -> &'static str {
        &self.prefix()[4..]
    }

    /// How the Kubernetes API serves this kind; None for AWS kinds.
    pub fn k8s(self) -> Option<&'static k8s::ApiKind> {
        Some(match self {
            Kind::Namespace => &k8s::NAMESPACE,
            Kind::ClusterRole => &k8s::CLUSTER_ROLE,
            Kind::ClusterRoleBinding => &k8s::CLUSTER_ROLE_BINDING,
            Kind::Role => &k8s::ROLE,
            Kind::RoleBinding => &k8s::ROLE_BINDING,
            Kind::ServiceAccount => &k8s::SERVICE_ACCOUNT,
            Kind::ConfigMap => &k8s::CONFIG_MAP,
            Kind::Secret => &k8s::SECRET,
            Kind::Deployment => &k8s::DEPLOYMENT,
            Kind::DaemonSet => &k8s::DAEMON_SET,
            Kind::Service => &k8s::SERVICE,
            Kind::PodDisruptionBudget => &k8s::POD_DISRUPTION_BUDGET,
            Kind::NetworkPolicy => &k8s::NETWORK_POLICY,
            _ => return None,
        })
    }

    pub fn is_k8s(self) -> bool {
        self.k8s().is_some()
    }

    /// Items of the state store: secret material that `down` deletes last
    /// (or keeps), and whose replacement overwrites in place.
    pub fn is_pki(self) -> bool {
        self.schema().replace == ReplaceOrder::Overwrite
    }

    /// A replacement creates the new one before deleting the old: capacity
    /// never drops (instances, and their load balancer registrations).
    pub fn create_before_delete(self) -> bool {
        self.schema().replace == ReplaceOrder::CreateFirst
    }

    /// Replacements of this kind run one at a time within a group (the name
    /// up to its last `-`: `node-3` is in `node`), in index order.
    pub fn one_at_a_time(self) -> bool {
        self == Kind::Instance
    }

    /// Kept when no longer desired: only `down` deletes it (a snapshot is
    /// the way back, not state to converge).
    pub fn kept_until_down(self) -> bool {
        self == Kind::Snapshot
    }

    /// The field naming the resource whose deletion also ends this one: its
    /// delete runs after that one's (a volume comes off an instance when the
    /// instance is gone, never from under a running etcd).
    pub fn ended_by(self) -> Option<&'static str> {
        match self {
            Kind::VolumeAttachment => Some("instance"),
            _ => None,
        }
    }
}

/// How scopectl stands to a resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Ownership {
    /// Created, tagged and deleted by scopectl.
    Owned,
    /// Lives on an adopted resource (a rule on the database's group, a route in
    /// its route table); owned by reference to an owned resource, removed exactly.
    OnAdopted,
}

/// One desired resource.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Resource {
    pub id: ResourceId,
    pub ownership: Ownership,
    pub props: Props,
}

impl Resource {
    pub fn kind(&self) -> Kind {
        self.id.kind().expect("resource ids are built from a kind")
    }

    /// Resources this one references through its props.
    pub fn deps(&self) -> BTreeSet<ResourceId> {
        let mut out = BTreeSet::new();
        for v in self.props.values() {
            v.refs(&mut out);
        }
        out
    }
}

/// The whole desired state for one env.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Desired {
    pub resources: BTreeMap<ResourceId, Resource>,
}

impl Desired {
    pub fn add(&mut self, id: ResourceId, ownership: Ownership, props: Props) -> ResourceId {
        self.resources.insert(
            id.clone(),
            Resource {
                id: id.clone(),
                ownership,
                props,
            },
        );
        id
    }
}

/// One resource as found in reality. Reference fields hold physical ids.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Observed {
    pub id: ResourceId,
    pub physical_id: String,
    pub props: Props,
}

/// Everything owned by one env, as observed.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Actual {
    pub resources: BTreeMap<ResourceId, Observed>,
    /// Second and later copies of an id (from a crash between create and a
    /// re-observe, or a manual copy): always deleted.
    pub duplicates: Vec<Observed>,
    /// The cluster as observed through its API; None when it was not
    /// reached (not up yet) or not asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterState>,
}

/// What scopectl keeps in the cluster about its own objects.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ClusterState {
    /// Addresses scopectl applied for this env (its inventory): only these
    /// are ever pruned.
    pub inventory: BTreeSet<ResourceId>,
    /// Whether the inventory object exists yet.
    pub inventory_exists: bool,
    /// Objects being deleted (a deletionTimestamp: a Terminating namespace,
    /// a pod in its grace period, finalizers pending), with their uids: not
    /// observed as existing (they are going), waited for before they are
    /// made again.
    pub terminating: Vec<(ResourceId, String)>,
}

impl Actual {
    /// Adds an observation; a second resource with the same id is a duplicate.
    /// The lower physical id wins so that every run picks the same one.
    pub fn insert(&mut self, o: Observed) {
        match self.resources.get(&o.id) {
            None => {
                self.resources.insert(o.id.clone(), o);
            }
            Some(existing) if existing.physical_id <= o.physical_id => self.duplicates.push(o),
            Some(_) => {
                let old = self.resources.insert(o.id.clone(), o).expect("present");
                self.duplicates.push(old);
            }
        }
        self.duplicates
            .sort_by(|a, b| (&a.id, &a.physical_id).cmp(&(&b.id, &b.physical_id)));
    }

    /// Among copies of one id, keeps the one that the rest of what was
    /// observed references (an instance in the second copy of a group: that
    /// copy stays, the unreferenced one is the duplicate); the lowest
    /// physical id breaks ties. Run once everything is inserted.
    pub fn keep_referenced_copies(&mut self) {
        if self.duplicates.is_empty() {
            return;
        }
        let mut referenced: BTreeMap<String, usize> = BTreeMap::new();
        for o in self.resources.values().chain(&self.duplicates) {
            let mut strings = Vec::new();
            for v in o.props.values() {
                v.strings(&mut strings);
            }
            for s in strings {
                if s != o.physical_id {
                    *referenced.entry(s.to_string()).or_default() += 1;
                }
            }
        }
        let rank = |o: &Observed| {
            (
                std::cmp::Reverse(referenced.get(&o.physical_id).copied().unwrap_or(0)),
                o.physical_id.clone(),
            )
        };
        let mut copies: BTreeMap<ResourceId, Vec<Observed>> = BTreeMap::new();
        for o in std::mem::take(&mut self.duplicates) {
            copies.entry(o.id.clone()).or_default().push(o);
        }
        for (id, mut all) in copies {
            if let Some(kept) = self.resources.remove(&id) {
                all.push(kept);
            }
            all.sort_by_key(rank);
            let mut all = all.into_iter();
            if let Some(keep) = all.next() {
                self.resources.insert(id, keep);
            }
            self.duplicates.extend(all);
        }
        self.duplicates
            .sort_by(|a, b| (&a.id, &a.physical_id).cmp(&(&b.id, &b.physical_id)));
    }

    /// Every observed prop is one its kind declares, of its type: what a
    /// provider reads and what the planner compares agree by declaration,
    /// not by spelling. Checked on every observation in debug builds (so
    /// every integration test walks every provider's observation).
    pub fn check_declared(&self) -> Result<(), String> {
        for o in self.resources.values().chain(&self.duplicates) {
            let kind = o.id.kind().ok_or_else(|| format!("{}: no kind", o.id))?;
            kind.schema()
                .check(&o.props, false)
                .map_err(|e| format!("observed {}: {e}", o.id))?;
        }
        Ok(())
    }

    pub fn physical(&self, id: &ResourceId) -> Option<&str> {
        self.resources.get(id).map(|o| o.physical_id.as_str())
    }

    /// Owned resources that `o` references through its props (by physical id).
    pub fn deps_of(&self, o: &Observed) -> BTreeSet<ResourceId> {
        let by_physical: BTreeMap<&str, &ResourceId> = self
            .resources
            .values()
            .map(|r| (r.physical_id.as_str(), &r.id))
            .collect();
        let mut strings = Vec::new();
        for v in o.props.values() {
            v.strings(&mut strings);
        }
        strings
            .into_iter()
            .filter_map(|s| by_physical.get(s).map(|id| (*id).clone()))
            .filter(|id| *id != o.id)
            .collect()
    }

    pub fn len(&self) -> usize {
        self.resources.len() + self.duplicates.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The tags every owned resource carries from creation on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub project: String,
    pub env: String,
}

pub const TAG_PROJECT: &str = "scopectl:project";
pub const TAG_ENV: &str = "scopectl:env";
pub const TAG_ID: &str = "scopectl:id";

impl Owner {
    pub fn cluster_name(&self) -> String {
        format!("{}-{}", self.project, self.env)
    }

    pub fn cluster_tag(&self) -> String {
        format!("kubernetes.io/cluster/{}", self.cluster_name())
    }

    /// The `Name` tag for a resource: project-env-name.
    pub fn name_for(&self, id: &ResourceId) -> String {
        format!("{}-{}", self.cluster_name(), id.name())
    }

    /// Tags set at creation, in a stable order.
    pub fn tags_for(&self, id: &ResourceId) -> Vec<(String, String)> {
        vec![
            (TAG_PROJECT.into(), self.project.clone()),
            (TAG_ENV.into(), self.env.clone()),
            (TAG_ID.into(), id.to_string()),
            ("Name".into(), self.name_for(id)),
            (self.cluster_tag(), "owned".into()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_kind_and_name() {
        let id = ResourceId::new(Kind::Subnet, "nodes-us-east-1a");
        assert_eq!(id.as_str(), "ec2/subnet/nodes-us-east-1a");
        assert_eq!(id.kind(), Some(Kind::Subnet));
        assert_eq!(id.name(), "nodes-us-east-1a");
        // A longer prefix must not be mistaken for a shorter one.
        let a = ResourceId::new(Kind::RouteTableAssociation, "x");
        assert_eq!(a.kind(), Some(Kind::RouteTableAssociation));
        assert_eq!(ResourceId::parse("ec2/nope/x"), None);
        assert_eq!(ResourceId::parse("ec2/subnet/"), None);
    }

    #[test]
    fn duplicates_keep_the_lowest_physical_id() {
        let mut a = Actual::default();
        let id = ResourceId::new(Kind::Subnet, "a");
        for p in ["subnet-2", "subnet-1", "subnet-3"] {
            a.insert(Observed {
                id: id.clone(),
                physical_id: p.into(),
                props: Props::new(),
            });
        }
        assert_eq!(a.physical(&id), Some("subnet-1"));
        let d: Vec<_> = a
            .duplicates
            .iter()
            .map(|o| o.physical_id.as_str())
            .collect();
        assert_eq!(d, ["subnet-2", "subnet-3"]);
    }

    #[test]
    fn the_referenced_copy_is_kept() {
        let mut a = Actual::default();
        let sg = ResourceId::new(Kind::SecurityGroup, "nodes");
        for p in ["sg-1", "sg-2"] {
            a.insert(Observed {
                id: sg.clone(),
                physical_id: p.into(),
                props: Props::new(),
            });
        }
        a.insert(Observed {
            id: ResourceId::new(Kind::Instance, "node-0"),
            physical_id: "i-1".into(),
            props: Props::from([(
                "security_groups".into(),
                Value::list(vec![Value::str("sg-2")]),
            )]),
        });
        assert_eq!(a.physical(&sg), Some("sg-1"));
        a.keep_referenced_copies();
        assert_eq!(a.physical(&sg), Some("sg-2"));
        assert_eq!(a.duplicates.len(), 1);
        assert_eq!(a.duplicates[0].physical_id, "sg-1");
    }
}
