//! A local env's secret values: from the file or the environment variables
//! its config names (`secrets_from`), never from SSM.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::{Config, SecretsFrom};
use crate::error::UserError;

/// The value of each parameter the services' `secrets` name, by that name.
pub fn secrets(config: &Config) -> Result<BTreeMap<String, String>, UserError> {
    let params: BTreeSet<&String> = config
        .services
        .values()
        .flat_map(|s| s.secrets.values())
        .collect();
    if params.is_empty() {
        return Ok(BTreeMap::new());
    }
    match &config.secrets_from {
        SecretsFrom::File(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                UserError::usage(
                    format!("cannot read the secrets file {}: {e}", path.display()),
                    format!(
                        "create it with a `NAME=value` line for each of: {}",
                        params
                            .iter()
                            .map(|p| p.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })?;
            let values = parse(&text);
            params
                .into_iter()
                .map(|p| {
                    values
                        .get(p.as_str())
                        .map(|v| (p.clone(), v.clone()))
                        .ok_or_else(|| {
                            UserError::usage(
                                format!("the secrets file {} has no value for {p}", path.display()),
                                format!("add a line `{p}=…` to it"),
                            )
                        })
                })
                .collect()
        }
        SecretsFrom::Env { prefix } => params
            .into_iter()
            .map(|p| {
                let var = SecretsFrom::variable(prefix, p);
                std::env::var(&var).map(|v| (p.clone(), v)).map_err(|_| {
                    UserError::usage(
                        format!("the environment variable {var} (the secret {p}) is not set"),
                        format!("export {var}=… before running scopectl"),
                    )
                })
            })
            .collect(),
        SecretsFrom::Ssm | SecretsFrom::Unset => Ok(BTreeMap::new()),
    }
}

/// `NAME=value` lines; `#` comments and blank lines skipped; a value in
/// matching quotes loses them.
fn parse(text: &str) -> BTreeMap<&str, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let v = v.trim();
            let unquoted = ['"', '\'']
                .iter()
                .find_map(|q| v.strip_prefix(*q)?.strip_suffix(*q))
                .unwrap_or(v);
            (k.trim(), unquoted.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secrets_file_reads_names_and_unquoted_values() {
        let v = parse("# local\n/scope/db-password = \"s3cret=x\"\nAPI_KEY='k'\n\nPLAIN=v v\n");
        assert_eq!(v["/scope/db-password"], "s3cret=x");
        assert_eq!(v["API_KEY"], "k");
        assert_eq!(v["PLAIN"], "v v");
        assert_eq!(v.len(), 3);
    }

    #[test]
    fn a_parameter_name_becomes_a_variable_name() {
        assert_eq!(
            SecretsFrom::variable("SCOPE_", "/scope/staging/db-password"),
            "SCOPE_SCOPE_STAGING_DB_PASSWORD"
        );
        assert_eq!(SecretsFrom::variable("", "db.password"), "DB_PASSWORD");
    }
}
