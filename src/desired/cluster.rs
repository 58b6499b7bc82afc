//! Pure: the cluster's objects — the add-ons (pod network, cloud controller
//! manager, CoreDNS), the product's namespace and `database` Service, and
//! per service a Deployment, a Service and (with secrets) a Secret.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use super::{DesiredError, Facts};
use crate::config::{Config, Expose, Placement, Provider, Readiness};
use crate::model::k8s as mk;
use crate::model::{Desired, Kind, Ownership, ResourceId, Value};
use crate::render::{addons, workloads};

/// The `n`th address of a network.
fn nth(net: &ipnet::Ipv4Net, n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.network()).saturating_add(n))
}

/// The private zone the RDS endpoint is in, and the resolver that answers
/// it with private addresses: the database VPC's own (base + 2) beside it;
/// the cluster VPC's, which resolves the peer's names privately, when peered.
fn database_dns(config: &Config, facts: &Facts) -> (Option<String>, Option<String>) {
    let zone = facts
        .database
        .as_ref()
        .and_then(|d| d.endpoint.as_deref())
        .and_then(|e| e.split_once('.'))
        .map(|(_, zone)| zone.to_string());
    let resolver = match config.network.placement {
        Placement::BesideDatabase => facts
            .database_vpc
            .as_ref()
            .and_then(|v| v.cidrs.first())
            .and_then(|c| c.parse::<ipnet::Ipv4Net>().ok()),
        Placement::Peered => Some(config.network.cidr),
    }
    .map(|net| nth(&net, 2).to_string());
    match (zone, resolver) {
        (Some(z), Some(r)) => (Some(z), Some(r)),
        _ => (None, None),
    }
}

/// The database's subnets (its DB subnet group's ranges), where its address
/// can be: what the NetworkPolicies keep pods from but its clients'.
fn database_ranges(facts: &Facts) -> Vec<String> {
    let (Some(db), Some(vpc)) = (&facts.database, &facts.database_vpc) else {
        return Vec::new();
    };
    let mut ranges: Vec<String> = vpc
        .subnets
        .iter()
        .filter(|s| db.subnets.contains(&s.id))
        .map(|s| s.cidr.clone())
        .collect();
    ranges.sort();
    ranges.dedup();
    ranges
}

/// With `database.clients`: every pod of the product's namespace may reach
/// anything but the database's subnets; the clients' pods may reach the
/// database's port there too (NetworkPolicies add up).
fn database_policies(
    config: &Config,
    facts: &Facts,
    namespace: &str,
    port: u16,
    d: &mut Desired,
) -> Result<Vec<String>, DesiredError> {
    if config.database.clients.is_empty() || config.provider != Provider::Aws {
        return Ok(Vec::new());
    }
    let ranges = database_ranges(facts);
    if ranges.is_empty() {
        return Ok(vec![
            "database.clients: the database's subnets are not known yet; its NetworkPolicies follow once they are".into(),
        ]);
    }
    let labels = serde_json::json!({"app.kubernetes.io/part-of": config.project});
    let others = serde_json::json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "database-others", "namespace": namespace, "labels": labels},
        "spec": {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ranges}}]}],
        },
    });
    let clients = serde_json::json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "database-clients", "namespace": namespace, "labels": labels},
        "spec": {
            "podSelector": {"matchExpressions": [{
                "key": "app.kubernetes.io/name",
                "operator": "In",
                "values": config.database.clients,
            }]},
            "policyTypes": ["Egress"],
            "egress": [{
                "to": ranges.iter().map(|r| serde_json::json!({"ipBlock": {"cidr": r}})).collect::<Vec<_>>(),
                "ports": [{"protocol": "TCP", "port": port}],
            }],
        },
    });
    add(config, d, others, "database.clients")?;
    add(config, d, clients, "database.clients")?;
    Ok(Vec::new())
}

fn kind_of(obj: &serde_json::Value) -> Option<Kind> {
    let api_version = obj.get("apiVersion")?.as_str()?;
    let kind = obj.get("kind")?.as_str()?;
    Kind::ALL.iter().copied().find(|k| {
        k.k8s()
            .is_some_and(|a| a.kind == kind && a.api_version() == api_version)
    })
}

/// Adds one rendered object, with this env's labels.
fn add(
    config: &Config,
    d: &mut Desired,
    mut obj: serde_json::Value,
    from: &str,
) -> Result<ResourceId, DesiredError> {
    let bad = |what: String| DesiredError {
        message: format!("{from}: {what}"),
        hint: Some("this is a bug in scopectl's templates; please report it".into()),
        at: None,
        cause: None,
    };
    let kind = kind_of(&obj).ok_or_else(|| {
        bad(format!(
            "{} {} is not a kind scopectl applies",
            obj["apiVersion"], obj["kind"]
        ))
    })?;
    let api = kind.k8s().expect("a k8s kind");
    let name = obj
        .pointer("/metadata/name")
        .and_then(|v| v.as_str())
        .ok_or_else(|| bad("an object without a name".into()))?
        .to_string();
    let namespace = obj
        .pointer("/metadata/namespace")
        .and_then(|v| v.as_str())
        .map(str::to_string);
    if api.namespaced != namespace.is_some() {
        return Err(bad(format!("{} {name}: namespace set wrongly", api.kind)));
    }
    let meta = obj
        .get_mut("metadata")
        .and_then(|m| m.as_object_mut())
        .ok_or_else(|| bad("no metadata".into()))?;
    let labels = meta
        .entry("labels")
        .or_insert_with(|| serde_json::json!({}))
        .as_object_mut()
        .ok_or_else(|| bad("labels are not a map".into()))?;
    for (k, v) in mk::owner_labels(&config.project, &config.env) {
        labels.insert(k, v.into());
    }
    let id = mk::address(kind, namespace.as_deref(), &name);
    let props = mk::to_props(api, &obj);
    if d.resources.contains_key(&id) {
        return Err(bad(format!("{id} twice")));
    }
    Ok(d.add(id, Ownership::Owned, props))
}

/// The cluster's objects for this env. `images` are `--image NAME=TAG`
/// (first deployments only: a running service keeps its release's tag).
/// Returns notices (an `--image` that was not used).
/// The join token as kubeadm registers one (kubeadm
/// `cmd/kubeadm/app/phases/bootstraptoken/node/token.go` via
/// `BootstrapTokenToSecret`; the format is k8s.io/cluster-bootstrap
/// `token/api`): the node-joining groups, both usages, its expiry. Its
/// halves come from the state store when applied, never into the plan.
fn join_token_secret(
    config: &Config,
    d: &mut Desired,
    facts: &Facts,
    t: &crate::desired::JoinTokenFacts,
) -> Result<ResourceId, DesiredError> {
    let literal = [
        ("expiration", t.expires.as_str()),
        ("usage-bootstrap-authentication", "true"),
        ("usage-bootstrap-signing", "true"),
        (
            "auth-extra-groups",
            "system:bootstrappers:kubeadm:default-node-token",
        ),
        ("description", "scopectl: node joins (made at launch, 24 h)"),
    ];
    let mut sources: BTreeMap<String, String> = literal
        .iter()
        .map(|(k, v)| (k.to_string(), format!("={v}")))
        .collect();
    sources.insert("token-id".into(), format!("{}#id", t.parameter));
    sources.insert("token-secret".into(), format!("{}#secret", t.parameter));
    let obj = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": format!("bootstrap-token-{}", t.id),
            "namespace": "kube-system",
            "annotations": {
                mk::SOURCES_ANNOTATION: serde_json::to_string(&sources).unwrap_or_default(),
            },
        },
        "type": "bootstrap.kubernetes.io/token",
    });
    let id = add(config, d, obj, "the join token")?;
    let mut digests: Vec<(String, String)> = literal
        .iter()
        .map(|(k, v)| (k.to_string(), mk::value_digest(v.as_bytes())))
        .collect();
    // The token's halves are compared by the parameter's version.
    let Some(version) = facts.secrets.get(&t.parameter) else {
        return Ok(id);
    };
    digests.push(("token".into(), version.clone()));
    if let Some(r) = d.resources.get_mut(&id) {
        r.props.insert(
            "digest".into(),
            Value::str(mk::data_digest(
                digests.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            )),
        );
    }
    Ok(id)
}

pub fn cluster(
    config: &Config,
    facts: &Facts,
    images: &BTreeMap<String, String>,
    d: &mut Desired,
) -> Result<Vec<String>, DesiredError> {
    let mut notices = Vec::new();
    for name in images.keys() {
        if !config.services.contains_key(name) {
            return Err(DesiredError {
                message: format!("--image names `{name}`, which is not a service of the config"),
                hint: Some(format!(
                    "services are: {}",
                    config
                        .services
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
                at: None,
                cause: None,
            });
        }
    }
    if !config.cluster.addons.is_empty() {
        let (database_zone, database_resolver) = database_dns(config, facts);
        let inputs = addons::AddonInputs {
            kubernetes_version: config.cluster.kubernetes_version.clone(),
            cluster_name: format!("{}-{}", config.project, config.env),
            region: config.aws.region.clone(),
            pod_cidr: config.cluster.pod_cidr.to_string(),
            service_cidr: config.cluster.service_cidr.to_string(),
            dns_service_ip: crate::render::dns_service_ip(&config.cluster.service_cidr)
                .map_err(render_error)?
                .to_string(),
            domain: config.cluster.domain.clone(),
            database_zone,
            database_resolver,
        };
        let rendered = addons::addons(&inputs).map_err(|e| DesiredError {
            message: e.to_string(),
            hint: Some("check cluster.kubernetes_version".into()),
            at: None,
            cause: None,
        })?;
        for addon in rendered {
            if !config.cluster.addons.contains(addon.name) {
                continue;
            }
            for obj in addon.objects {
                add(config, d, obj, addon.name)?;
            }
        }
    }

    if let Some(t) = &facts.join_token {
        join_token_secret(config, d, facts, t)?;
    }

    let namespace = config.project.clone();
    let db = facts.database.as_ref();
    let database_port = config.database.port.or(db.map(|d| d.port)).unwrap_or(5432);
    for obj in workloads::namespace(&workloads::NamespaceInputs {
        project: config.project.clone(),
        namespace: namespace.clone(),
        database_host: match config.provider {
            Provider::Aws => db.and_then(|d| d.endpoint.clone()),
            Provider::Local => config.database.host.clone(),
        },
        database_port,
    })
    .map_err(render_error)?
    {
        add(config, d, obj, "the namespace")?;
    }

    for (name, s) in &config.services {
        let running = facts.tags.get(name);
        let tag = match (running, images.get(name), &s.initial_tag) {
            (Some(t), asked, _) => {
                if let Some(a) = asked.filter(|a| *a != t) {
                    notices.push(format!(
                        "{name} runs {t}: --image {name}={a} applies to a first deployment only; use `scopectl rollout --env {} {name}={a}`",
                        config.env
                    ));
                }
                t.clone()
            }
            (None, Some(t), _) | (None, None, Some(t)) => t.clone(),
            (None, None, None) => {
                return Err(DesiredError {
                    message: format!("services.{name} has no image tag for its first deployment"),
                    hint: Some(format!(
                        "pass --image {name}=TAG, or set services.{name}.initial_tag"
                    )),
                    at: None,
                    cause: None,
                })
            }
        };
        let mut env: Vec<workloads::EnvVar> = [
            ("DATABASE_HOST", "database".to_string()),
            ("DATABASE_PORT", database_port.to_string()),
        ]
        .into_iter()
        .filter(|(k, _)| !s.env.contains_key(*k) && !s.secrets.contains_key(*k))
        .map(|(k, v)| workloads::EnvVar {
            name: k.into(),
            value: v,
        })
        .collect();
        env.extend(s.env.iter().map(|(k, v)| workloads::EnvVar {
            name: k.clone(),
            value: v.clone(),
        }));
        let secret_name = format!("{name}-secrets");
        let objects = workloads::service(&workloads::ServiceInputs {
            project: config.project.clone(),
            namespace: namespace.clone(),
            name: name.clone(),
            image: s.image.clone(),
            tag,
            replicas: s.replicas,
            port: s.port,
            readiness_path: match &s.readiness {
                Readiness::Http(p) => Some(p.clone()),
                Readiness::Tcp => None,
            },
            resources: workloads::ResourceInputs {
                cpu: s.resources.cpu.clone(),
                memory: s.resources.memory.clone(),
                cpu_limit: s.resources.cpu_limit.clone(),
                memory_limit: s.resources.memory_limit.clone(),
            },
            env,
            secret_keys: s.secrets.keys().cloned().collect(),
            secret_name: secret_name.clone(),
            sources: s.secrets.clone(),
            run_as_root: s.run_as_root,
            read_only_root: s.read_only_root,
            node_port: match s.expose {
                Expose::Elb => s.node_port,
                Expose::None => None,
            },
        })
        .map_err(render_error)?;
        for obj in objects {
            let id = add(config, d, obj, &format!("services.{name}"))?;
            if id.kind() == Some(Kind::Secret) {
                let digests = s
                    .secrets
                    .iter()
                    .map(|(var, param)| {
                        facts
                            .secrets
                            .get(param)
                            .map(|dg| (var.as_str(), dg.as_str()))
                            .ok_or_else(|| DesiredError {
                                message: format!(
                                    "services.{name}.secrets.{var}: the SSM parameter {param} does not exist"
                                ),
                                hint: Some(format!(
                                    "create it: aws ssm put-parameter --name {param} --type SecureString --value …"
                                )),
                                at: None,
                                cause: None,
                            })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                if let Some(r) = d.resources.get_mut(&id) {
                    r.props
                        .insert("digest".into(), Value::str(mk::data_digest(digests)));
                }
            }
        }
    }
    notices.extend(database_policies(
        config,
        facts,
        &namespace,
        database_port,
        d,
    )?);
    Ok(notices)
}

fn render_error(e: crate::render::RenderError) -> DesiredError {
    DesiredError {
        message: e.to_string(),
        hint: Some("this is a bug in scopectl's templates; please report it".into()),
        at: None,
        cause: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::tests::{example, sample_facts};
    use crate::model::Actual;

    fn objects(env: &str, facts: &Facts) -> Desired {
        let mut d = Desired::default();
        cluster(&example(env), facts, &BTreeMap::new(), &mut d).unwrap();
        d
    }

    #[test]
    fn services_become_deployments_services_and_the_database_name() {
        let d = objects("staging", &sample_facts());
        let users = &d.resources[&ResourceId::parse("k8s/apps/v1/Deployment/scope/users").unwrap()];
        let obj = mk::to_object(&users.id, &users.props).unwrap();
        insta::assert_json_snapshot!("users_deployment", obj);
        let db = &d.resources[&ResourceId::parse("k8s/v1/Service/scope/database").unwrap()];
        insta::assert_json_snapshot!(
            "database_service",
            mk::to_object(&db.id, &db.props).unwrap()
        );
        let frontend = &d.resources[&ResourceId::parse("k8s/v1/Service/scope/frontend").unwrap()];
        let spec = mk::to_json(&frontend.props["spec"]);
        assert_eq!(spec["type"], "NodePort");
        let port = example("staging").services["frontend"].node_port.unwrap();
        assert_eq!(spec["ports"][0]["nodePort"], i64::from(port));
        for r in d.resources.values() {
            let labels = r.props["labels"].as_map().unwrap();
            assert_eq!(labels[mk::MANAGED_BY], Value::str("scopectl"), "{}", r.id);
            assert_eq!(labels[mk::LABEL_ENV], Value::str("staging"), "{}", r.id);
            Kind::ALL
                .iter()
                .find(|k| **k == r.kind())
                .unwrap()
                .schema()
                .check(&r.props, true)
                .unwrap_or_else(|e| panic!("{}: {e}", r.id));
        }
    }

    /// Every object of every example env (add-ons, namespace, services)
    /// passes the official schemas of the env's Kubernetes version.
    #[test]
    fn every_object_passes_the_kubernetes_schemas() {
        for env in ["staging", "prod", "sandbox", "sandbox-peered"] {
            let config = example(env);
            let d = objects(env, &sample_facts());
            let all: Vec<serde_json::Value> = d
                .resources
                .values()
                .map(|r| mk::to_object(&r.id, &r.props).unwrap())
                .collect();
            assert!(all.len() > 20, "{env}: {}", all.len());
            crate::render::validate_tests::validate_k8s(&all, &config.cluster.kubernetes_version);
        }
    }

    /// The database's zone goes to the resolver that answers it privately:
    /// the database VPC's beside it, the cluster VPC's when peered.
    #[test]
    fn the_database_zone_is_forwarded_to_the_vpc_resolver() {
        for (env, resolver) in [("sandbox", "172.31.0.2"), ("sandbox-peered", "10.20.0.2")] {
            let d = objects(env, &sample_facts());
            let cm =
                &d.resources[&ResourceId::parse("k8s/v1/ConfigMap/kube-system/coredns").unwrap()];
            let corefile = mk::to_json(&cm.props["data"])["Corefile"]
                .as_str()
                .unwrap()
                .to_string();
            assert!(
                corefile.contains("abc.us-east-1.rds.amazonaws.com:53")
                    && corefile.contains(&format!("forward . {resolver}")),
                "{env}:\n{corefile}"
            );
        }
    }

    #[test]
    fn the_addresses_of_the_example() {
        let d = objects("staging", &sample_facts());
        let ids: Vec<&str> = d.resources.keys().map(|id| id.as_str()).collect();
        insta::assert_snapshot!("cluster_addresses_staging", ids.join("\n"));
    }

    #[test]
    fn a_running_release_keeps_its_tag_and_a_first_one_needs_one() {
        let mut facts = sample_facts();
        facts.tags.insert("users".into(), "v9".into());
        let images = BTreeMap::from([("users".to_string(), "v10".to_string())]);
        let mut d = Desired::default();
        let notices = cluster(&example("staging"), &facts, &images, &mut d).unwrap();
        let users = &d.resources[&ResourceId::parse("k8s/apps/v1/Deployment/scope/users").unwrap()];
        let obj = mk::to_object(&users.id, &users.props).unwrap();
        assert_eq!(
            obj["spec"]["template"]["spec"]["containers"][0]["image"],
            "registry.example/scope/users:v9"
        );
        assert!(notices[0].contains("scopectl rollout"), "{notices:?}");

        let mut config = example("staging");
        config.services.get_mut("ui").unwrap().initial_tag = None;
        let err = cluster(
            &config,
            &sample_facts(),
            &BTreeMap::new(),
            &mut Desired::default(),
        )
        .unwrap_err();
        assert!(
            err.message.contains("services.ui has no image tag"),
            "{}",
            err.message
        );
        assert!(err.hint.unwrap().contains("--image ui=TAG"));
    }

    #[test]
    fn secrets_are_digests_and_a_missing_parameter_is_an_error() {
        let mut config = example("staging");
        config
            .services
            .get_mut("users")
            .unwrap()
            .secrets
            .insert("DB_PASSWORD".into(), "/scope/staging/db-password".into());
        let err = cluster(
            &config,
            &sample_facts(),
            &BTreeMap::new(),
            &mut Desired::default(),
        )
        .unwrap_err();
        assert!(err
            .message
            .contains("/scope/staging/db-password does not exist"));
        let mut facts = sample_facts();
        facts.secrets.insert(
            "/scope/staging/db-password".into(),
            mk::value_digest(b"hunter2"),
        );
        let mut d = Desired::default();
        cluster(&config, &facts, &BTreeMap::new(), &mut d).unwrap();
        let secret = &d.resources[&ResourceId::parse("k8s/v1/Secret/scope/users-secrets").unwrap()];
        let text = serde_json::to_string(&secret.props).unwrap();
        assert!(!text.contains("hunter2"));
        assert_eq!(
            secret.props["digest"],
            Value::str(mk::data_digest([(
                "DB_PASSWORD",
                mk::value_digest(b"hunter2").as_str()
            )]))
        );
        // A changed value shows only as sensitive, never the digests.
        let mut actual = Actual::default();
        let mut before = secret.props.clone();
        before.insert("digest".into(), Value::str("sha256:old"));
        actual.insert(crate::model::Observed {
            id: secret.id.clone(),
            physical_id: "uid-1".into(),
            props: before,
        });
        actual.cluster = Some(Default::default());
        let plan = crate::plan::plan("scope", "staging", &d, &actual, "fp".into()).unwrap();
        let shown = crate::ui::render_plan(&plan, false);
        assert!(
            shown.contains("~ k8s/v1/Secret/scope/users-secrets"),
            "{shown}"
        );
        assert!(shown.contains("digest: (sensitive)"), "{shown}");
        assert!(!shown.contains("sha256:old"), "{shown}");
    }
}
