//! Which table to read and how to reach it: the flags, else a local stack's `stack.json`, else
//! the AWS defaults (environment, profile, instance or task role).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use aws_config::{BehaviorVersion, Region};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::{Credentials, ProvideCredentials};
use serde::Deserialize;

use crate::args::TargetArgs;
use crate::{Error, Result, error_chain};

/// Where `make up` writes its stack file, relative to the workspace root.
pub const DEFAULT_STACK: &str = ".local/stack.json";

/// The part of a local stack's `stack.json` the CLI needs.
#[derive(Debug, Clone, Deserialize)]
pub struct StackFile {
    pub endpoint_url: String,
    pub region: String,
    pub table: String,
    #[serde(default)]
    pub distribution_ids: Vec<String>,
    /// The CloudFormation stack the local stack deployed (`cfinv doctor`, `cfinv canary`).
    #[serde(default)]
    pub stack_name: Option<String>,
    /// Each distribution's viewer endpoint (plain http), where the local stack has them.
    #[serde(default)]
    pub edges: BTreeMap<String, String>,
    /// The distributions made for one routing-by-discovery case each, by id.
    #[serde(default)]
    pub distribution_profiles: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct LocalStack {
    pub path: PathBuf,
    pub distribution_ids: Vec<String>,
    pub distribution_profiles: BTreeMap<String, String>,
    pub stack_name: Option<String>,
    pub edges: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct Target {
    pub table: String,
    /// `None` until the AWS defaults are consulted (`connect`).
    pub region: Option<String>,
    pub endpoint: Option<String>,
    pub stack: Option<LocalStack>,
}

impl Target {
    /// From the flags and the stack file; no AWS call yet.
    pub fn load(args: &TargetArgs) -> Result<Self> {
        let stack = stack_path(args).map(read_stack).transpose()?;
        Self::resolve(args, stack)
    }

    /// For a command that reads a deployed stack (doctor, canary): the table is the stack's
    /// output `TableName`, filled in once the stack is read, unless `--table` names it.
    pub fn load_for_stack(args: &TargetArgs) -> Result<Self> {
        let stack = stack_path(args).map(read_stack).transpose()?;
        let args = TargetArgs {
            table: Some(args.table.clone().unwrap_or_default()),
            ..args.clone()
        };
        Self::resolve(&args, stack)
    }

    /// Flags win over the stack file, field by field.
    pub fn resolve(args: &TargetArgs, stack: Option<(PathBuf, StackFile)>) -> Result<Self> {
        let (stack, file) = match stack {
            Some((path, file)) => (
                Some(LocalStack {
                    path,
                    distribution_ids: file.distribution_ids.clone(),
                    distribution_profiles: file.distribution_profiles.clone(),
                    stack_name: file.stack_name.clone(),
                    edges: file.edges.clone(),
                }),
                Some(file),
            ),
            None => (None, None),
        };
        let table = args
            .table
            .clone()
            .or_else(|| file.as_ref().map(|f| f.table.clone()))
            .ok_or_else(|| {
                Error::Usage(format!(
                    "no table: pass --table (the stack output TableName), or --stack with a \
                     local stack's stack.json ({DEFAULT_STACK} is used when it exists)"
                ))
            })?;
        Ok(Self {
            table,
            region: args
                .region
                .clone()
                .or_else(|| file.as_ref().map(|f| f.region.clone())),
            endpoint: args
                .endpoint_url
                .clone()
                .or_else(|| file.as_ref().map(|f| f.endpoint_url.clone())),
            stack,
        })
    }

    pub fn region(&self) -> &str {
        self.region.as_deref().unwrap_or("(none)")
    }

    pub fn endpoint_or_default(&self) -> String {
        self.endpoint
            .clone()
            .unwrap_or_else(|| format!("dynamodb.{}.amazonaws.com", self.region()))
    }

    pub fn unreachable_hint(&self) -> String {
        match &self.stack {
            Some(stack) => format!(
                " (from {}: is that local stack running? `make up` starts one)",
                stack.path.display()
            ),
            None => String::new(),
        }
    }

    /// The distribution to ask about: the one given, else the stack's only one.
    pub fn one_distribution(&self, given: Option<&str>) -> Result<String> {
        if let Some(id) = given {
            return Ok(id.to_owned());
        }
        // A local stack's profiled distributions (each one routing-by-discovery case, serving
        // its own part of the bucket) are not what "the stack's distribution" means.
        let plain: Option<Vec<String>> = self.stack.as_ref().map(|s| {
            s.distribution_ids
                .iter()
                .filter(|id| !s.distribution_profiles.contains_key(*id))
                .cloned()
                .collect()
        });
        match plain.as_deref() {
            Some([only]) => Ok(only.clone()),
            Some(ids) if !ids.is_empty() => Err(Error::Usage(format!(
                "pass --distribution: the stack has {} ({})",
                ids.len(),
                ids.join(", ")
            ))),
            _ => Err(Error::Usage("pass --distribution <ID>".into())),
        }
    }

    /// The distributions to total: those given, else every one of the stack. The table itself
    /// cannot list them without a Scan.
    pub fn distributions(&self, given: &[String]) -> Result<Vec<String>> {
        if !given.is_empty() {
            return Ok(given.to_vec());
        }
        match &self.stack {
            Some(stack) if !stack.distribution_ids.is_empty() => Ok(stack.distribution_ids.clone()),
            _ => Err(Error::Usage(
                "pass --distribution <ID> (repeatable): the table cannot list its distributions \
                 without a Scan, and no stack.json names them"
                    .into(),
            )),
        }
    }
}

/// The stack file to use: `--stack`, else `.local/stack.json` if it exists and no `--table`
/// was given (so `--table` alone always means AWS, even inside a checkout with a local stack).
fn stack_path(args: &TargetArgs) -> Option<PathBuf> {
    args.stack.clone().or_else(|| {
        let default = Path::new(DEFAULT_STACK);
        (args.table.is_none() && default.exists()).then(|| default.to_owned())
    })
}

fn read_stack(path: PathBuf) -> Result<(PathBuf, StackFile)> {
    let raw = std::fs::read_to_string(&path)
        .map_err(|e| Error::Usage(format!("cannot read stack file {}: {e}", path.display())))?;
    let file = serde_json::from_str(&raw).map_err(|e| {
        Error::Usage(format!(
            "{} is not a local stack's stack.json: {e}",
            path.display()
        ))
    })?;
    Ok((path, file))
}

/// The AWS configuration for the target, whose region it fills in. A local stack gets dummy
/// credentials: the emulator accepts any, and the operator's real ones must not be sent to it.
pub async fn sdk_config(target: &mut Target) -> Result<aws_config::SdkConfig> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(region) = &target.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(endpoint) = &target.endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    if target.stack.is_some() {
        loader = loader.credentials_provider(Credentials::new(
            "test",
            "test",
            None,
            None,
            "cfinv-local-stack",
        ));
    }
    let conf = loader.load().await;
    // Resolved once here so that missing credentials read as such, not as a failed query.
    if let Some(credentials) = conf.credentials_provider() {
        credentials.provide_credentials().await.map_err(|e| {
            Error::Usage(format!(
                "no AWS credentials ({}): set a profile or AWS_ACCESS_KEY_ID, or pass --stack \
                 for a local stack",
                error_chain(&e)
            ))
        })?;
    }
    target.region = Some(
        conf.region()
            .map(|r| r.to_string())
            .ok_or_else(|| Error::Usage("no region: pass --region or set AWS_REGION".into()))?,
    );
    Ok(conf)
}

/// A DynamoDB client for the target (see [`sdk_config`]).
pub async fn client(target: &mut Target) -> Result<Client> {
    Ok(Client::new(&sdk_config(target).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stack() -> (PathBuf, StackFile) {
        (
            PathBuf::from("/s/stack.json"),
            StackFile {
                endpoint_url: "http://127.0.0.1:5000".into(),
                region: "us-east-1".into(),
                table: "local-Table".into(),
                distribution_ids: vec!["E0".into(), "E1".into()],
                stack_name: Some("cf-invalidator-local".into()),
                edges: BTreeMap::new(),
                distribution_profiles: BTreeMap::new(),
            },
        )
    }

    #[test]
    fn the_stack_file_fills_what_the_flags_leave_out() {
        let args = TargetArgs {
            region: Some("eu-west-1".into()),
            ..TargetArgs::default()
        };
        let t = Target::resolve(&args, Some(stack())).unwrap();
        assert_eq!(t.table, "local-Table");
        assert_eq!(t.region.as_deref(), Some("eu-west-1"));
        assert_eq!(t.endpoint.as_deref(), Some("http://127.0.0.1:5000"));
        assert!(t.unreachable_hint().contains("/s/stack.json"));
    }

    #[test]
    fn the_only_plain_distribution_is_the_default_one() {
        let (path, mut file) = stack();
        let both = Target::resolve(&TargetArgs::default(), Some((path.clone(), file.clone())));
        let err = both.unwrap().one_distribution(None).unwrap_err();
        assert!(
            err.to_string().contains("the stack has 2 (E0, E1)"),
            "{err}"
        );
        file.distribution_profiles
            .insert("E1".into(), "query-strings".into());
        let t = Target::resolve(&TargetArgs::default(), Some((path, file))).unwrap();
        assert_eq!(t.one_distribution(None).unwrap(), "E0");
        assert_eq!(t.one_distribution(Some("E1")).unwrap(), "E1");
    }

    #[test]
    fn without_a_stack_a_table_is_required() {
        let err = Target::resolve(&TargetArgs::default(), None).unwrap_err();
        assert!(err.to_string().contains("--table"), "{err}");
        let args = TargetArgs {
            table: Some("t".into()),
            ..TargetArgs::default()
        };
        let t = Target::resolve(&args, None).unwrap();
        assert_eq!(t.endpoint, None);
        assert_eq!(t.unreachable_hint(), "");
    }

    #[test]
    fn distributions_default_to_the_stacks_and_are_required_without_one() {
        let args = TargetArgs::default();
        let t = Target::resolve(&args, Some(stack())).unwrap();
        assert_eq!(t.distributions(&[]).unwrap(), ["E0", "E1"]);
        assert_eq!(t.distributions(&["E9".into()]).unwrap(), ["E9"]);
        assert!(
            t.one_distribution(None)
                .unwrap_err()
                .to_string()
                .contains("E0, E1")
        );
        assert_eq!(t.one_distribution(Some("E1")).unwrap(), "E1");

        let aws = Target::resolve(
            &TargetArgs {
                table: Some("t".into()),
                ..TargetArgs::default()
            },
            None,
        )
        .unwrap();
        assert!(
            aws.distributions(&[])
                .unwrap_err()
                .to_string()
                .contains("without a Scan")
        );
        assert!(aws.one_distribution(None).is_err());
    }
}
