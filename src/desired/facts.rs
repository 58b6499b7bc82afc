//! Looked-up inputs to the desired state. Gathered by `providers`, consumed
//! purely by `desired`, and part of the plan's fingerprint.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Facts {
    /// Availability zones the region offers, sorted.
    pub zones: Vec<String>,
    pub database: Option<DatabaseFacts>,
    /// RDS's answer when it has no instance of the configured name
    /// (`DBInstanceNotFound: …`): the cause `desired` reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_missing: Option<String>,
    pub database_vpc: Option<VpcFacts>,
    /// The machine image for masters and nodes (see [`choose_image`]).
    #[serde(default)]
    pub image: Option<ImageFacts>,
    /// The running release's image tag per service (from the cluster).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub tags: std::collections::BTreeMap<String, String>,
    /// Digests of the SSM parameters services read secrets from (never the
    /// values), by parameter name; a missing parameter is absent.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub secrets: std::collections::BTreeMap<String, String>,
    /// The join token in the state store, while it is valid: the cluster
    /// phase registers it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join_token: Option<JoinTokenFacts>,
}

/// A join token's public facts (never its secret half).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinTokenFacts {
    /// The SSM parameter that holds it.
    pub parameter: String,
    /// Its public half: the Secret is `bootstrap-token-<id>`.
    pub id: String,
    /// RFC 3339.
    pub expires: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageFacts {
    pub id: String,
    pub name: String,
    pub created: String,
}

/// The newest image (by creation date, then name). With `lts_only`, only
/// Ubuntu LTS releases count: `YY.04` with an even `YY`.
pub fn choose_image(candidates: &[ImageFacts], lts_only: bool) -> Option<ImageFacts> {
    let lts = |name: &str| {
        name.split(['-', '/']).any(|part| {
            part.strip_suffix(".04")
                .and_then(|yy| yy.parse::<u32>().ok())
                .is_some_and(|yy| yy % 2 == 0)
        })
    };
    candidates
        .iter()
        .filter(|i| !lts_only || lts(&i.name))
        .max_by(|a, b| (&a.created, &a.name).cmp(&(&b.created, &b.name)))
        .cloned()
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseFacts {
    pub identifier: String,
    pub status: String,
    pub vpc_id: String,
    pub port: u16,
    pub endpoint: Option<String>,
    /// The instance's VPC security groups, in the order RDS lists them.
    pub security_groups: Vec<String>,
    /// Subnets of its DB subnet group (empty when it has none).
    pub subnets: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VpcFacts {
    pub id: String,
    pub cidrs: Vec<String>,
    pub internet_gateway: Option<String>,
    pub subnets: Vec<SubnetFact>,
    pub route_tables: Vec<RouteTableFact>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubnetFact {
    pub id: String,
    pub cidr: String,
    pub zone: String,
    /// Carries this project's and env's ownership tags (so it is ours, not a neighbour).
    pub owned: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteTableFact {
    pub id: String,
    pub main: bool,
    /// Subnets explicitly associated with it.
    pub subnets: Vec<String>,
    pub owned: bool,
}
