//! The ingress rule set of one group, owned by tag on each rule. On the
//! database's (adopted) group it is the only thing scopectl adds, and the
//! tags let `down` revoke exactly those rules.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{IpPermission, IpRange, ResourceType, SecurityGroupRule, UserIdGroupPair};

use super::{classify, observed, owned_id, read, str_prop, Aws};
use crate::apply::ProviderError;
use crate::model::{Kind, Observed, Props, Resource, ResourceId, Value};

fn physical(group: &str) -> String {
    format!("{group}/ingress")
}

fn rule_value(r: &SecurityGroupRule) -> Option<Value> {
    let source = r
        .referenced_group_info()
        .and_then(|g| g.group_id())
        .or(r.cidr_ipv4())?;
    Some(Value::Map(BTreeMap::from([
        ("protocol".into(), Value::str(r.ip_protocol()?)),
        ("from".into(), Value::Int(r.from_port()?.into())),
        ("to".into(), Value::Int(r.to_port()?.into())),
        ("source".into(), Value::str(source)),
    ])))
}

async fn describe(
    aws: &Aws,
    only: Option<&ResourceId>,
) -> Result<Vec<SecurityGroupRule>, ProviderError> {
    let out = read(|| async move {
        aws.ec2
            .describe_security_group_rules()
            .set_filters(Some(aws.owner_filters(only)))
            .send()
            .await
            .map_err(|e| classify("DescribeSecurityGroupRules", e))
    })
    .await?;
    Ok(out.security_group_rules().to_vec())
}

/// Per rule set: its group, its rules, and each rule's AWS id.
type RuleSet = (String, Vec<Value>, BTreeMap<String, Value>);

fn group_rules(aws: &Aws, rules: &[SecurityGroupRule]) -> Vec<Observed> {
    let mut by_id: BTreeMap<ResourceId, RuleSet> = BTreeMap::new();
    for r in rules.iter().filter(|r| r.is_egress() != Some(true)) {
        let (Some(id), Some(group), Some(rule), Some(rule_id)) = (
            owned_id(&aws.owner, r.tags(), Kind::SecurityGroupIngress),
            r.group_id(),
            rule_value(r),
            r.security_group_rule_id(),
        ) else {
            continue;
        };
        let entry = by_id
            .entry(id)
            .or_insert_with(|| (group.to_string(), Vec::new(), BTreeMap::new()));
        entry.2.insert(rule.to_string(), Value::str(rule_id));
        entry.1.push(rule);
    }
    by_id
        .into_iter()
        .map(|(id, (group, rules, ids))| {
            let props = Props::from([
                ("group".into(), Value::str(&group)),
                ("rules".into(), Value::list(rules)),
                ("rule_ids".into(), Value::Map(ids)),
            ]);
            observed(id, physical(&group), props)
        })
        .collect()
}

pub async fn observe(aws: &Aws, only: Option<&ResourceId>) -> Result<Vec<Observed>, ProviderError> {
    Ok(group_rules(aws, &describe(aws, only).await?))
}

pub async fn find(aws: &Aws, r: &Resource) -> Result<Option<String>, ProviderError> {
    Ok(observe(aws, Some(&r.id))
        .await?
        .into_iter()
        .next()
        .map(|o| o.physical_id))
}

/// Called after `find` saw no rule of this set: authorize them all at once.
pub async fn create(aws: &Aws, r: &Resource) -> Result<String, ProviderError> {
    authorize(aws, r, &BTreeMap::new()).await?;
    Ok(physical(&str_prop(&r.props, "group")?))
}

pub async fn update(aws: &Aws, r: &Resource, _before: &Props) -> Result<(), ProviderError> {
    reconcile(aws, r).await
}

/// Authorizes the missing rules and revokes the extra ones, against a fresh read.
pub async fn reconcile(aws: &Aws, r: &Resource) -> Result<(), ProviderError> {
    let group = str_prop(&r.props, "group")?;
    let current = observe(aws, Some(&r.id)).await?.into_iter().next();
    let have: BTreeMap<String, String> = current
        .as_ref()
        .and_then(|o| o.props.get("rule_ids"))
        .and_then(Value::as_map)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    let wanted: Vec<String> = rules(r).iter().map(|v| v.to_string()).collect();
    let extra: Vec<String> = have
        .iter()
        .filter(|(k, _)| !wanted.contains(k))
        .map(|(_, id)| id.clone())
        .collect();
    if !extra.is_empty() {
        aws.ec2
            .revoke_security_group_ingress()
            .group_id(&group)
            .set_security_group_rule_ids(Some(extra))
            .send()
            .await
            .map_err(|e| classify("RevokeSecurityGroupIngress", e))?;
    }
    authorize(aws, r, &have).await
}

fn rules(r: &Resource) -> &[Value] {
    r.props.get("rules").map(Value::as_list).unwrap_or_default()
}

/// Authorizes the rules of `r` not in `have` (by rule key), tagged and described.
async fn authorize(
    aws: &Aws,
    r: &Resource,
    have: &BTreeMap<String, String>,
) -> Result<(), ProviderError> {
    let group = str_prop(&r.props, "group")?;
    let descriptions = r
        .props
        .get("descriptions")
        .map(Value::as_list)
        .unwrap_or_default();
    let describe = |rule: &Value| {
        descriptions
            .iter()
            .filter_map(Value::as_map)
            .find(|d| d.get("rule") == Some(rule))
            .and_then(|d| d.get("text"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let missing: Vec<IpPermission> = rules(r)
        .iter()
        .filter(|v| !have.contains_key(&v.to_string()))
        .map(|v| permission(v, describe(v)))
        .collect::<Result<_, _>>()?;
    if missing.is_empty() {
        return Ok(());
    }
    aws.ec2
        .authorize_security_group_ingress()
        .group_id(&group)
        .set_ip_permissions(Some(missing))
        .tag_specifications(aws.tag_spec(ResourceType::SecurityGroupRule, &r.id, &[]))
        .send()
        .await
        .map_err(|e| classify("AuthorizeSecurityGroupIngress", e))?;
    Ok(())
}

fn permission(v: &Value, description: String) -> Result<IpPermission, ProviderError> {
    let m = v
        .as_map()
        .ok_or_else(|| ProviderError::fatal("a rule is not a map"))?;
    let get = |k: &str| {
        m.get(k)
            .ok_or_else(|| ProviderError::fatal(format!("a rule has no `{k}`")))
    };
    let source = get("source")?.as_str().unwrap_or_default().to_string();
    let mut p = IpPermission::builder()
        .ip_protocol(get("protocol")?.as_str().unwrap_or("-1"))
        .from_port(get("from")?.as_int().unwrap_or(-1) as i32)
        .to_port(get("to")?.as_int().unwrap_or(-1) as i32);
    p = if source.starts_with("sg-") {
        p.user_id_group_pairs(
            UserIdGroupPair::builder()
                .group_id(source)
                .description(description)
                .build(),
        )
    } else {
        p.ip_ranges(
            IpRange::builder()
                .cidr_ip(source)
                .description(description)
                .build(),
        )
    };
    Ok(p.build())
}

pub async fn delete(aws: &Aws, before: &Props) -> Result<(), ProviderError> {
    let group = str_prop(before, "group")?;
    let ids: Vec<String> = before
        .get("rule_ids")
        .and_then(Value::as_map)
        .map(|m| {
            m.values()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if ids.is_empty() {
        return Ok(());
    }
    aws.ec2
        .revoke_security_group_ingress()
        .group_id(group)
        .set_security_group_rule_ids(Some(ids))
        .send()
        .await
        .map_err(|e| classify("RevokeSecurityGroupIngress", e))?;
    Ok(())
}

super::kind_ops! {
    async fn observe(aws: &Aws) -> Result<Vec<crate::model::Observed>, ProviderError> {
        observe(aws, None).await
    }
    async fn find(aws: &Aws, r: &Resource) -> Result<Option<String>, ProviderError> {
        find(aws, r).await
    }
    async fn create(aws: &Aws, r: &Resource) -> Result<String, ProviderError> {
        create(aws, r).await
    }
    async fn finish(aws: &Aws, r: &Resource, _: &str) -> Result<(), ProviderError> {
        reconcile(aws, r).await
    }
    async fn update(
        aws: &Aws,
        r: &Resource,
        _: &str,
        before: &Props,
    ) -> Result<(), ProviderError> {
        update(aws, r, before).await
    }
    async fn delete(
        aws: &Aws,
        _: &ResourceId,
        _: &str,
        before: &Props,
    ) -> Result<(), ProviderError> {
        delete(aws, before).await
    }
}
