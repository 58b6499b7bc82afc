//! An IAM role, its inline policy (`scopectl`) and the instance profile that
//! carries it, as one resource: they are created, changed and deleted
//! together. IAM has no tag filters; ownership is the path
//! `/scopectl/<project>/<env>/`, which only scopectl writes under.

use aws_sdk_iam::types::Tag;

use super::{classify, idempotent, read, str_prop, Aws};
use crate::apply::{ErrorKind, ProviderError};
use crate::desired::canonical_json;
use crate::model::{Kind, Observed, Props, Resource, ResourceId, Value, TAG_ENV, TAG_PROJECT};

const POLICY_NAME: &str = "scopectl";

const ASSUME_EC2: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

/// IAM returns policy documents URL-encoded.
fn decode_policy(text: &str) -> String {
    let decoded = percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .map(|s| s.into_owned())
        .unwrap_or_else(|_| text.to_string());
    canonical_json(&decoded)
}

fn prefix(aws: &Aws) -> String {
    aws.state_prefix()
}

/// The role id for a role name under our path: `<cluster>-<role>` → `role`.
fn id_for(aws: &Aws, name: &str) -> Option<ResourceId> {
    let role = name.strip_prefix(&format!("{}-", aws.owner.cluster_name()))?;
    Some(ResourceId::new(Kind::InstanceProfile, role))
}

pub async fn observe(aws: &Aws) -> Result<Vec<Observed>, ProviderError> {
    let path = prefix(aws);
    let p = path.as_str();
    let (roles, profiles) = futures::try_join!(
        read(|| async move {
            aws.iam
                .list_roles()
                .path_prefix(p)
                .send()
                .await
                .map_err(|e| classify("ListRoles", e))
        }),
        read(|| async move {
            aws.iam
                .list_instance_profiles()
                .path_prefix(p)
                .send()
                .await
                .map_err(|e| classify("ListInstanceProfiles", e))
        }),
    )?;
    let mut out = Vec::new();
    let role_names: Vec<String> = roles
        .roles()
        .iter()
        .filter(|r| r.path() == path)
        .map(|r| r.role_name().to_string())
        .collect();
    // Each role's policy at once: one round trip however many roles.
    let owned: Vec<(ResourceId, String)> = role_names
        .into_iter()
        .filter_map(|name| Some((id_for(aws, &name)?, name)))
        .collect();
    let policies = futures::future::try_join_all(owned.iter().map(|(_, name)| {
        let n = name.as_str();
        read(move || async move {
            match aws
                .iam
                .get_role_policy()
                .role_name(n)
                .policy_name(POLICY_NAME)
                .send()
                .await
            {
                Ok(p) => Ok(Some(decode_policy(p.policy_document()))),
                Err(e) => {
                    let e = classify("GetRolePolicy", e);
                    if e.kind == ErrorKind::NotFound {
                        Ok(None)
                    } else {
                        Err(e)
                    }
                }
            }
        })
    }))
    .await?;
    for ((id, name), policy) in owned.into_iter().zip(policies) {
        let profile = profiles
            .instance_profiles()
            .iter()
            .find(|p| p.instance_profile_name() == name);
        let mut props = Props::from([
            ("name".into(), Value::str(&name)),
            ("path".into(), Value::str(&path)),
            (
                "policy".into(),
                Value::str(policy.unwrap_or_else(|| "(none)".into())),
            ),
        ]);
        // A profile missing, or without its role, shows as a change.
        let has_role = profile.is_some_and(|p| p.roles().iter().any(|r| r.role_name() == name));
        props.insert("profile".into(), Value::Bool(has_role));
        out.push(Observed {
            id,
            physical_id: name,
            props,
        });
    }
    Ok(out)
}

pub async fn find(aws: &Aws, r: &Resource) -> Result<Option<String>, ProviderError> {
    Ok(observe(aws)
        .await?
        .into_iter()
        .find(|o| o.id == r.id)
        .map(|o| o.physical_id))
}

fn tags(aws: &Aws, r: &Resource) -> Vec<Tag> {
    aws.owner
        .tags_for(&r.id)
        .into_iter()
        .filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok())
        .collect()
}

/// Whether IAM tags and path say the entity is this env's.
fn is_ours(aws: &Aws, path: Option<&str>, tags: &[Tag]) -> bool {
    let get = |k: &str| tags.iter().find(|t| t.key() == k).map(|t| t.value());
    path == Some(prefix(aws).as_str())
        && get(TAG_PROJECT) == Some(aws.owner.project.as_str())
        && get(TAG_ENV) == Some(aws.owner.env.as_str())
}

pub async fn create(aws: &Aws, r: &Resource) -> Result<String, ProviderError> {
    let name = str_prop(&r.props, "name")?;
    let created = aws
        .iam
        .create_role()
        .role_name(&name)
        .path(str_prop(&r.props, "path")?)
        .assume_role_policy_document(ASSUME_EC2)
        .description("scopectl: instance role")
        .set_tags(Some(tags(aws, r)))
        .send()
        .await
        .map_err(|e| classify("CreateRole", e));
    match created {
        // Ours from a run whose answer was lost, or someone else's by our name.
        Err(e) if e.code.as_deref() == Some("EntityAlreadyExists") => {
            let n = name.as_str();
            let role = read(|| async move {
                aws.iam
                    .get_role()
                    .role_name(n)
                    .send()
                    .await
                    .map_err(|e| classify("GetRole", e))
            })
            .await?;
            let ours = role
                .role()
                .is_some_and(|x| is_ours(aws, Some(x.path()), x.tags()));
            if !ours {
                return Err(super::not_ours(aws, "IAM role", &name, &r.id));
            }
        }
        other => {
            other?;
        }
    }
    finish(aws, r, &name).await?;
    Ok(name)
}

/// The policy, the profile and the role in it: each step idempotent, so an
/// interrupted create is completed here.
pub async fn finish(aws: &Aws, r: &Resource, name: &str) -> Result<(), ProviderError> {
    let policy = &str_prop(&r.props, "policy")?;
    // The policy and the profile need only the role: both at once.
    let put_policy = async {
        // IAM is eventually consistent: a role made a moment ago may be
        // NoSuchEntity for a little while.
        super::on_new(|| async move {
            aws.iam
                .put_role_policy()
                .role_name(name)
                .policy_name(POLICY_NAME)
                .policy_document(policy)
                .send()
                .await
                .map_err(|e| classify("PutRolePolicy", e).doing("putting the role's policy"))
        })
        .await
        .map(|_| ())
    };
    futures::try_join!(put_policy, ensure_profile(aws, r, name))?;
    let added = super::on_new(|| async move {
        aws.iam
            .add_role_to_instance_profile()
            .instance_profile_name(name)
            .role_name(name)
            .send()
            .await
            .map_err(|e| classify("AddRoleToInstanceProfile", e))
    })
    .await;
    match added {
        // Already in it; a profile holds at most one role.
        Err(e) if e.code.as_deref() != Some("LimitExceeded") => Err(e),
        _ => Ok(()),
    }
}

/// The instance profile by `name`, created unless it is there and ours.
async fn ensure_profile(aws: &Aws, r: &Resource, name: &str) -> Result<(), ProviderError> {
    // A repeat after a lost answer meets EntityAlreadyExists, accepted below.
    let path = &str_prop(&r.props, "path")?;
    let tags = tags(aws, r);
    let created = idempotent(|| {
        let tags = tags.clone();
        async move {
            aws.iam
                .create_instance_profile()
                .instance_profile_name(name)
                .path(path)
                .set_tags(Some(tags))
                .send()
                .await
                .map_err(|e| classify("CreateInstanceProfile", e))
        }
    })
    .await;
    match created {
        Err(e) if e.code.as_deref() != Some("EntityAlreadyExists") => return Err(e),
        Err(_) => {
            // Ours (a repeat), or someone else's profile by our name: never
            // put our role in it.
            let profile = read(|| async move {
                aws.iam
                    .get_instance_profile()
                    .instance_profile_name(name)
                    .send()
                    .await
                    .map_err(|e| classify("GetInstanceProfile", e))
            })
            .await?;
            let ours = profile
                .instance_profile()
                .is_some_and(|p| is_ours(aws, Some(p.path()), p.tags()));
            if !ours {
                return Err(super::not_ours(aws, "IAM instance profile", name, &r.id));
            }
        }
        Ok(_) => {}
    }
    Ok(())
}

pub async fn update(aws: &Aws, r: &Resource, physical_id: &str) -> Result<(), ProviderError> {
    finish(aws, r, physical_id).await
}

pub async fn delete(aws: &Aws, name: &str) -> Result<(), ProviderError> {
    let gone = |r: Result<(), ProviderError>| match r {
        Err(e) if e.kind != ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    };
    // Read first: a retried removal must not ask again for what is done.
    let profile = read(|| async move {
        match aws
            .iam
            .get_instance_profile()
            .instance_profile_name(name)
            .send()
            .await
        {
            Ok(out) => Ok(out
                .instance_profile()
                .map(|p| p.roles().iter().any(|r| r.role_name() == name))),
            Err(e) => {
                let e = classify("GetInstanceProfile", e);
                if e.kind == ErrorKind::NotFound {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    })
    .await?;
    // Each removal below is repeated on transient failures: a repeat of one
    // that went through meets NotFound, which counts as done.
    if profile == Some(true) {
        gone(
            idempotent(|| async move {
                aws.iam
                    .remove_role_from_instance_profile()
                    .instance_profile_name(name)
                    .role_name(name)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| classify("RemoveRoleFromInstanceProfile", e))
            })
            .await,
        )?;
    }
    if profile.is_some() {
        gone(
            idempotent(|| async move {
                aws.iam
                    .delete_instance_profile()
                    .instance_profile_name(name)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| classify("DeleteInstanceProfile", e))
            })
            .await,
        )?;
    }
    gone(
        idempotent(|| async move {
            aws.iam
                .delete_role_policy()
                .role_name(name)
                .policy_name(POLICY_NAME)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| classify("DeleteRolePolicy", e))
        })
        .await,
    )?;
    // The role last: the executor retries the step if something still
    // holds it, and a repeat after a lost answer is NotFound, done.
    gone(
        idempotent(|| async move {
            aws.iam
                .delete_role()
                .role_name(name)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| classify("DeleteRole", e))
        })
        .await,
    )
}

super::kind_ops! {
    async fn observe(aws: &Aws) -> Result<Vec<crate::model::Observed>, ProviderError> {
        observe(aws).await
    }
    async fn find(aws: &Aws, r: &Resource) -> Result<Option<String>, ProviderError> {
        find(aws, r).await
    }
    async fn create(aws: &Aws, r: &Resource) -> Result<String, ProviderError> {
        create(aws, r).await
    }
    async fn finish(aws: &Aws, r: &Resource, pid: &str) -> Result<(), ProviderError> {
        finish(aws, r, pid).await
    }
    async fn update(
        aws: &Aws,
        r: &Resource,
        pid: &str,
        _: &Props,
    ) -> Result<(), ProviderError> {
        update(aws, r, pid).await
    }
    async fn delete(
        aws: &Aws,
        _: &ResourceId,
        pid: &str,
        _: &Props,
    ) -> Result<(), ProviderError> {
        delete(aws, pid).await
    }
}
