//! The PKI items an env needs, as resources: the three CAs, kubeadm's leaves,
//! the service-account key pair and the bootstrap token. Their material is
//! made at apply time; the plan compares public facts only.

use crate::config::Config;
use crate::model::{Actual, Desired, Kind, Ownership, Props, ResourceId, Value};
use crate::pki::{self, Names, NOT_DUE, ROTATION_REQUESTED};

pub fn ca_id(stem: &str) -> ResourceId {
    ResourceId::new(Kind::Ca, stem)
}

pub fn pki(config: &Config, d: &mut Desired) {
    for ca in pki::CAS {
        d.add(
            ca_id(ca.stem),
            Ownership::Owned,
            Props::from([
                (
                    "subject".into(),
                    Value::str(pki::subject(ca.common_name, None)),
                ),
                ("generations".into(), Value::List(vec![Value::Int(1)])),
                ("signing".into(), Value::Int(1)),
            ]),
        );
    }
    let masters = Value::list(
        (0..config.cluster.masters.count)
            .map(|i| Value::reference(&ResourceId::new(Kind::Instance, &format!("master-{i}"))))
            .collect(),
    );
    for leaf in pki::LEAVES {
        let mut p = Props::from([
            (
                "subject".into(),
                Value::str(pki::subject(leaf.common_name, leaf.organization)),
            ),
            ("usage".into(), Value::str(leaf.usage.as_str())),
            ("ca".into(), Value::reference(&ca_id(leaf.ca))),
            ("issuer".into(), Value::Int(1)),
            ("renewal".into(), Value::str(NOT_DUE)),
        ]);
        let sans = match leaf.names {
            Names::None => Vec::new(),
            Names::ApiServer => pki::api_server_sans(
                config.cluster.service_cidr,
                &config.cluster.domain,
                config.cluster.api_endpoint.as_deref(),
                &config.cluster.extra_sans,
            ),
            Names::Etcd => pki::etcd_sans(),
        };
        p.insert(
            "sans".into(),
            Value::list(sans.into_iter().map(Value::Str).collect()),
        );
        if leaf.names == Names::ApiServer {
            p.insert(
                "load_balancer".into(),
                Value::reference(&ResourceId::new(Kind::LoadBalancer, "api")),
            );
        }
        if leaf.names != Names::None {
            p.insert("masters".into(), masters.clone());
        }
        d.add(
            ResourceId::new(Kind::Certificate, leaf.stem),
            Ownership::Owned,
            p,
        );
    }
    d.add(
        ResourceId::new(Kind::KeyPair, pki::SERVICE_ACCOUNT),
        Ownership::Owned,
        Props::from([("algorithm".into(), Value::str("ECDSA-P256"))]),
    );
    d.add(
        ResourceId::new(Kind::KeyPair, pki::ENCRYPTION_KEY),
        Ownership::Owned,
        Props::from([("algorithm".into(), Value::str("aescbc-256"))]),
    );
    d.add(
        ResourceId::new(Kind::Token, pki::BOOTSTRAP_TOKEN),
        Ownership::Owned,
        Props::from([
            ("purpose".into(), Value::str("node join")),
            ("ttl".into(), Value::str(pki::TOKEN_TTL_WORDS)),
            ("serial".into(), Value::Int(1)),
            ("state".into(), Value::str("usable")),
        ]),
    );
}

/// The join token, once the plan is known (pure). A token exists only while
/// it is needed: when the plan launches an instance it must be usable (a
/// new one otherwise); `pki rotate` makes a new one; when nothing launches,
/// a valid token is kept as it is and an expired one is deleted (the
/// cluster's token cleaner removes its Secret). Returns whether `d` changed.
pub fn join_token(d: &mut Desired, actual: &Actual, launching: bool, rotate: bool) -> bool {
    let id = ResourceId::new(Kind::Token, pki::BOOTSTRAP_TOKEN);
    let Some(want) = d.resources.get(&id).cloned() else {
        return false;
    };
    let have = actual.resources.get(&id);
    let state = have
        .and_then(|o| o.props.get("state"))
        .and_then(Value::as_str);
    let serial = have
        .and_then(|o| o.props.get("serial"))
        .and_then(Value::as_int)
        .unwrap_or(0);
    let mut props = want.props.clone();
    if rotate && have.is_some() {
        props.insert("serial".into(), Value::Int(serial + 1));
    } else if launching || rotate {
        props.insert("serial".into(), Value::Int(serial.max(1)));
    } else {
        match (have, state) {
            // Valid and nothing launches: kept as it is.
            (Some(o), Some("usable" | "expiring")) => props = o.props.clone(),
            // Expired, or never needed: gone.
            _ => {
                d.resources.remove(&id);
                return true;
            }
        }
    }
    let changed = props != want.props;
    if let Some(r) = d.resources.get_mut(&id) {
        r.props = props;
    }
    changed
}

/// What `pki rotate` asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rotation {
    /// Reissue every leaf.
    pub leaves: bool,
    /// Move every CA one stage on: trust a new CA beside the old; sign with
    /// the new (and reissue the leaves); drop the old.
    pub ca: bool,
}

/// The CA stage a rotation moves to from `(generations, signing)`.
pub fn next_stage(generations: &[i64], signing: i64) -> (Vec<i64>, i64) {
    match generations {
        [only] => (vec![*only, only + 1], *only),
        [.., newest] if signing != *newest => (generations.to_vec(), *newest),
        [.., newest] => (vec![*newest], *newest),
        [] => (vec![1], 1),
    }
}

/// Fills in what the PKI items' desired state takes from what exists (pure):
/// a CA keeps its generations unless a rotation moves it on, and a leaf must
/// be signed by its CA's signing generation.
pub fn settle(d: &mut Desired, actual: &Actual, rotation: Rotation) {
    let mut signing = std::collections::BTreeMap::new();
    for ca in pki::CAS {
        let id = ca_id(ca.stem);
        let Some(r) = d.resources.get_mut(&id) else {
            continue;
        };
        let (mut gens, mut sign) = (vec![1], 1);
        if let Some(o) = actual.resources.get(&id) {
            let observed: Vec<i64> = o
                .props
                .get("generations")
                .map(|v| v.as_list().iter().filter_map(Value::as_int).collect())
                .unwrap_or_default();
            if let (false, Some(s)) = (
                observed.is_empty(),
                o.props.get("signing").and_then(Value::as_int),
            ) {
                (gens, sign) = (observed, s);
            }
            if rotation.ca {
                (gens, sign) = next_stage(&gens, sign);
            }
        }
        r.props.insert(
            "generations".into(),
            Value::List(gens.into_iter().map(Value::Int).collect()),
        );
        r.props.insert("signing".into(), Value::Int(sign));
        signing.insert(id, sign);
    }
    for r in d.resources.values_mut() {
        if r.kind() != Kind::Certificate {
            continue;
        }
        let ca = r.props.get("ca").and_then(|v| match v {
            Value::Ref(r) => Some(r.target.clone()),
            _ => None,
        });
        if let Some(s) = ca.and_then(|c| signing.get(&c)) {
            r.props.insert("issuer".into(), Value::Int(*s));
        }
        if rotation.leaves && actual.resources.contains_key(&r.id) {
            r.props
                .insert("renewal".into(), Value::str(ROTATION_REQUESTED));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Observed;

    #[test]
    fn a_ca_rotates_in_three_stages_and_back_to_one() {
        // Trust the new beside the old; sign with the new; drop the old.
        assert_eq!(next_stage(&[1], 1), (vec![1, 2], 1));
        assert_eq!(next_stage(&[1, 2], 1), (vec![1, 2], 2));
        assert_eq!(next_stage(&[1, 2], 2), (vec![2], 2));
        assert_eq!(next_stage(&[2], 2), (vec![2, 3], 2));
    }

    fn with_ca(gens: &[i64], signing: i64) -> (Desired, Actual) {
        let mut d = Desired::default();
        d.add(
            ca_id("ca"),
            Ownership::Owned,
            Props::from([("subject".into(), Value::str("CN=kubernetes"))]),
        );
        let leaf = ResourceId::new(Kind::Certificate, "admin");
        d.add(
            leaf.clone(),
            Ownership::Owned,
            Props::from([
                ("ca".into(), Value::reference(&ca_id("ca"))),
                ("issuer".into(), Value::Int(1)),
                ("renewal".into(), Value::str(NOT_DUE)),
            ]),
        );
        let mut a = Actual::default();
        a.insert(Observed {
            id: ca_id("ca"),
            physical_id: "/scopectl/p/e/pki/ca".into(),
            props: Props::from([
                (
                    "generations".into(),
                    Value::List(gens.iter().map(|g| Value::Int(*g)).collect()),
                ),
                ("signing".into(), Value::Int(signing)),
            ]),
        });
        a.insert(Observed {
            id: leaf,
            physical_id: "/scopectl/p/e/pki/admin".into(),
            props: Props::new(),
        });
        (d, a)
    }

    fn get<'a>(d: &'a Desired, id: &ResourceId, f: &str) -> &'a Value {
        &d.resources[id].props[f]
    }

    #[test]
    fn settle_keeps_what_exists_and_moves_only_on_request() {
        let admin = ResourceId::new(Kind::Certificate, "admin");
        let (mut d, a) = with_ca(&[1, 2], 2);
        settle(&mut d, &a, Rotation::default());
        assert_eq!(get(&d, &ca_id("ca"), "signing"), &Value::Int(2));
        assert_eq!(get(&d, &admin, "issuer"), &Value::Int(2));
        assert_eq!(get(&d, &admin, "renewal"), &Value::str(NOT_DUE));

        let (mut d, a) = with_ca(&[1], 1);
        settle(
            &mut d,
            &a,
            Rotation {
                ca: true,
                leaves: false,
            },
        );
        assert_eq!(
            get(&d, &ca_id("ca"), "generations"),
            &Value::List(vec![Value::Int(1), Value::Int(2)])
        );
        assert_eq!(get(&d, &admin, "issuer"), &Value::Int(1));

        let (mut d, a) = with_ca(&[1], 1);
        settle(
            &mut d,
            &a,
            Rotation {
                ca: false,
                leaves: true,
            },
        );
        assert_eq!(get(&d, &admin, "renewal"), &Value::str(ROTATION_REQUESTED));
        assert_eq!(get(&d, &ca_id("ca"), "signing"), &Value::Int(1));
    }
}
