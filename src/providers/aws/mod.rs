//! AWS: the only module that touches `aws-sdk-*` types. One file per kind,
//! each holding that kind's observe, find, create, update and delete.

mod ca;
mod certificate;
mod error;
pub mod facts;
mod instance;
mod instance_profile;
mod internet_gateway;
mod k8s_load_balancer;
mod k8s_security_group;
mod key_pair;
mod load_balancer;
pub mod pki_store;
mod registration;
mod route;
mod route_table;
mod route_table_association;
mod security_group;
mod security_group_ingress;
mod snapshot;
pub mod state;
mod subnet;
mod token;
mod volume;
mod volume_attachment;
mod vpc;
mod vpc_peering;

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};

pub(crate) use error::classify;

use backon::{ExponentialBuilder, Retryable};

use crate::apply::{ErrorKind, Provider, ProviderError};
use crate::model::{
    Actual, Kind, Observed, Owner, Props, Resource, ResourceId, Value, TAG_ENV, TAG_ID, TAG_PROJECT,
};

/// The one registration per kind: the module whose `Ops` implements it.
macro_rules! registry {
    ($kind:expr, $ops:ident => $call:expr) => {
        match $kind {
            Kind::Vpc => {
                use vpc::Ops as $ops;
                $call
            }
            Kind::InternetGateway => {
                use internet_gateway::Ops as $ops;
                $call
            }
            Kind::Subnet => {
                use subnet::Ops as $ops;
                $call
            }
            Kind::RouteTable => {
                use route_table::Ops as $ops;
                $call
            }
            Kind::RouteTableAssociation => {
                use route_table_association::Ops as $ops;
                $call
            }
            Kind::Route => {
                use route::Ops as $ops;
                $call
            }
            Kind::SecurityGroup => {
                use security_group::Ops as $ops;
                $call
            }
            Kind::SecurityGroupIngress => {
                use security_group_ingress::Ops as $ops;
                $call
            }
            Kind::VpcPeering => {
                use vpc_peering::Ops as $ops;
                $call
            }
            Kind::InstanceProfile => {
                use instance_profile::Ops as $ops;
                $call
            }
            Kind::Instance => {
                use instance::Ops as $ops;
                $call
            }
            Kind::LoadBalancer => {
                use load_balancer::Ops as $ops;
                $call
            }
            Kind::Registration => {
                use registration::Ops as $ops;
                $call
            }
            Kind::K8sLoadBalancer => {
                use k8s_load_balancer::Ops as $ops;
                $call
            }
            Kind::K8sSecurityGroup => {
                use k8s_security_group::Ops as $ops;
                $call
            }
            Kind::Ca => {
                use ca::Ops as $ops;
                $call
            }
            Kind::Certificate => {
                use certificate::Ops as $ops;
                $call
            }
            Kind::KeyPair => {
                use key_pair::Ops as $ops;
                $call
            }
            Kind::Token => {
                use token::Ops as $ops;
                $call
            }
            Kind::Volume => {
                use volume::Ops as $ops;
                $call
            }
            Kind::VolumeAttachment => {
                use volume_attachment::Ops as $ops;
                $call
            }
            Kind::Snapshot => {
                use snapshot::Ops as $ops;
                $call
            }
            // Kubernetes objects (`Kind::k8s`): applied by `providers::k8s`.
            _ => {
                use not_aws::Ops as $ops;
                $call
            }
        }
    };
}

/// Kubernetes kinds: nothing to observe in AWS; a call is a wiring mistake.
mod not_aws {

    fn misrouted(id: &crate::model::ResourceId) -> crate::apply::ProviderError {
        crate::apply::ProviderError::fatal(format!(
            "{id} is a Kubernetes object, not an AWS resource"
        ))
    }

    super::kind_ops! {
        async fn find(_aws: &Aws, r: &Resource) -> Result<Option<String>, ProviderError> {
            Err(super::misrouted(&r.id))
        }
        async fn create(_aws: &Aws, r: &Resource) -> Result<String, ProviderError> {
            Err(super::misrouted(&r.id))
        }
        async fn delete(
            _aws: &Aws,
            id: &ResourceId,
            _pid: &str,
            _before: &Props,
        ) -> Result<(), ProviderError> {
            Err(super::misrouted(id))
        }
    }
}

/// The region the standard AWS chain resolves (AWS_REGION, AWS_DEFAULT_REGION,
/// the profile's, the instance's), for commands that run before any config.
pub async fn default_region() -> Option<String> {
    aws_config::default_provider::region::DefaultRegionChain::builder()
        .build()
        .region()
        .await
        .map(|r| r.to_string())
}

/// Clients for one region, and whose resources they act on.
pub struct Aws {
    pub ec2: aws_sdk_ec2::Client,
    pub rds: aws_sdk_rds::Client,
    pub ssm: aws_sdk_ssm::Client,
    pub elb: aws_sdk_elasticloadbalancing::Client,
    pub iam: aws_sdk_iam::Client,
    pub owner: Owner,
    /// Unique to this run: idempotency tokens derive from it, so a retried
    /// create replays its first answer, and a later run never collides with
    /// a token AWS still remembers.
    run: String,
}

impl Aws {
    /// Loads credentials the standard way (env, profiles, SSO, instance role)
    /// and honours `AWS_ENDPOINT_URL`.
    pub async fn connect(region: &str, profile: Option<&str>, owner: Owner) -> Self {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(region.to_string()))
            // No retries inside the SDK: it would resend a create whose
            // answer was lost and make a duplicate. Reads retry in `read`;
            // writes retry as whole executor steps that re-observe first.
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(Duration::from_secs(30))
                    .build(),
            );
        if let Some(p) = profile {
            loader = loader.profile_name(p);
        }
        let sdk = loader.load().await;
        Aws {
            ec2: aws_sdk_ec2::Client::new(&sdk),
            rds: aws_sdk_rds::Client::new(&sdk),
            ssm: aws_sdk_ssm::Client::new(&sdk),
            elb: aws_sdk_elasticloadbalancing::Client::new(&sdk),
            iam: aws_sdk_iam::Client::new(&sdk),
            owner,
            run: format!(
                "{}-{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0)
            ),
        }
    }

    /// A `ClientToken` for creating `id` in this run (at most 64 characters).
    pub(crate) fn client_token(&self, id: &ResourceId) -> String {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(format!("{}/{}", self.run, id));
        digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
    }

    pub(crate) fn filter(
        name: &str,
        values: impl IntoIterator<Item = impl Into<String>>,
    ) -> Filter {
        Filter::builder()
            .name(name)
            .set_values(Some(values.into_iter().map(Into::into).collect()))
            .build()
    }

    /// Filters that select this project's and env's resources, optionally one id.
    pub(crate) fn owner_filters(&self, only: Option<&ResourceId>) -> Vec<Filter> {
        let mut f = vec![
            Self::filter(&format!("tag:{TAG_PROJECT}"), [self.owner.project.as_str()]),
            Self::filter(&format!("tag:{TAG_ENV}"), [self.owner.env.as_str()]),
        ];
        if let Some(id) = only {
            f.push(Self::filter(&format!("tag:{TAG_ID}"), [id.as_str()]));
        }
        f
    }

    pub(crate) fn tag_spec(
        &self,
        kind: ResourceType,
        id: &ResourceId,
        extra: &[(&str, &str)],
    ) -> TagSpecification {
        let tags = self
            .owner
            .tags_for(id)
            .into_iter()
            .chain(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect();
        TagSpecification::builder()
            .resource_type(kind)
            .set_tags(Some(tags))
            .build()
    }

    /// Reads everything this env owns: one call per kind, run concurrently.
    pub async fn observe(&self) -> Result<Actual, ProviderError> {
        type Observing<'a> = std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<Vec<Observed>, ProviderError>> + 'a>,
        >;
        // Each kind observed on its own (its `Ops::observe`), and the route
        // tables and balancers that hold other kinds, all at once.
        let own = futures::future::try_join_all(
            Kind::ALL
                .iter()
                .map(|k| -> Observing<'_> { registry!(*k, K => Box::pin(K::observe(self))) }),
        );
        let (own, tables, balancers) = futures::try_join!(
            own,
            route_table::describe(self, self.owner_filters(None)),
            load_balancer::describe_all(self),
        )?;
        let mut actual = Actual::default();
        for o in own.into_iter().flatten() {
            actual.insert(o);
        }
        for o in route_table::from_tables(self, &tables) {
            actual.insert(o);
        }
        let balancers = load_balancer::from_descriptions(self, &balancers);
        let by_instance: std::collections::BTreeMap<String, ResourceId> = actual
            .resources
            .values()
            .filter(|o| o.id.kind() == Some(Kind::Instance))
            .map(|o| (o.physical_id.clone(), o.id.clone()))
            .collect();
        for o in registration::from_balancers(&balancers, &by_instance) {
            actual.insert(o);
        }
        for (o, _) in balancers {
            actual.insert(o);
        }
        // Routes and associations live inside route tables; their ids derive
        // from the owned tables, subnets and peerings they connect.
        for o in route_table_association::from_tables(&tables, &actual) {
            actual.insert(o);
        }
        let pcx: Vec<String> = actual
            .resources
            .values()
            .filter(|o| o.id.kind() == Some(Kind::VpcPeering))
            .map(|o| o.physical_id.clone())
            .collect();
        let foreign = if pcx.is_empty() {
            Vec::new()
        } else {
            route_table::describe(
                self,
                vec![Self::filter("route.vpc-peering-connection-id", pcx.clone())],
            )
            .await?
        };
        for o in route::from_tables(self, &tables, &foreign, &actual) {
            actual.insert(o);
        }
        actual.keep_referenced_copies();
        debug_check(&actual);
        Ok(actual)
    }
}

/// In debug builds (every test), an observed prop that its kind does not
/// declare stops the run: it would otherwise plan an update on every run.
fn debug_check(actual: &Actual) {
    if cfg!(debug_assertions) {
        if let Err(e) = actual.check_declared() {
            panic!("undeclared observation: {e}");
        }
    }
}

/// Jittered exponential backoff for reads: 100 ms doubling to 5 s (see
/// `timing`), 8 retries; shared with the Kubernetes provider.
pub(crate) fn backoff() -> ExponentialBuilder {
    let t = crate::timing::Timing::current();
    ExponentialBuilder::default()
        .with_min_delay(t.min_delay)
        .with_max_delay(t.max_delay)
        .with_max_times(8)
        .with_jitter()
}

/// Runs a read (Describe, Get), retrying throttling, 5xx and dropped
/// connections with jittered exponential backoff: reads are safe to repeat.
pub(crate) async fn read<T, Fut>(call: impl FnMut() -> Fut) -> Result<T, ProviderError>
where
    Fut: std::future::Future<Output = Result<T, ProviderError>>,
{
    call.retry(backoff())
        .sleep(tokio::time::sleep)
        .when(|e| e.kind == ErrorKind::Transient)
        .await
}

/// Runs a write that is safe to repeat (an overwrite, an attribute set to a
/// value, a delete or create whose NotFound or "already exists" the caller
/// accepts), retrying throttling, 5xx and dropped connections within the
/// step: a step of several such writes otherwise spends one of its attempts
/// on each transient failure of any of them. Never for a create that a
/// repeat could duplicate.
pub(crate) async fn idempotent<T, Fut>(call: impl FnMut() -> Fut) -> Result<T, ProviderError>
where
    Fut: std::future::Future<Output = Result<T, ProviderError>>,
{
    read(call).await
}

/// A read naming an id that AWS has just listed or returned: NotFound there
/// is eventual consistency, retried like throttling.
pub(crate) async fn read_existing<T, Fut>(call: impl FnMut() -> Fut) -> Result<T, ProviderError>
where
    Fut: std::future::Future<Output = Result<T, ProviderError>>,
{
    call.retry(backoff())
        .sleep(tokio::time::sleep)
        .when(|e| matches!(e.kind, ErrorKind::Transient | ErrorKind::NotFound))
        .await
}

impl Aws {
    /// The EC2 id of this env's instance `name` (`master-0`), if it exists
    /// and can be read now: for hints that name it.
    pub async fn instance_id(&self, name: &str) -> Option<String> {
        let id = ResourceId::new(Kind::Instance, name);
        instance::observe(self, Some(&id))
            .await
            .ok()?
            .into_iter()
            .find(|o| o.id == id)
            .map(|o| o.physical_id)
    }

    /// This env's instances as observed now: (name, instance id, private
    /// DNS name), by name.
    pub async fn instances(&self) -> Result<Vec<(String, String, String)>, ProviderError> {
        let mut out: Vec<(String, String, String)> = instance::observe(self, None)
            .await?
            .into_iter()
            .filter(|o| o.id.kind() == Some(Kind::Instance))
            .map(|o| {
                let dns = o
                    .props
                    .get("private_dns")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                (o.id.name().to_string(), o.physical_id, dns)
            })
            .collect();
        out.sort();
        Ok(out)
    }

    /// The tail of an instance's console output.
    pub async fn console_tail(&self, instance_id: &str, lines: usize) -> String {
        instance::console_tail(self, instance_id, lines).await
    }

    /// This env's load balancers as observed now (their DNS names for the
    /// `up` summary).
    pub async fn load_balancers(&self) -> Result<Vec<Observed>, ProviderError> {
        let all = load_balancer::describe_all(self).await?;
        Ok(load_balancer::from_descriptions(self, &all)
            .into_iter()
            .map(|(o, _)| o)
            .collect())
    }
}

pub(crate) fn tag<'a>(tags: &'a [Tag], key: &str) -> Option<&'a str> {
    tags.iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

/// The scopectl id of a tagged resource, if it carries this owner's tags and
/// an id of the expected kind.
pub(crate) fn owned_id(owner: &Owner, tags: &[Tag], kind: Kind) -> Option<ResourceId> {
    if tag(tags, TAG_PROJECT) != Some(owner.project.as_str())
        || tag(tags, TAG_ENV) != Some(owner.env.as_str())
    {
        return None;
    }
    ResourceId::parse(tag(tags, TAG_ID)?).filter(|id| id.kind() == Some(kind))
}

/// A resource by the name scopectl wants for `id` exists without this
/// env's tags: someone else's, never adopted, changed or deleted.
pub(crate) fn not_ours(aws: &Aws, what: &str, name: &str, id: &ResourceId) -> ProviderError {
    ProviderError::new(
        ErrorKind::Fatal,
        Some("NotScopectls".into()),
        format!(
            "{what} `{name}` exists and is not scopectl's: it lacks the tags of {}/{} ({id})",
            aws.owner.project, aws.owner.env
        ),
    )
    .with_hint(format!(
        "rename or delete that {what} if it is a stale copy, or use another project or env name (scopectl names this env's resources after `{}`)",
        aws.owner.cluster_name()
    ))
}

/// A write naming an id that this step just created (an attribute, an
/// attachment, a policy): NotFound there is eventual consistency, retried
/// within the step (as Terraform waits after CreateSubnet) instead of
/// failing the create, whose retry would look for it by tags and could make
/// a second one.
pub(crate) async fn on_new<T, Fut>(call: impl FnMut() -> Fut) -> Result<T, ProviderError>
where
    Fut: std::future::Future<Output = Result<T, ProviderError>>,
{
    read_existing(call).await
}

/// A declared bool prop; missing is an error, never a quiet `false`.
pub(crate) fn bool_prop(props: &Props, key: &str) -> Result<bool, ProviderError> {
    props
        .get(key)
        .and_then(Value::as_bool)
        .ok_or_else(|| ProviderError::fatal(format!("missing `{key}`")))
}

/// A declared integer prop; missing is an error, never a quiet default.
pub(crate) fn int_prop(props: &Props, key: &str) -> Result<i64, ProviderError> {
    props
        .get(key)
        .and_then(Value::as_int)
        .ok_or_else(|| ProviderError::fatal(format!("missing `{key}`")))
}

pub(crate) fn str_prop(props: &Props, key: &str) -> Result<String, ProviderError> {
    props
        .get(key)
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .ok_or_else(|| ProviderError::fatal(format!("missing `{key}`")))
}

/// A list prop's strings (references are resolved to physical ids by now);
/// empty when the prop is absent.
pub(crate) fn str_list_prop(props: &Props, key: &str) -> Vec<String> {
    props
        .get(key)
        .map(Value::as_list)
        .unwrap_or_default()
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

pub(crate) fn observed(id: ResourceId, physical_id: impl Into<String>, props: Props) -> Observed {
    Observed {
        id,
        physical_id: physical_id.into(),
        props,
    }
}

/// One kind's calls, each with the meaning `apply::Provider` gives it.
/// Every kind's file implements it on its `Ops`; `registry!` lists them.
pub(crate) trait KindOps {
    /// Everything of this kind the env owns, in one call (and what lives
    /// inside it: a volume's attachment). Kinds held by another kind's
    /// objects (routes, associations, registrations) leave it empty.
    async fn observe(_aws: &Aws) -> Result<Vec<Observed>, ProviderError> {
        Ok(Vec::new())
    }
    async fn find(aws: &Aws, r: &Resource) -> Result<Option<String>, ProviderError>;
    async fn create(aws: &Aws, r: &Resource) -> Result<String, ProviderError>;
    async fn finish(_aws: &Aws, _r: &Resource, _pid: &str) -> Result<(), ProviderError> {
        Ok(())
    }
    async fn update(
        _aws: &Aws,
        r: &Resource,
        _pid: &str,
        _before: &Props,
    ) -> Result<(), ProviderError> {
        Err(ProviderError::fatal(format!(
            "{} has no in-place update",
            r.kind().label()
        )))
    }
    async fn delete(
        aws: &Aws,
        id: &ResourceId,
        pid: &str,
        before: &Props,
    ) -> Result<(), ProviderError>;
}

/// A kind's `Ops`: the calls the executor makes, in the kind's own file.
macro_rules! kind_ops {
    ($($body:tt)*) => {
        mod ops {
            #[allow(unused_imports)]
            use super::*;
            #[allow(unused_imports)]
            use crate::providers::aws::first;
            use crate::apply::ProviderError;
            use crate::model::{Props, Resource, ResourceId};
            use crate::providers::aws::{Aws, KindOps};

            /// This kind's calls, as the executor makes them.
            pub struct Ops;

            impl KindOps for Ops {
                $($body)*
            }
        }
        pub use ops::Ops;
    };
}
pub(crate) use kind_ops;

/// The id of the one observed resource, if any (a find by tags).
pub(crate) fn first(found: Vec<Observed>) -> Result<Option<String>, ProviderError> {
    Ok(found.into_iter().next().map(|o| o.physical_id))
}

impl Provider for Aws {
    fn step_calls(&self, step: &crate::apply::Step) -> usize {
        step_calls(step)
    }

    fn batches_deletes(&self, step: &crate::apply::Step) -> bool {
        step.address.kind() == Some(Kind::Instance)
    }

    async fn delete_all(
        &self,
        items: &[(ResourceId, String, Props)],
    ) -> Vec<Result<(), ProviderError>> {
        let all_instances = items
            .iter()
            .all(|(id, _, _)| id.kind() == Some(Kind::Instance));
        if !all_instances {
            return futures::future::join_all(
                items
                    .iter()
                    .map(|(id, pid, before)| self.delete(id, pid, before)),
            )
            .await;
        }
        let ids: Vec<String> = items.iter().map(|(_, pid, _)| pid.clone()).collect();
        // One answer for all: on an error, each is tried again alone (one
        // unknown id fails the whole request).
        let result = instance::delete_all(self, &ids).await;
        items.iter().map(|_| result.clone()).collect()
    }

    async fn find(&self, r: &Resource) -> Result<Option<String>, ProviderError> {
        registry!(r.kind(), K => K::find(self, r).await)
    }

    async fn create(&self, r: &Resource) -> Result<String, ProviderError> {
        registry!(r.kind(), K => K::create(self, r).await)
    }

    async fn finish(&self, r: &Resource, physical_id: &str) -> Result<(), ProviderError> {
        registry!(r.kind(), K => K::finish(self, r, physical_id).await)
    }

    async fn update(
        &self,
        r: &Resource,
        physical_id: &str,
        before: &Props,
    ) -> Result<(), ProviderError> {
        registry!(r.kind(), K => K::update(self, r, physical_id, before).await)
    }

    async fn delete(
        &self,
        id: &ResourceId,
        physical_id: &str,
        before: &Props,
    ) -> Result<(), ProviderError> {
        let kind = id
            .kind()
            .ok_or_else(|| ProviderError::fatal(format!("unknown kind in {id}")))?;
        match registry!(kind, K => K::delete(self, id, physical_id, before).await) {
            // Deleting something already gone succeeds.
            Err(e) if e.kind == crate::apply::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }
}

impl crate::teardown::Inventory for Aws {
    /// What `down` deletes: everything the env owns, and the load balancers
    /// and groups Kubernetes made for the cluster (never part of `up`'s plan).
    async fn inventory(&self) -> Result<Actual, ProviderError> {
        let (mut actual, balancers, groups) = futures::try_join!(
            self.observe(),
            k8s_load_balancer::observe(self),
            k8s_security_group::observe(self),
        )?;
        for o in balancers.into_iter().chain(groups) {
            actual.insert(o);
        }
        actual.keep_referenced_copies();
        debug_check(&actual);
        Ok(actual)
    }
}

/// The calls a step makes one after another when nothing fails and nothing
/// is found (a fresh create: the re-observation, the create, what completes
/// it; calls made at once count once): its weight on the plan's critical
/// path (`apply::critical_path`). Kept beside each kind's code it describes;
/// a kind not listed makes one call per phase.
pub fn step_calls(step: &crate::apply::Step) -> usize {
    use crate::apply::Op;
    let Some(kind) = step.address.kind() else {
        return 1;
    };
    match step.op {
        Op::Create => match kind {
            // Kubernetes objects: one server-side apply, nothing re-observed.
            k if k.k8s().is_some() => 1,
            // Find; CreateX; then one attribute or attachment.
            Kind::Vpc | Kind::InternetGateway | Kind::Subnet | Kind::VpcPeering => 3,
            // ListRoles ‖ ListInstanceProfiles; CreateRole; PutRolePolicy ‖
            // CreateInstanceProfile; AddRoleToInstanceProfile.
            Kind::InstanceProfile => 4,
            // DescribeLoadBalancers; CreateLoadBalancer; ConfigureHealthCheck
            // ‖ ModifyLoadBalancerAttributes.
            Kind::LoadBalancer => 3,
            // DescribeParameters; PutParameter of the certificates, then of the keys.
            Kind::Ca => 3,
            // DescribeParameters; GetParameters (the CA) ‖ the balancer's or
            // masters' names; PutParameter.
            Kind::Certificate => 3,
            _ => 2,
        },
        Op::Update => match kind {
            Kind::InstanceProfile | Kind::LoadBalancer => 2,
            _ => 1,
        },
        Op::Delete => match kind {
            // TerminateInstances, then at least one DescribeInstances.
            Kind::Instance | Kind::VolumeAttachment => 2,
            // GetInstanceProfile; removals; DeleteInstanceProfile; DeleteRole.
            Kind::InstanceProfile => 4,
            _ => 1,
        },
    }
}
